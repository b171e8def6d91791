package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pyrunner/pyrunner/broker/fakebroker"
	"github.com/pyrunner/pyrunner/internal/loadgen"
	"github.com/pyrunner/pyrunner/pool/pooltest"
)

// packagesEnv is what a pyrunner that installs the test wheels for Code
// nodes gets: pip's own settings, offline, and what it may install.
func packagesEnv(cache string) map[string]string {
	return map[string]string{
		"N8N_PYTHON_CACHE_DIR": cache, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": wheelsDir,
		"N8N_PYTHON_PACKAGES_ALLOW": "pyrunner-greeting", "N8N_RUNNERS_TASK_TIMEOUT": "120",
	}
}

const greetingCode = "# /// script\n# dependencies = [\"pyrunner-greeting\"]\n# ///\nimport greeting\n" +
	"return [{'json': {'g': greeting.hello(it['json']['name'])}} for it in _items]"

// TestPackagesThroughTheRunner: a Code node's PEP 723 block through the
// built binary and the fake broker: the first run builds the environment,
// the second finds it, a restarted pyrunner finds it on disk; a block
// asking for what is not allowed, and a malformed one, fail as the task's
// error.
func TestPackagesThroughTheRunner(t *testing.T) {
	cache := pooltest.ReadableDir(t)
	b := startBroker(t, fakebroker.Options{})
	p := startRegistered(t, b, packagesEnv(cache))
	items := []map[string]any{{"json": map[string]any{"name": "ada"}}}
	want := `[{"json":{"g":"HELLO ADA!"}}]`
	timed := func(what string) time.Duration {
		out := run(t, b, allItems(greetingCode, items))
		if !out.Done || compact(t, out.Result) != want {
			t.Fatalf("%s: %s %s", what, out.Result, out.Error)
		}
		took := out.Completed.Sub(out.SettingsSent)
		t.Logf("%s: %s", what, took.Round(time.Millisecond))
		return took
	}
	timed("first run (builds the environment)")
	timed("second run (the environment is ready)")
	if !strings.Contains(p.out.String(), "Built a Python environment") {
		t.Fatal("the build is not in the log")
	}

	for _, c := range []struct{ name, code, want string }{
		{"not allowed", "# /// script\n# dependencies = [\"requests\"]\n# ///\nreturn []",
			"Installing package 'requests' for a Code node is disallowed. Allowed packages: pyrunner-greeting (N8N_PYTHON_PACKAGES_ALLOW)"},
		{"malformed", "# /// script\n# dependencies = [\"pyrunner-greeting\"]\n# ///\nx = 1\n# /// script\n# ///\nreturn []",
			`Invalid inline script metadata: line 5: a second "script" block (the first is on line 1)`},
	} {
		out := run(t, b, allItems(c.code, nil))
		var e struct{ Message string }
		if out.Done || json.Unmarshal(out.Error, &e) != nil || e.Message != c.want {
			t.Fatalf("%s: %s %s, want the error %q", c.name, out.Result, out.Error, c.want)
		}
	}

	// Restarted: the environment is on disk, not built again.
	p.signal(syscall.SIGTERM)
	if code, ok := p.exitCode(patience); !ok || code != 0 {
		t.Fatalf("exit %d (exited %v)", code, ok)
	}
	waitNoRunners(b)
	p = startRegistered(t, b, packagesEnv(cache))
	timed("first run after a restart (the environment is on disk)")
	if strings.Contains(p.out.String(), "Building a Python environment") {
		t.Fatal("a restart built the environment again")
	}
	envs, _ := filepath.Glob(filepath.Join(cache, "envs", "*", "pyrunner-env.json"))
	if len(envs) != 1 {
		t.Fatalf("environments on disk: %v", envs)
	}
}

// TestDefaultEnvironmentBeforeOffers: with N8N_PYTHON_REQUIREMENTS, the
// runner registers but offers nothing until the environment is built;
// then every task has the package.
func TestDefaultEnvironmentBeforeOffers(t *testing.T) {
	cache := pooltest.ReadableDir(t)
	b := startBroker(t, fakebroker.Options{})
	env := packagesEnv(cache)
	env["N8N_PYTHON_REQUIREMENTS"] = "pyrunner-greeting"
	p := startRegistered(t, b, withHealth(env))
	base := healthURL(t, p)
	// Registered, and no offer until the environment is ready: the log
	// says "ready" before the first offer can be made, and /readyz says
	// what is being built meanwhile (a build takes seconds: venv, pip).
	var reasons []string
	for deadline := time.Now().Add(5 * patience); !strings.Contains(p.out.String(), "The default Python environment is ready"); {
		if time.Now().After(deadline) {
			t.Fatalf("the default environment was not ready in %s", 5*patience)
		}
		if len(b.OpenOffers()) > 0 && !strings.Contains(p.out.String(), "The default Python environment is ready") {
			t.Fatalf("an offer before the default environment was ready:\n%s", p.out.String())
		}
		if code, body := httpGet(t, base+"/readyz"); code == http.StatusServiceUnavailable {
			reasons = append(reasons, body)
		}
		select {
		case <-p.exited:
			t.Fatalf("pyrunner exited: %s", p.out.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	if !strings.Contains(p.out.String(), "Building the default Python environment (N8N_PYTHON_REQUIREMENTS); no task is taken until it is ready") {
		t.Fatal("the log does not say what is built")
	}
	// Registration may reach the broker a moment before pyrunner's own
	// state: the first answers may still say "not registered".
	building := `"reason":"building the default Python environment (pyrunner-greeting) for `
	if !slices.ContainsFunc(reasons, func(r string) bool { return strings.Contains(r, building) }) {
		t.Fatalf("/readyz while building never said so; its answers: %q", slices.Compact(reasons))
	}
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	out, err := b.RunTask(ctx, allItems("import greeting\nreturn [{'json': {'g': greeting.hello('x')}}]", nil))
	if err != nil || !out.Done || compact(t, out.Result) != `[{"json":{"g":"HELLO X!"}}]` {
		t.Fatalf("a task in the default environment: %v %s %s", err, out.Result, out.Error)
	}
	_, text := httpGet(t, base+"/metrics")
	for _, want := range []string{`pyrunner_environment_builds_total{outcome="success"} 1`, `pyrunner_cache_entries{cache="environments"} 1`} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestPandasThroughTheRunner: Debian's pandas, declared in a PEP 723
// block, in an isolated task, imported in the task and preloaded in the
// environment's zygote. pandas imports much of the standard library that
// the task may not import itself (subprocess, warnings' catch_warnings,
// text streams): the sandbox must leave the interpreter's own modules
// whole for it.
func TestPandasThroughTheRunner(t *testing.T) {
	if exec.Command(testInterpreter(), "-c", "import pandas").Run() != nil {
		t.Skip("pandas is missing (Debian: apt-get install python3-pandas; .ci/run installs it)")
	}
	items := loadgen.CustomerItems(3)
	want := `[{"json":{"qty":1,"orders":1,"revenue":9.5,"city":"Lisbon"}},{"json":{"qty":2,"orders":1,"revenue":10.5,"city":"Lisbon"}},{"json":{"qty":3,"orders":1,"revenue":11.5,"city":"Lisbon"}}]`
	for _, preload := range []string{"", "*"} {
		t.Run("preload="+preload, func(t *testing.T) {
			env := packagesEnv(pooltest.ReadableDir(t))
			env["N8N_PYTHON_PACKAGES_ALLOW"] = "pandas"
			env["N8N_PYTHON_PRELOAD"] = preload
			env["N8N_RUNNERS_STDLIB_ALLOW"] = unset // n8n's default: the task itself imports no stdlib module
			b := startBroker(t, fakebroker.Options{})
			startRegistered(t, b, env)
			for range 2 { // the second in a zygote that has served one
				out := run(t, b, allItems(pandasCode, items))
				if !out.Done || compact(t, out.Result) != want {
					t.Fatalf("pandas task: %s %s", out.Result, out.Error)
				}
			}
		})
	}
}
