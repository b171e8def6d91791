package report

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/pyrunner/pyrunner/metrics"
	"github.com/pyrunner/pyrunner/metrics/alerts"
)

// Render writes the report of st, fetched from source.
func Render(w io.Writer, st metrics.Stats, source string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# pyrunner performance report\n\n")
	fmt.Fprintf(&b, "From %s at %s.\n\n", source, st.Time.UTC().Format("2006-01-02 15:04:05 UTC"))
	b.WriteString("## Reading\n\n")
	for _, line := range reading(st) {
		if sub, ok := strings.CutPrefix(line, "  "); ok {
			fmt.Fprintf(&b, "  - %s\n", sub)
			continue
		}
		fmt.Fprintf(&b, "- %s\n", line)
	}
	tasks(&b, st)
	pool(&b, st)
	caches(&b, st)
	resourceSection(&b, st)
	alertTable(&b, st)
	_, err := io.WriteString(w, b.String())
	return err
}

// window is st's window of that name (zero when absent).
func window(st metrics.Stats, name string) metrics.WindowStats {
	for _, w := range st.Windows {
		if w.Name == name {
			return w
		}
	}
	return metrics.WindowStats{Name: name}
}

// reading is the report's plain words: what an operator wants first.
func reading(st metrics.Stats) []string {
	var out []string
	if r := st.Ready; r.Ready {
		out = append(out, fmt.Sprintf("Ready: registered with the broker, able to take %d tasks at once.", r.Capacity))
	} else {
		out = append(out, fmt.Sprintf("**Not ready**: %s.", strings.TrimSuffix(r.Reason, ".")))
	}
	last, before, quarter := window(st, "5m"), st.Previous, window(st, "15m")
	if last.Tasks == 0 {
		out = append(out, "No task ended in the last 5 minutes.")
	} else {
		out = append(out, fmt.Sprintf("%d tasks ended in the last 5 minutes (%.2f/s); %s of those that ran succeeded.",
			last.Tasks, last.Throughput, alerts.Percent(last.SuccessRate)))
		out = append(out, trend(last, before))
	}
	for _, limit := range sortedKeys(quarter.Limits) {
		n := quarter.Limits[limit]
		out = append(out, fmt.Sprintf("%d %s hit the %s in the last 15 minutes.", n, plural(n, "task"), limitName(limit)))
	}
	if w := last.QueueWait; w.Count > 0 && (w.P95 >= 100 || last.QueueLengthMax > 0) {
		out = append(out, fmt.Sprintf("Tasks waited for a Python process: p95 %s in the last 5 minutes; the queue reached %d.",
			ms(w.P95), last.QueueLengthMax))
	}
	for _, name := range sortedKeys(last.CacheHitRate) {
		out = append(out, fmt.Sprintf("The %s cache answered %s of %d lookups in the last 5 minutes.",
			name, alerts.Percent(last.CacheHitRate[name]), last.CacheLookups[name]))
	}
	if p := st.Pool; p.StartFailures > 0 || p.ZygoteRestarts > 0 || p.WorkersGrown+p.ZygotesGrown > 0 {
		grown := p.WorkersGrown + p.ZygotesGrown
		out = append(out, fmt.Sprintf("Since the start: %d process starts failed, %d zygote restarts after an exit, %d %s replaced for memory growth.",
			p.StartFailures, p.ZygoteRestarts, grown, plural(grown, "process")))
	}
	if r := st.Resources; r != nil {
		h := r.Host
		out = append(out, fmt.Sprintf("Memory available: %s of %s; load %.2f on %d CPUs.", alerts.Bytes(h.MemAvailable), alerts.Bytes(h.MemTotal), h.Load1, h.CPUs))
	}
	switch n := len(st.Alerts); n {
	case 0:
		out = append(out, "No alert is active.")
	default:
		out = append(out, fmt.Sprintf("%d %s active:", n, plural(uint64(n), "alert")))
		for _, a := range st.Alerts {
			out = append(out, fmt.Sprintf("  **%s** (%s, since %s): %s", a.Name, a.Severity, a.Since.UTC().Format(time.TimeOnly), a.Message))
		}
	}
	return out
}

// trend compares the last 5 minutes' p95 with the 5 before.
func trend(last, before metrics.WindowStats) string {
	now := last.Execution.P95
	if before.Execution.Count == 0 {
		return fmt.Sprintf("p95 execution time over the last 5 minutes: %s (no task in the 5 minutes before).", ms(now))
	}
	was := before.Execution.P95
	switch {
	case now > was*1.2:
		return fmt.Sprintf("p95 rose from %s to %s in the last 5 minutes.", ms(was), ms(now))
	case now < was*0.8:
		return fmt.Sprintf("p95 fell from %s to %s in the last 5 minutes.", ms(was), ms(now))
	}
	return fmt.Sprintf("p95 held at about %s (%s in the 5 minutes before).", ms(now), ms(was))
}

func tasks(b *strings.Builder, st metrics.Stats) {
	b.WriteString("\n## Tasks\n\n")
	b.WriteString("Execution time is from a task's settings to its result (tasks that ran: success, error, timeout).\n\n")
	b.WriteString("| window | tasks | per second | success | error rate | avg | p50 | p95 | p99 | max |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	rows := append(slices.Clone(st.Windows), st.Previous)
	for _, w := range rows {
		e := w.Execution
		fmt.Fprintf(b, "| %s | %d | %.2f | %s | %s | %s | %s | %s | %s | %s |\n", w.Name, w.Tasks, w.Throughput,
			alerts.Percent(w.SuccessRate), alerts.Percent(w.ErrorRate), ms(e.Avg), ms(e.P50), ms(e.P95), ms(e.P99), ms(e.Max))
	}
	b.WriteString("\n| window | success | error | timeout | cancelled | rejected offers | limits hit | queue wait p95 | longest queue |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---|---:|---:|\n")
	for _, w := range rows {
		var limits []string
		for _, k := range sortedKeys(w.Limits) {
			limits = append(limits, fmt.Sprintf("%s %d", k, w.Limits[k]))
		}
		fmt.Fprintf(b, "| %s | %d | %d | %d | %d | %d | %s | %s | %d |\n", w.Name, w.Outcomes["success"], w.Outcomes["error"],
			w.Outcomes["timeout"], w.Outcomes["cancelled"], w.Outcomes["rejected"], orNone(strings.Join(limits, ", ")),
			ms(w.QueueWait.P95), w.QueueLengthMax)
	}
}

func pool(b *strings.Builder, st metrics.Stats) {
	p := st.Pool
	b.WriteString("\n## Pool\n\n")
	b.WriteString("| ready | running | starting | queued | zygotes | capacity | tasks running |\n|---:|---:|---:|---:|---:|---:|---:|\n")
	fmt.Fprintf(b, "| %d | %d | %d | %d | %d | %d | %d |\n", p.Ready, p.Running, p.Starting, p.Queued, p.Zygotes, p.Capacity, p.TasksRunning)
	fmt.Fprintf(b, "\nSince the start: %d processes started, %d starts failed; reuse workers replaced: %d after their maximum of tasks, %d for memory growth; zygotes: %d restarted after exiting, %d replaced for memory growth.\n",
		p.Starts, p.StartFailures, p.WorkersWornOut, p.WorkersGrown, p.ZygoteRestarts, p.ZygotesGrown)
	if p.StartError != "" {
		fmt.Fprintf(b, "\nProcesses cannot start: %s\n", p.StartError)
	}
}

func caches(b *strings.Builder, st metrics.Stats) {
	if len(st.Caches) == 0 {
		return
	}
	b.WriteString("\n## Caches\n\n| cache | hits | misses | evictions | entries | hit rate (since start) | hit rate (5 min) |\n|---|---:|---:|---:|---:|---:|---:|\n")
	last := window(st, "5m")
	for _, c := range st.Caches {
		recent := "–"
		if r, ok := last.CacheHitRate[c.Name]; ok {
			recent = alerts.Percent(r)
		}
		fmt.Fprintf(b, "| %s | %d | %d | %d | %d | %s | %s |\n", c.Name, c.Hits, c.Misses, c.Evictions, c.Entries, alerts.Percent(c.HitRate), recent)
	}
}

func resourceSection(b *strings.Builder, st metrics.Stats) {
	r := st.Resources
	if r == nil {
		b.WriteString("\n## Resources\n\nNot sampled (N8N_PYTHON_METRICS_SAMPLE_INTERVAL=0).\n")
		return
	}
	fmt.Fprintf(b, "\n## Resources\n\nSampled at %s in %s.\n\n", r.At.UTC().Format(time.TimeOnly), ms(float64(r.Took)/1e6))
	b.WriteString("| process | role | busy | resident | above its lowest | CPU (cores) |\n|---:|---|---|---:|---:|---:|\n")
	for _, p := range r.Procs {
		if p.Role == "task" {
			continue
		}
		fmt.Fprintf(b, "| %d | %s | %v | %s | %s | %.2f |\n", p.PID, p.Role, yesNo(p.Busy), alerts.Bytes(p.RSS), alerts.Bytes(p.Growth), p.CPUCores)
	}
	if t, ok := r.Totals["task"]; ok {
		fmt.Fprintf(b, "| %d task processes | task | | %s | | %.2f |\n", t.Count, alerts.Bytes(t.RSSBytes), t.CPUCores)
	}
	h := r.Host
	limited := ""
	if h.Limited {
		limited = " (under pyrunner's cgroup limit)"
	}
	fmt.Fprintf(b, "\nMemory available %s of %s%s; load %.2f on %d CPUs.", alerts.Bytes(h.MemAvailable), alerts.Bytes(h.MemTotal), limited, h.Load1, h.CPUs)
	for _, d := range h.Disks {
		fmt.Fprintf(b, " Free disk at %s: %s of %s.", d.Path, alerts.Bytes(d.Free), alerts.Bytes(d.Total))
	}
	b.WriteString("\n")
	if len(r.Errors) > 0 {
		fmt.Fprintf(b, "\nNot read: %s\n", strings.Join(r.Errors, "; "))
	}
}

func alertTable(b *strings.Builder, st metrics.Stats) {
	b.WriteString("\n## Alerts\n\n")
	if len(st.Alerts) == 0 {
		b.WriteString("None active.\n")
		return
	}
	b.WriteString("| alert | severity | since | value | threshold | message |\n|---|---|---|---:|---:|---|\n")
	for _, a := range st.Alerts {
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s |\n", a.Name, a.Severity, a.Since.UTC().Format(time.RFC3339),
			value(a.Value, a.Unit), value(a.Threshold, a.Unit), strings.ReplaceAll(a.Message, "|", "\\|"))
	}
}

// value is an alert's number in its unit.
func value(v float64, unit string) string {
	switch unit {
	case "bytes":
		return alerts.Bytes(uint64(v))
	case "seconds":
		return alerts.Duration(time.Duration(v * float64(time.Second)))
	case "ratio":
		return alerts.Percent(v)
	}
	return fmt.Sprintf("%g", v)
}

// ms is a duration given in milliseconds, for people.
func ms(v float64) string { return alerts.Duration(time.Duration(v * float64(time.Millisecond))) }

func limitName(limit string) string {
	switch limit {
	case "memory":
		return "memory limit (N8N_PYTHON_MAX_MEMORY_MB)"
	case "cpu":
		return "CPU time limit (N8N_PYTHON_MAX_CPU_TIME)"
	case "result":
		return "result size limit (N8N_PYTHON_MAX_RESULT_MB)"
	case "timeout":
		return "task timeout"
	}
	return limit + " limit"
}

func plural(n uint64, word string) string {
	switch {
	case n == 1:
		return word
	case strings.HasSuffix(word, "s"):
		return word + "es"
	}
	return word + "s"
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orNone(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
