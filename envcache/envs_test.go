package envcache

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pyrunner/pyrunner/internal/wheeltest"
)

// systemPython is the interpreter the environment tests build from: the
// system's, which has pip and venv (Debian's python3-pip, python3-venv).
func systemPython(t *testing.T) Interpreter {
	t.Helper()
	in, err := ResolveInterpreter(context.Background(), "/usr/bin/python3")
	if err != nil {
		t.Skip("no /usr/bin/python3")
	}
	for _, mod := range []string{"venv", "pip"} {
		if exec.Command(in.Executable, "-I", "-c", "import "+mod).Run() != nil {
			t.Skipf("/usr/bin/python3 has no %s (apt-get install python3-venv python3-pip)", mod)
		}
	}
	return in
}

// offline is the build environment that installs from wheels alone.
func offline(t *testing.T, wheels ...wheeltest.Wheel) []string {
	t.Helper()
	dir, err := wheeltest.Index(t.TempDir(), wheels...)
	if err != nil {
		t.Fatal(err)
	}
	return []string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir(), "PIP_NO_INDEX=1", "PIP_FIND_LINKS=" + dir}
}

func reqs(t *testing.T, specs ...string) []Requirement {
	t.Helper()
	var out []Requirement
	for _, s := range specs {
		r, err := ParseRequirement(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func openCache(t *testing.T, dir string, env []string, opts CacheOptions) *Cache {
	t.Helper()
	opts.Dir, opts.Env = dir, env
	if opts.Interpreter.Executable == "" {
		opts.Interpreter = systemPython(t)
	}
	c, err := OpenCache(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestBuildAnEnvironment(t *testing.T) {
	env := offline(t, wheeltest.Example()...)
	c := openCache(t, t.TempDir(), env, CacheOptions{})
	got, release, err := c.Acquire(context.Background(), reqs(t, "Pyrunner_Greeting"))
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	// The distribution's import name comes from its RECORD, its
	// dependency's from top_level.txt.
	if !slices.Contains(got.Imports, "greeting") || !slices.Contains(got.Imports, "pyrunner_util") {
		t.Fatalf("imports %v, want greeting and pyrunner_util", got.Imports)
	}
	out, err := exec.Command(got.Python(), "-I", "-B", "-c", "import greeting; print(greeting.hello('n8n'))").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "HELLO N8N!" {
		t.Fatalf("importing from the environment: %s %v", out, err)
	}
	pycs, _ := filepath.Glob(filepath.Join(got.Dir, "lib", "python3*", "site-packages", "greeting", "__pycache__", "*.pyc"))
	if len(pycs) == 0 {
		t.Fatal("the environment's bytecode was not compiled at build time")
	}
	if st := c.Stats(); st.Builds != 1 || st.Misses != 1 || st.Environments != 1 || st.DiskBytes <= 0 {
		t.Fatalf("stats %+v", st)
	}
	// The same requirements, written differently: the same environment.
	again, release2, err := c.Acquire(context.Background(), reqs(t, "pyrunner-greeting"))
	if err != nil || again.Key != got.Key {
		t.Fatalf("second acquire: %v %v", again, err)
	}
	release2()
	if st := c.Stats(); st.Hits != 1 || st.Builds != 1 {
		t.Fatalf("stats after a hit %+v", st)
	}
}

func TestKeys(t *testing.T) {
	c := openCache(t, t.TempDir(), []string{"PIP_NO_INDEX=1"}, CacheOptions{})
	a := c.Key(reqs(t, "pandas>=2", "python-dateutil"))
	if b := c.Key(reqs(t, "Python_Dateutil", "Pandas >= 2", "pandas>=2")); a != b {
		t.Fatalf("the same set gave %s and %s", a, b)
	}
	if b := c.Key(reqs(t, "pandas>=2")); a == b {
		t.Fatal("another set gave the same key")
	}
	other := openCache(t, t.TempDir(), []string{"PIP_INDEX_URL=https://mirror.example/simple"}, CacheOptions{})
	if other.Key(reqs(t, "pandas>=2", "python-dateutil")) == a {
		t.Fatal("another index gave the same key")
	}
}

// TestOneBuildForManyAsking: 20 tasks of one pyrunner and a second pyrunner
// sharing the directory ask at once; one build happens.
func TestOneBuildForManyAsking(t *testing.T) {
	env := offline(t, wheeltest.Example()...)
	dir := t.TempDir()
	caches := []*Cache{openCache(t, dir, env, CacheOptions{}), openCache(t, dir, env, CacheOptions{})}
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	keys := make(chan string, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e, release, err := caches[i%2].Acquire(context.Background(), reqs(t, "pyrunner-greeting"))
			if err != nil {
				errs <- err
				return
			}
			keys <- e.Key
			release()
		}()
	}
	wg.Wait()
	close(errs)
	close(keys)
	for err := range errs {
		t.Fatal(err)
	}
	if n := caches[0].Stats().Builds + caches[1].Stats().Builds; n != 1 {
		t.Fatalf("%d builds for one key", n)
	}
}

// TestRestartReusesAndVerifies: a new pyrunner finds the environment on
// disk and uses it without a build; one whose files changed is rebuilt.
func TestRestartReusesAndVerifies(t *testing.T) {
	env := offline(t, wheeltest.Example()...)
	dir := t.TempDir()
	first := openCache(t, dir, env, CacheOptions{})
	e, release, err := first.Acquire(context.Background(), reqs(t, "pyrunner-greeting"))
	if err != nil {
		t.Fatal(err)
	}
	release()
	first.Close()

	second := openCache(t, dir, env, CacheOptions{})
	if _, release, err := second.Acquire(context.Background(), reqs(t, "pyrunner-greeting")); err != nil {
		t.Fatal(err)
	} else {
		release()
	}
	if st := second.Stats(); st.Builds != 0 {
		t.Fatalf("a restart rebuilt the environment: %+v", st)
	}
	second.Close()

	// Tampered with: a module changed after the build.
	target := filepath.Join(e.Dir, "lib")
	matches, _ := filepath.Glob(filepath.Join(target, "python3*", "site-packages", "greeting", "__init__.py"))
	if len(matches) != 1 {
		t.Fatalf("no module to change under %s", target)
	}
	if err := os.WriteFile(matches[0], []byte("import os\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	third := openCache(t, dir, env, CacheOptions{})
	if st := third.Stats(); st.Environments != 0 {
		t.Fatalf("a changed environment was kept: %+v", st)
	}
	if _, release, err := third.Acquire(context.Background(), reqs(t, "pyrunner-greeting")); err != nil {
		t.Fatal(err)
	} else {
		release()
	}
	if st := third.Stats(); st.Builds != 1 {
		t.Fatalf("the changed environment was not rebuilt: %+v", st)
	}
}

func TestFailingInstallSaysWhy(t *testing.T) {
	c := openCache(t, t.TempDir(), offline(t, wheeltest.Example()...), CacheOptions{})
	_, _, err := c.Acquire(context.Background(), reqs(t, "no-such-package-anywhere"))
	if err == nil || !strings.Contains(err.Error(), "no-such-package-anywhere") || !strings.Contains(err.Error(), "No matching distribution") {
		t.Fatalf("error %v, want pip's reason", err)
	}
	if st := c.Stats(); st.BuildFailures != 1 || st.Environments != 0 {
		t.Fatalf("stats %+v", st)
	}
	if left, _ := filepath.Glob(filepath.Join(c.opts.Dir, "*", "bin")); len(left) != 0 {
		t.Fatalf("a failed build left %v", left)
	}
}

// TestEviction: TTL, count, disk budget, least recently used first; never
// one in use, never the pinned one.
func TestEviction(t *testing.T) {
	wheels := []wheeltest.Wheel{
		{Name: "ev-a", Version: "1", TopLevel: []string{"ev_a"}, Files: map[string]string{"ev_a.py": "A = 1\n"}},
		{Name: "ev-b", Version: "1", TopLevel: []string{"ev_b"}, Files: map[string]string{"ev_b.py": "B = 1\n"}},
		{Name: "ev-c", Version: "1", TopLevel: []string{"ev_c"}, Files: map[string]string{"ev_c.py": "C = 1\n"}},
		{Name: "ev-d", Version: "1", TopLevel: []string{"ev_d"}, Files: map[string]string{"ev_d.py": "D = 1\n"}},
	}
	c := openCache(t, t.TempDir(), offline(t, wheels...), CacheOptions{MaxEnvironments: 2, TTL: time.Hour})
	acquire := func(name string) (string, func()) {
		e, release, err := c.Acquire(context.Background(), reqs(t, name))
		if err != nil {
			t.Fatal(err)
		}
		return e.Key, release
	}
	present := func(key string) bool {
		_, err := os.Stat(filepath.Join(c.opts.Dir, key, envMetaFile))
		return err == nil
	}
	a, releaseA := acquire("ev-a")
	releaseA()
	b, releaseB := acquire("ev-b") // stays in use
	c.Pin(b)
	d, releaseD := acquire("ev-d")
	releaseD()
	cKey, releaseC := acquire("ev-c")
	releaseC()
	c.Cleanup(time.Now())
	// Four, at most two: the two least recently used idle ones go (a,
	// then d); b is in use and pinned.
	if present(a) || present(d) || !present(b) || !present(cKey) {
		t.Fatalf("after the count bound: a=%v b=%v c=%v d=%v", present(a), present(b), present(cKey), present(d))
	}
	releaseB()
	// Past the TTL, every idle one goes but the pinned one.
	c.Cleanup(time.Now().Add(2 * time.Hour))
	if !present(b) || present(cKey) {
		t.Fatalf("after the TTL: b=%v c=%v", present(b), present(cKey))
	}
	// A disk budget below one environment's size: the idle ones go.
	c.opts.MaxDiskBytes = 1
	_, release := acquire("ev-a")
	release()
	c.Cleanup(time.Now())
	if st := c.Stats(); st.Environments != 1 || st.Evictions != 4 {
		t.Fatalf("after the disk budget: %+v", st)
	}
}

// TestKilledBuildLeavesNothingUsable: a pyrunner killed (SIGKILL) in the
// middle of a build leaves a directory that the next one removes, and
// that nobody mistakes for an environment.
func TestKilledBuildLeavesNothingUsable(t *testing.T) {
	if os.Getenv("PYRUNNER_ENVCACHE_BUILDER") != "" {
		return // the child, run by buildInChild
	}
	// pip waits on a find-links server that never answers: the build is
	// in the middle of its install when the pyrunner is killed.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	asked := make(chan struct{}, 1)
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			select {
			case asked <- struct{}{}:
			default:
			}
			defer conn.Close()
		}
	}()
	dir := t.TempDir()
	child := exec.Command(os.Args[0], "-test.run", "^TestBuilderChild$")
	child.Env = append(os.Environ(), "PYRUNNER_ENVCACHE_BUILDER="+dir,
		"PIP_NO_INDEX=1", fmt.Sprintf("PIP_FIND_LINKS=http://%s/", l.Addr()), "PIP_TIMEOUT=600", "PIP_RETRIES=0")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-asked:
	case <-time.After(2 * time.Minute):
		_ = child.Process.Kill()
		t.Fatal("the child's build never reached pip")
	}
	_ = child.Process.Signal(syscall.SIGKILL)
	_ = child.Wait()
	builds, _ := filepath.Glob(filepath.Join(dir, ".build-*"))
	if len(builds) != 1 {
		t.Fatalf("build directories after the kill: %v", builds)
	}
	c := openCache(t, dir, offline(t, wheeltest.Example()...), CacheOptions{})
	if left, _ := filepath.Glob(filepath.Join(dir, ".build-*")); len(left) != 0 {
		t.Fatalf("the restart left %v", left)
	}
	if st := c.Stats(); st.Environments != 0 {
		t.Fatalf("an environment came out of a killed build: %+v", st)
	}
	if _, release, err := c.Acquire(context.Background(), reqs(t, "pyrunner-greeting")); err != nil {
		t.Fatal(err)
	} else {
		release()
	}
}

// TestBuilderChild is the pyrunner that TestKilledBuildLeavesNothingUsable
// kills: it builds an environment in the directory it is given.
func TestBuilderChild(t *testing.T) {
	dir := os.Getenv("PYRUNNER_ENVCACHE_BUILDER")
	if dir == "" {
		t.Skip("run by TestKilledBuildLeavesNothingUsable")
	}
	c := openCache(t, dir, os.Environ(), CacheOptions{})
	_, _, err := c.Acquire(context.Background(), reqs(t, "pyrunner-greeting"))
	t.Fatalf("the build ended (%v) instead of being killed", errors.Unwrap(err))
}
