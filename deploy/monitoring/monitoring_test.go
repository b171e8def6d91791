// Package monitoring_test checks the files beside it: the Prometheus rules
// and configuration with promtool (Debian's prometheus package; .ci/run
// installs it), and that every metric the rules and the Grafana dashboard
// use is one pyrunner exports.
package monitoring_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/pyrunner/pyrunner/metrics"
	"github.com/pyrunner/pyrunner/metrics/resources"
)

// promtool is the path of promtool; without it the test fails in CI and
// is skipped elsewhere.
func promtool(t *testing.T) string {
	path, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool is missing: .ci/run installs it with Debian's prometheus package")
		}
		t.Skip("promtool is not installed (apt-get install prometheus)")
	}
	return path
}

func TestPromtool(t *testing.T) {
	bin := promtool(t)
	for _, args := range [][]string{
		{"check", "rules", "pyrunner-rules.yml"},
		{"test", "rules", "pyrunner-rules.test.yml"},
		{"check", "config", "prometheus.yml"},
	} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// onePool and oneReader give the monitor one of everything, so that
// every metric has a series.
type onePool struct{}

func (onePool) Read() metrics.PoolReading {
	return metrics.PoolReading{Ready: 1, Zygotes: 1,
		Processes: []resources.Proc{{PID: 1, Role: "zygote"}},
		Caches:    []metrics.CacheReading{{Name: "verdicts", Hits: 1}}}
}
func (onePool) Capacity() int            { return 1 }
func (onePool) Recycle(int, string) bool { return false }

type oneReader struct{}

func (oneReader) Process(context.Context, int) (resources.ProcReading, error) {
	return resources.ProcReading{RSS: 1}, nil
}
func (oneReader) Host(context.Context, []string) (resources.HostReading, error) {
	return resources.HostReading{MemTotal: 1, MemAvailable: 1, Disks: []resources.Disk{{Path: "/", Free: 1, Total: 1}}}, nil
}

// exported is every metric name pyrunner's /metrics serves, histograms'
// series included, and Prometheus's own up.
func exported(t *testing.T) map[string]bool {
	m := metrics.New()
	state := metrics.NewState(m, time.Now)
	mon := metrics.NewMonitor(m, state, metrics.MonitorOptions{Pool: onePool{}, Reader: oneReader{}})
	mon.Tick(context.Background())
	state.Connected(true)
	state.TaskAccepted()
	state.TaskRan(time.Millisecond, "memory")
	state.TaskFinished("success", time.Millisecond)
	state.TaskRejected("Offer expired")
	state.EnvironmentBuilt(time.Second, nil)
	families, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{"up": true}
	for _, f := range families {
		names[f.GetName()] = true
		if f.GetType().String() == "HISTOGRAM" {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				names[f.GetName()+suffix] = true
			}
		}
	}
	return names
}

var metricName = regexp.MustCompile(`\b(?:pyrunner|go|process)_[a-z0-9_]+\b`)

// ruleExprs are the expressions of the alerting rules.
func ruleExprs(t *testing.T) []string {
	b, err := os.ReadFile("pyrunner-rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert, Expr string
			}
		}
	}
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			out = append(out, r.Expr)
		}
	}
	return out
}

// dashboardExprs are the queries of the dashboard's panels and variables.
func dashboardExprs(t *testing.T) []string {
	b, err := os.ReadFile("grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
		Templating struct {
			List []struct{ Definition string }
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range dash.Panels {
		for _, target := range p.Targets {
			out = append(out, target.Expr)
		}
	}
	for _, v := range dash.Templating.List {
		out = append(out, v.Definition)
	}
	return out
}

func TestMetricsUsedAreExported(t *testing.T) {
	names := exported(t)
	for file, exprs := range map[string][]string{"pyrunner-rules.yml": ruleExprs(t), "grafana-dashboard.json": dashboardExprs(t)} {
		if len(exprs) < 8 {
			t.Errorf("%s: only %d expressions read", file, len(exprs))
		}
		used := 0
		for _, expr := range exprs {
			for _, name := range metricName.FindAllString(expr, -1) {
				used++
				if !names[name] {
					t.Errorf("%s uses %s, which pyrunner does not export (in %q)", file, name, expr)
				}
			}
		}
		if used == 0 {
			t.Errorf("%s uses no metric", file)
		}
	}
}

// TestKubernetesScrapeAnnotations: the worker pod says where its metrics
// are, on pyrunner's health port, and the scrape job reads those
// annotations.
func TestKubernetesScrapeAnnotations(t *testing.T) {
	b, err := os.ReadFile("../kubernetes/n8n-worker.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var worker struct {
		Spec struct {
			Template struct {
				Metadata struct{ Annotations map[string]string }
				Spec     struct {
					// pyrunner is a native sidecar: an init container that keeps running.
					InitContainers []struct {
						Name string
						Env  []struct{ Name, Value string }
					} `yaml:"initContainers"`
				}
			}
		}
	}
	if err := yaml.Unmarshal(b, &worker); err != nil {
		t.Fatal(err)
	}
	a := worker.Spec.Template.Metadata.Annotations
	port := ""
	for _, c := range worker.Spec.Template.Spec.InitContainers {
		for _, e := range c.Env {
			if c.Name == "pyrunner" && e.Name == "N8N_RUNNERS_HEALTH_CHECK_SERVER_PORT" {
				port = e.Value
			}
		}
	}
	if a["prometheus.io/scrape"] != "true" || a["prometheus.io/path"] != "/metrics" || port == "" || a["prometheus.io/port"] != port {
		t.Fatalf("annotations %v, pyrunner's health port %q", a, port)
	}
	job, err := os.ReadFile("prometheus-kubernetes.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(job, &cfg); err != nil {
		t.Fatalf("prometheus-kubernetes.yml: %v", err)
	}
	for _, label := range []string{"__meta_kubernetes_pod_annotation_prometheus_io_scrape", "__meta_kubernetes_pod_annotation_prometheus_io_port", "__meta_kubernetes_pod_annotation_prometheus_io_path"} {
		if !strings.Contains(string(job), label) {
			t.Errorf("the scrape job does not read %s", label)
		}
	}
}
