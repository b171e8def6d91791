package pool

import (
	"math"
	"time"
)

// Workflow mode (Options.PerWorkflow, N8N_PYTHON_ISOLATION=workflow) is
// reuse mode with a key: a worker that has run a task of one workflow runs
// tasks of that workflow only, until MaxExecutions, and is then replaced.
// A task without a workflow id runs on a fresh worker that goes after it,
// as in isolated mode. The rules, all under the scheduler's lock:
//
//	a task takes   a ready worker of its workflow, else a fresh one (which
//	               it binds to its workflow); never one of another workflow
//	a worker back  goes to the first waiter if it may serve that waiter; a
//	               worker of another workflow that stands in the first
//	               waiter's way (no room to start one for it) is retired,
//	               so that the first waiter gets the fresh one that replaces
//	               it: waiters are served in order whatever their workflow,
//	               and a busy workflow cannot keep the pool to itself
//	no room        a task that finds neither, with MaxWorkers reached,
//	               retires the ready worker of another workflow that has
//	               waited longest
//	spares         with MaxWorkers reached, the maintainer retires the
//	               longest-idle workers so that fresh ones stay ready, as
//	               many as the tasks that took a fresh one call for
//	               (sparesLocked, freeSpare)
//
// MaxWorkers stays global; MaxIdleTime retires idle workers of any key.

// fitRank says whether w may run a task of workflow, and how well: 2 for
// a worker of that very workflow, 1 for a fresh one, 0 for none.
func (s *scheduler) fitRank(w *worker, workflow string) int {
	switch {
	case !s.opts.PerWorkflow:
		return 1
	case w.tasks == 0:
		return 1
	case workflow != "" && w.workflow == workflow:
		return 2
	}
	return 0
}

// bindLocked gives w to a task of workflow: in workflow mode a fresh
// worker becomes that workflow's.
func (s *scheduler) bindLocked(w *worker, workflow string) {
	if s.opts.PerWorkflow && w.tasks == 0 {
		w.workflow = workflow
		s.freshRate.arrive(time.Now())
	}
}

// sparesLocked is how many fresh workers workflow mode keeps ready or
// starting: what tasks that find no worker of their workflow take while
// one is being started, as isolated mode counts all tasks, and at least one.
func (s *scheduler) sparesLocked() int {
	return max(1, int(math.Ceil(s.freshRate.perSecond(time.Now())*2*s.spawnTime.Seconds())))
}

// reusable reports whether w may serve another task after the one it ran:
// in workflow mode, not after a task that had no workflow.
func (s *scheduler) reusable(w *worker) bool {
	return s.opts.Reuse && (!s.opts.PerWorkflow || w.workflow != "")
}

// roomLocked is how many more processes MaxWorkers allows now.
func (s *scheduler) roomLocked() int {
	return s.opts.MaxWorkers - len(s.idle) - len(s.busy) - s.starting
}

// makeRoomLocked, in workflow mode with MaxWorkers reached, takes out of
// the ready list the one that has waited longest among those that cannot
// serve workflow, for the caller to let go of (after unlocking); nil when
// there is room, or nothing to retire.
func (s *scheduler) makeRoomLocked(workflow string) *worker {
	if !s.opts.PerWorkflow || s.roomLocked() > 0 || s.starting >= s.waiters.Len() {
		return nil
	}
	for i, w := range s.idle { // oldest first
		if s.fitRank(w, workflow) == 0 {
			s.idle = append(s.idle[:i], s.idle[i+1:]...)
			return w
		}
	}
	return nil
}

// freshIdleLocked counts the ready workers that have run no task.
func (s *scheduler) freshIdleLocked() int {
	n := 0
	for _, w := range s.idle {
		if w.tasks == 0 {
			n++
		}
	}
	return n
}

// waiterOfLocked is the first waiter (by priority, then arrival) of
// workflow, or nil; never one for a task without a workflow.
func (s *scheduler) waiterOfLocked(workflow string) *waiter {
	if !s.opts.PerWorkflow || workflow == "" {
		return nil
	}
	var first *waiter
	for _, wt := range s.waiters {
		if wt.workflow == workflow && (first == nil || wt.prio > first.prio || (wt.prio == first.prio && wt.seq < first.seq)) {
			first = wt
		}
	}
	return first
}

// freeSpare, in workflow mode with MaxWorkers reached and fewer fresh
// workers ready or starting than sparesLocked (at most half the pool),
// retires the ready worker of a workflow that has waited longest, so that
// the maintainer can start a fresh one before a task finding no worker of
// its workflow needs it: that task then waits no longer than in isolated
// mode. With MaxWorkers 1 the one worker is kept for its workflow instead.
func (s *scheduler) freeSpare() {
	s.mu.Lock()
	var retired *worker
	if s.opts.PerWorkflow && s.opts.MaxWorkers > 1 && s.closed == nil && s.roomLocked() <= 0 &&
		s.freshIdleLocked()+s.starting < min(s.sparesLocked(), s.opts.MaxWorkers/2) {
		for i, w := range s.idle { // oldest first
			if w.tasks > 0 {
				retired = w
				s.idle = append(s.idle[:i], s.idle[i+1:]...)
				break
			}
		}
	}
	s.mu.Unlock()
	if retired != nil {
		s.gone(retired)
	}
}
