package pool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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

// ZygoteExecutor runs tasks in processes forked from a zygote that has
// already imported the runtime and the preloaded modules. In the default
// isolated mode each task gets a fresh process that was forked and fenced
// in before the task arrived, and that exits after it; in reuse mode a
// worker serves up to MaxExecutions tasks. A zygote that dies is replaced
// and only the tasks it was running fail.
type ZygoteExecutor struct {
	opts   Options
	logger *slog.Logger

	mu      sync.Mutex
	current *zygote       // nil while (re)starting
	ready   chan struct{} // closed when current is set; replaced on death
	closed  bool
	// supervising: Start succeeded, so supervise runs and closes done.
	supervising bool
	stop        chan struct{}
	done        chan struct{}

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
		ready: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{}),
		verdicts: newVerdicts(),
	}
	e.workers.init(e)
	return e
}

// Start starts the first zygote, the supervisor that replaces it when it
// dies, and the maintainer that keeps processes ready.
func (e *ZygoteExecutor) Start(ctx context.Context) error {
	z, err := startZygote(ctx, e.opts.Spec)
	if err != nil {
		return err
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		z.close()
		return ErrClosed
	}
	e.current = z
	e.supervising = true
	close(e.ready)
	e.mu.Unlock()
	go e.supervise(z)
	go e.workers.maintain(e.stop)
	return nil
}

// supervise restarts the zygote whenever it dies, with capped backoff, until
// Close.
func (e *ZygoteExecutor) supervise(z *zygote) {
	defer close(e.done)
	backoff := 100 * time.Millisecond
	for {
		select {
		case <-e.stop:
			z.close()
			return
		case <-z.dead:
		}
		e.logger.Warn("Python zygote exited; starting a new one", "error", z.deadErr)
		e.mu.Lock()
		e.current = nil
		e.ready = make(chan struct{})
		e.mu.Unlock()
		z.close()
		for {
			ctx, cancel := context.WithCancel(context.Background())
			go func() {
				select {
				case <-e.stop:
					cancel()
				case <-ctx.Done():
				}
			}()
			next, err := startZygote(ctx, e.opts.Spec)
			cancel()
			if err == nil {
				z = next
				backoff = 100 * time.Millisecond
				e.mu.Lock()
				e.current = z
				close(e.ready)
				e.mu.Unlock()
				e.workers.wake()
				break
			}
			e.logger.Error("Python zygote failed to start", "error", err, "retry_in", backoff)
			select {
			case <-e.stop:
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 5*time.Second)
		}
	}
}

// Capacity is MaxWorkers while a zygote is up, else 0.
func (e *ZygoteExecutor) Capacity() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed || e.current == nil {
		return 0
	}
	return e.opts.MaxWorkers
}

// ZygotePID is the current zygote's process id, or 0 while there is none.
func (e *ZygoteExecutor) ZygotePID() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.current == nil {
		return 0
	}
	return e.current.cmd.Process.Pid
}

// zygote returns the live zygote, waiting for a restart if one is under
// way.
func (e *ZygoteExecutor) zygote(ctx context.Context) (*zygote, error) {
	for {
		e.mu.Lock()
		z, ready, closed := e.current, e.ready, e.closed
		e.mu.Unlock()
		if closed {
			return nil, ErrClosed
		}
		if z != nil {
			return z, nil
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

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
	res, alive := w.proc.run(ctx, t, e.opts.MaxPayload)
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
	supervising := e.supervising
	e.mu.Unlock()
	close(e.stop)
	e.workers.closeAll(fmt.Errorf("pool: %w", ErrClosed))
	if supervising {
		<-e.done
	}
	return nil
}
