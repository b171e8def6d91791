package metrics

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func get(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestServer(t *testing.T) {
	f := newFixture(t)
	var logs strings.Builder
	srv, err := Listen("127.0.0.1", 0, f.mon, f.m, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	if !strings.Contains(logs.String(), "Health check server listening on 127.0.0.1, port "+strconv.Itoa(srv.Port())) {
		t.Fatalf("log: %s", logs.String())
	}
	f.state.TaskAccepted()
	f.state.TaskRan(2*time.Millisecond, "")
	f.state.TaskFinished("success", 3*time.Millisecond)
	f.tick()
	base := "http://127.0.0.1:" + strconv.Itoa(srv.Port())
	cases := []struct {
		method, path string
		code         int
		body         string
	}{
		{"GET", "/healthz", 200, "OK"},
		{"GET", "/", 200, "OK"},
		{"POST", "/anything", 200, "OK"},
		{"GET", "/readyz", 503, `"reason":"not registered with the broker yet"`},
		{"GET", "/metrics", 200, `pyrunner_tasks_finished_total{outcome="success"} 1`},
		{"GET", "/metrics", 200, `pyrunner_tasks_in_progress 0`},
		{"GET", "/metrics", 200, `pyrunner_alert_active{alert="memory_leak"} 0`},
		{"GET", "/metrics", 200, `go_goroutines `},
		{"GET", "/alerts", 200, `"alerts":[]`},
		{"GET", "/stats", 200, `"name":"15m"`},
	}
	for _, tc := range cases {
		code, body := get(t, tc.method, base+tc.path)
		if code != tc.code || !strings.Contains(body, tc.body) {
			t.Errorf("%s %s = %d %q, want %d with %q", tc.method, tc.path, code, body, tc.code, tc.body)
		}
	}
}

// TestMetricsParse: /metrics parses with Prometheus's own parser, and
// what the collector reads at scrape time is there with its values.
func TestMetricsParse(t *testing.T) {
	f := newFixture(t)
	srv, err := Listen("127.0.0.1", 0, f.mon, f.m, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	f.tick()
	_, body := get(t, "GET", "http://127.0.0.1:"+strconv.Itoa(srv.Port())+"/metrics")
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	value := func(name string, labels ...string) float64 {
		t.Helper()
		fam, ok := families[name]
		if !ok {
			t.Fatalf("%s missing", name)
		}
	next:
		for _, m := range fam.Metric {
			for i := 0; i < len(labels); i += 2 {
				found := false
				for _, l := range m.Label {
					found = found || (l.GetName() == labels[i] && l.GetValue() == labels[i+1])
				}
				if !found {
					continue next
				}
			}
			switch {
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Counter != nil:
				return m.Counter.GetValue()
			}
		}
		t.Fatalf("%s%v missing", name, labels)
		return 0
	}
	checks := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"pyrunner_pool_processes", []string{"state", "ready"}, 1},
		{"pyrunner_pool_zygotes", nil, 1},
		{"pyrunner_pool_capacity", nil, 4},
		{"pyrunner_cache_hits_total", []string{"cache", "verdicts"}, 3},
		{"pyrunner_cache_misses_total", []string{"cache", "verdicts"}, 1},
		{"pyrunner_python_resident_memory_bytes", []string{"role", "worker"}, 40 * mb},
		{"pyrunner_python_processes", []string{"role", "zygote"}, 1},
		{"pyrunner_host_memory_available_bytes", nil, 4 << 30},
		{"pyrunner_host_disk_free_bytes", []string{"path", "/cache"}, 10 << 30},
		{"pyrunner_resources_sample_success", nil, 1},
		{"pyrunner_alert_active", []string{"alert", "memory_exhausted"}, 0},
	}
	for _, c := range checks {
		if got := value(c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}

func TestStatsDocument(t *testing.T) {
	f := newFixture(t)
	for i := range 20 {
		f.state.TaskAccepted()
		f.state.TaskRan(time.Millisecond, "")
		outcome := "success"
		if i%10 == 0 {
			outcome = "error"
		}
		f.state.TaskFinished(outcome, time.Duration(i+1)*10*time.Millisecond)
	}
	f.tick()
	b, err := json.Marshal(f.mon.Stats())
	if err != nil {
		t.Fatal(err)
	}
	var st Stats
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	w := st.Windows[0]
	if w.Name != "1m" || w.Tasks != 20 || w.ErrorRate != 0.1 || w.Outcomes["error"] != 2 || w.Execution.Count != 20 {
		t.Fatalf("1m window: %+v", w)
	}
	if w.Execution.Max != 200 || w.Execution.P50 < 98 || w.Execution.P50 > 102 {
		t.Fatalf("execution: %+v", w.Execution)
	}
	if len(st.Caches) != 1 || st.Caches[0].HitRate != 0.75 || st.Resources == nil || st.Resources.Totals["worker"].RSSBytes != 40*mb {
		t.Fatalf("caches %+v resources %+v", st.Caches, st.Resources)
	}
}

func TestListenFailsOnBusyPort(t *testing.T) {
	f := newFixture(t)
	first, err := Listen("127.0.0.1", 0, f.mon, f.m, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	if _, err := Listen("127.0.0.1", first.Port(), f.mon, f.m, slog.New(slog.DiscardHandler)); err == nil ||
		!strings.Contains(err.Error(), "Port "+strconv.Itoa(first.Port())+" is already in use") {
		t.Fatalf("second bind: %v", err)
	}
}
