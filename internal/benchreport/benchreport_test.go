package benchreport

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pyrunner/pyrunner/broker/fakebroker"
	"github.com/pyrunner/pyrunner/internal/faults"
	"github.com/pyrunner/pyrunner/internal/loadgen"
)

// binary is pyrunner, built once for the tests that run it.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pyrunner-benchreport-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "pyrunner")
	build := exec.Command("go", "build", "-o", binary, "../../cmd/pyrunner")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building pyrunner:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// The bench's sandbox is n8n's default with open() allowed, and nothing
// else loosened: the 21 other names of n8n's 22.
func TestBuiltinsDenyIsTheDefaultWithoutOpen(t *testing.T) {
	deny, err := benchBuiltinsDeny(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	names := strings.Split(deny, ",")
	if len(names) != 21 || slices.Contains(names, "open") || !slices.Contains(names, "eval") || !slices.Contains(names, "getattr") {
		t.Errorf("the bench denies %v", names)
	}
}

func TestCompareResult(t *testing.T) {
	var ref *referenceResult
	if with, d := compareResult(&ref, "direct", json.RawMessage(`[{"json":{"a":11.0,"b":[1,2]}}]`)); with != "" || d != "" || ref == nil {
		t.Fatalf("first result: compared with %q: %q, reference %v", with, d, ref)
	}
	// Pyodide writes 11 where CPython writes 11.0: the same JSON number.
	if with, d := compareResult(&ref, "pyodide", json.RawMessage(`[{"json":{"b":[1,2],"a":11}}]`)); with != "direct" || d != "" {
		t.Errorf("equal results: compared with %q: %s", with, d)
	}
	if _, d := compareResult(&ref, "pool", json.RawMessage(`[{"json":{"a":11.5,"b":[1,2]}}]`)); !strings.Contains(d, "differs from direct's") {
		t.Errorf("a different result: %q", d)
	}
	if _, d := compareResult(&ref, "pool", json.RawMessage(`nope`)); !strings.Contains(d, "not JSON") {
		t.Errorf("not JSON: %q", d)
	}
}

// sampleResults is a run with every kind of cell: measured, not
// loadable, a column not run, a skipped row, a failure.
func sampleResults() *Results {
	m := func(scenario, setup string, p50 float64) Cell {
		with := "direct"
		if setup == "direct" {
			with = ""
		}
		return Cell{Scenario: scenario, Setup: setup, Warmup: 5, ComparedWith: with,
			C1: &loadgen.Result{Tasks: 200, Concurrency: 1, P50ms: p50, P95ms: p50 * 1.2, P99ms: p50 * 1.5, PerSecond: 1000 / p50},
			C4: &loadgen.Result{Tasks: 200, Concurrency: 4, P50ms: p50 * 2, PerSecond: 1800 / p50}, FaultsPerTask: 100}
	}
	r := &Results{Date: time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC), Version: "v1", Tasks: 200, ThroughputTasks: 100, Concurrency: 4,
		Machine:     Machine{CPU: "Test CPU", Cores: 2, MemoryGB: 24},
		Interpreter: InterpreterInfo{Path: "/usr/bin/python3", Version: "3.11.2", Packages: map[string]string{"numpy": "1.24.2", "pandas": ""}},
		Setups: []SetupInfo{{Key: "direct", Title: "Direct", Pyrunner: true}, {Key: "pool", Title: "Pool", Pyrunner: true},
			{Key: "reuse", Title: "Reuse", Pyrunner: true}, {Key: "workflow", Title: "Workflow", Pyrunner: true},
			{Key: "official", Title: "n8n's", NotRun: "not run: set it"},
			{Key: pyodideKey, Title: "Pyodide"}, {Key: "cpython", Title: "CPython"}},
		Scenarios: []ScenarioInfo{{Key: "calc", Title: "Simple calculation"}, {Key: "numpy", Title: "NumPy operations", Packages: []string{"numpy"}},
			{Key: "pandas", Title: "pandas DataFrame", Skipped: "skipped: no pandas"}},
	}
	r.Cells = []Cell{m("calc", "direct", 80), m("calc", "pool", 16), m("calc", "reuse", 1.25),
		{Scenario: "calc", Setup: "official", Skipped: "not run: set it"}, m("calc", pyodideKey, 2.5),
		m("numpy", "direct", 160), {Scenario: "numpy", Setup: "pool", Error: "warm-up: boom"}, m("numpy", "reuse", 2),
		{Scenario: "numpy", Setup: "official", Skipped: "not run: set it"},
		{Scenario: "numpy", Setup: pyodideKey, Skipped: "not loadable offline: No module named 'numpy'"},
		m("calc", "cpython", 0.25), m("numpy", "cpython", 0.5),
		// Faster than the worker pool, but not isolated: never the best isolated.
		m("calc", "workflow", 1.5), {Scenario: "numpy", Setup: "workflow", Error: "boom"}}
	r.Cells[7].Mismatch = "the result differs from direct's: [...]"
	return r
}

func TestMarkdown(t *testing.T) {
	md := sampleResults().Markdown()
	for _, want := range []string{
		"| Simple calculation | 80.0 ms | 16.0 ms | 1.25 ms | 1.50 ms | not run | 2.50 ms | 0.25 ms | Reuse (1.25 ms) | 64.0x [5.0x] | 2.0x [0.16x] |",
		// numpy's reuse cell gave a wrong result: it is no one's best.
		"| NumPy operations | 160 ms | failed | 2.00 ms (!) | failed | not run | not loadable offline | 0.50 ms | — | — | — |",
		"NumPy operations: no pyrunner setup ran it without a failure or a wrong result.",
		"the best is worker pool at 16.0 ms: 5.0x faster than direct execution and 6.4x slower than Pyodide 0.28.3. " +
			"Where that is under 5x: each isolated task is a process forked from a warm zygote, with 100 minor page faults " +
			"per task against 100 in reuse, and it takes 14.8 ms more than a reuse task here.",
		"| calc | pool | 16.0 ms | 19.2 ms | 24.0 ms | 62.5 | 112.5 | 100 | 5 | same as direct |",
		"| pandas DataFrame | skipped | skipped | skipped | skipped | skipped | skipped | skipped | — | — | — |",
		"CPython itself, in-process, runs it in 0.25 ms: Pyodide is 10.0x that, the most any runner could gain over it here, " +
			"and pyrunner's protocol, JSON and sandbox add 1.00 ms to the floor.",
		"pandas DataFrame: skipped: no pandas",
		"numpy in pool failed: warm-up: boom",
		"numpy in workflow failed: boom",
		"numpy in " + pyodideKey + ": not loadable offline: No module named 'numpy'",
		"Pyodide 0.28.3 takes 2.50 ms: pyrunner is 2.0x faster, under the 5x promised.",
		"**the result differs from direct's: [...]**",
		"![Median latency per task, log scale](benchmark-chart.svg)",
		"/usr/bin/python3 (Python 3.11.2) with numpy 1.24.2 and pandas missing",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("the report lacks %q:\n%s", want, md)
		}
	}
}

// The isolation section: the worker pool against reuse and workflow mode
// of the same run, and against the previous binary's pool once that ran. A
// scenario whose pool cell failed has no row.
func TestMarkdownIsolationCost(t *testing.T) {
	r := sampleResults()
	section := func() string {
		md := r.Markdown()
		_, after, ok := strings.Cut(md, "## What isolation costs")
		if !ok {
			t.Fatalf("no isolation section:\n%s", md)
		}
		before, _, _ := strings.Cut(after, "\n## ")
		return before
	}
	calc := "| Simple calculation | 16.0 ms / 62 / 112 / 100 | 1.25 ms / 800 / 1440 / 100 | 1.50 ms / 667 / 1200 / 100 | 12.8x |"
	got := section()
	if !strings.Contains(got, calc+"\n") || strings.Contains(got, "NumPy") || strings.Contains(got, "Previous") {
		t.Errorf("without a previous binary, want the row %q and no other:\n%s", calc, got)
	}
	prev := *r.cell("calc", "pool")
	prev.Setup = previousKey
	prev.C1 = &loadgen.Result{Tasks: 200, Concurrency: 1, P50ms: 24, PerSecond: 41.7}
	prev.C4 = &loadgen.Result{Tasks: 100, Concurrency: 4, PerSecond: 75}
	prev.FaultsPerTask = 150
	r.Setups = append(r.Setups, SetupInfo{Key: previousKey, Title: "Worker pool of the previous binary (pyrunner old, isolated)"})
	r.Cells = append(r.Cells, prev)
	got = section()
	if want := calc + " 24.0 ms / 42 / 75 / 150 | 1.5x |\n"; !strings.Contains(got, want) || !strings.Contains(got, "pool tasks/s at 4 over the previous") {
		t.Errorf("with a previous binary, want the row %q:\n%s", want, got)
	}
	// A previous cell that failed, and a reuse cell with a wrong result:
	// no ratio from either.
	r.Cells[len(r.Cells)-1].C1.Failed = 1
	r.cell("calc", "reuse").Mismatch = "differs"
	if want := "| 1.50 ms / 667 / 1200 / 100 | — | — | — |\n"; !strings.Contains(section(), want) {
		t.Errorf("with unsound cells, want the row to end in %q:\n%s", want, section())
	}
}

func TestChart(t *testing.T) {
	r := sampleResults()
	svg := r.Chart()
	dec := xml.NewDecoder(strings.NewReader(svg))
	bars := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			if err.Error() != "EOF" {
				t.Fatalf("the chart is not XML: %v\n%s", err, svg)
			}
			break
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "title" {
			bars++
		}
	}
	measured := 0
	for _, c := range r.Cells {
		if c.Measured() {
			measured++
		}
	}
	if bars != measured {
		t.Errorf("%d bars, want one per measured cell (%d)", bars, measured)
	}
	if !strings.Contains(svg, ">not loadable offline</text>") {
		t.Errorf("the chart does not say why NumPy has no Pyodide bar:\n%s", svg)
	}
	if !strings.Contains(svg, "n8n&apos;s runner (not run)") && !strings.Contains(svg, "n8n's runner (not run)") {
		t.Errorf("the legend does not say the official runner was not run:\n%s", svg)
	}
}

func TestWriteAndReadBack(t *testing.T) {
	dir := t.TempDir()
	r := sampleResults()
	paths, err := r.Write(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 3 {
		t.Fatalf("wrote %v", paths)
	}
	back, err := ReadResults(filepath.Join(dir, ResultsFile))
	if err != nil {
		t.Fatal(err)
	}
	if back.Markdown() != r.Markdown() {
		t.Errorf("the report of the results read back differs")
	}
}

// A short run through the real parts: the built binary against the fake
// broker in two setups, pyrunner itself started as "the official runner"
// (with a grant token, as n8n's launcher starts one) and the in-process
// CPython floor, on the calculation and file scenarios; and, as "the
// previous binary" (-previous, measured though Setups does not name it), a
// wrapper that says it is an older pyrunner and runs this one. Every cell
// is measured, and every result equals the first setup's.
func TestRunMeasuresEveryCell(t *testing.T) {
	official := "exec " + binary + " run"
	dir := t.TempDir()
	previous, ran := filepath.Join(dir, "pyrunner-old"), filepath.Join(dir, "ran")
	wrapper := fmt.Sprintf("#!/bin/sh\nif [ \"$1\" = version ]; then echo 'pyrunner old'; exit 0; fi\ntouch %s\nexec %s \"$@\"\n", ran, binary)
	if err := os.WriteFile(previous, []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	res, err := Run(context.Background(), Options{Binary: binary, Interpreter: testInterpreter(t), Tasks: 5, Concurrency: 2,
		Scenarios: []string{"calc", "files"}, Setups: []string{"direct", "reuse", "official", "cpython"}, Official: official,
		Previous: previous, Version: "test", Progress: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Cells) != 10 {
		t.Fatalf("%d cells, want 10: %+v", len(res.Cells), res.Cells)
	}
	if i := slices.IndexFunc(res.Setups, func(s SetupInfo) bool { return s.Key == previousKey }); i < 0 ||
		!strings.Contains(res.Setups[i].Title, "(pyrunner old, ") || res.Setups[i].Pyrunner {
		t.Errorf("the previous binary's column: %+v", res.Setups)
	}
	if _, err := os.Stat(ran); err != nil {
		t.Errorf("the previous binary never ran: %v", err)
	}
	for _, c := range res.Cells {
		if !c.Measured() || c.Error != "" || c.Mismatch != "" || c.C1.Failed+c.C4.Failed != 0 {
			t.Errorf("cell %s/%s: %+v", c.Scenario, c.Setup, c)
			continue
		}
		if c.C1.Tasks != 5 || c.C4.Tasks != 5 || c.C4.Concurrency != 2 || c.Warmup < 3 {
			t.Errorf("cell %s/%s measured %+v and %+v after %d warm-up tasks", c.Scenario, c.Setup, *c.C1, *c.C4, c.Warmup)
		}
		// A new process per task faults in its pages: the count reaches
		// the runner's reaped children.
		if (c.Setup == "direct" || c.Setup == previousKey) && c.FaultsPerTask < 100 {
			t.Errorf("cell %s/%s: %.1f page faults per task counted", c.Scenario, c.Setup, c.FaultsPerTask)
		}
	}
}

// A -previous that is not a pyrunner stops the bench before it measures
// anything.
func TestPreviousMustBePyrunner(t *testing.T) {
	_, err := Run(context.Background(), Options{Binary: binary, Interpreter: testInterpreter(t), Tasks: 1,
		Scenarios: []string{"calc"}, Setups: []string{"cpython"}, Previous: "/bin/true", Progress: testWriter{t}})
	if err == nil || !strings.Contains(err.Error(), "not a pyrunner's version") {
		t.Errorf("Run with -previous /bin/true: %v", err)
	}
}

// A scenario whose packages the interpreter lacks is skipped, naming them
// and the Debian package.
func TestMissingPackagesSkipTheScenario(t *testing.T) {
	// Where task users can read it (t.TempDir is the test user's only).
	dir, err := os.MkdirTemp("", "pyrunner-bench-venv-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	venv := filepath.Join(dir, "venv")
	if out, err := exec.Command(testInterpreter(t), "-m", "venv", "--without-pip", venv).CombinedOutput(); err != nil {
		t.Fatalf("creating a bare venv: %v: %s", err, out)
	}
	res, err := Run(context.Background(), Options{Binary: binary, Interpreter: filepath.Join(venv, "bin", "python"), Tasks: 2,
		Concurrency: 1, Scenarios: []string{"calc", "pandas"}, Setups: []string{"reuse"}, Progress: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Scenarios) != 2 || res.Scenarios[1].Skipped == "" {
		t.Fatalf("scenarios %+v", res.Scenarios)
	}
	if s := res.Scenarios[1].Skipped; !strings.Contains(s, "cannot import pandas") || !strings.Contains(s, "python3-pandas") {
		t.Errorf("skipped: %q", s)
	}
	if len(res.Cells) != 1 || !res.Cells[0].Measured() {
		t.Errorf("cells %+v", res.Cells)
	}
}

// The Pyodide column, installed from npm into a cache directory as `make
// bench` does: the calculation runs and gives the same result as
// pyrunner, and a scenario needing numpy is marked as not loadable when
// Pyodide cannot fetch it (no internet here), never measured.
func TestPyodideColumn(t *testing.T) {
	if _, err := findNode(context.Background()); err != nil {
		t.Skipf("no usable Node here: %v", err)
	}
	if _, err := exec.LookPath("npm"); err != nil {
		t.Skip("npm is not on PATH to install Pyodide")
	}
	res, err := Run(context.Background(), Options{Binary: binary, Interpreter: testInterpreter(t), Tasks: 5, Concurrency: 2,
		Scenarios: []string{"calc", "numpy"}, Setups: []string{"reuse", pyodideKey}, CacheDir: DefaultCacheDir(),
		Pyodide: []string{PyodideN8N}, Progress: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range res.Setups {
		if s.Key == pyodideKey && s.NotRun != "" {
			t.Skipf("Pyodide could not be installed here: %s", s.NotRun)
		}
	}
	calc := res.cell("calc", pyodideKey)
	if calc == nil || !calc.Measured() || calc.Mismatch != "" || calc.C1.Failed != 0 {
		t.Fatalf("calc in Pyodide: %+v", calc)
	}
	if len(res.Pyodide) != 1 || res.Pyodide[0].Python == "" {
		t.Errorf("Pyodide info %+v", res.Pyodide)
	}
	for _, sc := range res.Scenarios {
		if sc.Key == "numpy" && sc.Skipped != "" {
			// The host's Python lacks numpy (a fresh machine; CI installs
			// Debian's): the scenario has no cells in any setup.
			t.Logf("the numpy half not checked: %s", sc.Skipped)
			return
		}
	}
	numpy := res.cell("numpy", pyodideKey)
	if numpy == nil {
		t.Fatal("no numpy cell")
	}
	if !numpy.Measured() && !strings.HasPrefix(numpy.Skipped, "not loadable offline: ") {
		t.Errorf("numpy in Pyodide neither measured nor marked not loadable: %+v", numpy)
	}
}

// testInterpreter is Debian's Python, which task users can read when the
// tests run as root, or else python3 on PATH.
func testInterpreter(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		return "/usr/bin/python3"
	}
	path, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	return path
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Nothing the bench starts (runners, their Python processes) outlives it,
// whether it is interrupted or killed.
func TestNothingOutlivesTheBench(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd := exec.Command(binary, "bench", "-o", t.TempDir(), "-n", "1000000", "-scenarios", "calc", "-setups", "reuse")
			cmd.Env = append(os.Environ(), "N8N_PYTHON_INTERPRETER="+testInterpreter(t))
			logs := &fakebroker.SyncBuffer{}
			cmd.Stdout, cmd.Stderr = logs, logs
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan struct{})
			go func() { _ = cmd.Wait(); close(exited) }()
			// Tasks are running once the runner has a Python process.
			var started []int
			waitFor(t, func() bool {
				started = faults.Descendants(cmd.Process.Pid)
				for _, pid := range started {
					argv, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
					if string(argv) == binary+"\x00run\x00" && len(faults.Descendants(pid)) > 0 {
						return true
					}
				}
				return false
			}, "the bench's runner and a Python process", logs)
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			<-exited
			waitFor(t, func() bool {
				for _, pid := range started {
					if alive(pid) {
						return false
					}
				}
				return true
			}, fmt.Sprintf("processes %v to end", started), logs)
		})
	}
}

// waitFor polls cond until it holds; a minute without is a hang, not a
// measurement.
func waitFor(t *testing.T, cond func() bool, what string, logs *fakebroker.SyncBuffer) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited a minute for %s; the bench said:\n%s", what, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alive: pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}
