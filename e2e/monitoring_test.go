package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/pyrunner/pyrunner/broker/fakebroker"
	"github.com/pyrunner/pyrunner/metrics"
)

// withHealth is env with the health server on a free port.
func withHealth(env map[string]string) map[string]string {
	return withEnv(env, map[string]string{"N8N_RUNNERS_HEALTH_CHECK_SERVER_ENABLED": "true", "N8N_RUNNERS_HEALTH_CHECK_SERVER_PORT": "0"})
}

// healthURL is the running pyrunner's health server, from its log.
func healthURL(t *testing.T, p *proc) string {
	t.Helper()
	if !p.waitOutput("Health check server listening on") {
		t.Fatal("no health server in the log")
	}
	m := regexp.MustCompile(`Health check server listening on .+, port (\d+)`).FindStringSubmatch(p.out.String())
	return "http://127.0.0.1:" + m[1]
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// eventually polls ok until it holds or limit passes (generous: the
// machine may be loaded; the test decides on what happens, not how fast).
func eventually(t *testing.T, limit time.Duration, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(limit); !ok(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %s waiting for %s", limit, what)
		}
	}
}

// scrape parses the runner's /metrics with Prometheus's own parser.
func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	_, body := httpGet(t, base+"/metrics")
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return families
}

// sample is the value of the family's metric with these labels (name,
// value pairs); a histogram's count.
func sample(t *testing.T, families map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	fam := families[name]
	if fam == nil {
		t.Fatalf("%s is not exported", name)
	}
next:
	for _, m := range fam.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			if !slices.ContainsFunc(m.Label, func(l *dto.LabelPair) bool { return l.GetName() == labels[i] && l.GetValue() == labels[i+1] }) {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return 0
}

// TestMemoryGrowthReplacesTheWorker: a reuse-mode task that keeps a
// module-level list growing makes its worker grow; the memory_leak alert
// is raised, the worker is replaced while idle, no task fails, and the
// alert resolves once the new worker is there.
func TestMemoryGrowthReplacesTheWorker(t *testing.T) {
	b := startBroker(t, fakebroker.Options{})
	p := startRegistered(t, b, withHealth(withEnv(wildcard, map[string]string{
		"N8N_PYTHON_ISOLATION":                     "reuse",
		"N8N_PYTHON_POOL_MIN_WORKERS":              "1",
		"N8N_PYTHON_POOL_MAX_WORKERS":              "1",
		"N8N_PYTHON_POOL_MAX_EXECUTIONS":           "1000",
		"N8N_PYTHON_MAX_MEMORY_MB":                 "2048",
		"N8N_PYTHON_METRICS_SAMPLE_INTERVAL":       "200",
		"N8N_PYTHON_METRICS_MEMORY_LEAK_THRESHOLD": "100",
	})))
	base := healthURL(t, p)
	// The worker's growth is measured from the lowest memory seen of it:
	// let a sample see it before it grows.
	eventually(t, patience, "a sample of the idle worker", func() bool {
		f := scrape(t, base)
		return f["pyrunner_python_processes"] != nil && sample(t, f, "pyrunner_python_processes", "role", "worker") == 1
	})
	// 30 MB more in a module-level list per task: state that outlives the
	// task in a reuse worker.
	grow := allItems("import json, os\nstore = json.__dict__.setdefault('pyrunner_leak_test', [])\nstore.append('x' * (30 << 20))\n"+
		"return [{'json': {'pid': os.getpid(), 'held': len(store)}}]", nil)
	look := allItems("import json, os\nreturn [{'json': {'pid': os.getpid(), 'held': len(json.__dict__.get('pyrunner_leak_test', []))}}]", nil)
	type answer struct{ Pid, Held int }
	runOne := func(settings json.RawMessage) answer {
		t.Helper()
		out := run(t, b, settings)
		var res []struct {
			JSON answer `json:"json"`
		}
		if !out.Done || json.Unmarshal(out.Result, &res) != nil || len(res) != 1 {
			t.Fatalf("a task failed: %s %s", out.Result, out.Error)
		}
		return res[0].JSON
	}
	// 150 MB held: over the 100 MB threshold.
	var first answer
	for range 5 {
		first = runOne(grow)
	}
	if first.Held != 5 {
		t.Fatalf("the list holds %d strings after 5 tasks in one worker", first.Held)
	}
	var alertsDuring, readyDuring string
	var after answer
	eventually(t, 120*time.Second, "the worker to be replaced", func() bool {
		if _, body := httpGet(t, base+"/alerts"); strings.Contains(body, `"memory_leak"`) && alertsDuring == "" {
			alertsDuring = body
			_, readyDuring = httpGet(t, base+"/readyz")
		}
		after = runOne(look)
		return after.Pid != first.Pid
	})
	if after.Held != 0 {
		t.Fatalf("the new worker holds the old one's list (%d strings)", after.Held)
	}
	if !strings.Contains(p.out.String(), "Alert memory_leak raised: worker") ||
		!regexp.MustCompile(`Replacing Python worker \d+`).MatchString(p.out.String()) {
		t.Fatalf("no alert or replacement in the log")
	}
	// The alert lasts from the sample that raises it (and replaces the
	// idle worker) to the next one: a poll may miss it on a loaded
	// machine. What it said is in the log either way.
	if m := regexp.MustCompile(`Alert memory_leak raised: worker \d+ grew by \d+ MB`).FindString(p.out.String()); m == "" {
		t.Errorf("the log does not say how much the worker grew")
	}
	if alertsDuring == "" {
		t.Log("no /alerts poll fell within the alert's life (one sample interval)")
	} else {
		t.Logf("/alerts during the leak: %s", alertsDuring)
		t.Logf("/readyz during the leak: %s", readyDuring)
		if !strings.Contains(alertsDuring, "grew by") || !strings.Contains(readyDuring, `"ready":true`) {
			t.Errorf("/alerts %s, /readyz %s: want the leak listed, and still ready (a leak does not stop offers)", alertsDuring, readyDuring)
		}
	}
	var lastAlerts string
	defer func() {
		if t.Failed() {
			t.Logf("the last /alerts: %s", lastAlerts)
		}
	}()
	// Only this alert: others (the code cache's misses, say) depend on how
	// many tasks the loop above ran before the replacement.
	eventually(t, 120*time.Second, "the alert to resolve", func() bool {
		_, lastAlerts = httpGet(t, base+"/alerts")
		return strings.HasPrefix(lastAlerts, `{"alerts":[`) && !strings.Contains(lastAlerts, `"memory_leak"`) &&
			strings.Contains(p.out.String(), "Alert memory_leak resolved")
	})
	f := scrape(t, base)
	if got := sample(t, f, "pyrunner_pool_worker_recycles_total", "reason", "memory_growth"); got != 1 {
		t.Errorf("worker recycles for memory growth: %v, want 1", got)
	}
	if got := sample(t, f, "pyrunner_tasks_finished_total", "outcome", "error"); got != 0 {
		t.Errorf("%v tasks failed", got)
	}
}

// TestReadyzFollowsTheBroker: 503 with the reason while the broker is
// away, 200 again once it is back.
func TestReadyzFollowsTheBroker(t *testing.T) {
	b := startBroker(t, fakebroker.Options{})
	p := startRegistered(t, b, withHealth(nil))
	base := healthURL(t, p)
	// The broker counts the runner registered when it sends its answer;
	// pyrunner, a moment later, when it reads it.
	eventually(t, patience, "/readyz to answer 200 once registered", func() bool {
		code, _ := httpGet(t, base+"/readyz")
		return code == 200
	})
	addr := b.Addr()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := b.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	var away string
	eventually(t, 60*time.Second, "/readyz to answer 503", func() bool {
		code, body := httpGet(t, base+"/readyz")
		away = body
		return code == 503 && strings.Contains(body, "broker disconnected since") && strings.Contains(body, `"lastError"`)
	})
	t.Logf("/readyz with the broker away: %s", away)
	b2 := startBroker(t, fakebroker.Options{Addr: addr})
	if err := b2.WaitRegistered(ctx, 1); err != nil {
		t.Fatalf("runner did not come back: %v", err)
	}
	eventually(t, 60*time.Second, "/readyz to answer 200", func() bool {
		code, _ := httpGet(t, base+"/readyz")
		return code == 200
	})
}

// TestMetricsCountTheTasks: /metrics parses with Prometheus's text parser,
// and its task counts are the tasks run.
func TestMetricsCountTheTasks(t *testing.T) {
	b := startBroker(t, fakebroker.Options{})
	p := startRegistered(t, b, withHealth(map[string]string{"N8N_PYTHON_MAX_EXECUTION_TIME": "1000"}))
	base := healthURL(t, p)
	code := "return [{'json': {'ok': True}}]"
	for range 6 {
		if out := run(t, b, allItems(code, nil)); !out.Done {
			t.Fatalf("task: %s", out.Error)
		}
	}
	for range 3 {
		if out := run(t, b, allItems("raise ValueError('no')", nil)); out.Done {
			t.Fatal("an error task succeeded")
		}
	}
	if out := run(t, b, allItems("import time\ntime.sleep(30)", nil)); !strings.Contains(string(out.Error), "timed out") {
		t.Fatalf("timeout task: %s", out.Error)
	}
	// The result reaches the broker just before the runner counts the task,
	// and a scrape may fall between the counter and the gauge of that count:
	// the last task is counted once both say so.
	var f map[string]*dto.MetricFamily
	eventually(t, 30*time.Second, "the last task counted", func() bool {
		f = scrape(t, base)
		return sample(t, f, "pyrunner_tasks_finished_total", "outcome", "timeout") == 1 &&
			sample(t, f, "pyrunner_tasks_in_progress") == 0
	})
	checks := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"pyrunner_tasks_accepted_total", nil, 10},
		{"pyrunner_tasks_finished_total", []string{"outcome", "success"}, 6},
		{"pyrunner_tasks_finished_total", []string{"outcome", "error"}, 3},
		{"pyrunner_tasks_duration_seconds", []string{"outcome", "success"}, 6},
		{"pyrunner_tasks_limit_exceeded_total", []string{"limit", "timeout"}, 1},
		{"pyrunner_pool_queue_wait_seconds", nil, 10},
		{"pyrunner_tasks_in_progress", nil, 0},
		{"pyrunner_cache_hits_total", []string{"cache", "verdicts"}, 5 + 2},
		{"pyrunner_cache_misses_total", []string{"cache", "verdicts"}, 3},
		{"pyrunner_broker_connected", nil, 1},
		{"pyrunner_pool_zygotes", nil, 1},
	}
	for _, c := range checks {
		if got := sample(t, f, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if sample(t, f, "pyrunner_python_processes", "role", "zygote") != 1 || sample(t, f, "pyrunner_host_memory_available_bytes") <= 0 {
		t.Errorf("no resource sample exported")
	}
	if f["go_goroutines"] == nil || f["process_resident_memory_bytes"] == nil {
		t.Errorf("the Go and process metrics are not served beside the domain ones")
	}
}

// TestStatsAgreeWithTheBroker: /stats percentiles of execution time lie
// between what the tasks slept and what the broker measured (settings
// sent to result received), rank for rank; and `pyrunner report`
// renders them from the live runner.
func TestStatsAgreeWithTheBroker(t *testing.T) {
	b := startBroker(t, fakebroker.Options{})
	p := startRegistered(t, b, withHealth(nil))
	base := healthURL(t, p)
	var slept, measured []time.Duration
	for i := range 20 {
		d := time.Duration(i+1) * 15 * time.Millisecond
		out := run(t, b, allItems(fmt.Sprintf("import time\ntime.sleep(%.3f)\nreturn []", d.Seconds()), nil))
		if !out.Done {
			t.Fatalf("task: %s", out.Error)
		}
		slept, measured = append(slept, d), append(measured, out.Completed.Sub(out.SettingsSent))
	}
	slices.Sort(measured)
	var st metrics.Stats
	eventually(t, 30*time.Second, "the last task counted", func() bool {
		_, body := httpGet(t, base+"/stats")
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatalf("/stats: %v: %s", err, body)
		}
		return st.Windows[2].Execution.Count == 20
	})
	w := st.Windows[2]
	if w.Name != "15m" || w.Tasks != 20 || w.SuccessRate != 1 {
		t.Fatalf("15m window: %+v", w)
	}
	rank := func(d []time.Duration, q float64) float64 {
		return float64(d[int(math.Ceil(q*float64(len(d))))-1]) / float64(time.Millisecond)
	}
	for _, c := range []struct {
		name string
		got  float64
		q    float64
	}{{"p50", w.Execution.P50, 0.5}, {"p95", w.Execution.P95, 0.95}, {"p99", w.Execution.P99, 0.99}} {
		lo, hi := rank(slept, c.q)*0.978, rank(measured, c.q)*1.023 // the histogram's half bin
		t.Logf("%s: /stats %.1f ms; slept %.1f ms, broker measured %.1f ms", c.name, c.got, rank(slept, c.q), rank(measured, c.q))
		if c.got < lo || c.got > hi {
			t.Errorf("%s = %.1f ms, not within [%.1f, %.1f]", c.name, c.got, lo, hi)
		}
	}

	out := filepath.Join(t.TempDir(), "report.md")
	report := exec.Command(binary, "report", "-url", base, "-o", out)
	report.Env = []string{"GORACE=atexit_sleep_ms=0"}
	if b, err := report.CombinedOutput(); err != nil {
		t.Fatalf("pyrunner report: %v %s", err, b)
	}
	md, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"# pyrunner performance report", "- Ready: registered with the broker", "20 tasks ended in the last 5 minutes", "| 15m | 20 |", "No alert is active."} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}
