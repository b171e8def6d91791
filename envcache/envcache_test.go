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
