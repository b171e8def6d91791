package metrics

import (
	"time"

	"github.com/pyrunner/pyrunner/metrics/alerts"
	"github.com/pyrunner/pyrunner/metrics/resources"
	"github.com/pyrunner/pyrunner/metrics/window"
)

// Stats is the /stats document: what the runner did over the last 1, 5
// and 15 minutes (and the 5 before the last 5), the pool, the caches, the
// latest resource sample, the active alerts and readiness. `pyrunner
// report` renders it.
type Stats struct {
	Time    time.Time     `json:"time"`
	Windows []WindowStats `json:"windows"`
	// Previous is the 5 minutes before the last 5, to tell a trend.
	Previous  WindowStats    `json:"previous_5m"`
	Pool      PoolStats      `json:"pool"`
	Caches    []CacheStats   `json:"caches"`
	Resources *ResourceStats `json:"resources,omitempty"`
	Alerts    []alerts.Alert `json:"alerts"`
	Ready     Readiness      `json:"ready"`
}

// The windows of /stats.
var statsWindows = []struct {
	name string
	d    time.Duration
}{{"1m", time.Minute}, {"5m", 5 * time.Minute}, {"15m", 15 * time.Minute}}

// WindowStats is one window. Rates are 0..1; times in milliseconds.
type WindowStats struct {
	Name string `json:"name"`
	// Seconds is the span the numbers cover (less than the window right
	// after the start).
	Seconds        float64           `json:"seconds"`
	Tasks          uint64            `json:"tasks"`
	Throughput     float64           `json:"throughput_per_second"`
	SuccessRate    float64           `json:"success_rate"`
	ErrorRate      float64           `json:"error_rate"`
	Outcomes       map[string]uint64 `json:"outcomes"`
	Limits         map[string]uint64 `json:"limits_hit"`
	Execution      Millis            `json:"execution_ms"`
	QueueWait      Millis            `json:"queue_wait_ms"`
	QueueLengthMax int               `json:"queue_length_max"`
	// CacheHitRate is, per cache looked up in the window, the share of
	// lookups that hit.
	CacheHitRate map[string]float64 `json:"cache_hit_rate"`
	CacheLookups map[string]uint64  `json:"cache_lookups"`
}

// Millis is a distribution of durations in milliseconds.
type Millis struct {
	Count uint64  `json:"count"`
	Avg   float64 `json:"avg"`
	P50   float64 `json:"p50"`
	P95   float64 `json:"p95"`
	P99   float64 `json:"p99"`
	Max   float64 `json:"max"`
}

// PoolStats is the pool now, and what it has done since it started.
type PoolStats struct {
	Ready          int    `json:"ready"`
	Running        int    `json:"running"`
	Starting       int    `json:"starting"`
	Queued         int    `json:"queued"`
	Zygotes        int    `json:"zygotes"`
	Capacity       int    `json:"capacity"`
	TasksRunning   int    `json:"tasks_running"`
	Starts         uint64 `json:"process_starts"`
	StartFailures  uint64 `json:"process_start_failures"`
	WorkersWornOut uint64 `json:"workers_recycled_max_executions"`
	WorkersGrown   uint64 `json:"workers_recycled_memory_growth"`
	ZygoteRestarts uint64 `json:"zygote_restarts"`
	ZygotesGrown   uint64 `json:"zygotes_replaced_memory_growth"`
	StartError     string `json:"start_error,omitempty"`
}

// CacheStats is one cache since it was made.
type CacheStats struct {
	Name      string  `json:"name"`
	Hits      uint64  `json:"hits"`
	Misses    uint64  `json:"misses"`
	Evictions uint64  `json:"evictions"`
	Entries   int     `json:"entries"`
	HitRate   float64 `json:"hit_rate"`
}

// ResourceStats is the latest resource sample, with its processes summed
// by role.
type ResourceStats struct {
	resources.Sample
	Totals map[string]RoleTotals `json:"totals"`
}

// RoleTotals sums the processes of one role.
type RoleTotals struct {
	Count          int     `json:"count"`
	RSSBytes       uint64  `json:"rss_bytes"`
	CPUCores       float64 `json:"cpu_cores"`
	MaxGrowthBytes uint64  `json:"max_growth_bytes"`
}

// Stats is the /stats document now.
func (mon *Monitor) Stats() Stats {
	p := mon.opts.Pool.Read()
	rec := mon.state.Recorder()
	// The caches' counts as of now, so that the windows end now.
	rec.Caches(cacheCounts(p.Caches))
	st := Stats{
		Time: mon.now(),
		Pool: PoolStats{
			Ready: p.Ready, Running: p.Running, Starting: p.Starting, Queued: p.Queued, Zygotes: p.Zygotes,
			Capacity: mon.Capacity(), TasksRunning: mon.state.Running(),
			Starts: p.Starts, StartFailures: p.StartFailures, WorkersWornOut: p.WornOut, WorkersGrown: p.Recycled,
			ZygoteRestarts: p.ZygoteRestarts, ZygotesGrown: p.ZygotesReplaced, StartError: p.StartError,
		},
		Caches: []CacheStats{},
		Alerts: mon.Alerts(),
		Ready:  mon.Ready(),
	}
	for _, w := range statsWindows {
		st.Windows = append(st.Windows, windowStats(w.name, rec.Summary(w.d, 0)))
	}
	st.Previous = windowStats("5m before", rec.Summary(5*time.Minute, 5*time.Minute))
	for _, c := range p.Caches {
		cs := CacheStats{Name: c.Name, Hits: c.Hits, Misses: c.Misses, Evictions: c.Evictions, Entries: c.Entries}
		if n := c.Hits + c.Misses; n > 0 {
			cs.HitRate = float64(c.Hits) / float64(n)
		}
		st.Caches = append(st.Caches, cs)
	}
	if s := mon.latest(); s != nil {
		rs := &ResourceStats{Sample: *s, Totals: map[string]RoleTotals{}}
		for role, t := range s.ByRole() {
			rs.Totals[role] = RoleTotals{Count: t.Count, RSSBytes: t.RSS, CPUCores: t.CPUCores, MaxGrowthBytes: t.MaxGrowth}
		}
		st.Resources = rs
	}
	return st
}

func windowStats(name string, s window.Summary) WindowStats {
	w := WindowStats{
		Name: name, Seconds: s.Covered.Seconds(), Tasks: s.Finished(), Throughput: s.Throughput(),
		SuccessRate: s.SuccessRate(), ErrorRate: s.ErrorRate(), Outcomes: s.Outcomes, Limits: s.Limits,
		Execution: millis(s.Exec), QueueWait: millis(s.Wait), QueueLengthMax: s.QueueMax,
		CacheHitRate: map[string]float64{}, CacheLookups: map[string]uint64{},
	}
	for name := range s.Caches {
		if miss, n := s.MissRate(name); n > 0 {
			w.CacheHitRate[name], w.CacheLookups[name] = 1-miss, n
		}
	}
	return w
}

func millis(d window.Dist) Millis {
	ms := func(x time.Duration) float64 { return float64(x) / float64(time.Millisecond) }
	return Millis{Count: d.Count, Avg: ms(d.Avg), P50: ms(d.P50), P95: ms(d.P95), P99: ms(d.P99), Max: ms(d.Max)}
}
