package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/pyrunner/pyrunner/broker/fakebroker"
	"github.com/pyrunner/pyrunner/internal/loadgen"
)

// TestSoak runs PYRUNNER_SOAK tasks (make soak: 100,000) through the plain
// pyrunner and prints, at 20 points along the way, what its own /metrics
// says it holds: heap in use, resident memory, goroutines and open file
// descriptors. Anything kept per task shows as a rising column; the test
// fails when a column rose by more than a fixed allowance between the
// first point (warm) and the last. PYRUNNER_SOAK_ISOLATION picks the mode
// (reuse by default: the fastest, so the most tasks per minute).
func TestSoak(t *testing.T) {
	total, _ := strconv.Atoi(os.Getenv("PYRUNNER_SOAK"))
	if total <= 0 {
		t.Skip("set PYRUNNER_SOAK=<tasks> (make soak) to run the soak")
	}
	isolation := os.Getenv("PYRUNNER_SOAK_ISOLATION")
	if isolation == "" {
		isolation = "reuse"
	}
	b, err := fakebroker.Start(context.Background(), fakebroker.Options{TranscriptLimit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	p, err := startBenchRunner(b, isolation,
		"N8N_RUNNERS_HEALTH_CHECK_SERVER_ENABLED=true", "N8N_RUNNERS_HEALTH_CHECK_SERVER_PORT="+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	defer stopBenchRunner(p)
	metricsURL := fmt.Sprintf("http://127.0.0.1:%d/metrics", port)

	settings := task(loadgen.TrivialCode, "runOnceForAllItems", []any{}, false)
	const points = 20
	step := max(total/points, 1)
	var rows []soakRow
	start := time.Now()
	fmt.Printf("soak: %d tasks, isolation %s\n%10s %8s %14s %10s %11s %8s\n", total, isolation,
		"tasks", "secs", "heap_inuse_MB", "rss_MB", "goroutines", "fds")
	for done := 0; done < total; done += step {
		res := loadgen.ClosedLoop(min(step, total-done), 5, func(int) (time.Duration, bool) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			out, err := b.RunTask(ctx, settings)
			return 0, err == nil && out.Done
		})
		if res.Failed > 0 {
			t.Fatalf("%d tasks failed after %d", res.Failed, done)
		}
		row, err := scrapeSoakRow(metricsURL)
		if err != nil {
			t.Fatal(err)
		}
		row.tasks = done + min(step, total-done)
		rows = append(rows, row)
		fmt.Printf("%10d %8.0f %14.1f %10.1f %11.0f %8.0f\n", row.tasks, time.Since(start).Seconds(),
			row.heapInuse/1e6, row.rss/1e6, row.goroutines, row.fds)
	}
	first, last := rows[0], rows[len(rows)-1]
	// Fixed allowances: a garbage-collected heap swings by a few MB between
	// scrapes, and a few goroutines and descriptors come and go with the
	// pool's processes; 400 bytes kept per task would be 40 MB here.
	checks := []struct {
		name        string
		first, last float64
		allowed     float64
	}{
		{"heap in use (bytes)", first.heapInuse, last.heapInuse, 8e6},
		{"resident memory (bytes)", first.rss, last.rss, 16e6},
		{"goroutines", first.goroutines, last.goroutines, 20},
		{"open file descriptors", first.fds, last.fds, 20},
	}
	for _, c := range checks {
		if c.last-c.first > c.allowed {
			t.Errorf("%s rose from %.0f to %.0f over %d tasks (allowed: %.0f)", c.name, c.first, c.last, last.tasks-first.tasks, c.allowed)
		}
	}
}

type soakRow struct {
	tasks                           int
	heapInuse, rss, goroutines, fds float64
}

// scrapeSoakRow reads the columns of a soak row from pyrunner's /metrics.
func scrapeSoakRow(url string) (soakRow, error) {
	resp, err := http.Get(url)
	if err != nil {
		return soakRow{}, err
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return soakRow{}, fmt.Errorf("parsing %s: %w", url, err)
	}
	value := func(name string) float64 {
		f := families[name]
		if f == nil || len(f.GetMetric()) == 0 {
			return -1
		}
		m := f.GetMetric()[0]
		if g := m.GetGauge(); g != nil {
			return g.GetValue()
		}
		return m.GetUntyped().GetValue()
	}
	row := soakRow{heapInuse: value("go_memstats_heap_inuse_bytes"), rss: value("process_resident_memory_bytes"),
		goroutines: value("go_goroutines"), fds: value("process_open_fds")}
	if row.heapInuse < 0 || row.rss < 0 || row.goroutines < 0 || row.fds < 0 {
		return row, fmt.Errorf("a soak column is missing from %s", url)
	}
	return row, nil
}
