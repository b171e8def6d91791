package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// execCmd is `pyrunner exec args…` with the tests' interpreter and cache.
func execCmd(t *testing.T, env map[string]string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"exec"}, args...)...)
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"N8N_PYTHON_INTERPRETER=" + testInterpreter(), "N8N_PYTHON_CACHE_DIR=" + cacheDir,
		"GORACE=halt_on_error=1 atexit_sleep_ms=0",
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	return cmd
}

// runExec runs `pyrunner exec` and returns its stdout, stderr and exit code.
func runExec(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := execCmd(t, env, args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errOut.String(), code
}

func TestExecContinueOnFailGivesTheErrorItem(t *testing.T) {
	stdout, stderr, code := runExec(t, nil, "-continue-on-fail", "-c", "x = 1\nreturn [{'json': {'r': x / 0}}]")
	if code != 0 {
		t.Fatalf("exit %d, want 0 (the error became an item):\n%s%s", code, stdout, stderr)
	}
	var out struct {
		Result json.RawMessage `json:"result"`
		Error  any             `json:"error"`
	}
	if err := json.Unmarshal([]byte(stdout), &out); err != nil || out.Error != nil {
		t.Fatalf("stdout %s: %v", stdout, err)
	}
	if got := compact(t, out.Result); got != `[{"json":{"error":"division by zero"}}]` {
		t.Fatalf("result %s", got)
	}
	// A static error is not something continueOnFail hides, as in n8n.
	_, _, code = runExec(t, nil, "-continue-on-fail", "-c", "return (")
	if code != 1 {
		t.Fatalf("syntax error with -continue-on-fail: exit %d, want 1", code)
	}
}

func TestExecPrintsTheTraceback(t *testing.T) {
	stdout, stderr, code := runExec(t, nil, "-c", "def f(x):\n    return 1 / x\n\nreturn [{'json': {'r': f(0)}}]")
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	for _, want := range []string{
		"Traceback (most recent call last):",
		`line 4, in _user_function`, "return [{'json': {'r': f(0)}}]",
		`line 2, in f`, "return 1 / x",
		"ZeroDivisionError: division by zero",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, "pyrunner_runtime") || strings.Contains(stderr, ".py\"") {
		t.Errorf("the traceback shows pyrunner's own frames:\n%s", stderr)
	}
	if !strings.Contains(stdout, `"stack": "Traceback (most recent call last)`) {
		t.Errorf("the JSON error has no stack:\n%s", stdout)
	}
}

func TestExecSaysWhatTheItemsMustLookLike(t *testing.T) {
	dir := t.TempDir()
	items := filepath.Join(dir, "items.json")
	if err := os.WriteFile(items, []byte(`{"name": "Ada"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := runExec(t, nil, "-items", items, "-c", "return _items")
	if code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	for _, want := range []string{"got a JSON object", `the items must be a JSON array of n8n items, e.g. [{"json": {"name": "Ada"}}`, "wrap a single item in brackets"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, "Go value") {
		t.Errorf("stderr speaks Go:\n%s", stderr)
	}
}

// TestEveryCommandAnswersHelp: -h prints the command's usage and exits 0.
func TestEveryCommandAnswersHelp(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"help"}, {"run", "-h"}, {"exec", "-h"}, {"demo", "-h"}, {"healthcheck", "-h"}} {
		cmd := exec.Command(binary, args...)
		cmd.Env = []string{"GORACE=atexit_sleep_ms=0", "PATH=" + os.Getenv("PATH")}
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Usage") {
			t.Errorf("pyrunner %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		if strings.Contains(string(out), "invalid configuration") {
			t.Errorf("pyrunner %s checked the configuration:\n%s", strings.Join(args, " "), out)
		}
	}
}
