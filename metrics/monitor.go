package metrics

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/pyrunner/pyrunner/metrics/alerts"
	"github.com/pyrunner/pyrunner/metrics/resources"
	"github.com/pyrunner/pyrunner/metrics/window"
)

// Pool is what the monitor reads of, and asks of, the Python pool. cmd
// adapts pool's executor to it; metrics knows nothing of processes beyond.
type Pool interface {
	// Read is the pool now.
	Read() PoolReading
	// Capacity is how many tasks the pool may run at once now.
	Capacity() int
	// Recycle replaces the zygote or worker pid at its next idle moment,
	// never mid-task; it reports whether pid is the pool's.
	Recycle(pid int, why string) bool
}

// PoolReading is the pool as the monitor reads it: its processes by state,
// its queue, and what it has done since it started.
type PoolReading struct {
	Ready, Running, Starting, Queued, Zygotes int
	Starts, StartFailures                     uint64
	WornOut, Recycled                         uint64 // reuse workers replaced
	ZygoteRestarts, ZygotesReplaced           uint64
	// StartError is why processes cannot start, while they cannot.
	StartError string
	// Building says, while the default environment is being built, what
	// and for how long (no task is taken meanwhile).
	Building string
	Caches   []CacheReading
	// Processes are the zygotes and the ready and busy task processes.
	Processes []resources.Proc
}

// CacheReading is one cache's use since it was made.
type CacheReading struct {
	Name                    string
	Hits, Misses, Evictions uint64
	Entries                 int
}

// MonitorOptions configure a Monitor.
type MonitorOptions struct {
	Pool Pool
	// Reader does the sampling's I/O; nil: resources.GopsutilReader.
	Reader resources.Reader
	// DiskPaths are where free disk is watched (the cache, the tasks'
	// directories).
	DiskPaths []string
	// Interval between samples (N8N_PYTHON_METRICS_SAMPLE_INTERVAL); 0
	// turns sampling and the alerts off.
	Interval   time.Duration
	Thresholds alerts.Thresholds
	// MaxConcurrency bounds the tasks taken at once, with the pool's
	// capacity (N8N_RUNNERS_MAX_CONCURRENCY).
	MaxConcurrency int
	Logger         *slog.Logger
	// Now is the clock; nil: time.Now.
	Now func() time.Time
}

// Monitor samples the Python processes and the machine, judges the alerts
// and acts on them: it asks the pool to replace a process whose memory
// keeps growing and stops offers (Capacity 0) while memory or disk is
// short. It also answers readiness and /stats, and exports the pool, the
// latest sample and the alerts when Prometheus scrapes.
//
// Start runs its one goroutine; Close stops it and waits.
type Monitor struct {
	m       *Metrics
	state   *State
	opts    MonitorOptions
	log     *slog.Logger
	now     func() time.Time
	sampler *resources.Sampler
	engine  *alerts.Engine // used by the sampling goroutine only

	mu     sync.Mutex
	sample *resources.Sample // the latest, nil before the first
	active []alerts.Alert
	hold   string // why offers are stopped; empty: they are not

	stop context.CancelFunc
	done chan struct{}
}

// NewMonitor returns a Monitor of state's runner and opts.Pool, and
// registers what it exports in m.
func NewMonitor(m *Metrics, state *State, opts MonitorOptions) *Monitor {
	if opts.Reader == nil {
		opts.Reader = resources.GopsutilReader{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxConcurrency <= 0 {
		opts.MaxConcurrency = 1 << 30
	}
	mon := &Monitor{
		m: m, state: state, opts: opts, log: opts.Logger, now: opts.Now,
		sampler: resources.NewSampler(opts.Reader, opts.DiskPaths),
		engine:  alerts.NewEngine(opts.Thresholds),
	}
	m.Registry.MustRegister(collector{mon})
	return mon
}

// Start begins sampling every Interval; with Interval 0 it does nothing.
func (mon *Monitor) Start() {
	if mon.opts.Interval <= 0 || mon.done != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	mon.stop, mon.done = cancel, make(chan struct{})
	go func() {
		defer close(mon.done)
		ticker := time.NewTicker(mon.opts.Interval)
		defer ticker.Stop()
		for {
			mon.Tick(ctx)
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
			}
		}
	}()
}

// Close stops sampling and waits for the goroutine. Safe to call twice,
// and without Start.
func (mon *Monitor) Close() {
	if mon.stop == nil {
		return
	}
	mon.stop()
	<-mon.done
}

// Tick samples once, judges the alerts and acts on them. The sampling
// goroutine calls it; tests call it directly, one at a time.
func (mon *Monitor) Tick(ctx context.Context) {
	now := mon.now()
	pool := mon.opts.Pool.Read()
	began := time.Now()
	sample := mon.sampler.Sample(ctx, now, pool.Processes)
	sample.Took = time.Since(began)

	rec := mon.state.Recorder()
	rec.Queue(pool.Queued)
	rec.Caches(cacheCounts(pool.Caches))
	free := min(mon.opts.MaxConcurrency, mon.opts.Pool.Capacity()) - mon.state.Running()
	d := mon.engine.Evaluate(alerts.Input{Now: now, Tasks: rec.Summary(alerts.Window, 0), Sample: &sample, FreeSlots: free})

	for _, a := range d.Raised {
		level := slog.LevelWarn
		if a.Severity == alerts.Critical {
			level = slog.LevelError
		}
		mon.log.Log(ctx, level, fmt.Sprintf("Alert %s raised: %s", a.Name, a.Message))
	}
	for _, a := range d.Resolved {
		// A leak resolved by its worker's replacement has nothing left to say.
		if a.Message == "" {
			mon.log.Info(fmt.Sprintf("Alert %s resolved", a.Name))
			continue
		}
		mon.log.Info(fmt.Sprintf("Alert %s resolved: %s", a.Name, a.Message))
	}
	for _, p := range d.Recycle {
		mon.opts.Pool.Recycle(p.PID, fmt.Sprintf("its memory grew by %s to %s (alert memory_leak)", alerts.Bytes(p.Growth), alerts.Bytes(p.RSS)))
	}

	mon.mu.Lock()
	was := mon.hold
	mon.sample, mon.active, mon.hold = &sample, mon.engine.Active(), d.Hold
	mon.mu.Unlock()
	switch {
	case d.Hold != "" && was == "":
		mon.log.Error(fmt.Sprintf("Stopped offering tasks to the broker until this clears (running tasks go on): %s", d.Hold))
	case d.Hold == "" && was != "":
		mon.log.Info("Offering tasks to the broker again: the resources are back")
	}
}

func cacheCounts(caches []CacheReading) map[string]window.CacheCounts {
	out := make(map[string]window.CacheCounts, len(caches))
	for _, c := range caches {
		out[c.Name] = window.CacheCounts{Hits: c.Hits, Misses: c.Misses}
	}
	return out
}

// Capacity is what the runner is told it may run: the pool's capacity, or
// 0 while offers are stopped.
func (mon *Monitor) Capacity() int {
	if mon.holding() != "" {
		return 0
	}
	return mon.opts.Pool.Capacity()
}

func (mon *Monitor) holding() string {
	mon.mu.Lock()
	defer mon.mu.Unlock()
	return mon.hold
}

// Alerts lists the active alerts.
func (mon *Monitor) Alerts() []alerts.Alert {
	mon.mu.Lock()
	defer mon.mu.Unlock()
	return append([]alerts.Alert{}, mon.active...)
}

// latest is the latest sample, nil before the first.
func (mon *Monitor) latest() *resources.Sample {
	mon.mu.Lock()
	defer mon.mu.Unlock()
	return mon.sample
}
