package benchreport

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/shirou/gopsutil/v4/cpu"
	gohost "github.com/shirou/gopsutil/v4/host"
	"github.com/shirou/gopsutil/v4/mem"
)

// Results is everything a run measured and what it ran on:
// benchmark-results.json.
type Results struct {
	Date            time.Time       `json:"date"`
	Version         string          `json:"version"`
	Commit          string          `json:"commit,omitempty"`
	Machine         Machine         `json:"machine"`
	Interpreter     InterpreterInfo `json:"interpreter"`
	Pyodide         []*PyodideInfo  `json:"pyodide,omitempty"`
	Tasks           int             `json:"tasks_at_concurrency_1"`
	ThroughputTasks int             `json:"tasks_at_throughput_concurrency"`
	Concurrency     int             `json:"throughput_concurrency"`
	Setups          []SetupInfo     `json:"setups"`
	Scenarios       []ScenarioInfo  `json:"scenarios"`
	Cells           []Cell          `json:"cells"`
	Seconds         float64         `json:"seconds"`
}

// SetupInfo is a column.
type SetupInfo struct {
	Key      string `json:"key"`
	Title    string `json:"title"`
	Measured string `json:"measured"`
	NotRun   string `json:"not_run,omitempty"`
	Pyrunner bool   `json:"pyrunner"`
}

// ScenarioInfo is a row.
type ScenarioInfo struct {
	Key      string   `json:"key"`
	Title    string   `json:"title"`
	Items    int      `json:"items"`
	Packages []string `json:"packages,omitempty"`
	Skipped  string   `json:"skipped,omitempty"`
}

// Machine is what the run ran on.
type Machine struct {
	CPU      string `json:"cpu"`
	Cores    int    `json:"logical_cores"`
	MemoryGB int    `json:"memory_gib"`
	OS       string `json:"os"`
	Kernel   string `json:"kernel"`
	Virtual  string `json:"virtualization,omitempty"`
}

// InterpreterInfo is the Python pyrunner's tasks ran on, with the
// versions of the packages the scenarios import ("" when missing).
type InterpreterInfo struct {
	Path     string            `json:"path"`
	Version  string            `json:"version"`
	Packages map[string]string `json:"packages"`
}

func describeMachine() Machine {
	m := Machine{Cores: runtime.NumCPU()}
	if infos, err := cpu.Info(); err == nil && len(infos) > 0 {
		m.CPU = infos[0].ModelName
	}
	if vm, err := mem.VirtualMemory(); err == nil {
		m.MemoryGB = int((vm.Total + 1<<29) >> 30)
	}
	if hi, err := gohost.Info(); err == nil {
		m.OS = strings.TrimSpace(hi.Platform + " " + hi.PlatformVersion)
		m.Kernel = hi.KernelVersion
		if hi.VirtualizationRole == "guest" {
			m.Virtual = hi.VirtualizationSystem
		}
	}
	return m
}

// describeInterpreter asks the interpreter its version and, for each
// package, the version it imports (by importing it: that is what a task
// needs to work).
func describeInterpreter(ctx context.Context, path string, packages []string) (InterpreterInfo, error) {
	const probe = `import importlib, json, sys
out = {"version": sys.version.split()[0], "packages": {}}
for name in sys.argv[1:]:
    try:
        out["packages"][name] = importlib.import_module(name).__version__
    except Exception:
        out["packages"][name] = ""
print(json.dumps(out))`
	cmd := exec.CommandContext(ctx, path, append([]string{"-c", probe}, packages...)...)
	raw, err := cmd.Output()
	if err != nil {
		return InterpreterInfo{}, fmt.Errorf("asking %s its version: %w", path, err)
	}
	in := InterpreterInfo{Path: path}
	if err := json.Unmarshal(raw, &in); err != nil {
		return InterpreterInfo{}, fmt.Errorf("%s answered %q: %w", path, raw, err)
	}
	return in, nil
}

// buildCommit is the revision the binary was built from, when the build
// recorded it (not with -buildvcs=false: the Makefile passes it instead).
func buildCommit() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	var rev, dirty string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = " (with uncommitted changes)"
			}
		}
	}
	if rev == "" {
		return ""
	}
	return rev + dirty
}

// WriteJSON writes the results to path.
func (r *Results) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// cell is the cell of scenario and setup, or nil.
func (r *Results) cell(scenario, setup string) *Cell {
	for i := range r.Cells {
		if r.Cells[i].Scenario == scenario && r.Cells[i].Setup == setup {
			return &r.Cells[i]
		}
	}
	return nil
}

// ReadResults reads a benchmark-results.json, to render its report again.
func ReadResults(path string) (*Results, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Results
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}
