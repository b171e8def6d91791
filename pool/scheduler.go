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
	tasks     int // tasks it has run (reuse mode)
	idleSince time.Time
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
	busy     int
	starting int
	waiters  waitQueue
	seq      uint64
	closed   error
	rate     rateMeter
	// spawnTime is a moving average of spawn request to ready.
	spawnTime time.Duration
	// inflight counts spawn requests under way, per zygote slot (one per
	// zygote at most) and in all; after failures, no spawn before
	// backoffUntil.
	inflight      map[*zygoteSlot]int
	inflightTotal int
	failures      int
	backoffUntil  time.Time
}

func newScheduler(opts Options, slots []*zygoteSlot, goTracked func(func()), log *slog.Logger) *scheduler {
	s := &scheduler{
		opts: opts, slots: slots, log: log, goTracked: goTracked,
		wakeCh: make(chan struct{}, 1), spawnTime: 5 * time.Millisecond,
		inflight: map[*zygoteSlot]int{}, budget: opts.budget,
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

// acquire returns a process for one task, waiting by priority when none is
// ready, for at most the pool's WaitTimeout.
func (s *scheduler) acquire(ctx context.Context, prio Priority) (*worker, error) {
	s.mu.Lock()
	s.rate.arrive(time.Now())
	if s.closed != nil {
		s.mu.Unlock()
		return nil, s.closed
	}
	if w := s.popIdleLocked(); w != nil {
		s.busy++
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
	wt := &waiter{prio: prio, seq: s.seq, ch: make(chan *worker, 1)}
	s.seq++
	heap.Push(&s.waiters, wt)
	s.mu.Unlock()
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
		s.busy--
		closed := s.closed != nil
		if !closed {
			s.handOutLocked(w)
		}
		s.mu.Unlock()
		if closed {
			s.gone(w)
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
	w.tasks++
	s.mu.Lock()
	s.busy--
	if s.opts.Reuse && alive && w.tasks < s.opts.MaxExecutions && s.closed == nil && !w.dead() {
		s.handOutLocked(w)
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	// Isolated: it exits by itself after its task. Worn out or broken: the
	// closed channel tells it to go.
	s.gone(w)
	s.wake()
}

// handOutLocked gives a ready process to the first waiter, else keeps it.
func (s *scheduler) handOutLocked(w *worker) {
	if s.waiters.Len() > 0 {
		wt := heap.Pop(&s.waiters).(*waiter)
		s.busy++
		wt.ch <- w
		return
	}
	w.idleSince = time.Now()
	s.idle = append(s.idle, w)
}

// popIdleLocked takes the most recently readied live process: in reuse
// mode that keeps hot workers hot and lets the others idle out.
func (s *scheduler) popIdleLocked() *worker {
	for len(s.idle) > 0 {
		w := s.idle[len(s.idle)-1]
		s.idle = s.idle[:len(s.idle)-1]
		if !w.dead() {
			return w
		}
		s.gone(w)
	}
	return nil
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
	return Stats{Ready: len(s.idle), Busy: s.busy, Starting: s.starting, Waiting: s.waiters.Len(),
		ArrivalRate: s.rate.perSecond(time.Now())}
}
