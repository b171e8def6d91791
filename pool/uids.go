package pool

import (
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/shirou/gopsutil/v4/process"

	"github.com/pyrunner/pyrunner/python"
)

// uidRange is a block of uids [first, first+count).
type uidRange struct{ first, count int }

func (r uidRange) has(uid uint32) bool {
	return int64(uid) >= int64(r.first) && int64(uid) < int64(r.first)+int64(r.count)
}

// uidsOf is the range a zygote's task processes run as when each has a uid
// of its own, else the empty range. Whether they do is decided once, on
// the Go side (python.Config.UIDPerTask), and the zygote follows it.
func uidsOf(c python.Config) uidRange {
	if c.UIDPerTask && c.TaskUIDCount > 0 {
		return uidRange{c.TaskUID, c.TaskUIDCount}
	}
	return uidRange{}
}

// runs reports whether p is alive (not a zombie) with a real or effective
// uid in r.
func (r uidRange) runs(p *process.Process) bool {
	uids, err := p.Uids()
	if err != nil || len(uids) < 2 || !(r.has(uids[0]) || r.has(uids[1])) {
		return false
	}
	st, _ := p.Status()
	return len(st) == 0 || st[0] != process.Zombie // a zombie is dead already
}

// killPasses bounds the sweeps of killUIDs, killPause apart: a process
// forking as fast as it can is caught within a few, since what is killed
// forks no more, and a killed one has time to die.
const (
	killPasses = 20
	killPause  = 10 * time.Millisecond
)

// killUIDs SIGKILLs every process whose real or effective uid is in r,
// sweeping until a pass finds none. The range is pyrunner's alone (claimed
// at start), so nothing else is hit.
func killUIDs(r uidRange, logger *slog.Logger) {
	for pass := range killPasses {
		if pass > 0 {
			time.Sleep(killPause)
		}
		procs, err := process.Processes()
		if err != nil {
			logger.Warn("could not list processes to clean up after a zygote", "error", err)
			return
		}
		found := 0
		for _, p := range procs {
			if !r.runs(p) {
				continue
			}
			// Through a pidfd, checked again once held: the pid cannot
			// have been reused by another process in between.
			h, err := os.FindProcess(int(p.Pid))
			if err != nil {
				continue
			}
			if r.runs(p) {
				found++
				_ = h.Signal(os.Kill)
			}
			_ = h.Release()
		}
		if found == 0 {
			return
		}
		logger.Debug("killed processes left behind by a zygote's tasks", "count", found)
	}
	logger.Warn("processes left behind by a zygote's tasks were still alive after being killed", "uids", fmt.Sprintf("%d-%d", r.first, r.first+r.count-1))
}

// uidShares hands out shares of a root pyrunner's task uids, one per
// zygote: the default environment's zygotes take the first ones, each
// other environment in use one more, so that no two live task processes
// ever share a uid. nil when tasks share one uid (not root).
type uidShares struct {
	base     python.Config
	size     int // uids a zygote needs: its live processes, with room
	defaults int // shares the default environment takes

	// mu guards free.
	mu   sync.Mutex
	free []int
}

func newUIDShares(o Options) *uidShares {
	r := uidsOf(o.Spec.Config)
	if r.count == 0 {
		return nil
	}
	u := &uidShares{base: o.Spec.Config, size: 2*o.MaxWorkers + 2, defaults: o.Zygotes}
	for k := o.Zygotes; k < r.count/u.size; k++ {
		u.free = append(u.free, k)
	}
	return u
}

// forDefault is the default environment's part of the range.
func (u *uidShares) forDefault(c python.Config) python.Config {
	if u != nil {
		c.TaskUIDCount = u.defaults * u.size
	}
	return c
}

// forEnv gives o a share of its own, and the function that gives it back.
func (u *uidShares) forEnv(o Options) (Options, func(), error) {
	if u == nil {
		return o, func() {}, nil
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.free) == 0 {
		return o, nil, fmt.Errorf("every share of the task uids is in use by an environment (%d uids from %d, N8N_PYTHON_TASK_UID_COUNT)",
			u.base.TaskUIDCount, u.base.TaskUID)
	}
	k := u.free[0]
	u.free = u.free[1:]
	c := o.Spec.Config
	c.TaskUID = u.base.TaskUID + k*u.size
	if u.base.TaskGID >= 0 {
		c.TaskGID = u.base.TaskGID + k*u.size
	}
	c.TaskUIDCount = u.size
	o.Spec.Config = c
	var once sync.Once
	return o, func() {
		once.Do(func() {
			u.mu.Lock()
			defer u.mu.Unlock()
			u.free = append(u.free, k)
		})
	}, nil
}
