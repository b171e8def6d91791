package pool

import (
	"container/heap"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"syscall"
	"time"
)

// worker is one task process the pool holds: ready (idle) or running a task.
type worker struct {
	proc      taskProcess
	tasks     int // tasks it has run (reuse mode), guarded by the scheduler's lock
	idleSince time.Time
	// recycle: Recycle asked for it to be replaced; it serves no further
	// task (guarded by the scheduler's lock).
	recycle bool
	// workflow: in workflow mode, the workflow whose tasks it runs once it
	// has run one (workflow.go).
	workflow string
}

func (w *worker) dead() bool {
	select {
	case <-w.proc.Exited():
		return true
	default:
		return false
	}
}

// scheduler holds the task processes and hands them to tasks, highest
// priority first. acquire and release only move processes between its
// lists; starting them, and retiring them, is the maintainer's job
// (maintain.go), so that no fork, process start or import is ever on a
// task's path.
//
//	start ─► starting ─(ready frame)─► idle ─(acquire)─► busy ─(release)─┐
//	                                     ▲                                │
//	                                     └──── reuse, under MaxExecutions ┘
//	isolated, or worn out, or dead: the process is gone and replaced.
type scheduler struct {
	opts  Options
	slots []*zygoteSlot
	log   *slog.Logger
	// goTracked starts a goroutine the executor waits for when it closes.
	goTracked func(func())
	wakeCh    chan struct{}
	// budget, when several executors share N8N_PYTHON_POOL_MAX_WORKERS,
	// is what they share; nil: MaxWorkers is this executor's own.
	budget *workerBudget

	// mu guards everything below.
	mu       sync.Mutex
	idle     []*worker // most recently ready last
	busy     map[*worker]struct{}
	starting int
	waiters  waitQueue
	seq      uint64
	closed   error
	rate     rateMeter
	// freshRate: workflow mode's tasks that took a fresh worker (workflow.go).
	freshRate rateMeter
	// spawnTime is a moving average of spawn request to ready.
	spawnTime time.Duration
	// inflight counts spawn requests under way, per zygote slot
	// (spawnsInFlight at most) and in all; after failures, no spawn before
	// backoffUntil.
	inflight      map[*zygoteSlot]int
	inflightTotal int
	failures      int
	backoffUntil  time.Time
	// What the pool has done since it started, for metrics (Stats).
	counts counters
	// startErr is why the last start failed; replacing marks the zygotes
	// being replaced at Recycle's request (recycle.go), which take no spawn.
	startErr      error
	replacing     map[*zygoteSlot]bool
	recycleZygote map[*zygoteSlot]string // why, for those Recycle asked for
}

// counters are what the pool has done since it started.
type counters struct {
	started, startFailures, wornOut, recycled uint64
}

func newScheduler(opts Options, slots []*zygoteSlot, goTracked func(func()), log *slog.Logger) *scheduler {
	s := &scheduler{
		opts: opts, slots: slots, log: log, goTracked: goTracked,
		wakeCh: make(chan struct{}, 1), spawnTime: 5 * time.Millisecond,
		inflight: map[*zygoteSlot]int{}, budget: opts.budget,
		busy: map[*worker]struct{}{}, replacing: map[*zygoteSlot]bool{},
		recycleZygote: map[*zygoteSlot]string{},
	}
	if s.budget != nil {
		s.budget.join(s)
	}
	return s
}

// gone lets go of a process the scheduler held (done serving, dead, or
// never ready) and gives its unit of the shared budget back. Its process
// group is killed, without waiting: the process would exit by itself on
// the closed channel, but what its code left in its group would not (a
// child that answered for it, as a fork returns twice, or the rest of a
// fork bomb whose first process to hit the process limit answered),
// holding the user's processes and the CPU from the tasks after it.
func (s *scheduler) gone(w *worker) {
	if w != nil {
		w.proc.Channel().Close()
		_ = w.proc.Signal(syscall.SIGKILL)
	}
	s.budget.give(1)
}

// wake nudges the maintainer.
func (s *scheduler) wake() {
	select {
	case s.wakeCh <- struct{}{}:
	default:
	}
}

// acquire returns a process for one task of workflow ("" for none; it
// matters in workflow mode only), waiting by priority when none is ready,
// for at most the pool's WaitTimeout.
func (s *scheduler) acquire(ctx context.Context, prio Priority, workflow string) (*worker, error) {
	s.mu.Lock()
	s.rate.arrive(time.Now())
	if s.closed != nil {
		s.mu.Unlock()
		return nil, s.closed
	}
	if w := s.popIdleLocked(workflow); w != nil {
		s.bindLocked(w, workflow)
		s.busy[w] = struct{}{}
		// Refill now only if the pool is running dry; otherwise after this
		// task, so that starting its replacement does not compete with it
		// for the CPU.
		low := len(s.idle) < max(1, s.opts.MinWorkers/2)
		s.mu.Unlock()
		if low {
			s.wake()
		}
		return w, nil
	}
	wt := &waiter{prio: prio, seq: s.seq, workflow: workflow, ch: make(chan *worker, 1)}
	s.seq++
	heap.Push(&s.waiters, wt)
	retired := s.makeRoomLocked(workflow)
	s.mu.Unlock()
	if retired != nil {
		s.gone(retired)
	}
	s.wake()

	timer := time.NewTimer(s.opts.WaitTimeout)
	defer timer.Stop()
	var why error
	select {
	case w := <-wt.ch:
		if w == nil {
			return nil, s.closedErr()
		}
		return w, nil
	case <-ctx.Done():
		why = ctx.Err()
	case <-timer.C:
		why = fmt.Errorf("no Python process became available within %s (N8N_PYTHON_POOL_STARTUP_TIMEOUT)", s.opts.WaitTimeout)
	}
	s.mu.Lock()
	if wt.index >= 0 {
		heap.Remove(&s.waiters, wt.index)
		s.mu.Unlock()
		return nil, why
	}
	s.mu.Unlock()
	// A process was handed to us meanwhile: give it back unused, unless
	// the pool has closed since.
	if w := <-wt.ch; w != nil {
		s.mu.Lock()
		delete(s.busy, w)
		closed := s.closed != nil
		var retired *worker
		if !closed {
			retired = s.handOutLocked(w)
		}
		s.mu.Unlock()
		if closed {
			s.gone(w)
		}
		if retired != nil {
			s.gone(retired)
			s.wake()
		}
	}
	return nil, why
}

func (s *scheduler) closedErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed != nil {
		return s.closed
	}
	return ErrClosed
}

// release takes a process back after its task. alive: it finished the task
// cleanly and still serves (it may be reused).
func (s *scheduler) release(w *worker, alive bool) {
	s.mu.Lock()
	w.tasks++
	delete(s.busy, w)
	if s.reusable(w) && alive && w.tasks < s.opts.MaxExecutions && s.closed == nil && !w.dead() && !w.recycle {
		retired := s.handOutLocked(w)
		s.mu.Unlock()
		if retired != nil {
			s.gone(retired)
			s.wake()
		}
		return
	}
	switch {
	case !s.reusable(w) || !alive:
	case w.recycle:
		s.counts.recycled++
	case w.tasks >= s.opts.MaxExecutions:
		s.counts.wornOut++
	}
	s.mu.Unlock()
	// Isolated: it exits by itself after its task. Worn out or broken: the
	// closed channel tells it to go.
	s.gone(w)
	s.wake()
}

// handOutLocked gives a ready process to the first waiter, else keeps it.
// In workflow mode it may return w instead, for the caller to let go of
// (after unlocking): a worker of another workflow than the first waiter's,
// when there is no room to start one for that waiter (workflow.go).
func (s *scheduler) handOutLocked(w *worker) (retire *worker) {
	if s.waiters.Len() > 0 {
		if head := s.waiters[0]; s.fitRank(w, head.workflow) > 0 {
			s.giveLocked(w, head)
			return nil
		}
		// w is not counted among idle or busy here: room for others is one less.
		room := s.roomLocked() - 1
		if wt := s.waiterOfLocked(w.workflow); wt != nil && room > 0 {
			s.giveLocked(w, wt)
			return nil
		}
		if room <= 0 {
			return w
		}
	}
	w.idleSince = time.Now()
	s.idle = append(s.idle, w)
	return nil
}

// giveLocked hands w to the waiting task wt.
func (s *scheduler) giveLocked(w *worker, wt *waiter) {
	heap.Remove(&s.waiters, wt.index)
	s.bindLocked(w, wt.workflow)
	s.busy[w] = struct{}{}
	wt.ch <- w
}

// popIdleLocked takes the most recently readied live process that may run
// a task of workflow, one of that very workflow first (workflow mode):
// that keeps hot workers hot and lets the others idle out.
func (s *scheduler) popIdleLocked(workflow string) *worker {
	for {
		best, bestRank := -1, 0
		for i := len(s.idle) - 1; i >= 0 && bestRank < 2; i-- {
			if r := s.fitRank(s.idle[i], workflow); r > bestRank {
				best, bestRank = i, r
			}
		}
		if best < 0 {
			return nil
		}
		w := s.idle[best]
		s.idle = append(s.idle[:best], s.idle[best+1:]...)
		if !w.dead() {
			return w
		}
		s.gone(w)
	}
}

// dropOneIdle lets go of the ready process that has waited longest, for
// another executor sharing the budget; false when there is none.
func (s *scheduler) dropOneIdle() bool {
	s.mu.Lock()
	if len(s.idle) == 0 {
		s.mu.Unlock()
		return false
	}
	w := s.idle[0]
	s.idle = append(s.idle[:0], s.idle[1:]...)
	s.mu.Unlock()
	s.gone(w)
	s.wake() // MinWorkers will ask for it back once the budget allows
	return true
}

// closeAll fails the waiters and lets every ready process go; nothing is
// handed out after it.
func (s *scheduler) closeAll(why error) {
	s.mu.Lock()
	s.closed = why
	for s.waiters.Len() > 0 {
		heap.Pop(&s.waiters).(*waiter).ch <- nil
	}
	idle := s.idle
	s.idle = nil
	s.mu.Unlock()
	for _, w := range idle {
		s.gone(w)
	}
	if s.budget != nil {
		s.budget.leave(s)
	}
}

// stats is a snapshot for metrics and tests.
func (s *scheduler) stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Ready: len(s.idle), Busy: len(s.busy), Starting: s.starting, Waiting: s.waiters.Len(),
		ArrivalRate: s.rate.perSecond(time.Now()),
		Started:     s.counts.started, StartFailures: s.counts.startFailures,
		WornOut: s.counts.wornOut, Recycled: s.counts.recycled}
	if s.failures >= failingAfter && s.startErr != nil {
		st.StartError = s.startErr.Error()
	}
	return st
}
