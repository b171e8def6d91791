package pool_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pyrunner/pyrunner/envcache"
	"github.com/pyrunner/pyrunner/internal/wheeltest"
	"github.com/pyrunner/pyrunner/pool"
	"github.com/pyrunner/pyrunner/pool/pooltest"
)

// envExecutor is an EnvExecutor whose environments install offline, from
// the example wheels.
func envExecutor(t *testing.T, opts pool.EnvOptions) *pool.EnvExecutor {
	t.Helper()
	spec := pooltest.Spec(t)
	in, err := envcache.ResolveInterpreter(context.Background(), spec.Executable)
	if err != nil {
		t.Fatal(err)
	}
	if exec.Command(in.Executable, "-I", "-c", "import venv, pip").Run() != nil {
		t.Skip("this Python has no venv or pip (apt-get install python3-venv python3-pip)")
	}
	wheels, err := wheeltest.Index(t.TempDir(), wheeltest.Example()...)
	if err != nil {
		t.Fatal(err)
	}
	cache, err := envcache.OpenCache(envcache.CacheOptions{Dir: pooltest.ReadableDir(t), Interpreter: in,
		Env: []string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir(), "PIP_NO_INDEX=1", "PIP_FIND_LINKS=" + wheels}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cache.Close)
	opts.Spec, opts.Cache, opts.PythonVersion = spec, cache, in.Version
	if opts.MaxWorkers == 0 {
		opts.MaxWorkers, opts.MinWorkers = 3, 1
	}
	e := pool.NewEnvExecutor(opts)
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

const greetingBlock = "# /// script\n# dependencies = [\"pyrunner-greeting\"]\n# ///\n"

func runCode(t *testing.T, e pool.Executor, code string) pool.Result {
	t.Helper()
	return e.Run(context.Background(), pool.Task{ID: "e", Settings: settings(t, code, "runOnceForAllItems", []any{}),
		Code: code, Mode: "runOnceForAllItems", Timeout: 5 * time.Minute})
}

func TestPackagesFromACodeNodesBlock(t *testing.T) {
	e := envExecutor(t, pool.EnvOptions{PackagesAllow: []string{"pyrunner_greeting"}})
	// The distribution is pyrunner-greeting; the module is greeting.
	res := runCode(t, e, greetingBlock+"import greeting\nreturn [{'json': {'g': greeting.hello('n8n')}}]")
	if res.Err != nil || string(res.Result) != `[{"json":{"g":"HELLO N8N!"}}]` {
		t.Fatalf("a task with its package: %s %s", res.Result, errText(res.Err))
	}
	// Without a block: the default environment, where it is not installed.
	res = runCode(t, e, "import greeting\nreturn []")
	if res.Err == nil || !strings.Contains(res.Err.Message, "Security violation") && !strings.Contains(res.Err.Message, "No module named") {
		t.Fatalf("a task without the block imported it: %s %s", res.Result, errText(res.Err))
	}
	cases := []struct{ name, code, want string }{
		{"not allowed", "# /// script\n# dependencies = [\"requests\"]\n# ///\nreturn []",
			"static|Installing package 'requests' for a Code node is disallowed. Allowed packages: pyrunner_greeting (N8N_PYTHON_PACKAGES_ALLOW)|"},
		{"malformed", "x = 1\n# /// script\n# dependencies = [\"a\"\nreturn []",
			`static|Invalid inline script metadata: line 2: the "script" block is not closed by a "# ///" line|`},
		{"requires-python", "# /// script\n# requires-python = \">=4\"\n# ///\nreturn []",
			"static|The code requires Python >=4 (requires-python), but the runner's is "},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := runCode(t, e, c.code)
			if got := errText(res.Err); !strings.HasPrefix(got, strings.TrimSuffix(c.want, "|")) {
				t.Fatalf("error %q, want %q", got, c.want)
			}
		})
	}
}

func TestFailedInstallNamesThePackagesAndTheCause(t *testing.T) {
	e := envExecutor(t, pool.EnvOptions{PackagesAllow: []string{"*"}})
	res := runCode(t, e, "# /// script\n# dependencies = [\"no-such-package\"]\n# ///\nreturn []")
	if res.Err == nil || !strings.Contains(res.Err.Message, "Could not prepare a Python environment with no-such-package") ||
		!strings.Contains(res.Err.Message, "No matching distribution") {
		t.Fatalf("error %s", errText(res.Err))
	}
}

// TestDefaultEnvironmentIsBuiltFirst: with N8N_PYTHON_REQUIREMENTS the
// executor takes no task (capacity 0) until their environment is ready,
// and then every task can import them.
func TestDefaultEnvironmentIsBuiltFirst(t *testing.T) {
	reqs, err := envcache.ParseRequirementList("pyrunner-greeting")
	if err != nil {
		t.Fatal(err)
	}
	e := envExecutor(t, pool.EnvOptions{Default: reqs})
	if what, _, _ := e.Building(); what != "pyrunner-greeting" && e.Capacity() == 0 {
		t.Fatalf("building %q with capacity %d", what, e.Capacity())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := e.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	if e.Capacity() == 0 {
		t.Fatal("no capacity once ready")
	}
	res := runCode(t, e, "import greeting\nreturn [{'json': {'g': greeting.hello('x')}}]")
	if res.Err != nil || string(res.Result) != `[{"json":{"g":"HELLO X!"}}]` {
		t.Fatalf("the default environment's package: %s %s", res.Result, errText(res.Err))
	}
	// A block asking for the administrator's package is always allowed.
	res = runCode(t, e, greetingBlock+"import greeting\nreturn []")
	if res.Err != nil {
		t.Fatalf("a block asking for the default requirements: %s", errText(res.Err))
	}
}
