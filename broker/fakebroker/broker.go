package fakebroker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sort"
	"sync"
	"time"
)

// Sentinel errors.
var (
	// ErrClosed is returned by calls that need a running broker after Close
	// or Shutdown, and by Request.Wait for a request the broker's stop cut
	// short.
	ErrClosed = errors.New("fakebroker: broker closed")
	// ErrUnknownRunner is returned by SendRaw when no connection carries
	// that runner id.
	ErrUnknownRunner = errors.New("fakebroker: no connection for runner")
)

// Broker is a running fake of n8n's task broker. All methods are safe for
// concurrent use.
type Broker struct {
	opts Options
	log  *slog.Logger
	ln   net.Listener
	srv  *http.Server

	// ctx is cancelled by Close; it stops the heartbeat and requester loops.
	ctx    context.Context
	cancel context.CancelFunc
	// wg counts every goroutine the broker started and every armed timer;
	// Close waits for it.
	wg       sync.WaitGroup
	closedCh chan struct{} // closed when Close has finished

	authLimiter    *fixedWindow
	upgradeLimiter *slidingWindow

	mu sync.Mutex
	// Everything below is guarded by mu.
	closed   bool
	stopping bool // Shutdown began: the WebSocket server is down (503)
	draining bool // new requests expire with reason "draining"

	conns   map[*conn]struct{} // every open connection
	runners map[string]*conn   // registered connections by runner id
	// runnersChanged is closed and replaced whenever runners changes.
	runnersChanged chan struct{}

	offers     []Offer                // pending offers, oldest first
	pending    []*Request             // pending requests, FIFO
	accepting  map[string]*acceptance // by task id: waiting for the runner's ack
	tasks      map[string]*task       // by task id
	missedAcks map[string]int         // consecutive accept timeouts by runner id
	requests   map[*Request]struct{}  // requests not yet finished
	grants     map[string]time.Time   // grant token → expiry
	timers     map[*brokerTimer]struct{}

	jobs    []func() // the requester's queue, run in order by requesterLoop
	jobWake chan struct{}

	transcript []Frame
}

// Start listens on opts.Addr and serves until Close or Shutdown. ctx bounds
// only the listen: the broker's lifetime is ended by Close or Shutdown.
func Start(ctx context.Context, opts Options) (*Broker, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("fakebroker options: %w", err)
	}
	opts = opts.withDefaults()

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("fakebroker listen on %s: %w", opts.Addr, err)
	}

	bctx, cancel := context.WithCancel(context.Background())
	b := &Broker{
		opts:           opts,
		log:            opts.Logger,
		ln:             ln,
		ctx:            bctx,
		cancel:         cancel,
		closedCh:       make(chan struct{}),
		authLimiter:    newFixedWindow(opts.AuthRateLimit, opts.RateLimitWindow),
		upgradeLimiter: newSlidingWindow(opts.UpgradeRateLimit, opts.RateLimitWindow),
		conns:          make(map[*conn]struct{}),
		runners:        make(map[string]*conn),
		runnersChanged: make(chan struct{}),
		accepting:      make(map[string]*acceptance),
		tasks:          make(map[string]*task),
		missedAcks:     make(map[string]int),
		requests:       make(map[*Request]struct{}),
		grants:         make(map[string]time.Time),
		timers:         make(map[*brokerTimer]struct{}),
		jobWake:        make(chan struct{}, 1),
	}
	b.srv = &http.Server{
		Handler:           b,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(b.log.Handler(), slog.LevelDebug),
	}

	b.wg.Add(3)
	go func() {
		defer b.wg.Done()
		if err := b.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			b.log.Error("fake broker stopped serving", "error", err)
		}
	}()
	go func() { defer b.wg.Done(); b.heartbeatLoop() }()
	go func() { defer b.wg.Done(); b.requesterLoop() }()

	b.log.Info(fmt.Sprintf("n8n Task Broker ready on %s", b.Addr()))
	return b, nil
}

// Addr is the address the broker listens on, "127.0.0.1:<port>".
func (b *Broker) Addr() string { return b.ln.Addr().String() }

// URL is the broker's base URL, as N8N_RUNNERS_TASK_BROKER_URI takes it.
func (b *Broker) URL() string { return "http://" + b.Addr() }

// MintGrant returns a fresh single-use grant token, as n8n does for the
// runners it launches, without going through /runners/auth.
func (b *Broker) MintGrant() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.mintGrantLocked()
}

// Runners returns the ids of the registered runners, sorted.
func (b *Broker) Runners() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	ids := make([]string, 0, len(b.runners))
	for id := range b.runners {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// WaitRegistered blocks until at least n runners are registered, ctx ends
// or the broker closes.
func (b *Broker) WaitRegistered(ctx context.Context, n int) error {
	for {
		b.mu.Lock()
		count, changed, closed := len(b.runners), b.runnersChanged, b.closed
		b.mu.Unlock()
		switch {
		case count >= n:
			return nil
		case closed:
			return ErrClosed
		}
		select {
		case <-changed:
		case <-b.closedCh:
		case <-ctx.Done():
			return fmt.Errorf("waiting for %d registered runners (have %d): %w", n, count, ctx.Err())
		}
	}
}

// OpenOffers returns the pending offers that have not expired, oldest first.
func (b *Broker) OpenOffers() []Offer {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	return slices.DeleteFunc(slices.Clone(b.offers), func(o Offer) bool { return o.expired(now) })
}

// SendRaw pushes frame, as a text frame and byte for byte, to the
// connection of runnerID: the registered one, or else the newest
// unregistered one. Malformed frames are allowed; that is the point.
func (b *Broker) SendRaw(runnerID string, frame []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	c := b.runners[runnerID]
	if c == nil {
		for other := range b.conns {
			if other.runnerID == runnerID && !other.removed && (c == nil || other.opened.After(c.opened)) {
				c = other
			}
		}
	}
	if c == nil || c.removed {
		return fmt.Errorf("send raw frame to %q: %w", runnerID, ErrUnknownRunner)
	}
	c.enqueueLocked(slices.Clone(frame))
	return nil
}

// Ping sends the registered runner runnerID a ping control frame now and
// waits for its pong (or ctx): one heartbeat, at a moment a test chooses,
// without the heartbeat's verdict. A frame being written to the runner
// goes first.
func (b *Broker) Ping(ctx context.Context, runnerID string) error {
	b.mu.Lock()
	c, closed := b.runners[runnerID], b.closed
	b.mu.Unlock()
	switch {
	case closed:
		return ErrClosed
	case c == nil:
		return fmt.Errorf("ping %q: %w", runnerID, ErrUnknownRunner)
	}
	if err := c.ws.Ping(ctx); err != nil {
		return fmt.Errorf("ping %q: %w", runnerID, err)
	}
	return nil
}

// notifyRunnersLocked wakes WaitRegistered callers.
func (b *Broker) notifyRunnersLocked() {
	close(b.runnersChanged)
	b.runnersChanged = make(chan struct{})
}
