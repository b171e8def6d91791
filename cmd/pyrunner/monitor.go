package main

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/pyrunner/pyrunner/envcache"
	"github.com/pyrunner/pyrunner/internal/config"
	"github.com/pyrunner/pyrunner/metrics"
	"github.com/pyrunner/pyrunner/metrics/resources"
	"github.com/pyrunner/pyrunner/pool"
)

// startMonitor starts the metrics' monitor of exec (metrics.Monitor) and
// returns it with the executor as the runner is to see it: without
// capacity while the monitor has stopped offers. Close the monitor when
// done.
func startMonitor(m *metrics.Metrics, state *metrics.State, exec pool.Executor, opts metrics.MonitorOptions) (*metrics.Monitor, pool.Executor) {
	opts.Pool = monitoredPool{exec}
	mon := metrics.NewMonitor(m, state, opts)
	mon.Start()
	return mon, offerGate{Executor: exec, mon: mon}
}

// monitorOptions are the monitor's settings from the configuration; the
// disks watched are the cache's and the tasks' directories'.
func monitorOptions(cfg *config.Config, logger *slog.Logger) metrics.MonitorOptions {
	cacheDir := cfg.Pool.CacheDir
	if cacheDir == "" {
		cacheDir = envcache.DefaultCacheDir()
	}
	return metrics.MonitorOptions{
		DiskPaths:      []string{cacheDir, os.TempDir()},
		Interval:       cfg.Metrics.SampleInterval.Duration(),
		Thresholds:     cfg.Metrics.Thresholds(cfg.Limits.Timeout()),
		MaxConcurrency: int(cfg.Broker.MaxConcurrency),
		Logger:         logger,
		Now:            time.Now,
	}
}

// offerGate is the pool as the runner sees it: no capacity while the
// monitor has stopped offers (memory or disk exhaustion). Running tasks
// are not touched.
type offerGate struct {
	pool.Executor
	mon *metrics.Monitor
}

func (g offerGate) Capacity() int { return g.mon.Capacity() }

// monitoredPool is the executor as metrics reads it. The spawn baseline
// has no pool to read.
type monitoredPool struct{ exec pool.Executor }

// observablePool is what both pools (one environment's, and every
// environment's) tell metrics.
type observablePool interface {
	Stats() pool.Stats
	Processes() []pool.ProcessInfo
	Recycle(pid int, why string) bool
}

func (p monitoredPool) Capacity() int { return p.exec.Capacity() }

func (p monitoredPool) Recycle(pid int, why string) bool {
	z, ok := p.exec.(observablePool)
	return ok && z.Recycle(pid, why)
}

func (p monitoredPool) Read() metrics.PoolReading {
	z, ok := p.exec.(observablePool)
	if !ok {
		return metrics.PoolReading{}
	}
	st := z.Stats()
	r := metrics.PoolReading{
		Ready: st.Ready, Running: st.Busy, Starting: st.Starting, Queued: st.Waiting, Zygotes: st.Zygotes,
		Starts: st.Started, StartFailures: st.StartFailures, WornOut: st.WornOut, Recycled: st.Recycled,
		ZygoteRestarts: st.ZygoteRestarts, ZygotesReplaced: st.ZygotesReplaced, StartError: st.StartError,
	}
	for _, c := range st.Caches {
		r.Caches = append(r.Caches, metrics.CacheReading{Name: c.Name, Hits: c.Hits, Misses: c.Misses, Evictions: c.Evictions, Entries: c.Entries})
	}
	for _, proc := range z.Processes() {
		r.Processes = append(r.Processes, resources.Proc{PID: proc.PID, Role: string(proc.Role), Busy: proc.Busy})
	}
	if envs, ok := p.exec.(*pool.EnvExecutor); ok {
		if what, since, err := envs.Building(); !since.IsZero() {
			r.Building = fmt.Sprintf("building the default Python environment (%s) for %s", what, time.Since(since).Round(time.Second))
			if err != nil {
				r.Building += fmt.Sprintf("; the last attempt failed: %v", err)
			}
		}
	}
	return r
}
