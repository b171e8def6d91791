package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pyrunner/pyrunner/broker"
	"github.com/pyrunner/pyrunner/pool"
)

// Options configure a Runner. Zero values take n8n's defaults.
type Options struct {
	// Name is runner:info's name; n8n's runner says "Python Task Runner".
	Name string
	// TaskType is the one type offered: "python".
	TaskType string
	// MaxConcurrency bounds accepted tasks (N8N_RUNNERS_MAX_CONCURRENCY).
	MaxConcurrency int
	// TaskTimeout is the runner-side limit (N8N_RUNNERS_TASK_TIMEOUT).
	TaskTimeout time.Duration
	// AutoShutdownTimeout: exit after this long idle; 0 disables.
	AutoShutdownTimeout time.Duration
	// GracefulShutdownTimeout: how long running tasks get on shutdown.
	GracefulShutdownTimeout time.Duration
	// MaxPayload bounds a frame we send (N8N_RUNNERS_MAX_PAYLOAD).
	MaxPayload int
	Logger     *slog.Logger
	// Observer is told about connections and tasks (metrics); may be nil.
	Observer Observer
}

// Observer receives the runner's events, e.g. to export metrics. Methods
// are called from the runner's goroutines and must not block.
type Observer interface {
	Connected(up bool)
	Registered()
	TaskAccepted()
	// TaskFinished: outcome is "success", "error", "cancelled" or "timeout";
	// took is settings to result.
	TaskFinished(outcome string, took time.Duration)
	TaskRejected(reason string)
	OffersOpen(n int)
}

// Runner is one n8n task runner serving tasks on an Executor.
type Runner struct {
	opts   Options
	exec   pool.Executor
	log    *slog.Logger
	events chan any

	shutdownOnce sync.Once
	shutdown     chan struct{} // closed by Shutdown
	loopDone     chan struct{} // closed when loop returns
	drained      atomic.Bool   // set by loop: the broker sent broker:drain
	// tasks counts the goroutines running tasks (execute); Run waits for
	// them, so that nothing the runner started outlives it.
	tasks sync.WaitGroup
	// singleUse: the runner has one connection only (a launcher's grant,
	// no auth token). Its end is then the normal end of the runner's life,
	// not a fault. Set by Run before the loop starts.
	singleUse bool
}

// New returns a Runner that will execute tasks on exec.
func New(opts Options, exec pool.Executor) *Runner {
	if opts.Name == "" {
		opts.Name = "Python Task Runner"
	}
	if opts.TaskType == "" {
		opts.TaskType = "python"
	}
	if opts.MaxConcurrency <= 0 {
		opts.MaxConcurrency = 5
	}
	if opts.GracefulShutdownTimeout <= 0 {
		opts.GracefulShutdownTimeout = 10 * time.Second
	}
	if opts.MaxPayload <= 0 {
		opts.MaxPayload = 1 << 30
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Observer == nil {
		opts.Observer = nopObserver{}
	}
	return &Runner{
		opts: opts, exec: exec, log: opts.Logger,
		events:   make(chan any, 64),
		shutdown: make(chan struct{}),
		loopDone: make(chan struct{}),
	}
}

// Run serves the broker through d until Shutdown has completed, the idle
// timeout has fired, or no further connection is possible. It returns nil
// for a clean stop (exit 0) and the reason otherwise. Cancelling ctx stops
// everything at once.
func (r *Runner) Run(ctx context.Context, d *broker.Dialer) error {
	dialCtx, cancelDial := context.WithCancel(ctx)
	defer cancelDial()
	r.singleUse = d.AuthToken == ""
	loopErr := make(chan error, 1)
	go func() {
		err := r.loop(ctx)
		close(r.loopDone)
		cancelDial() // the dialer may be between attempts
		loopErr <- err
	}()

	dialErr := d.Run(dialCtx, r.serve)
	// No more connections will come: the loop ends once its tasks have.
	r.Shutdown()
	err := <-loopErr
	// Tasks the loop gave up on (killed at shutdown, or abandoned) have
	// been cancelled; their goroutines end with the executor's Run.
	r.tasks.Wait()
	switch {
	case err != nil:
		return err
	case dialErr == nil, errors.Is(dialErr, broker.ErrStop), errors.Is(dialErr, context.Canceled) && ctx.Err() == nil:
		return nil
	case errors.Is(dialErr, broker.ErrGrantUsed) && r.wasDrained():
		r.log.Info("The broker drained and closed the connection; exiting so that a new runner can take over")
		return nil
	case errors.Is(dialErr, broker.ErrGrantUsed):
		// Behind n8n's launcher this is how a runner's life ends (n8n
		// stopped or restarted): the launcher starts a new one with a new
		// grant once this one has exited.
		r.log.Info(fmt.Sprintf("%v; a runner started with a single-use grant (N8N_RUNNERS_GRANT_TOKEN, no N8N_RUNNERS_AUTH_TOKEN) exits here, so that its launcher can start a new one", dialErr))
		return nil
	}
	return dialErr
}

// Shutdown asks Run to stop: no new tasks; running ones get the graceful
// shutdown timeout, then are killed and reported as failed. It returns at
// once; Run returns when done. Safe to call more than once.
func (r *Runner) Shutdown() {
	r.shutdownOnce.Do(func() { close(r.shutdown) })
}

func (r *Runner) wasDrained() bool { return r.drained.Load() }

// post hands an event to the loop, or drops it once the loop has ended.
func (r *Runner) post(ev any) {
	select {
	case r.events <- ev:
	case <-r.loopDone:
	}
}

// serve is the broker.Dialer's callback: it attaches conn to the loop and
// pumps its frames in until the connection is over.
func (r *Runner) serve(ctx context.Context, conn *broker.Conn) error {
	done := make(chan error, 1)
	select {
	case r.events <- connOpened{conn: conn, done: done}:
	case <-r.loopDone:
		return broker.ErrStop
	case <-ctx.Done():
		return ctx.Err()
	}
	pumped := make(chan struct{})
	go func() {
		defer close(pumped)
		for {
			frame, err := conn.Receive(ctx)
			if err != nil {
				r.post(connClosed{conn: conn, err: err})
				return
			}
			// Decoded here, not in the loop: a 10 MB settings frame must not
			// hold up timers and other tasks.
			m, err := broker.Decode(frame)
			ev := frameIn{conn: conn, msg: m, err: err}
			switch {
			case err != nil:
				ev.excerpt = truncate(frame, 200)
			case m.Type == broker.TypeTaskSettings:
				ev.settings, ev.settingsErr = parseSettings(m.Settings)
			}
			r.post(ev)
		}
	}()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	// The pump ends with the connection: nothing of this connection
	// outlives serve.
	_ = conn.CloseNow()
	<-pumped
	return err
}

type connOpened struct {
	conn *broker.Conn
	done chan error // receives why the connection is over
}

type frameIn struct {
	conn    *broker.Conn
	msg     broker.Message
	err     error  // the frame did not decode (broker.ErrMalformed)
	excerpt string // of a frame that did not decode, for the log
	// For broker:tasksettings: what the runner reads of the settings, or
	// what is wrong with them.
	settings    settings
	settingsErr error
}

type connClosed struct {
	conn *broker.Conn
	err  error
}

type taskEnded struct {
	id      string
	outcome string
	took    time.Duration
}

type nopObserver struct{}

func (nopObserver) Connected(bool)                     {}
func (nopObserver) Registered()                        {}
func (nopObserver) TaskAccepted()                      {}
func (nopObserver) TaskFinished(string, time.Duration) {}
func (nopObserver) TaskRejected(string)                {}
func (nopObserver) OffersOpen(int)                     {}
