package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pyrunner/pyrunner/broker/fakebroker"
	"github.com/pyrunner/pyrunner/internal/excerpt"
)

func TestCancelWhileWaitingForSettings(t *testing.T) {
	b := startBroker(t, fakebroker.Options{})
	p := startRegistered(t, b, nil)
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	req := b.Request(allItems("return [{'json': {'x': 1}}]", nil), fakebroker.RequestOptions{DeferSettings: true})
	id, err := req.TaskID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := req.Cancel("Task cancelled by user"); err != nil {
		t.Fatal(err)
	}
	if !p.waitOutput("Cancelled task " + id + " (waiting for settings)") {
		t.Fatal("runner did not log the cancel")
	}
	// The slot is re-offered and serves the next task; nothing was sent for the cancelled one.
	if out := run(t, b, allItems("return [{'json': {'next': True}}]", nil)); !out.Done {
		t.Fatalf("next task: %s", out.Error)
	}
	for _, f := range b.Transcript() {
		if f.Dir == fakebroker.DirRunnerToBroker && strings.Contains(string(f.Msg), `"taskId":"`+id+`"`) &&
			(strings.Contains(string(f.Msg), "runner:taskdone") || strings.Contains(string(f.Msg), "runner:taskerror")) {
			t.Fatalf("runner answered the cancelled task: %s", f.Msg)
		}
	}
}

func TestCancelWhileRunning(t *testing.T) {
	b := startBroker(t, fakebroker.Options{})
	p := startRegistered(t, b, nil)
	req := b.Request(allItems("import time\ntime.sleep(30)", nil), fakebroker.RequestOptions{})
	id := p.waitRunning(req)
	start := time.Now()
	if err := req.Cancel("Task cancelled by user"); err != nil {
		t.Fatal(err)
	}
	// The broker forgets the task first, so the taskerror shows in the transcript only.
	want := fmt.Sprintf(`{"type":"runner:taskerror","taskId":"%s","error":{"message":"Task was cancelled"}}`, id)
	if !waitFrame(b, want) {
		t.Fatalf("no %s", want)
	}
	t.Logf("cancel to taskerror: %s", time.Since(start))
	if !p.waitOutput(`Cancelled task ` + id + ` for node "Code" (node-1) in workflow "e2e" (wf-1)`) {
		t.Fatal("runner did not log the cancel")
	}
	if out := run(t, b, allItems("return [{'json': {'next': True}}]", nil)); !out.Done {
		t.Fatalf("next task: %s", out.Error)
	}
}

// waitFrame waits until the runner sent exactly this frame (at most
// patience).
func waitFrame(b *fakebroker.Broker, frame string) bool {
	deadline := time.Now().Add(patience)
	for time.Now().Before(deadline) {
		for _, f := range b.Transcript() {
			if f.Dir == fakebroker.DirRunnerToBroker && string(f.Msg) == frame {
				return true
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

func TestTaskTimeout(t *testing.T) {
	b := startBroker(t, fakebroker.Options{})
	startRegistered(t, b, map[string]string{"N8N_RUNNERS_TASK_TIMEOUT": "1"})
	out := run(t, b, allItems("while True:\n    pass", nil))
	if got := compact(t, out.Error); got != `{"message":"Task execution timed out after 1 second","description":""}` {
		t.Fatalf("error = %s", got)
	}
	if out := run(t, b, allItems("return [{'json': {'next': True}}]", nil)); !out.Done {
		t.Fatalf("next task: %s", out.Error)
	}
}

func TestDrainLetsRunningTaskFinish(t *testing.T) {
	// A drain that outlasts the task however slow the machine: the
	// broker waits for it, not for the timeout.
	b := startBroker(t, fakebroker.Options{DrainTimeout: patience})
	p := startRegistered(t, b, map[string]string{"N8N_RUNNERS_AUTH_TOKEN": unset, "N8N_RUNNERS_GRANT_TOKEN": b.MintGrant()})
	ctx, cancel := context.WithTimeout(context.Background(), 2*patience)
	defer cancel()
	req := b.Request(allItems("import time\ntime.sleep(1)\nreturn [{'json': {'slept': True}}]", nil), fakebroker.RequestOptions{})
	if _, err := req.TaskID(ctx); err != nil {
		t.Fatal(err)
	}
	shutdown := make(chan error, 1)
	go func() { shutdown <- b.Shutdown(ctx) }()
	out, err := req.Wait(ctx)
	if err != nil || !out.Done || compact(t, out.Result) != `[{"json":{"slept":true}}]` {
		t.Fatalf("task during drain: %v %s %s", err, out.Result, out.Error)
	}
	if err := <-shutdown; err != nil {
		t.Fatal(err)
	}
	if !p.waitOutput("Received drain signal, stopped accepting new tasks") {
		t.Fatal("no drain log")
	}
	// With a single-use grant, the closed connection cannot be replaced: a
	// clean exit lets the launcher start a fresh runner.
	if code, ok := p.exitCode(patience); !ok || code != 0 {
		t.Fatalf("exit = %d (exited %v), want 0", code, ok)
	}
	for _, f := range b.Transcript() {
		if f.Dir == fakebroker.DirRunnerToBroker && strings.Contains(string(f.Msg), "runner:taskoffer") && f.T.After(drainTime(b)) {
			t.Fatalf("offer after drain: %s", f.Msg)
		}
	}
}

// TestSingleUseGrantEndsCalmly: behind n8n's launcher the end of the one
// connection a grant allows (n8n stopped) is the normal end of a runner's
// life: pyrunner says so at info level and exits 0, and nothing lands on
// stderr, where the launcher shows problems.
func TestSingleUseGrantEndsCalmly(t *testing.T) {
	b := startBroker(t, fakebroker.Options{})
	var stdout, stderr fakebroker.SyncBuffer
	cmd := exec.Command(binary)
	cmd.Env = runnerEnv(b, map[string]string{"N8N_RUNNERS_AUTH_TOKEN": unset, "N8N_RUNNERS_GRANT_TOKEN": b.MintGrant(),
		"N8N_RUNNERS_LAUNCHER_LOG_LEVEL": "INFO"})
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	p := &proc{t: t, cmd: cmd, out: &stdout, exited: make(chan struct{})}
	p.start()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	if err := b.WaitRegistered(ctx, 1); err != nil {
		t.Fatal(err)
	}
	b.Close() // n8n stops
	if code, ok := p.exitCode(patience); !ok || code != 0 {
		t.Fatalf("exit = %d (exited %v), want 0; stderr:\n%s", code, ok, stderr.String())
	}
	if s := stderr.String(); s != "" {
		t.Fatalf("warnings or errors on stderr:\n%s", s)
	}
	if !strings.Contains(stdout.String(), "a runner started with a single-use grant (N8N_RUNNERS_GRANT_TOKEN, no N8N_RUNNERS_AUTH_TOKEN) exits here") {
		t.Fatalf("the end is not explained:\n%s", stdout.String())
	}
}

func drainTime(b *fakebroker.Broker) time.Time {
	for _, f := range b.Transcript() {
		if strings.Contains(string(f.Msg), "broker:drain") {
			return f.T
		}
	}
	return time.Time{}
}

// TestSIGTERMWithRunningTaskExitsWithinGracePlusAMoment: the running task
// gets the graceful timeout, not more; then it is killed and reported, and
// pyrunner exits 0 (n8n's runner can overstay, README). How long that
// takes is the behaviour here, so it is timed: at least the graceful
// timeout, and at most a moment more, which on a loaded machine is taken
// to be 5 s; waiting for the task would take ten minutes.
func TestSIGTERMWithRunningTaskExitsWithinGracePlusAMoment(t *testing.T) {
	const grace, moment = time.Second, 5 * time.Second
	b := startBroker(t, fakebroker.Options{})
	p := startRegistered(t, b, map[string]string{"N8N_RUNNERS_GRACEFUL_SHUTDOWN_TIMEOUT": "1"})
	req := b.Request(allItems("import time\ntime.sleep(600)", nil), fakebroker.RequestOptions{})
	p.waitRunning(req)
	start := time.Now()
	p.signal(syscall.SIGTERM)
	code, ok := p.exitCode(grace + moment)
	took := time.Since(start)
	if !ok {
		t.Fatalf("still running %s after SIGTERM with a 1 s graceful timeout", took)
	}
	if code != 0 {
		t.Fatalf("exit code %d", code)
	}
	t.Logf("exited %s after SIGTERM", took)
	if took < grace {
		t.Fatalf("exited %s after SIGTERM: the running task did not get its graceful timeout of %s", took, grace)
	}
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	out, err := req.Wait(ctx)
	if err != nil || compact(t, out.Error) != `{"message":"Task was cancelled because the runner is shutting down"}` {
		t.Fatalf("task outcome: %v %s", err, out.Error)
	}
	if !strings.Contains(p.out.String(), "Received SIGTERM signal, starting shutdown...") {
		t.Fatal("no shutdown log")
	}
}

// TestIdleShutdownExitsZero: a task, then idle for the timeout: exit 0.
// The idle countdown starts at registration, so the task is requested
// before the runner starts, and it takes the runner's first offer; the
// timeout, 2 s, is far longer than that round trip on a loaded machine.
func TestIdleShutdownExitsZero(t *testing.T) {
	b := startBroker(t, fakebroker.Options{})
	req := b.Request(allItems("return []", nil), fakebroker.RequestOptions{})
	p := startRegistered(t, b, map[string]string{"N8N_RUNNERS_AUTO_SHUTDOWN_TIMEOUT": "2"})
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	if out, err := req.Wait(ctx); err != nil || !out.Done {
		t.Fatalf("task: %v %s", err, out.Error)
	}
	code, ok := p.exitCode(patience)
	if !ok || code != 0 {
		t.Fatalf("exit = %d (exited %v), want 0 after the idle timeout", code, ok)
	}
	if !strings.Contains(p.out.String(), "Reached idle timeout, starting shutdown...") {
		t.Fatal("no idle log")
	}
}

// TestBrokerRestartWithReauth: with the auth token, pyrunner fetches a new
// grant and comes back when n8n restarts (n8n's runner reuses its consumed
// grant and dies).
func TestBrokerRestartWithReauth(t *testing.T) {
	b := startBroker(t, fakebroker.Options{})
	p := startRegistered(t, b, nil)
	if out := run(t, b, allItems("return [{'json': {'before': True}}]", nil)); !out.Done {
		t.Fatalf("before restart: %s", out.Error)
	}
	addr := b.Addr()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	if err := b.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // n8n is down for a while
	b2 := startBroker(t, fakebroker.Options{Addr: addr})
	if err := b2.WaitRegistered(ctx, 1); err != nil {
		t.Fatalf("runner did not come back: %v", err)
	}
	if out := run(t, b2, allItems("return [{'json': {'after': True}}]", nil)); !out.Done || compact(t, out.Result) != `[{"json":{"after":true}}]` {
		t.Fatalf("after restart: %s %s", out.Result, out.Error)
	}
	if n := strings.Count(p.out.String(), "Registered with broker"); n != 2 {
		t.Fatalf("registered %d times, want 2", n)
	}
}

func TestGrantTokenRejectedIsFatal(t *testing.T) {
	b := startBroker(t, fakebroker.Options{})
	p := startRunner(t, b, map[string]string{"N8N_RUNNERS_AUTH_TOKEN": unset, "N8N_RUNNERS_GRANT_TOKEN": "not-a-grant"})
	code, ok := p.exitCode(patience)
	if !ok || code == 0 {
		t.Fatalf("exit = %d (exited %v), want non-zero", code, ok)
	}
	out := p.out.String()
	if strings.Count(out, "Authentication failed with status 403") != 1 {
		t.Fatalf("want exactly one 403 attempt, log:\n%s", excerpt.Of(out))
	}
	if !strings.Contains(out, "N8N_RUNNERS_AUTH_TOKEN") {
		t.Fatal("the error does not say how to fix it")
	}
}

func TestConnectionRefusedIsRetried(t *testing.T) {
	b := startBroker(t, fakebroker.Options{})
	addr := b.Addr()
	b.Close()
	p := startRunner(t, b, nil)
	if !p.waitOutput("Failed to connect to broker") {
		t.Fatal("no retry warning")
	}
	b2 := startBroker(t, fakebroker.Options{Addr: addr})
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	if err := b2.WaitRegistered(ctx, 1); err != nil {
		t.Fatal(err)
	}
}

// TestManyTasksNoneLost: 200 tasks at concurrency 5, each answered exactly once.
func TestManyTasksNoneLost(t *testing.T) {
	b := startBroker(t, fakebroker.Options{})
	startRegistered(t, b, map[string]string{"N8N_RUNNERS_MAX_CONCURRENCY": "5"})
	const n = 200
	var wg sync.WaitGroup
	results := make([]string, n)
	sem := make(chan struct{}, 20)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), patience)
			defer cancel()
			out, err := b.RunTask(ctx, allItems(fmt.Sprintf("return [{'json': {'i': %d}}]", i), nil))
			if err != nil || !out.Done {
				results[i] = fmt.Sprintf("error %v %s", err, out.Error)
				return
			}
			results[i] = string(out.Result)
		}()
	}
	wg.Wait()
	for i, r := range results {
		if want := fmt.Sprintf(`[{"json":{"i":%d}}]`, i); r != want {
			t.Fatalf("task %d: %s, want %s", i, r, want)
		}
	}
	answers := map[string]int{}
	for _, f := range b.Transcript() {
		var m struct{ Type, TaskID string }
		if f.Dir == fakebroker.DirRunnerToBroker && json.Unmarshal(f.Msg, &m) == nil &&
			(m.Type == "runner:taskdone" || m.Type == "runner:taskerror") {
			answers[m.TaskID]++
		}
	}
	if len(answers) != n {
		t.Fatalf("%d tasks answered, want %d", len(answers), n)
	}
	for id, c := range answers {
		if c != 1 {
			t.Fatalf("task %s answered %d times", id, c)
		}
	}
}

func TestMalformedMessagesAreAnsweredNotFatal(t *testing.T) {
	b := startBroker(t, fakebroker.Options{})
	p := startRegistered(t, b, nil)
	id := b.Runners()[0]
	for _, frame := range []string{
		`not json`,
		`{"no":"type"}`,
		`{"type":"broker:unknownthing"}`,
		`{"type":"broker:taskofferaccept","taskId":"t-bad"}`,
		`{"type":"broker:taskcancel","taskId":"nobody"}`,
		`[1,2,3]`,
	} {
		if err := b.SendRaw(id, []byte(frame)); err != nil {
			t.Fatal(err)
		}
	}
	want := `{"type":"runner:taskrejected","taskId":"t-bad","reason":"Malformed taskofferaccept: malformed message: broker:taskofferaccept without \"offerId\""}`
	if !waitFrame(b, want) {
		t.Fatal("the malformed accept was not rejected")
	}
	if !p.waitOutput("Received cancel for unknown task: nobody. Discarding message.") {
		t.Fatal("unknown cancel not logged")
	}
	if out := run(t, b, allItems("return [{'json': {'alive': True}}]", nil)); !out.Done {
		t.Fatalf("runner broken after malformed frames: %s", out.Error)
	}
}

func TestInvalidSettingsGetATaskError(t *testing.T) {
	b := startBroker(t, fakebroker.Options{})
	startRegistered(t, b, nil)
	cases := map[string]string{
		`{"nodeMode":"runOnceForAllItems","items":[]}`:          `{"message":"Missing field in task settings message: code","description":""}`,
		`{"code":"return []","nodeMode":"sideways","items":[]}`: `{"message":"Unknown nodeMode: sideways","description":""}`,
		`{"code":"return []","nodeMode":"runOnceForAllItems"}`:  `{"message":"Missing field in task settings message: items","description":""}`,
		`{"code":1,"nodeMode":"runOnceForAllItems","items":{}}`: `{"message":"Invalid field in task settings message: code must be a string; Invalid field in task settings message: items must be an array","description":""}`,
	}
	for settings, want := range cases {
		out := run(t, b, json.RawMessage(settings))
		if got := compact(t, out.Error); got != want {
			t.Errorf("%s: error %s, want %s", settings, got, want)
		}
	}
}

func TestHealthServer(t *testing.T) {
	b := startBroker(t, fakebroker.Options{})
	p := startRegistered(t, b, withHealth(nil))
	base := healthURL(t, p)
	port := base[strings.LastIndexByte(base, ':')+1:]
	for _, path := range []string{"/", "/healthz"} {
		if code, body := httpGet(t, base+path); code != 200 || body != "OK" {
			t.Errorf("GET %s = %d %q", path, code, body)
		}
	}
	// pyrunner counts itself registered once it has read the broker's
	// answer, a moment after the broker counted it.
	eventually(t, patience, "/readyz to answer 200 once registered", func() bool {
		code, body := httpGet(t, base+"/readyz")
		return code == 200 && strings.Contains(body, `"ready":true`)
	})
	// What Docker's HEALTHCHECK and exec probes run.
	for _, path := range []string{"/healthz", "/readyz"} {
		check := exec.Command(binary, "healthcheck", "-path", path)
		check.Env = []string{"N8N_RUNNERS_HEALTH_CHECK_SERVER_PORT=" + port, "GORACE=atexit_sleep_ms=0"}
		if out, err := check.CombinedOutput(); err != nil {
			t.Errorf("pyrunner healthcheck -path %s: %v %s", path, err, out)
		}
	}
	// Alive during a CPU-bound task.
	req := b.Request(allItems("x = 0\nfor i in range(30_000_000):\n    x += i\nreturn [{'json': {'x': x}}]", nil), fakebroker.RequestOptions{})
	p.waitRunning(req)
	if code, _ := httpGet(t, base+"/healthz"); code != 200 {
		t.Errorf("healthz during a CPU-bound task: %d", code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	if out, err := req.Wait(ctx); err != nil || !out.Done {
		t.Fatalf("cpu task: %v %s", err, out.Error)
	}
	// The result reaches the broker just before the runner counts the task.
	var body string
	for deadline := time.Now().Add(patience); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if _, body = httpGet(t, base+"/metrics"); strings.Contains(body, `pyrunner_tasks_finished_total{outcome="success"} 1`) {
			break
		}
	}
	if !strings.Contains(body, `pyrunner_tasks_finished_total{outcome="success"} 1`) {
		t.Errorf("GET /metrics misses the finished task:\n%s", excerpt.Of(body))
	}
	b.Close()
	if !p.waitOutput("Disconnected from broker") {
		t.Fatal("no disconnect log")
	}
	if code, body := httpGet(t, base+"/readyz"); code != 503 || !strings.Contains(body, `"ready":false`) {
		t.Errorf("GET /readyz without a broker = %d %s", code, body)
	}
	check := exec.Command(binary, "healthcheck", "-path", "/readyz")
	check.Env = []string{"N8N_RUNNERS_HEALTH_CHECK_SERVER_PORT=" + port, "GORACE=atexit_sleep_ms=0"}
	if err := check.Run(); err == nil {
		t.Error("pyrunner healthcheck -path /readyz succeeded without a broker")
	}
}

func TestInvalidConfigListsEveryProblem(t *testing.T) {
	b := startBroker(t, fakebroker.Options{})
	p := startRunner(t, b, map[string]string{
		"N8N_RUNNERS_AUTH_TOKEN":      unset,
		"N8N_RUNNERS_MAX_CONCURRENCY": "five",
		"N8N_RUNNERS_TASK_TIMEOUT":    "0",
		"N8N_RUNNERS_STDLIB_ALLOW":    "json, *",
		"N8N_RUNNERS_MAX_PAYLOAD":     "9999999999",
	})
	code, ok := p.exitCode(patience)
	if !ok || code != 1 {
		t.Fatalf("exit = %d (exited %v), want 1", code, ok)
	}
	out := p.out.String()
	for _, want := range []string{
		"Environment variable N8N_RUNNERS_MAX_CONCURRENCY must be an integer, got 'five'",
		"Environment variable N8N_RUNNERS_GRANT_TOKEN is required",
		"Task timeout must be positive, got 0 (N8N_RUNNERS_TASK_TIMEOUT)",
		"Wildcard '*' in N8N_RUNNERS_STDLIB_ALLOW must be used alone, not with other modules. Got: ['*', 'json']",
		"Max payload size of 9999999999 bytes exceeds pipe message limit of 4294967295 bytes. Reduce N8N_RUNNERS_MAX_PAYLOAD.",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, excerpt.Of(out))
		}
	}
}
