package report

import (
	"flag"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pyrunner/pyrunner/metrics"
	"github.com/pyrunner/pyrunner/metrics/alerts"
	"github.com/pyrunner/pyrunner/metrics/resources"
)

var update = flag.Bool("update", false, "rewrite testdata/report.md")

const mb = 1 << 20

// fixture is a /stats document of a pyrunner in trouble: latency rising,
// tasks hitting the memory limit, a worker leaking, memory short.
func fixture() metrics.Stats {
	at := time.Date(2026, 12, 3, 23, 30, 0, 0, time.UTC)
	win := func(name string, secs float64, tasks uint64, p95 float64, errors uint64, limits map[string]uint64) metrics.WindowStats {
		return metrics.WindowStats{Name: name, Seconds: secs, Tasks: tasks, Throughput: float64(tasks) / secs,
			SuccessRate: float64(tasks-errors) / float64(tasks), ErrorRate: float64(errors) / float64(tasks),
			Outcomes:  map[string]uint64{"success": tasks - errors, "error": errors},
			Limits:    limits,
			Execution: metrics.Millis{Count: tasks, Avg: p95 / 3, P50: p95 / 4, P95: p95, P99: p95 * 1.5, Max: p95 * 2},
			QueueWait: metrics.Millis{Count: tasks, Avg: 2, P50: 0.05, P95: 240, P99: 400, Max: 900}, QueueLengthMax: 3,
			CacheHitRate: map[string]float64{"verdicts": 0.95}, CacheLookups: map[string]uint64{"verdicts": tasks},
		}
	}
	leak := alerts.Alert{Name: alerts.MemoryLeak, Severity: alerts.Warning, Since: at.Add(-2 * time.Minute),
		Message: "worker 4242 grew by 612 MB (35 MB → 647 MB) since 23:20:00, threshold 500 MB; replaced at its next idle moment",
		Value:   612 * mb, Threshold: 500 * mb, Unit: "bytes"}
	short := alerts.Alert{Name: alerts.MemoryExhausted, Severity: alerts.Critical, Since: at.Add(-time.Minute),
		Message: "available memory 180 MB < 256 MB (N8N_PYTHON_METRICS_MIN_AVAILABLE_MEMORY)",
		Value:   180 * mb, Threshold: 256 * mb, Unit: "bytes"}
	return metrics.Stats{
		Time: at,
		Windows: []metrics.WindowStats{
			win("1m", 60, 40, 5300, 2, map[string]uint64{"memory": 1}),
			win("5m", 300, 200, 5300, 6, map[string]uint64{"memory": 3}),
			win("15m", 900, 500, 2100, 8, map[string]uint64{"memory": 3, "timeout": 1}),
		},
		Previous: win("5m before", 300, 150, 120, 1, nil),
		Pool: metrics.PoolStats{Ready: 0, Running: 4, Queued: 2, Zygotes: 1, Capacity: 0, TasksRunning: 4,
			Starts: 12, WorkersWornOut: 3, WorkersGrown: 1},
		Caches: []metrics.CacheStats{{Name: "verdicts", Hits: 950, Misses: 50, Entries: 48, HitRate: 0.95}},
		Resources: &metrics.ResourceStats{
			Sample: resources.Sample{At: at.Add(-3 * time.Second), Took: 400 * time.Microsecond,
				Procs: []resources.ProcSample{
					{PID: 4200, Role: "zygote", RSS: 31 * mb, Baseline: 31 * mb},
					{PID: 4242, Role: "worker", Busy: true, RSS: 647 * mb, Baseline: 35 * mb, Growth: 612 * mb, CPUCores: 0.93},
				},
				Host: resources.Host{MemTotal: 2048 * mb, MemAvailable: 180 * mb, Limited: true, Load1: 3.2, CPUs: 2,
					Disks: []resources.Disk{{Path: "/home/runner/.cache/pyrunner", Free: 20 << 30, Total: 50 << 30}}}},
			Totals: map[string]metrics.RoleTotals{"zygote": {Count: 1, RSSBytes: 31 * mb}, "worker": {Count: 1, RSSBytes: 647 * mb}},
		},
		Alerts: []alerts.Alert{leak, short},
		Ready:  metrics.Readiness{Reason: "stopped offering: " + short.Message, Registered: true, Alerts: []string{leak.Name, short.Name}},
	}
}

func TestReportGolden(t *testing.T) {
	var b strings.Builder
	if err := Render(&b, fixture(), "http://127.0.0.1:5681/stats"); err != nil {
		t.Fatal(err)
	}
	const golden = "testdata/report.md"
	if *update {
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if b.String() != string(want) {
		t.Fatalf("report differs from %s (go test ./metrics/report -update rewrites it):\n%s", golden, b.String())
	}
	for _, line := range []string{
		"**Not ready**: stopped offering: available memory 180 MB < 256 MB",
		"p95 rose from 120 ms to 5.3 s in the last 5 minutes.",
		"3 tasks hit the memory limit (N8N_PYTHON_MAX_MEMORY_MB) in the last 15 minutes.",
	} {
		if !strings.Contains(b.String(), line) {
			t.Errorf("reading lacks %q", line)
		}
	}
}

func TestReportOfAnIdleRunner(t *testing.T) {
	var b strings.Builder
	st := metrics.Stats{Ready: metrics.Readiness{Ready: true, Capacity: 5}, Windows: []metrics.WindowStats{{Name: "5m"}}}
	if err := Render(&b, st, "x"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Ready: registered with the broker, able to take 5 tasks at once.", "No task ended in the last 5 minutes.", "No alert is active.", "Not sampled"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("lacks %q:\n%s", want, b.String())
		}
	}
}
