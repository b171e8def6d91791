package envcache

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestResolveInterpreter(t *testing.T) {
	in, err := ResolveInterpreter(context.Background(), "python3")
	if err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(in.Executable) || in.Version[0] != 3 || in.Version[1] < 10 || in.Stdlib == "" {
		t.Fatalf("unexpected %+v", in)
	}
	// A shim (pyenv's) resolves to the real binary, which starts faster.
	if strings.Contains(in.Executable, "/shims/") {
		t.Fatalf("executable is a shim: %s", in.Executable)
	}
}

func TestResolveInterpreterRefusesOldOrMissing(t *testing.T) {
	if _, err := ResolveInterpreter(context.Background(), "no-such-python-here"); err == nil {
		t.Fatal("no error for a missing interpreter")
	}
	old := filepath.Join(os.Getenv("HOME"), ".pyenv/versions/3.9.18/bin/python3")
	if _, err := os.Stat(old); err != nil {
		t.Skip("no Python 3.9 on this machine to check the version floor with")
	}
	_, err := ResolveInterpreter(context.Background(), old)
	if !errors.Is(err, ErrUnsupportedPython) || !strings.Contains(err.Error(), "needs CPython 3.10 or newer") {
		t.Fatalf("3.9: %v", err)
	}
}

func TestInstallRuntimeOnceWithBytecode(t *testing.T) {
	ctx := context.Background()
	in, err := ResolveInterpreter(ctx, "python3")
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	dir, err := InstallRuntime(ctx, cache, in)
	if err != nil {
		t.Fatal(err)
	}
	pycs, _ := filepath.Glob(filepath.Join(dir, "pyrunner_runtime", "__pycache__", "zygote.*.pyc"))
	if len(pycs) != 1 {
		t.Fatalf("bytecode not compiled: %v", pycs)
	}
	info, _ := os.Stat(pycs[0])
	again, err := InstallRuntime(ctx, cache, in)
	if err != nil || again != dir {
		t.Fatalf("second install: %s %v", again, err)
	}
	info2, _ := os.Stat(pycs[0])
	if !info.ModTime().Equal(info2.ModTime()) {
		t.Fatal("the second install compiled again")
	}
}

// pyenvPython is a Python under /root, which other users cannot read, or
// "" when this machine has none (or the tests do not run as root).
func pyenvPython(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: checks what another user can read")
	}
	matches, _ := filepath.Glob("/root/.pyenv/versions/3.1[0-9]*/bin/python3")
	if len(matches) == 0 {
		t.Skip("no Python under /root on this machine")
	}
	return matches[0]
}

func TestReadableBy(t *testing.T) {
	ctx := context.Background()
	home, err := ResolveInterpreter(ctx, pyenvPython(t))
	if err != nil {
		t.Fatal(err)
	}
	err = home.ReadableBy(ctx, 65534, 65534)
	if err == nil || !strings.Contains(err.Error(), "tasks run as uid 65534 (pyrunner runs as root), and that user cannot read this Python installation") ||
		!strings.Contains(err.Error(), "N8N_PYTHON_INTERPRETER") {
		t.Fatalf("a Python under /root, as nobody: %v", err)
	}
	system, err := ResolveInterpreter(ctx, "/usr/bin/python3")
	if err != nil {
		t.Skip("no /usr/bin/python3")
	}
	if err := system.ReadableBy(ctx, 65534, 65534); err != nil {
		t.Fatalf("the system's Python, as nobody: %v", err)
	}
}

func TestChoose(t *testing.T) {
	ctx := context.Background()
	home := pyenvPython(t)
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Skip("no /usr/bin/python3")
	}
	asNobody := func(ctx context.Context, in Interpreter) error { return in.ReadableBy(ctx, 65534, 65534) }
	// python3 on PATH is the one under /root: not for the tasks.
	t.Setenv("PATH", filepath.Dir(home)+":/usr/bin:/bin")

	c, err := Choose(ctx, "", asNobody)
	if err != nil || c.Executable != "/usr/bin/python3" || !strings.Contains(c.Reason, "the system's /usr/bin/python3") {
		t.Fatalf("unset, PATH's unreadable: %+v %v", c, err)
	}
	c, err = Choose(ctx, "", nil)
	if err != nil || !strings.HasPrefix(c.Executable, "/root/") || !strings.Contains(c.Reason, "python3 on PATH") {
		t.Fatalf("unset, anything will do: %+v %v", c, err)
	}
	// Named explicitly: refused, not replaced.
	if _, err := Choose(ctx, home, asNobody); err == nil || !strings.Contains(err.Error(), "N8N_PYTHON_INTERPRETER="+home) ||
		!strings.Contains(err.Error(), "cannot read this Python installation") {
		t.Fatalf("named, unreadable: %v", err)
	}
	_, err = Choose(ctx, "/no/such/python3", nil)
	if !errors.Is(err, ErrNoInterpreter) || !strings.Contains(err.Error(), "N8N_PYTHON_INTERPRETER=/no/such/python3") {
		t.Fatalf("named, missing: %v", err)
	}
}
