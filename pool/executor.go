package pool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"time"
)

// Options configure a ZygoteExecutor. Zero values take the defaults noted.
type Options struct {
	Spec ProcessSpec
	// MaxWorkers bounds task processes, ready and running together
	// (N8N_PYTHON_POOL_MAX_WORKERS, default 8).
	MaxWorkers int
	// MinWorkers is how many ready processes (isolated) or live workers
	// (reuse) are kept however quiet it gets (N8N_PYTHON_POOL_MIN_WORKERS,
	// default 2).
	MinWorkers int
	// MaxIdleTime: ready processes beyond MinWorkers that have waited this
	// long are retired (N8N_PYTHON_POOL_MAX_IDLE_TIME, default 5 min).
	MaxIdleTime time.Duration
	// Reuse runs many tasks in each worker, MaxExecutions each, instead of
	// one process per task (N8N_PYTHON_ISOLATION=reuse). Tasks then share
	// interpreter state.
	Reuse         bool
	MaxExecutions int // default 100
	// Zygotes is how many zygotes fork processes in parallel
	// (N8N_PYTHON_POOL_ZYGOTES); 0: one per four cores, at most 8.
	Zygotes int
	// WaitTimeout bounds how long a task waits for a process when none can
	// be started (N8N_PYTHON_POOL_STARTUP_TIMEOUT, default 30 s).
	WaitTimeout time.Duration
	// MaxPayload bounds a task process's reply frame (N8N_RUNNERS_MAX_PAYLOAD).
	MaxPayload int
}

func (o Options) withDefaults() Options {
	if o.MaxWorkers <= 0 {
		o.MaxWorkers = 8
	}
	if o.MinWorkers < 0 {
		o.MinWorkers = 0
	}
	o.MinWorkers = min(o.MinWorkers, o.MaxWorkers)
	if o.MaxIdleTime <= 0 {
		o.MaxIdleTime = 5 * time.Minute
	}
	if o.MaxExecutions <= 0 {
		o.MaxExecutions = 100
	}
	if o.Zygotes <= 0 {
		o.Zygotes = min(8, max(1, runtime.NumCPU()/4))
	}
	if r := ownUIDs(o.Spec.Config); r.count > 0 {
		// Each zygote needs a share of the uid range at least as large as
		// the processes it may have alive.
		o.Zygotes = max(1, min(o.Zygotes, r.count/(2*o.MaxWorkers+2)))
	}
	if o.WaitTimeout <= 0 {
		o.WaitTimeout = 30 * time.Second
	}
	if o.MaxPayload <= 0 {
		o.MaxPayload = 1 << 30
	}
	if o.Spec.Logger == nil {
		o.Spec.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// replySlack is room above N8N_PYTHON_MAX_RESULT_MB for a reply frame: the
// task process checks its whole reply against that limit and sends a short
// error instead of one that is larger.
const replySlack = 64 << 10

// replyLimit is the largest reply frame a task process may send, and the
// setting that makes it so. A larger one is refused before it is read, so
// that code writing to its channel cannot make the runner hold more than an
// honest reply would.
func (o Options) replyLimit() (limit int, setting string) {
	if r := o.Spec.Config.MaxResultBytes; r > 0 && r+replySlack < o.MaxPayload {
		return r + replySlack, "N8N_PYTHON_MAX_RESULT_MB"
	}
	return o.MaxPayload, "N8N_RUNNERS_MAX_PAYLOAD"
}

// ZygoteExecutor runs tasks in processes forked from zygotes that have
// already imported the runtime and the preloaded modules. In the default
// isolated mode each task gets a fresh process that was forked and fenced
// in before the task arrived, and that exits after it; in reuse mode a
// worker serves up to MaxExecutions tasks. A zygote that dies is replaced
// and only the tasks it was running fail.
type ZygoteExecutor struct {
	opts   Options
	logger *slog.Logger
	slots  []*zygoteSlot

	mu     sync.Mutex
	closed bool
	// supervising: Start succeeded, so the supervisors run and wg counts them.
	supervising bool
	stop        chan struct{}
	wg          sync.WaitGroup

	workers  workers
	verdicts *verdicts
}

var _ Executor = (*ZygoteExecutor)(nil)

// ErrClosed is returned when a closed executor is asked to work.
var ErrClosed = errors.New("executor closed")

// NewZygoteExecutor returns an executor that is not started yet.
func NewZygoteExecutor(opts Options) *ZygoteExecutor {
	opts = opts.withDefaults()
	e := &ZygoteExecutor{
		opts: opts, logger: opts.Spec.Logger,
		stop: make(chan struct{}), verdicts: newVerdicts(),
	}
	for i := range opts.Zygotes {
		e.slots = append(e.slots, newZygoteSlot(slotSpec(opts.Spec, i, opts.Zygotes)))
	}
	e.workers.init(e)
	return e
}

// slotSpec is the spec of zygote i of n: with a uid of its own per task
// process, each zygote hands out its own share of the range, so that no
// two live task processes ever share a uid.
func slotSpec(spec ProcessSpec, i, n int) ProcessSpec {
	c := spec.Config
	if ownUIDs(c).count > 0 {
		share := c.TaskUIDCount / n
		c.TaskUID += i * share
		if c.TaskGID >= 0 {
			c.TaskGID += i * share
		}
		c.TaskUIDCount = share
	}
	spec.Config = c
	return spec
}

// Start starts the zygotes (in parallel), the supervisors that replace
// them when they die, and the maintainer that keeps processes ready.
func (e *ZygoteExecutor) Start(ctx context.Context) error {
	zygotes := make([]*zygote, len(e.slots))
	errs := make([]error, len(e.slots))
	var wg sync.WaitGroup
	for i := range e.slots {
		wg.Add(1)
		go func() {
			defer wg.Done()
			zygotes[i], errs[i] = startZygote(ctx, e.slots[i].spec)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, z := range zygotes {
			if z != nil {
				z.close()
			}
		}
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		for _, z := range zygotes {
			z.close()
		}
		return ErrClosed
	}
	e.supervising = true
	for i, slot := range e.slots {
		slot.set(zygotes[i])
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			slot.supervise(e.stop, e.workers.wake)
		}()
	}
	go e.workers.maintain(e.stop)
	return nil
}

// Capacity is MaxWorkers while a zygote is up and processes can be
// started, else 0.
func (e *ZygoteExecutor) Capacity() int {
	e.mu.Lock()
	closed := e.closed
	e.mu.Unlock()
	if closed || e.workers.failing() {
		return 0
	}
	for _, s := range e.slots {
		if s.up() {
			return e.opts.MaxWorkers
		}
	}
	return 0
}

// ZygotePID is the first zygote's process id, or 0 while there is none.
func (e *ZygoteExecutor) ZygotePID() int { return e.slots[0].pid() }

// Run takes a ready process (waiting, by priority, when none is), hands it
// t and returns its result.
func (e *ZygoteExecutor) Run(ctx context.Context, t Task) Result {
	known, refused := e.verdicts.lookup(t.Code)
	if refused != nil {
		return Result{Err: refused}
	}
	t.analyzed = known
	w, err := e.workers.acquire(ctx, t.Priority)
	if err != nil {
		if ctx.Err() != nil {
			return Result{Err: CancelledError()}
		}
		return Result{Err: internalError("%v", err)}
	}
	res, alive := w.proc.run(ctx, t, e.opts)
	e.workers.release(w, alive)
	if !known {
		e.verdicts.record(t.Code, res)
	}
	return res
}

// Stats is a snapshot of the pool, for metrics and tests.
type Stats struct {
	Ready, Busy, Starting, Waiting int
	// ArrivalRate is the recent rate of tasks, per second.
	ArrivalRate float64
}

// Stats reports the pool's current state.
func (e *ZygoteExecutor) Stats() Stats { return e.workers.stats() }

// Close stops the zygote and every task process. Safe to call twice.
func (e *ZygoteExecutor) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.mu.Unlock()
	close(e.stop)
	e.workers.closeAll(fmt.Errorf("pool: %w", ErrClosed))
	e.wg.Wait()
	return nil
}
