package pool

import (
	"log/slog"
	"os"
	"syscall"

	"github.com/shirou/gopsutil/v4/process"

	"github.com/pyrunner/pyrunner/python"
)

// uidRange is a block of uids [first, first+count).
type uidRange struct{ first, count int }

func (r uidRange) has(uid uint32) bool {
	return int64(uid) >= int64(r.first) && int64(uid) < int64(r.first)+int64(r.count)
}

// ownUIDs is the range a zygote's task processes run as when each has a
// uid of its own (a root pyrunner), else the empty range.
func ownUIDs(c python.Config) uidRange {
	if c.TaskUIDCount > 1 && c.TaskUID > 0 && os.Geteuid() == 0 {
		return uidRange{c.TaskUID, c.TaskUIDCount}
	}
	return uidRange{}
}

// killPasses bounds the sweeps of killUIDs: a process forking as fast as
// it can is caught within a few, since what is killed forks no more.
const killPasses = 20

// killUIDs SIGKILLs every process whose real or effective uid is in r,
// sweeping until a pass finds none. The range is pyrunner's alone (claimed
// at start), so nothing else is hit.
func killUIDs(r uidRange, logger *slog.Logger) {
	for range killPasses {
		procs, err := process.Processes()
		if err != nil {
			logger.Warn("could not list processes to clean up after a zygote", "error", err)
			return
		}
		found := 0
		for _, p := range procs {
			uids, err := p.Uids()
			if err != nil || len(uids) < 2 || !(r.has(uids[0]) || r.has(uids[1])) {
				continue
			}
			if st, _ := p.Status(); len(st) > 0 && st[0] == process.Zombie {
				continue // dead already, waiting for its parent
			}
			found++
			_ = syscall.Kill(int(p.Pid), syscall.SIGKILL)
		}
		if found == 0 {
			return
		}
		logger.Debug("killed processes left behind by a zygote's tasks", "count", found)
	}
}
