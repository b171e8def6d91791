package pool

import (
	"fmt"
	"slices"
)

// Replacing a long-lived process on request: the metrics' memory-growth
// alert asks for a zygote or a reuse worker that keeps growing to be
// replaced. Nothing is replaced mid-task: a busy worker goes when its task
// ends, an idle one at once; a zygote once none of its task processes runs
// a task and none is being forked (its task processes die with it). The
// maintainer starts the replacements as it starts any process.

// ProcessRole says what a Python process of the pool is for.
type ProcessRole string

const (
	// RoleZygote forks task processes and never runs user code.
	RoleZygote ProcessRole = "zygote"
	// RoleWorker serves many tasks (N8N_PYTHON_ISOLATION=reuse).
	RoleWorker ProcessRole = "worker"
	// RoleTask serves one task and exits (isolated mode).
	RoleTask ProcessRole = "task"
)

// ProcessInfo is one live Python process of the pool.
type ProcessInfo struct {
	PID  int
	Role ProcessRole
	// Busy: running a task now (workers and task processes).
	Busy bool
	// Tasks is how many tasks a worker has run.
	Tasks int
}

// Processes lists the zygotes and the task processes that are ready or
// running a task (not those still starting), for resource sampling.
func (e *ZygoteExecutor) Processes() []ProcessInfo {
	var out []ProcessInfo
	for _, slot := range e.slots {
		if pid := slot.pid(); pid > 0 {
			out = append(out, ProcessInfo{PID: pid, Role: RoleZygote})
		}
	}
	role := RoleTask
	if e.opts.Reuse {
		role = RoleWorker
	}
	s := e.sched
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range s.idle {
		out = append(out, ProcessInfo{PID: w.proc.Pid(), Role: role, Tasks: w.tasks})
	}
	for w := range s.busy {
		out = append(out, ProcessInfo{PID: w.proc.Pid(), Role: role, Busy: true, Tasks: w.tasks})
	}
	return out
}

// Recycle asks for the zygote or worker pid to be replaced at its next
// idle moment, never mid-task; why is logged. It reports whether pid is
// one of the pool's zygotes or ready or running task processes. Safe to
// call again for the same process.
func (e *ZygoteExecutor) Recycle(pid int, why string) bool {
	s := e.sched
	s.mu.Lock()
	for i, w := range s.idle {
		if w.proc.Pid() != pid {
			continue
		}
		s.idle = slices.Delete(s.idle, i, i+1)
		s.counts.recycled++
		s.mu.Unlock()
		e.logger.Info(fmt.Sprintf("Replacing Python worker %d: %s", pid, why))
		s.gone(w)
		s.wake()
		return true
	}
	for w := range s.busy {
		if w.proc.Pid() == pid {
			if !w.recycle {
				e.logger.Info(fmt.Sprintf("Replacing Python worker %d once its task ends: %s", pid, why))
			}
			w.recycle = true
			s.mu.Unlock()
			return true
		}
	}
	s.mu.Unlock()
	for _, slot := range e.slots {
		if slot.pid() == pid {
			s.mu.Lock()
			s.recycleZygote[slot] = why
			s.mu.Unlock()
			s.wake()
			return true
		}
	}
	return false
}

// replaceIdleZygotes hands each zygote that Recycle asked to replace to its
// supervisor, once none of its task processes runs a task and none is being
// forked; its ready processes go with it. The maintainer calls it.
func (s *scheduler) replaceIdleZygotes() {
	for _, slot := range s.slots {
		s.mu.Lock()
		why, asked := s.recycleZygote[slot]
		z := slot.zygote()
		if !asked || z == nil || s.inflight[slot] > 0 || s.runsOnLocked(z) {
			s.mu.Unlock()
			continue
		}
		delete(s.recycleZygote, slot)
		s.replacing[slot] = true
		gone := s.takeIdleLocked(func(_ int, w *worker) bool { return forkedBy(w, z) })
		s.mu.Unlock()
		for _, w := range gone {
			s.gone(w)
		}
		select {
		case slot.replaceCh <- why:
		default: // a request is pending already
		}
	}
}

// runsOnLocked reports whether a task process forked by z runs a task.
func (s *scheduler) runsOnLocked(z *zygote) bool {
	for w := range s.busy {
		if forkedBy(w, z) {
			return true
		}
	}
	return false
}

func forkedBy(w *worker, z *zygote) bool {
	p, ok := w.proc.(*forkedProcess)
	return ok && p.zygote == z
}

// zygoteUp is the supervisor's news that slot has a live zygote again.
func (s *scheduler) zygoteUp(slot *zygoteSlot) {
	s.mu.Lock()
	delete(s.replacing, slot)
	s.mu.Unlock()
	s.wake()
}

// zygote is the live zygote, or nil while (re)starting.
func (s *zygoteSlot) zygote() *zygote {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.current
}
