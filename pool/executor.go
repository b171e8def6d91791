package pool

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// Options configure a ZygoteExecutor.
type Options struct {
	Spec ProcessSpec
	// MaxWorkers bounds the tasks running at once.
	MaxWorkers int
	// MaxPayload bounds a task process's reply frame (N8N_RUNNERS_MAX_PAYLOAD).
	MaxPayload int
}

func (o Options) withDefaults() Options {
	if o.MaxWorkers <= 0 {
		o.MaxWorkers = 1
	}
	if o.MaxPayload <= 0 {
		o.MaxPayload = 1 << 30
	}
	if o.Spec.Logger == nil {
		o.Spec.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// ZygoteExecutor runs each task in a fresh process forked from a zygote
// that has already imported the runtime: per-task isolation without an
// interpreter start per task. A zygote that dies is replaced; only the
// tasks it was running fail.
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
}

var _ Executor = (*ZygoteExecutor)(nil)

// ErrClosed is returned when a closed executor is asked to work.
var ErrClosed = errors.New("executor closed")

// NewZygoteExecutor returns an executor that is not started yet.
func NewZygoteExecutor(opts Options) *ZygoteExecutor {
	opts = opts.withDefaults()
	return &ZygoteExecutor{
		opts: opts, logger: opts.Spec.Logger,
		ready: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{}),
	}
}

// Start starts the first zygote and the supervisor that replaces it when it
// dies.
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

// Run forks a task process, hands it t and returns its result.
func (e *ZygoteExecutor) Run(ctx context.Context, t Task) Result {
	z, err := e.zygote(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return Result{Err: CancelledError()}
		}
		return Result{Err: internalError("Python worker pool unavailable: %v", err)}
	}
	proc, err := z.spawn(ctx, 1)
	if err != nil {
		if ctx.Err() != nil {
			return Result{Err: CancelledError()}
		}
		return Result{Err: internalError("Could not start a task process: %v", err)}
	}
	res, _ := proc.run(ctx, t, e.opts.MaxPayload)
	proc.conn.Close()
	return res
}

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
	if supervising {
		<-e.done
	}
	return nil
}
