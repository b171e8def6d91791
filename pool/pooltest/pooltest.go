// Package pooltest gives tests of other packages a real Python pool: the
// interpreter to use on this machine and a started ZygoteExecutor.
package pooltest

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/pyrunner/pyrunner/envcache"
	"github.com/pyrunner/pyrunner/pool"
	"github.com/pyrunner/pyrunner/python"
)

// Interpreter picks the Python tests run: PYRUNNER_TEST_PYTHON, or when
// running as root the system's /usr/bin/python3 (tasks then run as nobody,
// who cannot read a Python under /root, such as pyenv's), else python3.
func Interpreter() string {
	if p := os.Getenv("PYRUNNER_TEST_PYTHON"); p != "" {
		return p
	}
	if os.Geteuid() == 0 {
		if _, err := os.Stat("/usr/bin/python3"); err == nil {
			return "/usr/bin/python3"
		}
	}
	return "python3"
}

// TaskUID is what pyrunner would run tasks as by default: nobody when root.
func TaskUID() int {
	if os.Geteuid() == 0 {
		return 65534
	}
	return -1
}

// Spec is a ProcessSpec with the runtime installed in a temporary cache and
// the process log in the test's log.
func Spec(t testing.TB) pool.ProcessSpec {
	t.Helper()
	return SpecFor(t, Interpreter())
}

// SpecFor is Spec with another interpreter.
func SpecFor(t testing.TB, interpreter string) pool.ProcessSpec {
	t.Helper()
	ctx := context.Background()
	in, err := envcache.ResolveInterpreter(ctx, interpreter)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := envcache.InstallRuntime(ctx, t.TempDir(), in)
	if err != nil {
		t.Fatal(err)
	}
	uid := TaskUID()
	return pool.ProcessSpec{
		Logger:     slog.New(slog.NewTextHandler(Writer{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Executable: in.Executable,
		RuntimeDir: dir,
		Env:        []string{"PATH=/usr/bin:/bin", "LANG=C.UTF-8"},
		// Every module allowed: these tests are about processes, not the sandbox.
		Config: python.Config{BlockEnvAccess: true, TaskUID: uid, TaskGID: uid, LandlockABI: -1,
			StdlibAllow: []string{"*"}, ExternalAllow: []string{"*"}, ImmortalObjects: true,
			InheritCodeMappings: true},
	}
}

// Executor is a started ZygoteExecutor, closed when the test ends.
func Executor(t testing.TB, maxWorkers int) *pool.ZygoteExecutor {
	t.Helper()
	exec := pool.NewZygoteExecutor(pool.Options{Spec: Spec(t), MaxWorkers: maxWorkers})
	if err := exec.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { exec.Close() })
	return exec
}

// Writer sends log lines to the test's log.
type Writer struct{ T testing.TB }

func (w Writer) Write(p []byte) (int, error) {
	w.T.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// ReadableDir is a temporary directory the task users can read (a test's
// own TempDir is the test user's alone), removed when the test ends: for
// what task processes load lazily, such as an environment's packages.
func ReadableDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pyrunner-test-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
