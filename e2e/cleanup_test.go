package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/pyrunner/pyrunner/broker/fakebroker"
	"github.com/pyrunner/pyrunner/pool/pooltest"
)

// Nothing pyrunner creates may outlive it, whatever signal ends it: its
// tasks directory is removed when it stops, and one left by a pyrunner
// killed outright (SIGKILL) is removed by the next one at start.

// privateTmp gives a pyrunner its own temporary directory, so that the test
// sees exactly what it creates there. As root, tasks then share one
// explicit uid: the machine-wide uid blocks are not claimed under a
// private temporary directory. The uid is one no other test run uses
// (pooltest.UIDBlock), not nobody, which a run beside this one may use.
func privateTmp(t *testing.T) (dir string, env map[string]string) {
	t.Helper()
	dir = t.TempDir()
	env = map[string]string{"TMPDIR": dir}
	if os.Geteuid() == 0 {
		env["N8N_PYTHON_TASK_UID"] = strconv.Itoa(pooltest.UIDBlock(t, 1))
	}
	return dir, env
}

// tasksDirs lists the tasks directories, visible and hidden, in dir.
func tasksDirs(t *testing.T, dir string) []string {
	t.Helper()
	var found []string
	for _, pattern := range []string{"pyrunner-tasks-*", ".pyrunner-tasks-new-*"} {
		m, _ := filepath.Glob(filepath.Join(dir, pattern))
		found = append(found, m...)
	}
	return found
}

func TestStaleTasksDirsAreRemovedAtStart(t *testing.T) {
	tmp, env := privateTmp(t)
	mkdir := func(name string) string {
		p := filepath.Join(tmp, name)
		if err := os.Mkdir(p, 0o711); err != nil {
			t.Fatal(err)
		}
		return p
	}
	dead := mkdir("pyrunner-tasks-killed")
	if err := os.WriteFile(filepath.Join(dead, "leftover"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	oldHidden := mkdir(".pyrunner-tasks-new-killed")
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(oldHidden, old, old); err != nil {
		t.Fatal(err)
	}
	youngHidden := mkdir(".pyrunner-tasks-new-starting") // another pyrunner, mid-creation
	live := mkdir("pyrunner-tasks-live")                 // another pyrunner's, locked
	lock, err := os.Open(live)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}

	b := startBroker(t, fakebroker.Options{})
	p := startRegistered(t, b, env)
	for path, want := range map[string]bool{dead: false, oldHidden: false, youngHidden: true, live: true} {
		if _, err := os.Stat(path); (err == nil) != want {
			t.Errorf("%s: exists=%v, want %v", filepath.Base(path), err == nil, want)
		}
	}
	if !p.waitOutput("Removed a tasks directory left by a pyrunner that was killed") {
		t.Error("the removal is not logged")
	}
	if got := len(tasksDirs(t, tmp)); got != 3 {
		t.Fatalf("%d tasks directories while running, want 3 (its own, the live and the young one): %v", got, tasksDirs(t, tmp))
	}
	p.signal(syscall.SIGTERM)
	if code, ok := p.exitCode(patience); !ok || code != 0 {
		t.Fatalf("exit = %d (exited %v), want 0", code, ok)
	}
	if got := tasksDirs(t, tmp); len(got) != 2 {
		t.Fatalf("after exit: %v, want only the other pyrunners' two", got)
	}
}

// TestSIGTERMDuringStartupLeavesNothing: a SIGTERM that comes while the
// pool is still starting ends the start-up cleanly.
func TestSIGTERMDuringStartupLeavesNothing(t *testing.T) {
	tmp, env := privateTmp(t)
	b := startBroker(t, fakebroker.Options{})
	p := startRunner(t, b, env)
	// The tasks directory is created before the interpreter is chosen and
	// the zygotes start: signal as soon as it shows.
	for deadline := time.Now().Add(patience); len(tasksDirs(t, tmp)) == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no tasks directory appeared")
		}
	}
	p.signal(syscall.SIGTERM)
	if code, ok := p.exitCode(patience); !ok || code != 0 {
		t.Fatalf("exit = %d (exited %v), want 0", code, ok)
	}
	if left := tasksDirs(t, tmp); len(left) != 0 {
		t.Fatalf("left behind: %v", left)
	}
}

// TestClosedLogPipeDoesNotKill: the reader of pyrunner's log (n8n's
// launcher) dies first; pyrunner's next log line must not kill it with
// SIGPIPE before it cleans up.
func TestClosedLogPipeDoesNotKill(t *testing.T) {
	tmp, env := privateTmp(t)
	b := startBroker(t, fakebroker.Options{})
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p := startRunnerWithOutput(t, b, env, w)
	w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	if err := b.WaitRegistered(ctx, 1); err != nil {
		t.Fatal(err)
	}
	r.Close() // the reader is gone: every log line from now on hits EPIPE
	out := run(t, b, allItems("print('logged by the runner')\nreturn [{'json': {'ok': True}}]", nil))
	if !out.Done {
		t.Fatalf("task after the log pipe closed: %s", out.Error)
	}
	p.signal(syscall.SIGTERM)
	<-p.exited
	if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		t.Fatalf("pyrunner was killed by %v", ws.Signal())
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit %d, want 0", code)
	}
	if left := tasksDirs(t, tmp); len(left) != 0 {
		t.Fatalf("left behind: %v", left)
	}
}

// TestExecIntoClosedPipe: `pyrunner exec … | head` where head has already
// exited.
func TestExecIntoClosedPipe(t *testing.T) {
	tmp, env := privateTmp(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	cmd := execCmd(t, env, "-c", "return [{'json': {'n': i}} for i in range(1000)]")
	cmd.Stdout, cmd.Stderr = w, w
	err = cmd.Run()
	w.Close()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		t.Fatalf("pyrunner exec was killed by %v (%v)", ws.Signal(), err)
	}
	if left := tasksDirs(t, tmp); len(left) != 0 {
		t.Fatalf("left behind: %v", left)
	}
}
