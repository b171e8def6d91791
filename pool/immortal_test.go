package pool_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/pyrunner/pyrunner/envcache"
	"github.com/pyrunner/pyrunner/pool"
	"github.com/pyrunner/pyrunner/pool/pooltest"
)

// immortalCount is what sys.getrefcount says of an immortal object on
// 64-bit CPython 3.12 and 3.13.
const immortalCount = 1<<32 - 1

// TestZygoteObjectsAreImmortal: on Python 3.12 and 3.13 a task process
// takes references to the zygote's objects without counting them (a module
// the runtime imported reports CPython's immortal count), in isolated and
// reuse mode; with ImmortalObjects off it counts them, and on older ones
// (the test interpreter in CI is Debian's 3.11) nothing is marked.
func TestZygoteObjectsAreImmortal(t *testing.T) {
	newer := newerPython()
	in, err := envcache.ResolveInterpreter(context.Background(), pooltest.Interpreter())
	if err != nil {
		t.Fatal(err)
	}
	v := in.Version
	testIsNewer := v[0] == 3 && (v[1] == 12 || v[1] == 13)
	cases := []struct {
		name        string
		interpreter string
		immortal    bool // asked for
		want        bool // seen
	}{
		{"test interpreter", pooltest.Interpreter(), true, testIsNewer},
		{"newer", newer, true, true},
		{"newer, switched off", newer, false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.interpreter == "" {
				t.Skip("no Python 3.12 or 3.13 under ~/.pyenv/versions and PYRUNNER_TEST_PYTHON_NEWER unset")
			}
			spec := pooltest.Spec(t)
			if c.interpreter != pooltest.Interpreter() {
				spec = specFor(t, c.interpreter)
			}
			spec.Config.ImmortalObjects = c.immortal
			for _, reuse := range []bool{false, true} {
				exec := startExecutor(t, pool.Options{Spec: spec, MaxWorkers: 1, MinWorkers: 1, Reuse: reuse})
				task := pool.Task{ID: "refs", Settings: settings(t, "import sys, json\nreturn [{'json': {'count': sys.getrefcount(json)}}]", "runOnceForAllItems", []any{})}
				for range 2 {
					count := oneItem[struct{ Count int64 }](t, exec.Run(context.Background(), task)).Count
					if got := count == immortalCount; got != c.want {
						t.Fatalf("reuse %v: json's reference count is %d; immortal: %v, want %v", reuse, count, got, c.want)
					}
				}
			}
		})
	}
}

// newerPython is a Python 3.12 or 3.13 to test with: PYRUNNER_TEST_PYTHON_NEWER,
// else the last of pyenv's release builds (not its free-threaded "t" or
// debug ones), else "".
func newerPython() string {
	if p := os.Getenv("PYRUNNER_TEST_PYTHON_NEWER"); p != "" {
		return p
	}
	home, _ := os.UserHomeDir()
	found, _ := filepath.Glob(filepath.Join(home, ".pyenv/versions/3.1[23].*/bin/python3"))
	release := regexp.MustCompile(`/3\.1[23]\.[0-9]+/bin/python3$`)
	newer := ""
	for _, p := range found {
		if release.MatchString(p) {
			newer = p
		}
	}
	return newer
}

// specFor is pooltest.SpecFor with its tasks run as this test's own user:
// pyenv's Pythons live where the task users cannot read.
func specFor(t *testing.T, interpreter string) pool.ProcessSpec {
	t.Helper()
	spec := pooltest.SpecFor(t, interpreter)
	spec.Config.TaskUID, spec.Config.TaskGID = -1, -1
	return spec
}
