package pool

import (
	"fmt"
	"log/slog"
	"os"
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
