package benchreport

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pyrunner/pyrunner/internal/excerpt"
	"github.com/pyrunner/pyrunner/internal/faults"
	"github.com/pyrunner/pyrunner/internal/loadgen"
)

// Options says what Run measures and where.
type Options struct {
	// Binary is the built pyrunner each of its setups runs as its own
	// process; Interpreter the Python its tasks run on.
	Binary      string
	Interpreter string
	// Tasks is how many run one at a time after warm-up (200: the
	// founding table's n, for the latency percentiles and the throughput
	// at concurrency 1); ThroughputTasks how many then run Concurrency at
	// a time for the throughput (100 and 4; 0: as many as Tasks).
	Tasks           int
	ThroughputTasks int
	Concurrency     int
	// Scenarios and Setups restrict the run to these keys; empty: all.
	Scenarios []string
	Setups    []string
	// Previous is another pyrunner binary (the build before a change) whose
	// worker pool is measured as a column of its own, or "".
	Previous string
	// Official is the command line that starts n8n's official Python
	// runner (PYRUNNER_BENCH_OFFICIAL_RUNNER), or "".
	Official string
	// CacheDir is where Pyodide is installed from npm on first use.
	CacheDir string
	// Pyodide versions to measure, one column each.
	Pyodide []string
	// Version and Commit are pyrunner's, for the results (Commit: the
	// build's own record when empty).
	Version string
	Commit  string
	// Progress receives a line per cell (nil: discarded).
	Progress io.Writer
}

// Cell is one scenario in one setup.
type Cell struct {
	Scenario string `json:"scenario"`
	Setup    string `json:"setup"`
	// Skipped says why the cell was not measured (packages missing or not
	// loadable, the setup not run here); Error why it failed.
	Skipped string `json:"skipped,omitempty"`
	Error   string `json:"error,omitempty"`
	// ComparedWith is the setup whose result this one's was checked
	// against (empty for that first setup itself); Mismatch says how they
	// differ.
	ComparedWith string `json:"compared_with,omitempty"`
	Mismatch     string `json:"mismatch,omitempty"`
	Warmup       int    `json:"warmup_tasks,omitempty"`
	// C1 is the closed loop at concurrency 1 (latency percentiles and
	// throughput), C4 the one at Options.Concurrency (throughput).
	C1 *loadgen.Result `json:"c1,omitempty"`
	C4 *loadgen.Result `json:"c4,omitempty"`
	// FaultsPerTask is the minor page faults of the runner's processes per
	// task during C1 (pyrunner's setups only).
	FaultsPerTask float64 `json:"faults_per_task,omitempty"`
	// FirstError is the first failure among the measured tasks.
	FirstError string  `json:"first_error,omitempty"`
	Seconds    float64 `json:"seconds"`
}

// Measured is a cell with numbers.
func (c *Cell) Measured() bool { return c.C1 != nil }

// sound is a measured cell whose tasks all succeeded with the right result.
func (c *Cell) sound() bool {
	return c != nil && c.Measured() && c.C4 != nil && c.Mismatch == "" && c.C1.Failed+c.C4.Failed == 0
}

// Run measures every scenario in every setup and returns the results; it
// fails only when nothing can be measured at all.
func Run(ctx context.Context, opts Options) (*Results, error) {
	started := time.Now()
	progress := opts.Progress
	if progress == nil {
		progress = io.Discard
	}
	logf := func(format string, args ...any) { fmt.Fprintf(progress, format+"\n", args...) }
	opts.Tasks, opts.Concurrency = max(opts.Tasks, 1), max(opts.Concurrency, 1)
	if opts.ThroughputTasks <= 0 {
		opts.ThroughputTasks = opts.Tasks
	}
	if opts.Commit == "" {
		opts.Commit = buildCommit()
	}
	res := &Results{Date: started.UTC(), Version: opts.Version, Commit: opts.Commit, Tasks: opts.Tasks,
		ThroughputTasks: opts.ThroughputTasks, Concurrency: opts.Concurrency, Machine: describeMachine()}
	in, err := describeInterpreter(ctx, opts.Interpreter, []string{"numpy", "pandas"})
	if err != nil {
		return nil, err
	}
	res.Interpreter = in

	// One cache directory for every runner of the run: the runtime is
	// installed once, and the cached setup's environments are built when
	// first used (in the warm-up) and kept. Task users must read it.
	cacheDir, err := os.MkdirTemp("", "pyrunner-bench-cache-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(cacheDir)
	if err := os.Chmod(cacheDir, 0o755); err != nil {
		return nil, err
	}
	deny, err := benchBuiltinsDeny(ctx)
	if err != nil {
		return nil, err
	}
	h := &host{binary: opts.Binary, interpreter: in.Path, cacheDir: cacheDir, builtinsDeny: deny}

	setups := pyrunnerSetups(h)
	if opts.Previous != "" {
		version, err := binaryVersion(ctx, opts.Previous)
		if err != nil {
			return nil, err
		}
		previous, err := previousSetup(h, opts.Previous, version)
		if err != nil {
			return nil, err
		}
		// Right after this binary's worker pool: the two measured minutes
		// apart. Given, it is measured whatever Setups says.
		at := slices.IndexFunc(setups, func(s Setup) bool { return s.Key == "pool" }) + 1
		setups = slices.Insert(setups, at, previous)
		if len(opts.Setups) > 0 {
			opts.Setups = append(slices.Clone(opts.Setups), previousKey)
		}
	}
	setups = append(setups, officialSetup(h, opts.Official))
	for _, v := range opts.Pyodide {
		if !selected(opts.Setups, "pyodide-"+v) {
			continue
		}
		s, info := pyodideSetup(ctx, v, opts.CacheDir, logf)
		setups = append(setups, s)
		if info != nil {
			res.Pyodide = append(res.Pyodide, info)
		}
	}
	setups = append(setups, cpythonSetup(in.Path))
	setups = slices.DeleteFunc(setups, func(s Setup) bool { return !selected(opts.Setups, s.Key) })
	for _, s := range setups {
		res.Setups = append(res.Setups, SetupInfo{Key: s.Key, Title: s.Title, Measured: s.Measured, NotRun: s.NotRun, Pyrunner: s.pyrunner})
	}

	var scenarios []Scenario
	for _, sc := range Scenarios() {
		if !selected(opts.Scenarios, sc.Key) {
			continue
		}
		info := ScenarioInfo{Key: sc.Key, Title: sc.Title, Packages: sc.Packages, Items: len(sc.Items)}
		var missing []string
		for _, p := range sc.Packages {
			if in.Packages[p] == "" {
				missing = append(missing, p)
			}
		}
		if len(missing) > 0 {
			info.Skipped = fmt.Sprintf("skipped: %s cannot import %s (Debian: apt-get install %s)",
				in.Path, strings.Join(missing, " and "), debianPackages(missing))
			logf("%s: %s", sc.Title, info.Skipped)
		} else {
			scenarios = append(scenarios, sc)
		}
		res.Scenarios = append(res.Scenarios, info)
	}
	if len(scenarios) == 0 || len(setups) == 0 {
		return nil, errors.New("no scenario and setup left to measure")
	}

	eta := newEstimator(scenarios, setups, opts)
	logf("Measuring %d scenarios × %d setups, %d tasks at concurrency 1 and %d at %d after warm-up; about %s",
		len(scenarios), len(setups), opts.Tasks, opts.ThroughputTasks, opts.Concurrency, eta.left().Round(10*time.Second))
	for _, sc := range scenarios {
		var reference *referenceResult
		for _, s := range setups {
			cell := measureCell(ctx, s, sc, opts, &reference)
			res.Cells = append(res.Cells, cell)
			eta.done(sc, s, time.Duration(cell.Seconds*float64(time.Second)))
			logf("[%2d/%d] %-8s %-22s %s  (%s; about %s left)", len(res.Cells), len(scenarios)*len(setups),
				sc.Key, s.Key, cell.summary(), time.Duration(cell.Seconds*float64(time.Second)).Round(100*time.Millisecond),
				eta.left().Round(5*time.Second))
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
		}
	}
	res.Seconds = time.Since(started).Seconds()
	return res, nil
}

// referenceResult is the first measured setup's result for a scenario,
// which every other setup's must equal.
type referenceResult struct {
	setup string
	value any
}

// measureCell starts the setup for the scenario, warms it up, checks its
// result against the reference, then measures at concurrency 1 and c.
func measureCell(ctx context.Context, s Setup, sc Scenario, opts Options, reference **referenceResult) (cell Cell) {
	started := time.Now()
	cell = Cell{Scenario: sc.Key, Setup: s.Key}
	defer func() { cell.Seconds = time.Since(started).Seconds() }()
	if s.start == nil {
		cell.Skipped = s.NotRun
		return cell
	}
	t, err := s.start(ctx, sc)
	var na *notAvailableError
	switch {
	case errors.As(err, &na):
		cell.Skipped = na.reason
		return cell
	case err != nil:
		cell.Error = err.Error()
		return cell
	}
	defer t.Close()

	// Warm-up: at least 3 tasks one at a time, then until 2 s or 20 tasks
	// (the cached setup builds its environment in the first).
	warmStart := time.Now()
	for cell.Warmup < 3 || (cell.Warmup < 20 && time.Since(warmStart) < 2*time.Second) {
		_, result, err := t.Run(ctx, cell.Warmup == 0)
		if err != nil {
			cell.Error = "warm-up: " + excerpt.Of(err.Error())
			return cell
		}
		if cell.Warmup == 0 {
			cell.ComparedWith, cell.Mismatch = compareResult(reference, s.Key, result)
		}
		cell.Warmup++
	}

	var once sync.Once
	run := func(int) (time.Duration, bool) {
		started := time.Now()
		d, _, err := t.Run(ctx, false)
		if err != nil {
			once.Do(func() { cell.FirstError = excerpt.Of(err.Error()) })
			// Its time to the failure, not a zero that would pull the
			// percentiles down.
			return time.Since(started), false
		}
		return d, true
	}
	// Then a round at the throughput measurement's concurrency, so that
	// the processes it needs exist and are warm too.
	warm := loadgen.ClosedLoop(3*opts.Concurrency, opts.Concurrency, run)
	cell.Warmup += warm.Tasks
	if warm.Failed > 0 {
		cell.Error = "warm-up: " + cell.FirstError
		return cell
	}
	pid := t.PID()
	before, faultErr := treeMinor(pid)
	c1 := loadgen.ClosedLoop(opts.Tasks, 1, run)
	after, faultErr2 := treeMinor(pid)
	if pid > 0 && faultErr == nil && faultErr2 == nil {
		cell.FaultsPerTask = float64(after-before) / float64(opts.Tasks)
	}
	c4 := loadgen.ClosedLoop(opts.ThroughputTasks, opts.Concurrency, run)
	cell.C1, cell.C4 = &c1, &c4
	return cell
}

func treeMinor(pid int) (uint64, error) {
	if pid <= 0 {
		return 0, errors.New("no process")
	}
	return faults.TreeMinor(pid)
}

// compareResult sets the reference from the first result it is given; for
// a later one it returns the reference's setup and how the result differs
// from the reference's ("" when equal). Results compare as JSON values:
// Pyodide's 11 and CPython's 11.0 are the same number.
func compareResult(reference **referenceResult, setup string, raw json.RawMessage) (with, mismatch string) {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", fmt.Sprintf("the result is not JSON: %v", err)
	}
	if *reference == nil {
		*reference = &referenceResult{setup: setup, value: v}
		return "", ""
	}
	with = (*reference).setup
	if reflect.DeepEqual((*reference).value, v) {
		return with, ""
	}
	return with, fmt.Sprintf("the result differs from %s's: %s", with, excerpt.Of(string(raw)))
}

func (c *Cell) summary() string {
	switch {
	case c.Skipped != "":
		return excerpt.Of(c.Skipped)
	case c.Error != "":
		return "FAILED: " + excerpt.Of(c.Error)
	}
	s := fmt.Sprintf("p50 %s  p99 %s  %.1f tasks/s, at c=%d %.1f tasks/s", ms(c.C1.P50ms), ms(c.C1.P99ms),
		c.C1.PerSecond, c.C4.Concurrency, c.C4.PerSecond)
	if c.FaultsPerTask > 0 {
		s += ", " + countText(c.FaultsPerTask) + " faults/task"
	}
	if failed := c.C1.Failed + c.C4.Failed; failed > 0 {
		s += fmt.Sprintf(", %d FAILED: %s", failed, c.FirstError)
	}
	if c.Mismatch != "" {
		s += ", WRONG RESULT"
	}
	return s
}

func selected(keys []string, key string) bool { return len(keys) == 0 || slices.Contains(keys, key) }

func debianPackages(modules []string) string {
	out := make([]string, len(modules))
	for i, m := range modules {
		out[i] = "python3-" + m
	}
	return strings.Join(out, " ")
}

// estimator predicts the time left from a rough per-task cost of each
// cell, scaled by how the cells measured so far compared with their
// prediction.
type estimator struct {
	opts      Options
	remaining map[[2]string]time.Duration
	predicted time.Duration // of the cells done
	actual    time.Duration
}

func newEstimator(scenarios []Scenario, setups []Setup, opts Options) *estimator {
	e := &estimator{opts: opts, remaining: map[[2]string]time.Duration{}}
	for _, sc := range scenarios {
		for _, s := range setups {
			e.remaining[[2]string{sc.Key, s.Key}] = e.predict(sc, s)
		}
	}
	return e
}

// predict: a start, up to 2 s of warm-up, n tasks at c=1 and n at c
// spread over the cores, each costing what it cost on this project's
// slower 2-core VM.
func (e *estimator) predict(sc Scenario, s Setup) time.Duration {
	if s.start == nil {
		return 0
	}
	perTask := map[string]float64{"direct": 85, "official": 100, "pool": 20, previousKey: 20, "cached": 20, "reuse": 3, "workflow": 3, "cpython": 1}[s.Key]
	if perTask == 0 {
		perTask = 6 // Pyodide
	}
	imports := map[string]float64{"numpy": 90, "pandas": 400}[sc.Key]
	switch s.Key {
	case "direct", "official", "pool", previousKey:
		perTask += imports
	case "cached":
		perTask += imports / 5
	case "reuse", "workflow", "cpython":
		perTask += imports / 50
	}
	spread := float64(min(e.opts.Concurrency, runtime.NumCPU()))
	tasks := float64(e.opts.Tasks) + float64(e.opts.ThroughputTasks)/spread
	return 3*time.Second + time.Duration(perTask*tasks)*time.Millisecond + min(2*time.Second, time.Duration(perTask*20)*time.Millisecond)
}

func (e *estimator) done(sc Scenario, s Setup, took time.Duration) {
	key := [2]string{sc.Key, s.Key}
	e.predicted += e.remaining[key]
	e.actual += took
	delete(e.remaining, key)
}

func (e *estimator) left() time.Duration {
	var left time.Duration
	for _, d := range e.remaining {
		left += d
	}
	if e.predicted > 0 {
		left = time.Duration(float64(left) * float64(e.actual) / float64(e.predicted))
	}
	return left
}

// ms formats milliseconds with three significant figures or so.
func ms(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f ms", v)
	case v >= 10:
		return fmt.Sprintf("%.1f ms", v)
	default:
		return fmt.Sprintf("%.2f ms", v)
	}
}

// DefaultCacheDir is where Pyodide is installed: PYRUNNER_BENCH_CACHE, or
// pyrunner-bench under the user's cache directory.
func DefaultCacheDir() string {
	if dir := os.Getenv("PYRUNNER_BENCH_CACHE"); dir != "" {
		return dir
	}
	if dir, err := os.UserCacheDir(); err == nil {
		return filepath.Join(dir, "pyrunner-bench")
	}
	return filepath.Join(os.TempDir(), "pyrunner-bench")
}

// countText is a count per task or per second: one decimal below 10.
func countText(v float64) string {
	if v < 10 {
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.0f", v)
}
