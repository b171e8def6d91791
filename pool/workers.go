package pool

import (
	"container/heap"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sync"
	"time"
)

// worker is one task process the pool holds: ready (idle) or running a task.
type worker struct {
	proc      *taskProcess
	tasks     int // tasks it has run (reuse mode)
	idleSince time.Time
}

func (w *worker) dead() bool {
	select {
	case <-w.proc.exit.done:
		return true
	default:
		return false
	}
}

// workers keeps task processes ready ahead of demand and hands them to
// tasks, highest priority first. One maintainer goroutine starts
// processes; acquire and release only move them between lists, so no
// fork, process start or import is ever on a task's path.
//
//	spawn ─► starting ─(ready frame)─► idle ─(acquire)─► busy ─(release)─┐
//	                                     ▲                                │
//	                                     └──── reuse, under MaxExecutions ┘
//	isolated, or worn out, or dead: the process is gone and replaced.
type workers struct {
	e      *ZygoteExecutor
	wakeCh chan struct{}

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
	// inflight counts spawn requests under way (one per zygote at most);
	// after failures, no spawn before backoffUntil.
	inflight     int
	failures     int
	backoffUntil time.Time
}

func (ws *workers) init(e *ZygoteExecutor) {
	ws.e = e
	ws.wakeCh = make(chan struct{}, 1)
	ws.spawnTime = 5 * time.Millisecond
}

// wake nudges the maintainer.
func (ws *workers) wake() {
	select {
	case ws.wakeCh <- struct{}{}:
	default:
	}
}

// acquire returns a process for one task, waiting by priority when none is
// ready, for at most the pool's WaitTimeout.
func (ws *workers) acquire(ctx context.Context, prio Priority) (*worker, error) {
	ws.mu.Lock()
	ws.rate.arrive(time.Now())
	if ws.closed != nil {
		ws.mu.Unlock()
		return nil, ws.closed
	}
	if w := ws.popIdleLocked(); w != nil {
		ws.busy++
		// Refill now only if the pool is running dry; otherwise after this
		// task, so that starting its replacement does not compete with it
		// for the CPU.
		low := len(ws.idle) < max(1, ws.e.opts.MinWorkers/2)
		ws.mu.Unlock()
		if low {
			ws.wake()
		}
		return w, nil
	}
	wt := &waiter{prio: prio, seq: ws.seq, ch: make(chan *worker, 1)}
	ws.seq++
	heap.Push(&ws.waiters, wt)
	ws.mu.Unlock()
	ws.wake()

	timer := time.NewTimer(ws.e.opts.WaitTimeout)
	defer timer.Stop()
	var why error
	select {
	case w := <-wt.ch:
		if w == nil {
			return nil, ws.closedErr()
		}
		return w, nil
	case <-ctx.Done():
		why = ctx.Err()
	case <-timer.C:
		why = fmt.Errorf("no Python process became available within %s (N8N_PYTHON_POOL_STARTUP_TIMEOUT)", ws.e.opts.WaitTimeout)
	}
	ws.mu.Lock()
	if wt.index >= 0 {
		heap.Remove(&ws.waiters, wt.index)
		ws.mu.Unlock()
		return nil, why
	}
	ws.mu.Unlock()
	// A process was handed to us meanwhile: give it back unused, unless
	// the pool has closed since.
	if w := <-wt.ch; w != nil {
		ws.mu.Lock()
		ws.busy--
		closed := ws.closed != nil
		if !closed {
			ws.handOutLocked(w)
		}
		ws.mu.Unlock()
		if closed {
			w.proc.conn.Close()
		}
	}
	return nil, why
}

func (ws *workers) closedErr() error {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.closed != nil {
		return ws.closed
	}
	return ErrClosed
}

// release takes a process back after its task. alive: it finished the task
// cleanly and still serves (it may be reused).
func (ws *workers) release(w *worker, alive bool) {
	w.tasks++
	ws.mu.Lock()
	ws.busy--
	if ws.e.opts.Reuse && alive && w.tasks < ws.e.opts.MaxExecutions && ws.closed == nil && !w.dead() {
		ws.handOutLocked(w)
		ws.mu.Unlock()
		return
	}
	ws.mu.Unlock()
	w.proc.finish()
	ws.wake()
}

// handOutLocked gives a ready process to the first waiter, else keeps it.
func (ws *workers) handOutLocked(w *worker) {
	if ws.waiters.Len() > 0 {
		wt := heap.Pop(&ws.waiters).(*waiter)
		ws.busy++
		wt.ch <- w
		return
	}
	w.idleSince = time.Now()
	ws.idle = append(ws.idle, w)
}

// popIdleLocked takes the most recently readied live process: in reuse
// mode that keeps hot workers hot and lets the others idle out.
func (ws *workers) popIdleLocked() *worker {
	for len(ws.idle) > 0 {
		w := ws.idle[len(ws.idle)-1]
		ws.idle = ws.idle[:len(ws.idle)-1]
		if !w.dead() {
			return w
		}
		w.proc.conn.Close()
	}
	return nil
}

// needLocked is how many more processes to start now. Isolated: enough
// ready ones for the waiters plus what the arrival rate will take while
// one is being started, at least MinWorkers. Reuse: enough workers for the
// waiters, at least MinWorkers. Never more than MaxWorkers in all.
func (ws *workers) needLocked() int {
	o := ws.e.opts
	total := len(ws.idle) + ws.busy + ws.starting
	room := o.MaxWorkers - total
	if room <= 0 {
		return 0
	}
	var want int
	if o.Reuse {
		want = max(o.MinWorkers-total, ws.waiters.Len()-ws.starting-len(ws.idle))
	} else {
		ahead := int(math.Ceil(ws.rate.perSecond(time.Now()) * 2 * ws.spawnTime.Seconds()))
		want = max(o.MinWorkers, ahead) + ws.waiters.Len() - len(ws.idle) - ws.starting
	}
	return min(want, room)
}

// maintain starts processes as needed, one spawn in flight per zygote, and
// retires dead and long-idle ones, until stop.
func (ws *workers) maintain(stop <-chan struct{}) {
	ticker := time.NewTicker(time.Second)
	defer ticker.Stop()
	for {
		select {
		case <-stop:
			return
		case <-ws.wakeCh:
		case <-ticker.C:
			ws.retire()
		}
		for {
			ws.mu.Lock()
			n := 0
			if ws.closed == nil && time.Now().After(ws.backoffUntil) && ws.inflight < len(ws.e.slots) {
				n = ws.needLocked()
				if ws.failures >= failingAfter {
					// No capacity means no tasks and so no demand: probe,
					// one start at a time, within MaxWorkers.
					room := ws.e.opts.MaxWorkers - len(ws.idle) - ws.busy
					n = min(max(n, 1), 1-ws.starting, room)
				}
			}
			var slot *zygoteSlot
			if n > 0 {
				slot = ws.pickSlotLocked()
				slot.inflight++
				ws.inflight++
				ws.starting++
			}
			ws.mu.Unlock()
			if n <= 0 {
				break
			}
			go ws.spawn(slot, stop)
		}
	}
}

// pickSlotLocked is the live zygote with the fewest spawns under way.
func (ws *workers) pickSlotLocked() *zygoteSlot {
	var best *zygoteSlot
	for _, s := range ws.e.slots {
		if !s.up() {
			continue
		}
		if best == nil || s.inflight < best.inflight {
			best = s
		}
	}
	if best == nil {
		best = ws.e.slots[0] // all restarting: wait for the first
	}
	return best
}

// spawn asks a zygote for a process; once that reports ready (forked,
// fenced in, sandbox prepared, warmed up) awaitReady hands it out.
func (ws *workers) spawn(slot *zygoteSlot, stop <-chan struct{}) {
	started := time.Now()
	proc, err := ws.spawnOn(slot, stop)
	ws.mu.Lock()
	slot.inflight--
	ws.inflight--
	if err != nil {
		ws.starting--
		select {
		case <-stop:
		default:
			ws.startFailedLocked()
			ws.e.logger.Warn("could not start a task process", "error", err)
		}
		ws.mu.Unlock()
		ws.wake()
		return
	}
	ws.mu.Unlock()
	ws.wake() // the zygote is free for the next spawn
	ws.awaitReady(&worker{proc: proc}, started)
}

func (ws *workers) spawnOn(slot *zygoteSlot, stop <-chan struct{}) (*taskProcess, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	z, err := slot.get(ctx)
	if err != nil {
		return nil, err
	}
	maxTasks := 1
	if ws.e.opts.Reuse {
		maxTasks = ws.e.opts.MaxExecutions
	}
	return z.spawn(ctx, maxTasks)
}

// failingAfter is how many process starts in a row may fail before the
// pool reports no capacity: n8n then gives its tasks to other runners and
// /readyz says why, instead of tasks waiting out the startup timeout here.
// The maintainer keeps trying, one start at a time, and the first process
// that becomes ready brings the capacity back.
const failingAfter = 5

// startFailedLocked counts a start that failed (the zygote could not fork,
// or the process died or hung before it was ready) and backs off.
func (ws *workers) startFailedLocked() {
	ws.failures++
	ws.backoffUntil = time.Now().Add(min(time.Duration(ws.failures)*100*time.Millisecond, 2*time.Second))
}

// failing reports whether the last failingAfter starts all failed.
func (ws *workers) failing() bool {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return ws.failures >= failingAfter
}

// readyTimeout bounds a forked process's fencing and preparation.
const readyTimeout = 10 * time.Second

func (ws *workers) awaitReady(w *worker, started time.Time) {
	err := awaitReadyFrame(w.proc, readyTimeout)
	ws.mu.Lock()
	ws.starting--
	closed := ws.closed != nil
	if err != nil || closed {
		if err != nil && !closed {
			ws.startFailedLocked()
		}
		ws.mu.Unlock()
		if err != nil && !closed {
			ws.e.logger.Warn("task process did not become ready", "pid", w.proc.pid, "error", err)
		}
		w.proc.conn.Close()
		ws.wake()
		return
	}
	ws.failures = 0
	took := time.Since(started)
	ws.spawnTime = (ws.spawnTime*7 + took) / 8
	ws.handOutLocked(w)
	ws.mu.Unlock()
	ws.wake()
}

// awaitReadyFrame reads the {"op":"ready"} a task process sends once its
// fences are up.
func awaitReadyFrame(p *taskProcess, timeout time.Duration) error {
	_ = p.conn.SetReadDeadline(time.Now().Add(timeout))
	defer p.conn.SetReadDeadline(time.Time{})
	frame, err := readFrame(p.conn, 1<<10)
	if err != nil {
		return err
	}
	var m struct {
		Op string `json:"op"`
	}
	if json.Unmarshal(frame, &m) != nil || m.Op != "ready" {
		return fmt.Errorf("sent %q instead of ready", frame)
	}
	return nil
}

// retire drops dead ready processes and those beyond MinWorkers that have
// waited longer than MaxIdleTime.
func (ws *workers) retire() {
	now := time.Now()
	ws.mu.Lock()
	keep := ws.idle[:0]
	var gone []*worker
	for i, w := range ws.idle {
		// The oldest come first; the newest MinWorkers always stay.
		tooMany := len(ws.idle)-i > ws.e.opts.MinWorkers
		if w.dead() || (tooMany && now.Sub(w.idleSince) > ws.e.opts.MaxIdleTime) {
			gone = append(gone, w)
			continue
		}
		keep = append(keep, w)
	}
	ws.idle = keep
	ws.mu.Unlock()
	for _, w := range gone {
		w.proc.conn.Close()
	}
}

// closeAll fails the waiters and lets every ready process go.
func (ws *workers) closeAll(why error) {
	ws.mu.Lock()
	ws.closed = why
	for ws.waiters.Len() > 0 {
		heap.Pop(&ws.waiters).(*waiter).ch <- nil
	}
	idle := ws.idle
	ws.idle = nil
	ws.mu.Unlock()
	for _, w := range idle {
		w.proc.conn.Close()
	}
}

func (ws *workers) stats() Stats {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return Stats{Ready: len(ws.idle), Busy: ws.busy, Starting: ws.starting, Waiting: ws.waiters.Len(),
		ArrivalRate: ws.rate.perSecond(time.Now())}
}

// waiter is a task waiting for a process.
type waiter struct {
	prio  Priority
	seq   uint64
	ch    chan *worker // receives the process, or nil when the pool closes
	index int          // in the heap; -1 once popped
}

// waitQueue is a heap: higher priority first, then first come.
type waitQueue []*waiter

func (q waitQueue) Len() int { return len(q) }
func (q waitQueue) Less(i, j int) bool {
	if q[i].prio != q[j].prio {
		return q[i].prio > q[j].prio
	}
	return q[i].seq < q[j].seq
}
func (q waitQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index, q[j].index = i, j
}
func (q *waitQueue) Push(x any) {
	w := x.(*waiter)
	w.index = len(*q)
	*q = append(*q, w)
}
func (q *waitQueue) Pop() any {
	old := *q
	w := old[len(old)-1]
	old[len(old)-1] = nil
	w.index = -1
	*q = old[:len(old)-1]
	return w
}

// rateMeter is an exponentially decaying rate of events per second, with a
// time constant of a couple of seconds: recent enough to follow bursts,
// smooth enough not to thrash.
type rateMeter struct {
	value float64
	last  time.Time
}

const rateTau = 2.0 // seconds

func (r *rateMeter) decay(now time.Time) {
	if !r.last.IsZero() {
		r.value *= math.Exp(-now.Sub(r.last).Seconds() / rateTau)
	}
	r.last = now
}

func (r *rateMeter) arrive(now time.Time) {
	r.decay(now)
	r.value += 1 / rateTau
}

func (r *rateMeter) perSecond(now time.Time) float64 {
	if r.last.IsZero() {
		return 0
	}
	return r.value * math.Exp(-now.Sub(r.last).Seconds()/rateTau)
}
