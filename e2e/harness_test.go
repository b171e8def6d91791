package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pyrunner/pyrunner/broker/fakebroker"
	"github.com/pyrunner/pyrunner/internal/excerpt"
	"github.com/pyrunner/pyrunner/pool/pooltest"
)

// binary is the pyrunner built once for the whole package, with the race
// detector; plainBinary the same without it, for the benchmarks and for
// measuring memory.
var binary, plainBinary string

// cacheDir is shared by every runner the tests start, so the runtime is
// byte-compiled once.
var cacheDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pyrunner-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "pyrunner")
	cacheDir = filepath.Join(dir, "cache")
	plainBinary = filepath.Join(dir, "pyrunner-plain")
	for _, args := range [][]string{{"build", "-race", "-o", binary}, {"build", "-o", plainBinary}} {
		build := exec.Command("go", append(args, "../cmd/pyrunner")...)
		build.Stdout, build.Stderr = os.Stdout, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building pyrunner:", err)
			os.Exit(1)
		}
	}
	code := withSharedN8N(m.Run)
	os.RemoveAll(dir)
	os.Exit(code)
}

// patience bounds every wait for something bound to happen (a task's
// outcome, a registration, a log line): long enough for a loaded 2-core
// machine, and free when things go well, since each wait ends with its
// event. Reaching it is a failure, never a measurement.
const patience = 60 * time.Second

// startBroker starts a fake n8n broker for one test.
func startBroker(t *testing.T, opts fakebroker.Options) *fakebroker.Broker {
	t.Helper()
	b, err := fakebroker.Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			var buf bytes.Buffer
			_ = b.WriteTranscript(&buf)
			t.Logf("broker transcript:\n%s", excerpt.Of(buf.String()))
		}
		b.Close()
	})
	return b
}

// proc is a pyrunner process under test.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	out    *fakebroker.SyncBuffer // stdout and stderr, interleaved
	exited chan struct{}
	err    error
}

// unset, as a value in startRunner's env, removes that variable.
const unset = "\x00unset"

// startRunner starts pyrunner with the broker's URI and auth token and
// env on top.
func startRunner(t *testing.T, b *fakebroker.Broker, env map[string]string) *proc {
	t.Helper()
	return startRunnerBinary(t, b, binary, env)
}

// startRunnerBinary is startRunner with a chosen build of pyrunner.
func startRunnerBinary(t *testing.T, b *fakebroker.Broker, bin string, env map[string]string) *proc {
	t.Helper()
	p := &proc{t: t, out: &fakebroker.SyncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(bin)
	p.cmd.Env = runnerEnv(b, env)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.start()
	return p
}

// startRunnerWithOutput is startRunner with the log going to out (a pipe
// the test controls) instead of the test's buffer.
func startRunnerWithOutput(t *testing.T, b *fakebroker.Broker, env map[string]string, out *os.File) *proc {
	t.Helper()
	p := &proc{t: t, out: &fakebroker.SyncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(binary)
	p.cmd.Env = runnerEnv(b, env)
	p.cmd.Stdout, p.cmd.Stderr = out, out
	p.start()
	return p
}

// runnerEnv is the environment the tests start pyrunner with: the broker's
// URI and auth token, and env on top.
func runnerEnv(b *fakebroker.Broker, env map[string]string) []string {
	base := map[string]string{
		"PATH":                                  os.Getenv("PATH"),
		"HOME":                                  os.Getenv("HOME"),
		"TMPDIR":                                os.TempDir(), // the tests' own, which a run may keep apart from others'
		"N8N_RUNNERS_TASK_BROKER_URI":           b.URL(),
		"N8N_RUNNERS_AUTH_TOKEN":                "test-token",
		"N8N_PYTHON_INTERPRETER":                testInterpreter(),
		"N8N_PYTHON_CACHE_DIR":                  cacheDir,
		"N8N_RUNNERS_LAUNCHER_LOG_LEVEL":        "DEBUG",
		"N8N_RUNNERS_GRACEFUL_SHUTDOWN_TIMEOUT": "3",
		// Lifecycle tests import what they need; the sandbox's own tests
		// (escape_test.go) set the allowlists they test.
		"N8N_RUNNERS_STDLIB_ALLOW": "*",
		// The binary is built with -race: a race ends it (exit 66) and fails
		// the test; and no 1 s sleep at exit, which would distort timings.
		"GORACE": "halt_on_error=1 atexit_sleep_ms=0",
	}
	for k, v := range env {
		base[k] = v
	}
	var list []string
	for k, v := range base {
		if v != unset {
			list = append(list, k+"="+v)
		}
	}
	return list
}

// start starts the process and arranges for the test's end to kill it
// (and show its output if the test failed).
func (p *proc) start() {
	t := p.t
	t.Helper()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("pyrunner output:\n%s", excerpt.Of(p.out.String()))
		}
	})
}

// startRegistered starts pyrunner and waits until the broker has it.
func startRegistered(t *testing.T, b *fakebroker.Broker, env map[string]string) *proc {
	t.Helper()
	p := startRunner(t, b, env)
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	if err := b.WaitRegistered(ctx, 1); err != nil {
		t.Fatalf("runner did not register: %v", err)
	}
	return p
}

// exitCode waits up to d for the process to exit.
func (p *proc) exitCode(d time.Duration) (int, bool) {
	select {
	case <-p.exited:
	case <-time.After(d):
		return 0, false
	}
	if p.err == nil {
		return 0, true
	}
	if ee, ok := p.err.(*exec.ExitError); ok {
		return ee.ExitCode(), true
	}
	return -1, true
}

func (p *proc) signal(sig syscall.Signal) {
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
}

// waitOutput waits until the output contains s (at most patience).
func (p *proc) waitOutput(s string) bool {
	deadline := time.Now().Add(patience)
	for time.Now().Before(deadline) {
		if strings.Contains(p.out.String(), s) {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// waitRunning waits until the runner has the settings of the task req was
// accepted as: from then on it is running, not waiting for its settings.
func (p *proc) waitRunning(req *fakebroker.Request) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	id, err := req.TaskID(ctx)
	if err != nil {
		p.t.Fatal(err)
	}
	if !p.waitOutput("Received task " + id) {
		p.t.Fatalf("the runner did not receive the settings of task %s", id)
	}
	return id
}

// task builds Code-node settings as n8n sends them.
func task(code, mode string, items any, continueOnFail bool) json.RawMessage {
	if items == nil {
		items = []any{}
	}
	b, _ := json.Marshal(map[string]any{
		"code": code, "nodeMode": mode, "items": items, "continueOnFail": continueOnFail,
		"workflowMode": "manual", "nodeId": "node-1", "nodeName": "Code",
		"workflowId": "wf-1", "workflowName": "e2e",
	})
	return b
}

func allItems(code string, items any) json.RawMessage {
	return task(code, "runOnceForAllItems", items, false)
}

func run(t *testing.T, b *fakebroker.Broker, settings json.RawMessage) fakebroker.Outcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	out, err := b.RunTask(ctx, settings)
	if err != nil {
		t.Fatalf("RunTask: %v", err)
	}
	return out
}

// compact re-encodes JSON without spaces, for comparisons.
func compact(t *testing.T, raw []byte) string {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		t.Fatalf("not JSON: %s", raw)
	}
	return buf.String()
}

// testInterpreter is the Python the tests give pyrunner.
func testInterpreter() string { return pooltest.Interpreter() }

// benchCommand is the pyrunner command benchmarks run: the plain build,
// not the race-enabled one the tests use.
func benchCommand(env []string) *exec.Cmd {
	cmd := exec.Command(plainBinary)
	cmd.Env = env
	return cmd
}
