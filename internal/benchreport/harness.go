package benchreport

import (
	"bufio"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/pyrunner/pyrunner/broker/fakebroker"
	"github.com/pyrunner/pyrunner/internal/excerpt"
)

//go:embed cpython_harness.py
var cpythonHarness string

const cpythonMeasured = "in-process in one plain python3 (no runner, no sandbox, no transport): items decoded " +
	"(json.loads), the code run, the result encoded (json.dumps), timed with time.perf_counter(); the floor " +
	"that no runner can beat on this interpreter"

// cpythonSetup is the floor column: the scenario's code in-process in the
// interpreter pyrunner's tasks run on.
func cpythonSetup(interpreter string) Setup {
	return Setup{Key: "cpython", Title: "CPython in-process (the floor)", Measured: cpythonMeasured,
		start: func(ctx context.Context, sc Scenario) (Target, error) {
			t, _, err := startHarness(ctx, []string{interpreter, "-I", "-c", cpythonHarness}, sc)
			return t, err
		}}
}

// harnessTarget is a process running one of the embedded harnesses (a
// warm Pyodide in Node, or plain CPython), prepared for one scenario: it
// answers JSON lines and times each run in-process.
type harnessTarget struct {
	cmd    *exec.Cmd
	stdin  *bufio.Writer
	out    *bufio.Scanner
	stderr *fakebroker.SyncBuffer
	mu     sync.Mutex // one request at a time: the harness runs one thing at a time
	once   sync.Once
}

var _ Target = (*harnessTarget)(nil)

type harnessReply struct {
	OK      bool            `json:"ok"`
	Error   string          `json:"error"`
	Ms      float64         `json:"ms"`
	Result  json.RawMessage `json:"result"`
	Version string          `json:"version"`
	Python  string          `json:"python"`
	LoadMs  float64         `json:"load_ms"`
}

// startHarness starts argv, waits for its greeting and prepares the
// scenario: a *notAvailableError when its packages cannot be loaded.
func startHarness(ctx context.Context, argv []string, sc Scenario) (*harnessTarget, harnessReply, error) {
	t := &harnessTarget{stderr: &fakebroker.SyncBuffer{}}
	// When ctx ends (the bench is interrupted) the harness is killed, which
	// ends a wait for its answer, even one for a download that hangs.
	t.cmd = exec.CommandContext(ctx, argv[0], argv[1:]...)
	t.cmd.Cancel = func() error { return syscall.Kill(-t.cmd.Process.Pid, syscall.SIGKILL) }
	t.cmd.Stderr = t.stderr
	t.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdin, err := t.cmd.StdinPipe()
	if err != nil {
		return nil, harnessReply{}, err
	}
	stdout, err := t.cmd.StdoutPipe()
	if err != nil {
		return nil, harnessReply{}, err
	}
	if err := t.cmd.Start(); err != nil {
		return nil, harnessReply{}, fmt.Errorf("starting %s: %w", argv[0], err)
	}
	t.stdin = bufio.NewWriter(stdin)
	t.out = bufio.NewScanner(stdout)
	t.out.Buffer(make([]byte, 1<<20), 64<<20)
	greeting, err := t.read()
	if err == nil && !greeting.OK {
		err = errors.New(greeting.Error)
	}
	if err != nil {
		t.Close()
		return nil, harnessReply{}, fmt.Errorf("starting %s: %w", filepath.Base(argv[0]), err)
	}
	prepared, err := t.call(ctx, map[string]any{"op": "prepare", "code": sc.Code, "items": sc.Items, "packages": sc.Packages})
	if err == nil && !prepared.OK {
		err = &notAvailableError{fmt.Sprintf("not loadable offline: %s", prepared.Error)}
	}
	if err != nil {
		t.Close()
		return nil, harnessReply{}, err
	}
	return t, greeting, nil
}

func (t *harnessTarget) call(ctx context.Context, req any) (harnessReply, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return harnessReply{}, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return harnessReply{}, err
	}
	if _, err := t.stdin.Write(append(b, '\n')); err != nil {
		return harnessReply{}, err
	}
	if err := t.stdin.Flush(); err != nil {
		return harnessReply{}, fmt.Errorf("writing to the harness: %w: %s", err, excerpt.Of(t.stderr.String()))
	}
	return t.read()
}

func (t *harnessTarget) read() (harnessReply, error) {
	if !t.out.Scan() {
		err := t.out.Err()
		if err == nil {
			err = errors.New("the harness exited")
		}
		return harnessReply{}, fmt.Errorf("reading from the harness: %w: %s", err, excerpt.Of(t.stderr.String()))
	}
	var r harnessReply
	if err := json.Unmarshal(t.out.Bytes(), &r); err != nil {
		return harnessReply{}, fmt.Errorf("the harness said %q: %w", excerpt.Of(t.out.Text()), err)
	}
	return r, nil
}

func (t *harnessTarget) Run(ctx context.Context, want bool) (time.Duration, json.RawMessage, error) {
	r, err := t.call(ctx, map[string]any{"op": "run", "want": want})
	switch {
	case err != nil:
		return 0, nil, err
	case !r.OK:
		return 0, nil, fmt.Errorf("task failed: %s", r.Error)
	}
	return time.Duration(r.Ms * float64(time.Millisecond)), r.Result, nil
}

// PID is 0: page faults are counted for pyrunner's setups only.
func (t *harnessTarget) PID() int { return 0 }

func (t *harnessTarget) Close() {
	t.once.Do(func() {
		_ = syscall.Kill(-t.cmd.Process.Pid, syscall.SIGKILL)
		_ = t.cmd.Wait()
	})
}

// notAvailableError is a scenario a setup cannot run here (its packages
// cannot be loaded), as opposed to one that failed.
type notAvailableError struct{ reason string }

func (e *notAvailableError) Error() string { return e.reason }
