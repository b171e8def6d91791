package benchreport

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// The files Write writes.
const (
	ResultsFile = "benchmark-results.json"
	ReportFile  = "benchmark-report.md"
	ChartFile   = "benchmark-chart.svg"
)

// Write writes the results, the report and its chart into dir and
// returns their paths.
func (r *Results) Write(dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	paths := []string{filepath.Join(dir, ResultsFile), filepath.Join(dir, ReportFile), filepath.Join(dir, ChartFile)}
	if err := r.WriteJSON(paths[0]); err != nil {
		return nil, err
	}
	if err := os.WriteFile(paths[1], []byte(r.Markdown()), 0o644); err != nil {
		return nil, err
	}
	return paths, os.WriteFile(paths[2], []byte(r.Chart()), 0o644)
}

// baseline is the setup the improvement column compares with, and the
// pyrunner setups that compete for "best".
const baseline = "direct"

// isolatedSetups are the pyrunner setups that run each task in a fresh process.
var isolatedSetups = map[string]bool{"pool": true, "cached": true}

// best is the pyrunner setup (other than direct execution) with the
// lowest median for the scenario, among those whose tasks all succeeded
// with the right result; nil if none.
func (r *Results) best(scenario string, isolatedOnly bool) (*Cell, *SetupInfo) {
	var bc *Cell
	var bs *SetupInfo
	for i := range r.Setups {
		s := &r.Setups[i]
		if !s.Pyrunner || s.Key == baseline || (isolatedOnly && !isolatedSetups[s.Key]) {
			continue
		}
		if c := r.cell(scenario, s.Key); c.sound() && (bc == nil || c.C1.P50ms < bc.C1.P50ms) {
			bc, bs = c, s
		}
	}
	return bc, bs
}

// pyodideKey is the Pyodide column the improvement column compares with:
// the version n8n shipped.
const pyodideKey = "pyodide-" + PyodideN8N

// Markdown is benchmark-report.md.
func (r *Results) Markdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("# pyrunner benchmark report\n\n")
	p("%s\n\n", r.describeRun())
	p("## Median latency per task\n\n")
	p("Each cell is the median (p50) of %d tasks run one at a time after warm-up. The improvement columns "+
		"divide direct execution's and Pyodide %s's medians by the best pyrunner setup's (the fastest of "+
		"worker pool, cached environment, reuse and workflow; the best isolated one in brackets).\n\n", r.Tasks, PyodideN8N)
	p("| Scenario |")
	for _, s := range r.Setups {
		p(" %s |", shortTitle(s))
	}
	p(" Best pyrunner | vs direct | vs Pyodide %s |\n|---|", PyodideN8N)
	for range r.Setups {
		p("---:|")
	}
	p("---|---:|---:|\n")
	for _, sc := range r.Scenarios {
		p("| %s |", sc.Title)
		for _, s := range r.Setups {
			p(" %s |", r.cellText(sc, s))
		}
		bc, bs := r.best(sc.Key, false)
		ic, _ := r.best(sc.Key, true)
		if bc == nil {
			p(" — | — | — |\n")
			continue
		}
		p(" %s (%s) | %s | %s |\n", shortTitle(*bs), ms(bc.C1.P50ms),
			ratioText(r.cell(sc.Key, baseline), bc, ic), ratioText(r.cell(sc.Key, pyodideKey), bc, ic))
	}
	p("\n![Median latency per task, log scale](%s)\n\n", ChartFile)
	r.notes(&b)
	p("\n## Reading\n\n")
	for _, line := range r.reading() {
		p("- %s\n", line)
	}
	r.isolationCost(&b)
	p("\n## Every cell\n\n")
	p("p50, p95 and p99 of the %d tasks at concurrency 1 and their throughput; the throughput of %d more at "+
		"concurrency %d; minor page faults per task of the runner and its processes during the first %d (pyrunner "+
		"only: the figure that does not depend on the machine's speed).\n\n", r.Tasks, r.ThroughputTasks, r.Concurrency, r.Tasks)
	p("| Scenario | Setup | p50 | p95 | p99 | tasks/s (c=1) | tasks/s (c=%d) | faults/task | warm-up | result |\n", r.Concurrency)
	p("|---|---|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, c := range r.Cells {
		if !c.Measured() {
			continue
		}
		faults := "—"
		if c.FaultsPerTask > 0 {
			faults = countText(c.FaultsPerTask)
		}
		check := "reference"
		if c.ComparedWith != "" {
			check = "same as " + c.ComparedWith
		}
		if c.Mismatch != "" {
			check = "**" + c.Mismatch + "**"
		}
		if failed := c.C1.Failed + c.C4.Failed; failed > 0 {
			check += fmt.Sprintf("; **%d tasks failed**: %s", failed, c.FirstError)
		}
		p("| %s | %s | %s | %s | %s | %.1f | %.1f | %s | %d | %s |\n", c.Scenario, c.Setup, ms(c.C1.P50ms), ms(c.C1.P95ms),
			ms(c.C1.P99ms), c.C1.PerSecond, c.C4.PerSecond, faults, c.Warmup, mdEscape(check))
	}
	p("\n## Setups\n\n")
	seen := map[string]bool{}
	for _, s := range r.Setups {
		p("- **%s** (`%s`): ", s.Title, s.Key)
		switch {
		case s.NotRun != "":
			p("%s\n", mdEscape(s.NotRun))
		case seen[s.Measured]:
			p("measured as the one above.\n")
		default:
			p("measured %s.\n", s.Measured)
		}
		seen[s.Measured] = true
	}
	p("\nPyodide and the CPython floor run one task at a time in one process, as an n8n process ran Pyodide: "+
		"at concurrency %d their tasks queue, so their throughput stays what it is at 1.\n", r.Concurrency)
	p("\nEvery pyrunner setup and the official runner get the same sandbox settings: n8n's defaults, with the standard " +
		"library and numpy and pandas allowed, and `open` not denied (the file scenario needs it). The scenarios' code " +
		"is in internal/benchreport/scenarios.go; every setup runs the same code on the same items, and every result is " +
		"checked against the first setup's.\n")
	return b.String()
}

func (r *Results) describeRun() string {
	m := r.Machine
	machine := fmt.Sprintf("%s, %d logical cores, %d GiB", orUnknown(m.CPU), m.Cores, m.MemoryGB)
	if m.OS != "" {
		machine += ", " + m.OS
	}
	if m.Kernel != "" {
		machine += ", Linux " + m.Kernel
	}
	if m.Virtual != "" {
		machine += ", a " + m.Virtual + " guest"
	}
	version := r.Version
	if r.Commit != "" {
		version += ", commit " + r.Commit
	}
	s := fmt.Sprintf("Measured on %s by `pyrunner bench` (pyrunner %s) on %s, in %.0f s.",
		r.Date.Format("2006-01-02 15:04 MST"), version, machine, r.Seconds)
	s += fmt.Sprintf(" pyrunner's tasks ran on %s (Python %s)", r.Interpreter.Path, r.Interpreter.Version)
	var pkgs []string
	for _, name := range []string{"numpy", "pandas"} {
		if v := r.Interpreter.Packages[name]; v != "" {
			pkgs = append(pkgs, name+" "+v)
		} else {
			pkgs = append(pkgs, name+" missing")
		}
	}
	s += " with " + strings.Join(pkgs, " and ") + "."
	for _, py := range r.Pyodide {
		s += fmt.Sprintf(" Pyodide %s (Python %s) ran under Node %s, loaded in %.1f s.", py.Version, orUnknown(py.Python), py.Node, py.LoadMs/1000)
	}
	return s
}

// cellText is a cell of the founding table.
func (r *Results) cellText(sc ScenarioInfo, s SetupInfo) string {
	c := r.cell(sc.Key, s.Key)
	switch {
	case sc.Skipped != "":
		return "skipped"
	case c == nil:
		return "—"
	case c.Skipped != "" && strings.HasPrefix(c.Skipped, "not loadable offline"):
		return "not loadable offline"
	case c.Skipped != "":
		return "not run"
	case c.Error != "":
		return "failed"
	}
	text := ms(c.C1.P50ms)
	if c.Mismatch != "" || c.C1.Failed+c.C4.Failed > 0 {
		text += " (!)"
	}
	return text
}

// notes are the table's footnotes: skipped rows, columns not run, cells
// not loadable or failed.
func (r *Results) notes(b *strings.Builder) {
	var notes []string
	for _, sc := range r.Scenarios {
		if sc.Skipped != "" {
			notes = append(notes, sc.Title+": "+sc.Skipped)
		}
	}
	for _, s := range r.Setups {
		if s.NotRun != "" {
			notes = append(notes, s.Title+": "+s.NotRun)
		}
	}
	for _, c := range r.Cells {
		switch {
		case c.Skipped != "" && strings.HasPrefix(c.Skipped, "not loadable offline"):
			notes = append(notes, fmt.Sprintf("%s in %s: %s", c.Scenario, c.Setup, c.Skipped))
		case c.Error != "":
			notes = append(notes, fmt.Sprintf("%s in %s failed: %s", c.Scenario, c.Setup, c.Error))
		case c.Mismatch != "" || (c.Measured() && c.C1.Failed+c.C4.Failed > 0):
			notes = append(notes, fmt.Sprintf("(!) %s in %s: see the cell's result below", c.Scenario, c.Setup))
		}
	}
	notes = append(notes, "Pyodide's latency is "+pyodideMeasured+"; pyrunner's is "+brokerSeen+".")
	for _, n := range notes {
		fmt.Fprintf(b, "- %s\n", mdEscape(n))
	}
}

// ratioText is "12.3x [4.5x]": other's median over best's, and over the
// best isolated setup's.
func ratioText(other, best, isolated *Cell) string {
	if other == nil || !other.Measured() {
		return "—"
	}
	text := times(other.C1.P50ms / best.C1.P50ms)
	if isolated != nil && isolated != best {
		text += " [" + times(other.C1.P50ms/isolated.C1.P50ms) + "]"
	}
	return text
}

// times is a ratio as "12.3x", or "0.15x" below 1, where one decimal
// would blur 6.7 times slower into "0.1x".
func times(f float64) string {
	if f < 1 {
		return fmt.Sprintf("%.2fx", f)
	}
	return fmt.Sprintf("%.1fx", f)
}

// reading is the numbers in plain words: per scenario, how the best
// pyrunner setup compares, and where it is under 5x, why.
func (r *Results) reading() []string {
	var lines []string
	for _, sc := range r.Scenarios {
		if sc.Skipped != "" {
			lines = append(lines, fmt.Sprintf("%s was not measured: %s.", sc.Title, sc.Skipped))
			continue
		}
		bc, bs := r.best(sc.Key, false)
		if bc == nil {
			lines = append(lines, fmt.Sprintf("%s: no pyrunner setup ran it without a failure or a wrong result.", sc.Title))
			continue
		}
		line := fmt.Sprintf("**%s**: fastest in %s at %s.", sc.Title, strings.ToLower(shortTitle(*bs)), ms(bc.C1.P50ms))
		direct, pyo := r.cell(sc.Key, baseline), r.cell(sc.Key, pyodideKey)
		if direct != nil && direct.Measured() {
			f := direct.C1.P50ms / bc.C1.P50ms
			line += fmt.Sprintf(" Direct execution takes %s: pyrunner is %s", ms(direct.C1.P50ms), fasterText(f))
			if f < 5 {
				line += fmt.Sprintf(", under 5x, because the task's own work (%s even in the fastest setup) is a large share "+
					"of what a new process per task costs, and only the process start and imports can be saved", ms(bc.C1.P50ms))
			}
			line += "."
		}
		if pool := r.cell(sc.Key, "pool"); direct != nil && direct.Measured() && pool != nil && pool.Measured() && len(sc.Packages) > 0 {
			line += fmt.Sprintf(" The worker pool without preloading takes %s: each isolated task imports %s again, which only the "+
				"cached environment (packages preloaded in the zygote), reuse or workflow mode avoids.", ms(pool.C1.P50ms), strings.Join(sc.Packages, " and "))
		}
		switch {
		case pyo == nil:
		case pyo.Skipped != "":
			line += fmt.Sprintf(" Pyodide %s could not run it: %s.", PyodideN8N, pyo.Skipped)
		case pyo.Measured():
			f := pyo.C1.P50ms / bc.C1.P50ms
			line += fmt.Sprintf(" Pyodide %s takes %s: pyrunner is %s", PyodideN8N, ms(pyo.C1.P50ms), fasterText(f))
			if f < 5 {
				line += ", under the 5x promised. Pyodide's figure is taken inside its own process with the items already " +
					"in memory, as n8n 1.x ran it; pyrunner's includes the round trip through the broker's websocket and " +
					"the JSON encoding of the items and the result both ways"
				if floor := r.cell(sc.Key, "cpython"); floor != nil && floor.Measured() {
					line += fmt.Sprintf(". CPython itself, in-process, runs it in %s: Pyodide is %.1fx that, the most any "+
						"runner could gain over it here, and pyrunner's protocol, JSON and sandbox add %s to the floor",
						ms(floor.C1.P50ms), pyo.C1.P50ms/floor.C1.P50ms, ms(bc.C1.P50ms-floor.C1.P50ms))
				}
			}
			line += "."
		}
		if ic, is := r.best(sc.Key, true); ic != nil && ic != bc {
			line += r.isolatedReading(ic, is, bc, direct, pyo)
		}
		lines = append(lines, line)
	}
	return lines
}

// isolatedReading compares the best isolated setup (ic) with direct
// execution and Pyodide, and where it is under 5x, says what an isolated
// task pays that the fastest setup (bc, reuse) does not.
func (r *Results) isolatedReading(ic *Cell, is *SetupInfo, bc, direct, pyo *Cell) string {
	line := fmt.Sprintf(" Isolated (pyrunner's default: a fresh process per task), the best is %s at %s",
		strings.ToLower(shortTitle(*is)), ms(ic.C1.P50ms))
	var parts []string
	under := false
	for _, other := range []struct {
		c    *Cell
		name string
	}{{direct, "direct execution"}, {pyo, "Pyodide " + PyodideN8N}} {
		if other.c.sound() {
			f := other.c.C1.P50ms / ic.C1.P50ms
			parts = append(parts, fasterText(f)+" than "+other.name)
			under = under || f < 5
		}
	}
	if len(parts) > 0 {
		line += ": " + strings.Join(parts, " and ")
	}
	if under && ic.FaultsPerTask > 0 {
		line += fmt.Sprintf(". Where that is under 5x: each isolated task is a process forked from a warm zygote, with %s minor page "+
			"faults per task against %s in %s, and it takes %s more than a %s task here",
			countText(ic.FaultsPerTask), countText(bc.FaultsPerTask), r.setupTitle(bc.Setup), ms(ic.C1.P50ms-bc.C1.P50ms),
			r.setupTitle(bc.Setup))
	}
	return line + "."
}

// isolationCost is the section on what a fresh process per task costs: per
// scenario, the worker pool against reuse and workflow mode of the same
// run, and against the previous binary's worker pool when it was measured.
func (r *Results) isolationCost(b *strings.Builder) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	var rows []ScenarioInfo
	for _, sc := range r.Scenarios {
		if r.cell(sc.Key, "pool").sound() {
			rows = append(rows, sc)
		}
	}
	if len(rows) == 0 {
		return
	}
	previous := r.hasSetup(previousKey)
	p("\n## What isolation costs\n\n")
	p("The worker pool (isolated, pyrunner's default) runs each task in a fresh process forked from a warm zygote; "+
		"reuse and workflow mode run it in a warm worker. Each cell: p50 at concurrency 1 / tasks/s at 1 / tasks/s at %d / "+
		"minor page faults per task (the runner and all its processes). The faults do not depend on the machine; what "+
		"each costs does, tenfold between VMs of the same kind.", r.Concurrency)
	if previous {
		p(" The previous binary's worker pool ran in this run too, right after this one's.")
	}
	p("\n\n| Scenario | Worker pool | Reuse | Workflow | pool p50 over reuse p50 |")
	if previous {
		p(" Previous binary's pool | pool tasks/s at %d over the previous |", r.Concurrency)
	}
	p("\n|---|---|---|---|---:|")
	if previous {
		p("---|---:|")
	}
	p("\n")
	for _, sc := range rows {
		pool, reuse := r.cell(sc.Key, "pool"), r.cell(sc.Key, "reuse")
		over := "—"
		if reuse.sound() && reuse.C1.P50ms > 0 {
			over = times(pool.C1.P50ms / reuse.C1.P50ms)
		}
		p("| %s | %s | %s | %s | %s |", sc.Title, isolationText(pool), isolationText(reuse), isolationText(r.cell(sc.Key, "workflow")), over)
		if previous {
			prev := r.cell(sc.Key, previousKey)
			gain := "—"
			if prev.sound() && prev.C4.PerSecond > 0 {
				gain = times(pool.C4.PerSecond / prev.C4.PerSecond)
			}
			p(" %s | %s |", isolationText(prev), gain)
		}
		p("\n")
	}
}

// isolationText is a cell of the isolation table: p50, tasks/s at 1 and at
// the throughput concurrency, faults per task.
func isolationText(c *Cell) string {
	if !c.sound() {
		return "—"
	}
	return fmt.Sprintf("%s / %s / %s / %s", ms(c.C1.P50ms), countText(c.C1.PerSecond), countText(c.C4.PerSecond), countText(c.FaultsPerTask))
}

func (r *Results) hasSetup(key string) bool {
	return slices.ContainsFunc(r.Setups, func(s SetupInfo) bool { return s.Key == key })
}

func (r *Results) setupTitle(key string) string {
	for _, s := range r.Setups {
		if s.Key == key {
			return strings.ToLower(shortTitle(s))
		}
	}
	return key
}

// shortTitles are the setups' column headings.
var shortTitles = map[string]string{"direct": "Direct", "pool": "Worker pool", "cached": "Cached env",
	"reuse": "Reuse", "workflow": "Workflow", "official": "n8n's runner", "cpython": "CPython floor",
	previousKey: "Previous pool"}

// shortTitle is a setup's column heading.
func shortTitle(s SetupInfo) string {
	if t, ok := shortTitles[s.Key]; ok {
		return t
	}
	if v, ok := strings.CutPrefix(s.Key, "pyodide-"); ok {
		return "Pyodide " + v
	}
	return s.Key
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// mdEscape keeps a free text from breaking a table row.
func mdEscape(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}

// fasterText says how many times faster (f ≥ 1) or slower a setup is,
// from other's median over its own.
func fasterText(f float64) string {
	if f >= 1 {
		return fmt.Sprintf("%.1fx faster", f)
	}
	return fmt.Sprintf("%.1fx slower", 1/f)
}
