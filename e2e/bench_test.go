package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pyrunner/pyrunner/broker/fakebroker"
	"github.com/pyrunner/pyrunner/internal/excerpt"
	"github.com/pyrunner/pyrunner/internal/faults"
	"github.com/pyrunner/pyrunner/internal/loadgen"
)

// The benchmarks run the built pyrunner against the fake broker, through
// the real protocol, and measure what n8n would see: settings to result
// per task, and tasks per second, at several concurrencies. Every number
// is also given as a ratio against a baseline measured in the same run:
// pyrunner with N8N_PYTHON_ISOLATION=spawn, a new python3 process per task.
//
//	make bench     (go test -run '^$' -bench . -benchtime 3s ./e2e/)

type benchWorkload struct {
	name, code, mode string
	items            []map[string]any
}

func jsonItems(n int) []map[string]any {
	items := make([]map[string]any, n)
	for i := range items {
		values := make([]int, 50)
		for j := range values {
			values[j] = i * j
		}
		payload, _ := json.Marshal(map[string]any{"values": values, "meta": map[string]string{"source": "webhook"}})
		items[i] = map[string]any{"json": map[string]any{"payload": string(payload)}}
	}
	return items
}

var benchWorkloads = []benchWorkload{
	{name: "trivial", mode: "runOnceForAllItems", items: []map[string]any{}, code: loadgen.TrivialCode},
	{name: "json", mode: "runOnceForAllItems", items: jsonItems(10),
		code: "import json\nout = []\nfor it in _items:\n    d = json.loads(it['json']['payload'])\n    out.append({'json': {'n': len(d['values']), 'total': sum(d['values']), 'back': json.dumps(d['meta'])}})\nreturn out"},
	{name: "items100", mode: "runOnceForAllItems", items: loadgen.CustomerItems(100), code: loadgen.TransformCode},
	{name: "items1000", mode: "runOnceForAllItems", items: loadgen.CustomerItems(1000), code: loadgen.TransformCode},
}

var benchModes = []struct{ name, isolation string }{
	{"baseline", "spawn"},
	{"isolated", "isolated"},
	{"reuse", "reuse"},
}

var benchConcurrency = []int{1, 2, 5, 10}

// benchResult is one measured configuration.
type benchResult struct {
	p50, p95, p99 time.Duration
	perSecond     float64
	// faultsPerTask: minor page faults of the runner's Python processes
	// (zygote and task processes, or spawned interpreters) per task, from
	// their own counters: what a task costs whatever the machine's load.
	faultsPerTask float64
}

var (
	benchMu      sync.Mutex
	benchResults = map[string]benchResult{} // "mode/workload/c"
)

// BenchmarkTasks runs every workload at every concurrency in every mode,
// one pyrunner per mode, and prints the README's table at the end.
func BenchmarkTasks(b *testing.B) {
	for _, mode := range benchModes {
		broker, runner, stop := startBenchBroker(b, mode.isolation)
		for _, w := range benchWorkloads {
			settings := task(w.code, w.mode, w.items, false)
			for _, c := range benchConcurrency {
				key := fmt.Sprintf("%s/%s/c=%d", mode.name, w.name, c)
				b.Run(key, func(b *testing.B) {
					res := measureTasks(b, broker, runner, settings, c, b.N)
					benchMu.Lock()
					benchResults[key] = res
					base, haveBase := benchResults[fmt.Sprintf("baseline/%s/c=%d", w.name, c)]
					benchMu.Unlock()
					b.ReportMetric(float64(res.p50)/1e6, "p50-ms")
					b.ReportMetric(float64(res.p95)/1e6, "p95-ms")
					b.ReportMetric(float64(res.p99)/1e6, "p99-ms")
					b.ReportMetric(res.perSecond, "tasks/s")
					b.ReportMetric(res.faultsPerTask, "faults/task")
					if haveBase && mode.name != "baseline" {
						b.ReportMetric(float64(base.p50)/float64(res.p50), "x-faster-p50")
						b.ReportMetric(res.perSecond/base.perSecond, "x-throughput")
					}
				})
			}
		}
		stop()
	}
	printBenchTable()
}

// measureTasks runs n tasks, c at a time, and returns their settings to
// result latencies, the throughput and the minor faults per task of the
// Python processes under the runner process (pid runner).
func measureTasks(b *testing.B, broker *fakebroker.Broker, runner int, settings json.RawMessage, c, n int) benchResult {
	return measureMix(b, broker, runner, func(int) json.RawMessage { return settings }, c, n)
}

// measureMix is measureTasks with task i's settings settingsOf(i).
func measureMix(b *testing.B, broker *fakebroker.Broker, runner int, settingsOf func(i int) json.RawMessage, c, n int) benchResult {
	var firstErr atomic.Value
	before, err := faults.TreeMinor(runner)
	if err != nil {
		b.Fatalf("counting faults: %v", err)
	}
	res := loadgen.ClosedLoop(max(n, c), c, func(i int) (time.Duration, bool) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out, err := broker.RunTask(ctx, settingsOf(i))
		if err != nil || !out.Done {
			firstErr.CompareAndSwap(nil, fmt.Sprintf("task failed: %v %s", err, out.Error))
			return 0, false
		}
		return out.Completed.Sub(out.SettingsSent), true
	})
	if msg := firstErr.Load(); msg != nil {
		b.Fatal(msg)
	}
	after, err := faults.TreeMinor(runner)
	if err != nil {
		b.Fatalf("counting faults: %v", err)
	}
	ms := func(v float64) time.Duration { return time.Duration(v * 1e6) }
	return benchResult{p50: ms(res.P50ms), p95: ms(res.P95ms), p99: ms(res.P99ms), perSecond: res.PerSecond,
		faultsPerTask: float64(after-before) / float64(res.Tasks)}
}

// startBenchBroker starts a fake broker with one pyrunner (pid runner)
// registered at it, in the given isolation mode; stop ends both.
func startBenchBroker(b *testing.B, isolation string) (broker *fakebroker.Broker, runner int, stop func()) {
	broker, err := fakebroker.Start(context.Background(), fakebroker.Options{NoTranscript: true})
	if err != nil {
		b.Fatal(err)
	}
	p, err := startBenchRunner(broker, isolation)
	if err != nil {
		broker.Close()
		b.Fatal(err)
	}
	return broker, p.cmd.Process.Pid, func() {
		stopBenchRunner(p)
		broker.Close()
	}
}

// startBenchRunner starts the plain pyrunner against b in the given
// isolation mode, with extra environment variables on top, and waits for
// it to register.
func startBenchRunner(b *fakebroker.Broker, isolation string, extra ...string) (*proc, error) {
	env := []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"N8N_RUNNERS_TASK_BROKER_URI=" + b.URL(), "N8N_RUNNERS_AUTH_TOKEN=test-token",
		"N8N_PYTHON_INTERPRETER=" + testInterpreter(), "N8N_PYTHON_CACHE_DIR=" + cacheDir,
		"N8N_RUNNERS_MAX_CONCURRENCY=10", "N8N_PYTHON_POOL_MAX_WORKERS=16",
		"N8N_RUNNERS_STDLIB_ALLOW=json", "N8N_PYTHON_ISOLATION=" + isolation,
		"N8N_RUNNERS_LAUNCHER_LOG_LEVEL=WARNING", "GORACE=halt_on_error=1 atexit_sleep_ms=0",
	}
	env = append(env, extra...)
	p := &proc{out: &fakebroker.SyncBuffer{}, exited: make(chan struct{})}
	p.cmd = benchCommand(env)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.WaitRegistered(ctx, 1); err != nil {
		_ = p.cmd.Process.Kill()
		return nil, fmt.Errorf("%v: %s", err, excerpt.Of(p.out.String()))
	}
	return p, nil
}

func stopBenchRunner(p *proc) {
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// printBenchTable prints the README's Performance table: per workload and
// concurrency, each mode's p50 (and its speed-up on the baseline), its
// throughput and its minor page faults per task.
func printBenchTable() {
	benchMu.Lock()
	defer benchMu.Unlock()
	var sb strings.Builder
	sb.WriteString("\n| workload | c | mode | p50 / p95 / p99 ms | p50 vs baseline | tasks/s | faults/task |\n|---|---|---|---|---|---|---|\n")
	for _, w := range benchWorkloads {
		for _, c := range benchConcurrency {
			base, ok := benchResults[fmt.Sprintf("baseline/%s/c=%d", w.name, c)]
			if !ok {
				continue
			}
			for _, mode := range benchModes {
				r, ok := benchResults[fmt.Sprintf("%s/%s/c=%d", mode.name, w.name, c)]
				if !ok {
					continue
				}
				fmt.Fprintf(&sb, "| %s | %d | %s | %.2f / %.2f / %.2f | %.1fx | %.0f | %.0f |\n", w.name, c, mode.name,
					float64(r.p50)/1e6, float64(r.p95)/1e6, float64(r.p99)/1e6, float64(base.p50)/float64(r.p50),
					r.perSecond, r.faultsPerTask)
			}
		}
	}
	fmt.Print(sb.String())
}

// BenchmarkStartup: from starting the pyrunner process to its registration
// with the broker.
func BenchmarkStartup(b *testing.B) {
	// n8n allows 5 grants and 5 upgrades a second; starting runners back to
	// back would measure that limit instead.
	broker, err := fakebroker.Start(context.Background(), fakebroker.Options{AuthRateLimit: -1, UpgradeRateLimit: -1, NoTranscript: true})
	if err != nil {
		b.Fatal(err)
	}
	defer broker.Close()
	// The first start in a new cache directory byte-compiles the runtime
	// (about a second, once per machine and Python): not timed.
	warm, err := startBenchRunner(broker, "isolated")
	if err != nil {
		b.Fatal(err)
	}
	stopBenchRunner(warm)
	waitNoRunners(broker)
	var took []time.Duration
	for range b.N {
		start := time.Now()
		p, err := startBenchRunner(broker, "isolated")
		if err != nil {
			b.Fatal(err)
		}
		took = append(took, time.Since(start))
		stopBenchRunner(p)
		waitNoRunners(broker)
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2])/1e6, "p50-ms")
	b.ReportMetric(float64(took[len(took)-1])/1e6, "max-ms")
}

// BenchmarkPaced sends trivial tasks at a steady rate, as n8n's traffic
// arrives, instead of back to back: the latency a workflow sees when the
// pool keeps up. (Closed-loop at concurrency 1, isolated mode measures how
// fast processes can be replaced instead.)
func BenchmarkPaced(b *testing.B) {
	settings := task(benchWorkloads[0].code, benchWorkloads[0].mode, benchWorkloads[0].items, false)
	for _, mode := range benchModes[1:] {
		broker, _, stop := startBenchBroker(b, mode.isolation)
		for _, rate := range []int{20, 100, 200} {
			b.Run(fmt.Sprintf("%s/trivial/%d-per-second", mode.name, rate), func(b *testing.B) {
				n := max(b.N, 50)
				took := make([]time.Duration, n)
				var wg sync.WaitGroup
				tick := time.NewTicker(time.Second / time.Duration(rate))
				defer tick.Stop()
				for i := range n {
					<-tick.C
					wg.Add(1)
					go func() {
						defer wg.Done()
						out, err := broker.RunTask(context.Background(), settings)
						if err != nil || !out.Done {
							b.Errorf("task: %v %s", err, out.Error)
							return
						}
						took[i] = out.Completed.Sub(out.SettingsSent)
					}()
				}
				wg.Wait()
				slices.Sort(took)
				b.ReportMetric(float64(took[n/2])/1e6, "p50-ms")
				b.ReportMetric(float64(took[n*95/100])/1e6, "p95-ms")
				b.ReportMetric(float64(took[n*99/100])/1e6, "p99-ms")
			})
		}
		stop()
	}
}

func waitNoRunners(broker *fakebroker.Broker) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for len(broker.Runners()) > 0 && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
}

// pandasCode is the pandas scenario: a DataFrame from the items (nested
// fields flattened), grouped and aggregated, returned as items.
const pandasCode = "# /// script\n# dependencies = [\"pandas\"]\n# ///\nimport pandas as pd\n" +
	"df = pd.json_normalize([it['json'] for it in _items])\n" +
	"g = df.groupby('qty').agg(orders=('id', 'count'), revenue=('price', 'sum'), city=('address.city', 'first')).reset_index()\n" +
	"return [{'json': r} for r in g.to_dict('records')]"

// BenchmarkPandas: a pandas Code node on 1,000 items, settings to result,
// with its environment built before and pandas preloaded in its zygote
// (N8N_PYTHON_PRELOAD=*), in isolated and reuse mode. pandas comes from
// Debian (python3-pandas): the environment reuses it.
func BenchmarkPandas(b *testing.B) {
	if exec.Command(testInterpreter(), "-c", "import pandas").Run() != nil {
		b.Skip("pandas is missing (Debian: apt-get install python3-pandas)")
	}
	items := loadgen.CustomerItems(1000)
	settings := task(pandasCode, "runOnceForAllItems", items, false)
	for _, isolation := range []string{"isolated", "reuse"} {
		dir, err := os.MkdirTemp("", "pyrunner-bench-")
		if err != nil {
			b.Fatal(err)
		}
		_ = os.Chmod(dir, 0o755)
		broker, err := fakebroker.Start(context.Background(), fakebroker.Options{NoTranscript: true})
		if err != nil {
			b.Fatal(err)
		}
		p, err := startBenchRunner(broker, isolation, "N8N_PYTHON_CACHE_DIR="+dir, "N8N_PYTHON_PACKAGES_ALLOW=pandas",
			"N8N_PYTHON_PRELOAD=*", "PIP_NO_INDEX=1", "N8N_RUNNERS_TASK_TIMEOUT=300")
		if err != nil {
			b.Fatal(err)
		}
		// The first task builds the environment and starts its zygote.
		start := time.Now()
		if out, err := broker.RunTask(context.Background(), settings); err != nil || !out.Done {
			b.Fatalf("first pandas task: %v %s", err, out.Error)
		}
		b.Logf("%s: first task (builds the environment, starts its zygote): %s", isolation, time.Since(start).Round(time.Millisecond))
		b.Run(isolation+"/pandas1000/c=1", func(b *testing.B) {
			res := measureTasks(b, broker, p.cmd.Process.Pid, settings, 1, b.N)
			b.ReportMetric(float64(res.p50)/1e6, "p50-ms")
			b.ReportMetric(float64(res.p95)/1e6, "p95-ms")
			b.ReportMetric(res.perSecond, "tasks/s")
		})
		stopBenchRunner(p)
		broker.Close()
		os.RemoveAll(dir)
	}
}
