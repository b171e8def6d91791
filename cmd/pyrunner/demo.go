package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/pyrunner/pyrunner/broker/fakebroker"
	"github.com/pyrunner/pyrunner/internal/faults"
	"github.com/pyrunner/pyrunner/internal/loadgen"
)

// demoTask is one Code node the demo sends through the broker.
type demoTask struct {
	title    string
	code     string
	mode     string
	items    []map[string]any
	failSafe bool // continueOnFail
}

var demoTasks = []demoTask{
	{title: "All items: square every number", mode: "runOnceForAllItems",
		code:  "return [{'json': {'n': item['json']['n'], 'square': item['json']['n'] ** 2}} for item in _items]",
		items: numberItems(1, 2, 3)},
	{title: "Each item, with print() sent to n8n as logNodeOutput", mode: "runOnceForEachItem",
		code:  "print('item', _item['json']['n'])\nreturn {'even': _item['json']['n'] % 2 == 0}",
		items: numberItems(1, 2)},
	{title: "Per-item None drops the item, pairedItem keeps its index", mode: "runOnceForEachItem",
		code:  "return None if _item['json']['n'] == 2 else _item['json']",
		items: numberItems(1, 2, 3)},
	{title: "NaN and Infinity become null (n8n could not parse them)", mode: "runOnceForAllItems",
		code: "return [{'json': {'nan': float('nan'), 'inf': float('inf'), 'text': 'héllo 世界 🎉'}}]"},
	{title: "A user error: runner:taskerror with n8n's message", mode: "runOnceForAllItems",
		code: "raise ValueError('order total must be positive')"},
	{title: "The same error with continueOnFail: one error item", mode: "runOnceForAllItems",
		code: "raise ValueError('order total must be positive')", failSafe: true},
}

func numberItems(ns ...int) []map[string]any {
	items := make([]map[string]any, len(ns))
	for i, n := range ns {
		items[i] = map[string]any{"json": map[string]any{"n": n}, "pairedItem": map[string]any{"item": i}}
	}
	return items
}

// demoCommand starts the embedded fake n8n broker, runs this very binary
// against it as n8n would see it (a separate process configured by
// environment), sends it Code-node tasks through the full protocol and
// prints what n8n would receive.
func demoCommand(args []string) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	latencyTasks := fs.Int("latency-tasks", 200, "trivial tasks to time after the examples")
	verbose := fs.Bool("v", false, "show pyrunner's own log")
	bench := fs.Bool("bench", false, "skip the examples: measure trivial tasks closed-loop and print JSON")
	concurrency := fs.Int("concurrency", 1, "with -bench, tasks in flight at once")
	tasks := fs.Int("tasks", 2000, "with -bench, how many tasks")
	items := fs.Int("items", 0, "with -bench, transform this many items per task instead of the trivial task")
	workflows := fs.Int("workflows", 1, "with -bench, task i belongs to workflow i mod this (for N8N_PYTHON_ISOLATION=workflow)")
	if code, done := parseFlags(fs, args); done {
		return code
	}
	ctx := context.Background()
	b, err := fakebroker.Start(ctx, fakebroker.Options{AuthToken: "demo-token", NoTranscript: true})
	if err != nil {
		fmt.Fprintf(os.Stderr, "demo: starting the fake broker: %v\n", err)
		return 1
	}
	defer b.Close()
	fmt.Printf("Fake n8n broker (behaves like n8n 2.41.1's) listening on %s\n", b.URL())

	child, logs, err := startDemoRunner(b.URL(), *verbose)
	if err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		return 1
	}
	started := time.Now()
	regCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	exited := make(chan error, 1)
	go func() { exited <- child.Wait() }()
	select {
	case err := <-exited:
		fmt.Fprintf(os.Stderr, "demo: pyrunner exited before registering (%v):\n%s", err, logs.String())
		return 1
	case err := <-waitRegistered(regCtx, b):
		if err != nil {
			fmt.Fprintf(os.Stderr, "demo: pyrunner did not register: %v\n%s", err, logs.String())
			return 1
		}
	}
	fmt.Printf("pyrunner (pid %d) started and registered with the broker in %s\n\n", child.Process.Pid, time.Since(started).Round(time.Millisecond))

	if *bench {
		return benchThroughput(ctx, b, benchSettings(*items, *workflows), *tasks, max(1, *concurrency), child, exited)
	}

	status := 0
	for _, task := range demoTasks {
		if !runDemoTask(ctx, b, task) {
			status = 1
		}
	}
	if status == 0 && *latencyTasks > 0 {
		if !measureDemoLatency(ctx, b, *latencyTasks) {
			status = 1
		}
	}

	fmt.Println("\nSending SIGTERM to pyrunner (graceful shutdown)…")
	_ = child.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			fmt.Printf("pyrunner exited: %v\n", err)
			status = 1
		} else {
			fmt.Println("pyrunner exited cleanly (status 0).")
		}
	case <-time.After(15 * time.Second):
		_ = child.Process.Kill()
		fmt.Println("pyrunner did not exit in 15 s; killed.")
		status = 1
	}
	if status != 0 && !*verbose {
		fmt.Printf("\npyrunner's log:\n%s", logs.String())
	}
	return status
}

// startDemoRunner starts `pyrunner run` against the broker, with the auth
// token (so it fetches its own grants) and pyrunner's defaults otherwise.
func startDemoRunner(brokerURL string, verbose bool) (*exec.Cmd, *fakebroker.SyncBuffer, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.Command(self, "run")
	cmd.Env = append(os.Environ(),
		"N8N_RUNNERS_TASK_BROKER_URI="+brokerURL,
		"N8N_RUNNERS_AUTH_TOKEN=demo-token",
	)
	logs := &fakebroker.SyncBuffer{}
	var out io.Writer = logs
	if verbose {
		out = io.MultiWriter(logs, prefixWriter{os.Stdout})
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("starting pyrunner: %w", err)
	}
	return cmd, logs, nil
}

func waitRegistered(ctx context.Context, b *fakebroker.Broker) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- b.WaitRegistered(ctx, 1) }()
	return ch
}

func runDemoTask(ctx context.Context, b *fakebroker.Broker, task demoTask) bool {
	items := task.items
	if items == nil {
		items = []map[string]any{}
	}
	settings, _ := json.Marshal(map[string]any{
		"code": task.code, "nodeMode": task.mode, "items": items, "continueOnFail": task.failSafe,
		"workflowMode": "manual", "nodeName": "Code", "workflowName": "pyrunner demo",
	})
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := b.RunTask(ctx, settings)
	fmt.Printf("▶ %s\n", task.title)
	for _, line := range strings.Split(task.code, "\n") {
		fmt.Printf("    │ %s\n", line)
	}
	if err != nil {
		fmt.Printf("  ✗ %v\n\n", err)
		return false
	}
	for _, rpc := range out.RPCs {
		fmt.Printf("  runner:rpc %s %s\n", rpc.Name, rpc.Params)
	}
	took := out.Completed.Sub(out.SettingsSent)
	switch {
	case out.Done:
		fmt.Printf("  runner:taskdone  result %s   (%s)\n\n", out.Result, took.Round(10*time.Microsecond))
	case out.Error != nil:
		fmt.Printf("  runner:taskerror error  %s   (%s)\n\n", out.Error, took.Round(10*time.Microsecond))
	default:
		fmt.Printf("  ✗ no result: %+v\n\n", out)
		return false
	}
	return true
}

// measureDemoLatency times trivial tasks as the broker sees them, from
// broker:tasksettings to runner:taskdone: first at a steady 100 tasks a
// second, as a workflow's traffic arrives, then back to back, which shows
// how fast fresh processes are replaced.
func measureDemoLatency(ctx context.Context, b *fakebroker.Broker, n int) bool {
	settings := benchSettings(0, 1)[0]
	run := func(int) (time.Duration, bool) {
		out, err := b.RunTask(ctx, settings)
		if err != nil || !out.Done {
			fmt.Printf("✗ latency task failed: %v %s\n", err, out.Error)
			return 0, false
		}
		return out.Completed.Sub(out.SettingsSent), true
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	paced := loadgen.ClosedLoop(n, 1, func(i int) (time.Duration, bool) {
		<-tick.C
		return run(i)
	})
	burst := loadgen.ClosedLoop(n, 1, run)
	if paced.Failed+burst.Failed > 0 {
		return false
	}
	fmt.Printf("Latency of trivial tasks (sum(range(10000))), settings → done, each in a fresh isolated process:\n")
	fmt.Printf("  at 100 tasks/s:  median %.2f ms   p95 %.2f ms   p99 %.2f ms   (%d tasks)\n", paced.P50ms, paced.P95ms, paced.P99ms, n)
	fmt.Printf("  back to back:    median %.2f ms   p95 %.2f ms   p99 %.2f ms   (%.0f tasks/s)\n", burst.P50ms, burst.P95ms, burst.P99ms, burst.PerSecond)
	return true
}

// benchThroughput runs n trivial tasks, c at a time, through the broker and
// prints their settings-to-result percentiles, the throughput and the minor
// page faults per task of pyrunner's Python processes as JSON; then it
// stops pyrunner.
func benchThroughput(ctx context.Context, b *fakebroker.Broker, settings []json.RawMessage, n, c int, child *exec.Cmd, exited <-chan error) int {
	before, errBefore := faults.TreeMinor(child.Process.Pid)
	res := loadgen.ClosedLoop(n, c, func(i int) (time.Duration, bool) {
		out, err := b.RunTask(ctx, settings[i%len(settings)])
		return out.Completed.Sub(out.SettingsSent), err == nil && out.Done
	})
	after, errAfter := faults.TreeMinor(child.Process.Pid)
	out := struct {
		loadgen.Result
		// Zygotes and task processes (or spawned interpreters) together;
		// absent where /proc could not be read.
		FaultsPerTask *float64 `json:"minor_faults_per_task,omitempty"`
	}{Result: res}
	if errBefore == nil && errAfter == nil && res.Tasks > 0 {
		perTask := float64(after-before) / float64(res.Tasks)
		out.FaultsPerTask = &perTask
	}
	_ = json.NewEncoder(os.Stdout).Encode(out)
	_ = child.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(15 * time.Second):
		_ = child.Process.Kill()
	}
	if res.Failed > 0 {
		return 1
	}
	return 0
}

// benchSettings is the trivial task, or with n > 0 a transform of n items
// (the benchmarks' itemsN workload), once for each of workflows workflows.
func benchSettings(n, workflows int) []json.RawMessage {
	code := loadgen.TrivialCode
	if n > 0 {
		code = loadgen.TransformCode
	}
	items := loadgen.CustomerItems(n)
	out := make([]json.RawMessage, max(workflows, 1))
	for i := range out {
		out[i], _ = json.Marshal(map[string]any{"code": code, "nodeMode": "runOnceForAllItems", "items": items,
			"continueOnFail": false, "workflowId": fmt.Sprintf("bench-%d", i)})
	}
	return out
}

// prefixWriter marks pyrunner's own log lines in verbose mode.
type prefixWriter struct{ w io.Writer }

func (p prefixWriter) Write(b []byte) (int, error) {
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		fmt.Fprintf(p.w, "    [pyrunner] %s\n", sc.Text())
	}
	return len(b), nil
}
