package alerts

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pyrunner/pyrunner/metrics/resources"
)

// rule is one alert's judgement of an evaluation.
type rule struct {
	name     string
	severity Severity
	judge    func(Input) verdict
}

func (e *Engine) rules() []rule {
	return []rule{
		{HighLatency, Warning, e.latency},
		{HighErrorRate, Warning, e.errorRate},
		{CacheMiss, Warning, e.cacheMiss},
		{MemoryLeak, Warning, e.leak},
		{MemoryExhausted, Critical, e.memory},
		{DiskExhausted, Critical, e.disk},
		{PoolExhausted, Warning, e.pool},
	}
}

// above judges a value against a threshold it must stay under.
func above(value, threshold float64) (bad, good bool) {
	return value > threshold, value < threshold*(1-ClearMargin)
}

// below judges a value against a threshold it must stay over.
func below(value, threshold float64) (bad, good bool) {
	return value < threshold, value > threshold*(1+ClearMargin)
}

func (e *Engine) latency(in Input) verdict {
	thr := e.th.HighLatency
	v := verdict{threshold: thr.Seconds(), unit: "seconds", good: true}
	x := in.Tasks.Exec
	if thr <= 0 || x.Count < MinTasks {
		return v
	}
	v.value = x.P95.Seconds()
	v.bad, v.good = above(v.value, v.threshold)
	v.message = fmt.Sprintf("p95 execution time over the last 5 minutes is %s (%d tasks), threshold %s",
		Duration(x.P95), x.Count, Duration(thr))
	return v
}

func (e *Engine) errorRate(in Input) verdict {
	thr := e.th.HighErrorRate
	v := verdict{threshold: thr, unit: "ratio", good: true}
	t := in.Tasks
	ran := t.Outcomes["success"] + t.Outcomes["error"] + t.Outcomes["timeout"]
	if thr <= 0 || ran < MinTasks {
		return v
	}
	v.value = t.ErrorRate()
	v.bad, v.good = above(v.value, thr)
	v.message = fmt.Sprintf("%s of the last 5 minutes' %d tasks failed (%d errors, %d timeouts), threshold %s",
		Percent(v.value), ran, t.Outcomes["error"], t.Outcomes["timeout"], Percent(thr))
	return v
}

func (e *Engine) cacheMiss(in Input) verdict {
	thr := e.th.CacheMiss
	v := verdict{threshold: thr, unit: "ratio", good: true}
	if thr <= 0 {
		return v
	}
	names := make([]string, 0, len(in.Tasks.Caches))
	for name := range in.Tasks.Caches {
		names = append(names, name)
	}
	slices.Sort(names)
	var worst string
	var worstN uint64
	for _, name := range names {
		rate, n := in.Tasks.MissRate(name)
		if n < MinLookups || (worst != "" && rate <= v.value) {
			continue
		}
		worst, worstN, v.value = name, n, rate
	}
	if worst == "" {
		return v
	}
	v.bad, v.good = above(v.value, thr)
	v.message = fmt.Sprintf("%s of the %s cache's %d lookups in the last 5 minutes missed, threshold %s",
		Percent(v.value), worst, worstN, Percent(thr))
	return v
}

func (e *Engine) memory(in Input) verdict {
	thr := float64(e.th.MinAvailableMemory)
	v := verdict{threshold: thr, unit: "bytes"}
	if in.Sample == nil || in.Sample.Host.MemTotal == 0 || thr <= 0 {
		v.good = thr <= 0
		return v
	}
	h := in.Sample.Host
	v.value = float64(h.MemAvailable)
	v.bad, v.good = below(v.value, thr)
	what := "available memory"
	if h.Limited {
		what = "memory left under the cgroup limit"
	}
	v.message = fmt.Sprintf("%s %s < %s (N8N_PYTHON_METRICS_MIN_AVAILABLE_MEMORY)", what, Bytes(h.MemAvailable), Bytes(e.th.MinAvailableMemory))
	if !v.bad {
		v.message = fmt.Sprintf("%s %s, threshold %s", what, Bytes(h.MemAvailable), Bytes(e.th.MinAvailableMemory))
	}
	return v
}

func (e *Engine) disk(in Input) verdict {
	thr := float64(e.th.MinFreeDisk)
	v := verdict{threshold: thr, unit: "bytes"}
	if in.Sample == nil || len(in.Sample.Host.Disks) == 0 || thr <= 0 {
		v.good = thr <= 0
		return v
	}
	worst := in.Sample.Host.Disks[0]
	for _, d := range in.Sample.Host.Disks[1:] {
		if d.Free < worst.Free {
			worst = d
		}
	}
	v.value = float64(worst.Free)
	v.bad, v.good = below(v.value, thr)
	v.message = fmt.Sprintf("free disk %s < %s at %s (N8N_PYTHON_METRICS_MIN_FREE_DISK)", Bytes(worst.Free), Bytes(e.th.MinFreeDisk), worst.Path)
	if !v.bad {
		v.message = fmt.Sprintf("free disk %s at %s, threshold %s", Bytes(worst.Free), worst.Path, Bytes(e.th.MinFreeDisk))
	}
	return v
}

// pool: no free task slot for longer than a task may run means tasks wait
// at n8n's broker until they time out there. The time itself is the
// hysteresis of raising.
func (e *Engine) pool(in Input) verdict {
	after := e.th.PoolExhaustedAfter
	v := verdict{threshold: after.Seconds(), unit: "seconds", good: true}
	if after <= 0 {
		return v
	}
	if in.FreeSlots > 0 {
		e.fullSince = time.Time{}
		return v
	}
	if e.fullSince.IsZero() {
		e.fullSince = in.Now
	}
	full := in.Now.Sub(e.fullSince)
	v.value, v.good = full.Seconds(), false
	v.bad, v.waited = full >= after, true
	v.message = fmt.Sprintf("no free task slot for %s (threshold: the task timeout, %s); tasks wait at n8n's broker",
		Duration(full), Duration(after))
	return v
}

// leak is one long-lived process's growth streak.
type leak struct {
	streak  int
	flagged bool
}

// longLived: the roles the leak rule watches (an isolated task process
// lives for one task).
func longLived(role string) bool { return role == "zygote" || role == "worker" }

// leak judges the growth of each zygote and reuse worker above its lowest
// RSS, counted only while it is idle (a task may need memory for a while;
// what an idle process keeps is what it leaked). A process is flagged
// after RaiseAfter samples in a row over the threshold; the alert is
// active while one is flagged.
func (e *Engine) leak(in Input) verdict {
	thr := e.th.MemoryLeak
	v := verdict{threshold: float64(thr), unit: "bytes", good: true}
	if in.Sample == nil || thr == 0 {
		return v
	}
	seen := map[int]bool{}
	var flagged []resources.ProcSample
	for _, p := range in.Sample.Procs {
		if !longLived(p.Role) {
			continue
		}
		seen[p.PID] = true
		l := e.leaks[p.PID]
		if l == nil {
			l = &leak{}
			e.leaks[p.PID] = l
		}
		switch bad, good := above(float64(p.Growth), float64(thr)); {
		case p.Busy:
		case bad:
			l.streak++
			l.flagged = l.flagged || l.streak >= RaiseAfter
		case good:
			l.streak, l.flagged = 0, false
		default:
			l.streak = 0
		}
		if l.flagged {
			flagged = append(flagged, p)
		}
	}
	for pid := range e.leaks {
		if !seen[pid] {
			delete(e.leaks, pid)
		}
	}
	if len(flagged) == 0 {
		return v
	}
	var parts []string
	for _, p := range flagged {
		v.value = max(v.value, float64(p.Growth))
		parts = append(parts, fmt.Sprintf("%s %d grew by %s (%s → %s) since %s",
			p.Role, p.PID, Bytes(p.Growth), Bytes(p.Baseline), Bytes(p.RSS), p.Since.UTC().Format(time.TimeOnly)))
	}
	v.bad, v.good, v.waited = true, false, true
	v.message = strings.Join(parts, "; ") + fmt.Sprintf(", threshold %s; replaced at its next idle moment", Bytes(thr))
	return v
}

// leaking lists the flagged processes in the latest sample.
func (e *Engine) leaking(in Input) []resources.ProcSample {
	if in.Sample == nil {
		return nil
	}
	var out []resources.ProcSample
	for _, p := range in.Sample.Procs {
		if l := e.leaks[p.PID]; l != nil && l.flagged && longLived(p.Role) {
			out = append(out, p)
		}
	}
	return out
}

// Bytes is n in MB (2^20 bytes), as pyrunner's settings count memory, or
// GB from 10 GB up.
func Bytes(n uint64) string {
	switch {
	case n >= 10<<30:
		return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
	case n >= 10<<20:
		return fmt.Sprintf("%d MB", n>>20)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d KB", n>>10)
}

// Percent is a share as a percentage.
func Percent(r float64) string {
	if r >= 0.1 || r == 0 {
		return fmt.Sprintf("%.0f%%", r*100)
	}
	return fmt.Sprintf("%.1f%%", r*100)
}

// Duration rounds d for people.
func Duration(d time.Duration) string {
	switch {
	case d >= time.Minute:
		return d.Round(time.Second).String()
	case d >= time.Second:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}
