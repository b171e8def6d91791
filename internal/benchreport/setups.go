package benchreport

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// A Target runs one scenario's task in one setup, again and again.
type Target interface {
	// Run runs the task once and returns its latency as the setup measures
	// it and, when want is set (or when it costs nothing), the result's
	// items. Safe to call from several goroutines.
	Run(ctx context.Context, want bool) (time.Duration, json.RawMessage, error)
	// PID is the process whose descendants' page faults count, or 0.
	PID() int
	// Close stops what the target started and waits for it; idempotent.
	Close()
}

// A Setup is one column of the table.
type Setup struct {
	Key   string
	Title string
	// Measured says where the latency is taken, shown under the table.
	Measured string
	// start starts the setup for a scenario (a *notAvailableError when
	// the scenario's packages cannot be had in it); nil when the setup
	// cannot run here, with NotRun saying why and how to make it run.
	start  func(ctx context.Context, sc Scenario) (Target, error)
	NotRun string
	// pyrunner marks pyrunner's own setups (the improvement column's
	// candidates).
	pyrunner bool
}

const brokerSeen = "settings sent → result received, at the fake broker (the real protocol, the built binary as its own process)"

// pyrunnerSetups are the five configurations of the built binary.
func pyrunnerSetups(h *host) []Setup {
	mk := func(key, title string, env func(sc Scenario) []string) Setup {
		return Setup{Key: key, Title: title, Measured: brokerSeen, pyrunner: true,
			start: func(ctx context.Context, sc Scenario) (Target, error) {
				return h.startRunner(ctx, sc, []string{h.binary, "run"}, env(sc), false)
			}}
	}
	return []Setup{
		mk("direct", "Direct execution (a new Python per task)", func(Scenario) []string {
			return []string{"N8N_PYTHON_ISOLATION=spawn"}
		}),
		mk("pool", "Worker pool (pyrunner's default, isolated)", func(Scenario) []string {
			return []string{"N8N_PYTHON_ISOLATION=isolated"}
		}),
		mk("cached", "Cached environment (isolated, packages preloaded)", func(sc Scenario) []string {
			env := []string{"N8N_PYTHON_ISOLATION=isolated", "N8N_PYTHON_PRELOAD=" + sc.Preload}
			if len(sc.Packages) > 0 {
				env = append(env, "N8N_PYTHON_REQUIREMENTS="+strings.Join(sc.Packages, ","))
			}
			return env
		}),
		mk("reuse", "Reuse (N8N_PYTHON_ISOLATION=reuse)", func(Scenario) []string {
			return []string{"N8N_PYTHON_ISOLATION=reuse"}
		}),
		// Every task of a scenario carries the same workflowId (taskSettings):
		// one Code node run again and again, as a workflow runs it.
		mk("workflow", "Workflow (N8N_PYTHON_ISOLATION=workflow, the scenario's tasks from one workflow)", func(Scenario) []string {
			return []string{"N8N_PYTHON_ISOLATION=workflow"}
		}),
	}
}

// previousSetup is the worker pool (isolated) of another pyrunner binary,
// the build before a change (bench -previous): measured in the same run as
// this one's, so that the two compare on the same machine at the same hour.
// It gets a cache directory of its own, for whatever that build keeps there.
func previousSetup(h *host, binary, version string) (Setup, error) {
	prev := *h
	prev.binary = binary
	prev.cacheDir = filepath.Join(h.cacheDir, "previous")
	// Task users must read it, as the cache directory above it.
	if err := os.Mkdir(prev.cacheDir, 0o755); err != nil {
		return Setup{}, err
	}
	if err := os.Chmod(prev.cacheDir, 0o755); err != nil {
		return Setup{}, err
	}
	return Setup{Key: previousKey, Title: "Worker pool of the previous binary (" + version + ", isolated)", Measured: brokerSeen,
		start: func(ctx context.Context, sc Scenario) (Target, error) {
			return prev.startRunner(ctx, sc, []string{prev.binary, "run"}, []string{"N8N_PYTHON_ISOLATION=isolated"}, false)
		}}, nil
}

// previousKey is the previous binary's column.
const previousKey = "previous"

// binaryVersion is what `BINARY version` says; an error when that is not
// a pyrunner's answer, before any cell is measured with it.
func binaryVersion(ctx context.Context, binary string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary, "version").Output()
	v := strings.TrimSpace(string(out))
	if err != nil || !strings.HasPrefix(v, "pyrunner ") {
		return "", fmt.Errorf("-previous %s: `%s version` said %q (%v), not a pyrunner's version", binary, binary, v, err)
	}
	return v, nil
}

// officialSetup is n8n's own Python runner, started from the command
// line in PYRUNNER_BENCH_OFFICIAL_RUNNER with a grant token, as n8n's
// launcher starts it.
func officialSetup(h *host, command string) Setup {
	s := Setup{Key: "official", Title: "n8n's official Python runner", Measured: brokerSeen}
	if command == "" {
		s.NotRun = "not run: set PYRUNNER_BENCH_OFFICIAL_RUNNER to the command that starts it, as n8n does: " +
			"'cd n8n/packages/@n8n/task-runner-python && exec .venv/bin/python -m src.main' (it needs Python 3.13 or newer and websockets 15 or newer)"
		return s
	}
	s.start = func(ctx context.Context, sc Scenario) (Target, error) {
		return h.startRunner(ctx, sc, []string{"/bin/sh", "-c", command}, nil, true)
	}
	return s
}
