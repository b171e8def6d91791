package pool

import (
	"context"
	"math"
	"time"

	"github.com/pyrunner/pyrunner/python"
)

// The maintainer: one goroutine that starts task processes ahead of
// demand, a few spawns in flight per zygote, and retires dead and long-idle
// ones. Its state lives in the scheduler, under the scheduler's lock.

// spawnsInFlight is how many fork requests one zygote may have under way.
// The zygote forks all it finds queued back to back: after a fork, every
// page the zygote writes costs it a copy-on-write fault, and its loop
// touches about 150 pages per round, so a round of several forks pays them
// once (isolated, c=4, on the 2-core VM: about 650 -> 583 faults per task).
const spawnsInFlight = 4

// failingAfter is how many process starts in a row may fail before the
// pool reports no capacity: n8n then gives its tasks to other runners and
// /readyz says why, instead of tasks waiting out the startup timeout here.
// The maintainer keeps trying, one start at a time, and the first process
// that becomes ready brings the capacity back.
const failingAfter = 5

// readyTimeout bounds a forked process's fencing and preparation.
const readyTimeout = 10 * time.Second

// maintain runs the maintainer until ctx ends (the executor closing).
func (s *scheduler) maintain(ctx context.Context) {
	ticker := time.NewTicker(time.Second)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wakeCh:
		case <-ticker.C:
			s.retire()
		}
		s.replaceIdleZygotes()
		s.freeSpare()
		for ctx.Err() == nil {
			slot, short := s.nextSpawn()
			if short {
				// Tasks wait and the shared budget is spent: another
				// environment's ready processes make room.
				s.budget.reclaim(s)
			}
			if slot == nil {
				break
			}
			s.goTracked(func() { s.spawn(ctx, slot) })
		}
	}
}

// nextSpawn reserves a spawn on the live zygote with the fewest under way,
// or returns nil when no process should be started now; short says that
// one would have been started, for tasks waiting, but the shared budget
// is spent.
func (s *scheduler) nextSpawn() (slot *zygoteSlot, short bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// After a failed start, one request per zygote again: a failing batch
	// would count several failures at once and take the capacity away
	// after two attempts instead of failingAfter.
	perZygote := spawnsInFlight
	if s.failures > 0 {
		perZygote = 1
	}
	if s.closed != nil || time.Now().Before(s.backoffUntil) || s.inflightTotal >= perZygote*len(s.slots) {
		return nil, false
	}
	n := s.needLocked()
	if s.failures >= failingAfter {
		// No capacity means no tasks and so no demand: probe, one start
		// at a time, within MaxWorkers.
		room := s.opts.MaxWorkers - len(s.idle) - len(s.busy)
		n = min(max(n, 1), 1-s.starting, room)
	}
	if n <= 0 {
		return nil, false
	}
	slot = s.pickSlotLocked(perZygote)
	if slot == nil {
		return nil, false // being replaced (spawn on the new one), or every zygote is busy forking
	}
	if !s.budget.take() {
		return nil, s.waiters.Len() > 0
	}
	s.inflight[slot]++
	s.inflightTotal++
	s.starting++
	return slot, false
}

// needLocked is how many more processes to start now. Isolated: enough
// ready ones for the waiters plus what the arrival rate will take while
// one is being started, at least MinWorkers. Reuse: enough workers for the
// waiters, at least MinWorkers. Workflow: the same, counting fresh workers
// only, and fresh spares as isolated mode counts (sparesLocked). Never more
// than MaxWorkers in all.
func (s *scheduler) needLocked() int {
	o := s.opts
	total := len(s.idle) + len(s.busy) + s.starting
	room := o.MaxWorkers - total
	if room <= 0 {
		return 0
	}
	var want int
	if o.PerWorkflow {
		// Only fresh workers serve any waiter; one is kept ready for the
		// next workflow's first task.
		fresh := s.freshIdleLocked()
		want = max(o.MinWorkers-total, s.waiters.Len()-s.starting-fresh, s.sparesLocked()-s.starting-fresh)
	} else if o.Reuse {
		want = max(o.MinWorkers-total, s.waiters.Len()-s.starting-len(s.idle))
	} else {
		ahead := int(math.Ceil(s.rate.perSecond(time.Now()) * 2 * s.spawnTime.Seconds()))
		want = max(o.MinWorkers, ahead) + s.waiters.Len() - len(s.idle) - s.starting
	}
	return min(want, room)
}

// pickSlotLocked is the live zygote with the fewest spawns under way, nil
// when the only one is being replaced or every one has limit under way.
func (s *scheduler) pickSlotLocked(limit int) *zygoteSlot {
	var best *zygoteSlot
	replacing, full := false, false
	for _, slot := range s.slots {
		if s.replacing[slot] {
			replacing = true
			continue
		}
		if !slot.up() {
			continue
		}
		if s.inflight[slot] >= limit {
			full = true
			continue
		}
		if best == nil || s.inflight[slot] < s.inflight[best] {
			best = slot
		}
	}
	if best == nil && !replacing && !full && s.inflight[s.slots[0]] < limit {
		best = s.slots[0] // all restarting: wait for the first
	}
	return best
}

// spawn asks a zygote for a process; once that reports ready (forked,
// fenced in, sandbox prepared, warmed up) it is handed out.
func (s *scheduler) spawn(ctx context.Context, slot *zygoteSlot) {
	started := time.Now()
	proc, err := s.spawnOn(ctx, slot)
	s.mu.Lock()
	s.inflight[slot]--
	s.inflightTotal--
	if err != nil {
		s.starting--
		if ctx.Err() == nil {
			s.startFailedLocked(err)
			s.log.Warn("could not start a task process", "error", err)
		}
		s.mu.Unlock()
		s.gone(nil)
		s.wake()
		return
	}
	s.mu.Unlock()
	s.wake() // the zygote has room for another spawn

	err = awaitReadyCtx(ctx, proc, readyTimeout)
	s.mu.Lock()
	s.starting--
	closed := s.closed != nil
	if err != nil || closed {
		if err != nil && !closed {
			s.startFailedLocked(err)
		}
		s.mu.Unlock()
		if err != nil && !closed {
			s.log.Warn("task process did not become ready", "pid", proc.Pid(), "error", err)
		}
		s.gone(&worker{proc: proc})
		s.wake()
		return
	}
	s.failures, s.startErr = 0, nil
	s.counts.started++
	s.spawnTime = (s.spawnTime*7 + time.Since(started)) / 8
	retired := s.handOutLocked(&worker{proc: proc})
	s.mu.Unlock()
	if retired != nil { // a fresh worker serves any waiter: never
		s.gone(retired)
	}
	s.wake()
}

func (s *scheduler) spawnOn(ctx context.Context, slot *zygoteSlot) (taskProcess, error) {
	z, err := slot.get(ctx)
	if err != nil {
		return nil, err
	}
	maxTasks := 1
	if s.opts.Reuse {
		maxTasks = s.opts.MaxExecutions
	}
	return z.spawn(ctx, maxTasks)
}

// startFailedLocked counts a start that failed (the zygote could not fork,
// or the process died or hung before it was ready) and backs off.
func (s *scheduler) startFailedLocked(err error) {
	s.failures++
	s.counts.startFailures++
	s.startErr = err
	s.backoffUntil = time.Now().Add(min(time.Duration(s.failures)*100*time.Millisecond, 2*time.Second))
}

// failing reports whether the last failingAfter starts all failed.
func (s *scheduler) failing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failures >= failingAfter
}

// retire drops dead ready processes and those beyond MinWorkers that have
// waited longer than MaxIdleTime.
func (s *scheduler) retire() {
	now := time.Now()
	s.mu.Lock()
	n := len(s.idle)
	gone := s.takeIdleLocked(func(i int, w *worker) bool {
		// The oldest come first; the newest MinWorkers always stay.
		tooMany := n-i > s.opts.MinWorkers
		return w.dead() || (tooMany && now.Sub(w.idleSince) > s.opts.MaxIdleTime)
	})
	s.mu.Unlock()
	for _, w := range gone {
		s.gone(w)
	}
}

// takeIdleLocked removes from the ready processes those for which take
// (given each one's place, oldest first) says so, and returns them.
func (s *scheduler) takeIdleLocked(take func(i int, w *worker) bool) []*worker {
	keep := s.idle[:0]
	var taken []*worker
	for i, w := range s.idle {
		if take(i, w) {
			taken = append(taken, w)
			continue
		}
		keep = append(keep, w)
	}
	clear(s.idle[len(keep):])
	s.idle = keep
	return taken
}

// awaitReady reads the ready frame a task process sends once its fences
// are up (python.CheckReady).
func awaitReady(p taskProcess, timeout time.Duration) error {
	return awaitReadyCtx(context.Background(), p, timeout)
}

// awaitReadyCtx is awaitReady that also ends when ctx does.
func awaitReadyCtx(ctx context.Context, p taskProcess, timeout time.Duration) error {
	conn := p.Channel()
	defer deadlineOrDone(ctx, conn, time.Now().Add(timeout))()
	frame, err := python.ReadFrame(conn, 1<<10)
	if err != nil {
		return err
	}
	return python.CheckReady(frame)
}
