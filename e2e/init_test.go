package e2e

import (
	"context"
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
)

// TestPIDOneReapsAndForwardsSignals runs pyrunner as PID 1 of a new pid
// namespace, as a container's entrypoint: when its zygote is killed, the
// task processes handed to PID 1 must be reaped, not left as zombies; and
// SIGTERM to PID 1 must stop pyrunner gracefully, exit code 0.
func TestPIDOneReapsAndForwardsSignals(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("a pid namespace needs root here")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("no unshare(1)")
	}
	wrapper := filepath.Join(t.TempDir(), "pyrunner-as-pid1")
	script := fmt.Sprintf("#!/bin/sh\nexec %s --pid --fork --mount-proc --kill-child %s \"$@\"\n", unshare, binary)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	b := startBroker(t, fakebroker.Options{})
	p := startRunnerBinary(t, b, wrapper, map[string]string{"N8N_PYTHON_POOL_MIN_WORKERS": "2"})
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	if err := b.WaitRegistered(ctx, 1); err != nil {
		t.Fatalf("runner did not register: %v", err)
	}
	init := onlyChild(t, p.cmd.Process.Pid) // pyrunner as PID 1 (seen from here)
	runner := onlyChild(t, init)
	if status := procStatus(init, "NSpid"); !strings.HasSuffix(status, "\t1") {
		t.Fatalf("pyrunner is not PID 1 in its namespace: NSpid %q", status)
	}
	// The token reached the runner (it registered) through a pipe, not
	// through either environment.
	for _, pid := range []int{init, runner} {
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if err != nil || strings.Contains(string(env), "test-token") {
			t.Fatalf("environment of %d: %v, holds the token: %v", pid, err, strings.Contains(string(env), "test-token"))
		}
	}

	// A task running, processes ready: then the zygote dies outright.
	req := b.Request(allItems(busyTask, nil), fakebroker.RequestOptions{})
	zygote := zygoteOf(t, runner)
	processWithMarker(t, zygote)
	if err := syscall.Kill(zygote, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	out, err := req.Wait(ctx)
	if err != nil || compact(t, out.Error) != `{"message":"Task process was lost: its zygote exited","description":""}` {
		t.Fatalf("task of the killed zygote: %v %s", err, out.Error)
	}
	// Its task processes went to PID 1 and died with their zygote: PID 1
	// must have reaped them, leaving the runner its only child.
	for deadline := time.Now().Add(patience); ; time.Sleep(50 * time.Millisecond) {
		left := children(init)
		if len(left) == 1 && left[0] == runner {
			break
		}
		if time.Now().After(deadline) {
			for _, c := range left {
				t.Logf("child %d of PID 1: state %s", c, procStatus(c, "State"))
			}
			t.Fatalf("PID 1 still has children %v besides the runner %d", left, runner)
		}
	}
	if out := run(t, b, allItems("return [{'json': {'after': 1}}]", nil)); !out.Done {
		t.Fatalf("after the zygote's death: %s", out.Error)
	}

	if err := syscall.Kill(init, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, exited := p.exitCode(patience)
	if !exited || code != 0 {
		t.Fatalf("after SIGTERM to PID 1: exited %v, code %d", exited, code)
	}
	if !strings.Contains(p.out.String(), "Received SIGTERM") {
		t.Fatalf("the runner did not see the SIGTERM:\n%s", excerpt.Of(p.out.String()))
	}
}

// onlyChild waits for pid to have exactly one child and returns it.
func onlyChild(t *testing.T, pid int) int {
	t.Helper()
	for deadline := time.Now().Add(patience); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c := children(pid); len(c) == 1 {
			return c[0]
		}
	}
	t.Fatalf("process %d has children %v, want one", pid, children(pid))
	return 0
}

// procStatus is one field of /proc/<pid>/status.
func procStatus(pid int, field string) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
