package benchreport

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sethvargo/go-envconfig"

	"github.com/pyrunner/pyrunner/broker/fakebroker"
	"github.com/pyrunner/pyrunner/internal/config"
	"github.com/pyrunner/pyrunner/internal/excerpt"
)

// host is what every runner a bench starts shares: the binary, the
// interpreter, a cache directory the task users can read, and the
// sandbox settings every setup gets alike.
type host struct {
	binary       string
	interpreter  string
	cacheDir     string
	builtinsDeny string // see benchBuiltinsDeny
}

// benchBuiltinsDeny is the default N8N_RUNNERS_BUILTINS_DENY (n8n's, as
// pyrunner's configuration has it) without open, which the file-operations
// scenario needs. Every runner gets the same list, so every scenario runs
// the same code under the same rules.
func benchBuiltinsDeny(ctx context.Context) (string, error) {
	cfg, err := config.LoadWithoutBroker(ctx, envconfig.MapLookuper(nil))
	if err != nil {
		return "", err
	}
	deny := slices.DeleteFunc(slices.Clone(cfg.Limits.BuiltinsDeny), func(name string) bool { return name == "open" })
	return strings.Join(deny, ","), nil
}

// sandboxEnv is the allowlists every runner gets: the standard library,
// numpy and pandas (with what they import themselves), no open() denied.
func (h *host) sandboxEnv() []string {
	return []string{
		"N8N_RUNNERS_STDLIB_ALLOW=*",
		"N8N_RUNNERS_EXTERNAL_ALLOW=numpy,pandas",
		"N8N_RUNNERS_ALLOW_TRANSITIVE_IMPORTS=true",
		"N8N_RUNNERS_BUILTINS_DENY=" + h.builtinsDeny,
		"N8N_RUNNERS_MAX_CONCURRENCY=5",
		"N8N_RUNNERS_TASK_TIMEOUT=300",
	}
}

// runnerTarget is a runner process registered at a fake broker of its
// own.
type runnerTarget struct {
	broker   *fakebroker.Broker
	cmd      *exec.Cmd
	logs     *fakebroker.SyncBuffer
	exited   chan struct{}
	settings json.RawMessage
	once     sync.Once
}

var _ Target = (*runnerTarget)(nil)

// startRunner starts argv against a new fake broker with the common
// environment and extra on top, and waits until it registered. grant:
// the runner is given a single-use grant token (as n8n's launcher does)
// instead of the auth token.
func (h *host) startRunner(ctx context.Context, sc Scenario, argv, extra []string, grant bool) (*runnerTarget, error) {
	b, err := fakebroker.Start(ctx, fakebroker.Options{AuthToken: "bench-token", NoTranscript: true,
		TaskTimeout: 10 * time.Minute, TaskRequestTimeout: 5 * time.Minute})
	if err != nil {
		return nil, fmt.Errorf("starting the fake broker: %w", err)
	}
	env := append(baseEnv(), h.sandboxEnv()...)
	env = append(env, "N8N_RUNNERS_TASK_BROKER_URI="+b.URL(), "N8N_RUNNERS_LAUNCHER_LOG_LEVEL=WARNING",
		"N8N_PYTHON_INTERPRETER="+h.interpreter, "N8N_PYTHON_CACHE_DIR="+h.cacheDir,
		// The bench never installs anything: environments take the interpreter's own packages.
		"PIP_NO_INDEX=1")
	if grant {
		env = append(env, "N8N_RUNNERS_GRANT_TOKEN="+b.MintGrant())
	} else {
		env = append(env, "N8N_RUNNERS_AUTH_TOKEN=bench-token")
	}
	t := &runnerTarget{broker: b, logs: &fakebroker.SyncBuffer{}, exited: make(chan struct{}), settings: taskSettings(sc)}
	t.cmd = exec.Command(argv[0], argv[1:]...)
	t.cmd.Env = append(env, extra...)
	t.cmd.Stdout, t.cmd.Stderr = t.logs, t.logs
	// Pdeathsig: a bench that is killed takes its runners with it (they
	// stop their own processes on SIGTERM).
	t.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := t.cmd.Start(); err != nil {
		b.Close()
		return nil, fmt.Errorf("starting %s: %w", argv[0], err)
	}
	go func() {
		_ = t.cmd.Wait()
		close(t.exited)
	}()
	regCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	registered := make(chan error, 1)
	go func() { registered <- b.WaitRegistered(regCtx, 1) }()
	select {
	case <-t.exited:
		t.Close()
		return nil, fmt.Errorf("the runner exited before registering: %s", excerpt.Of(t.logs.String()))
	case err := <-registered:
		if err != nil {
			t.Close()
			return nil, fmt.Errorf("the runner did not register: %w: %s", err, excerpt.Of(t.logs.String()))
		}
	}
	return t, nil
}

// taskSettings is the scenario's broker:tasksettings, as n8n's Code node
// sends them.
func taskSettings(sc Scenario) json.RawMessage {
	settings, _ := json.Marshal(map[string]any{
		"code": sc.Code, "nodeMode": "runOnceForAllItems", "items": sc.Items, "continueOnFail": false,
		"workflowMode": "manual", "workflowId": "bench-" + sc.Key, "nodeName": "Code", "nodeId": "bench",
	})
	return settings
}

func (t *runnerTarget) Run(ctx context.Context, _ bool) (time.Duration, json.RawMessage, error) {
	out, err := t.broker.RunTask(ctx, t.settings)
	switch {
	case err != nil:
		return 0, nil, err
	case !out.Done:
		return 0, nil, fmt.Errorf("task failed: %s%s", out.Error, out.Expired)
	}
	return out.Completed.Sub(out.SettingsSent), out.Result, nil
}

func (t *runnerTarget) PID() int { return t.cmd.Process.Pid }

// Close asks the runner's process group to stop (SIGTERM), kills it after
// 15 s, and closes the broker.
func (t *runnerTarget) Close() {
	t.once.Do(func() {
		pgid := t.cmd.Process.Pid
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-t.exited:
		case <-time.After(15 * time.Second):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-t.exited
		}
		// What the runner left in its group (a runner that does not kill
		// its own children): nothing may outlive the bench.
		if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			fmt.Fprintf(os.Stderr, "bench: killing process group %d: %v\n", pgid, err)
		}
		t.broker.Close()
	})
}

// baseEnv is the part of the bench's own environment a runner needs.
func baseEnv() []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "LANG", "TMPDIR", "XDG_CACHE_HOME"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}
