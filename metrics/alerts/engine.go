package alerts

import (
	"slices"
	"time"

	"github.com/pyrunner/pyrunner/metrics/resources"
	"github.com/pyrunner/pyrunner/metrics/window"
)

// Severity says how urgent an alert is: Critical ones stop offers.
type Severity string

const (
	Warning  Severity = "warning"
	Critical Severity = "critical"
)

// The alerts, by name.
const (
	HighLatency     = "high_latency"
	HighErrorRate   = "high_error_rate"
	CacheMiss       = "cache_miss"
	MemoryLeak      = "memory_leak"
	MemoryExhausted = "memory_exhausted"
	DiskExhausted   = "disk_exhausted"
	PoolExhausted   = "pool_exhausted"
)

// Names lists every alert, for the metrics (each is exported, 0 or 1).
var Names = []string{HighLatency, HighErrorRate, CacheMiss, MemoryLeak, MemoryExhausted, DiskExhausted, PoolExhausted}

// Hysteresis: evaluations in a row beyond the threshold before an alert is
// raised, within it (by ClearMargin) before it resolves.
const (
	RaiseAfter = 3
	ClearAfter = 3
	// ClearMargin: an alert on a value above a threshold resolves below
	// 90% of it; one on a value below a threshold, above 110%.
	ClearMargin = 0.1
)

// Minimum evidence: fewer tasks or lookups in the window say nothing.
const (
	MinTasks   = 10
	MinLookups = 20
)

// Alert is an active alert, as /alerts lists it.
type Alert struct {
	Name      string    `json:"name"`
	Severity  Severity  `json:"severity"`
	Since     time.Time `json:"since"`
	Message   string    `json:"message"`
	Value     float64   `json:"value"`
	Threshold float64   `json:"threshold"`
	// Unit of Value and Threshold: "seconds", "bytes" or "ratio".
	Unit string `json:"unit"`
}

// Thresholds are the rules' settings.
type Thresholds struct {
	// HighLatency: the 95th percentile of execution time over Window.
	HighLatency time.Duration
	// MemoryLeak: growth of a zygote or reuse worker above its lowest RSS.
	MemoryLeak uint64
	// HighErrorRate, CacheMiss: shares (0..1) over Window.
	HighErrorRate, CacheMiss float64
	// MinAvailableMemory, MinFreeDisk: below them, offers stop.
	MinAvailableMemory, MinFreeDisk uint64
	// PoolExhaustedAfter: how long without a free task slot is too long
	// (the task timeout).
	PoolExhaustedAfter time.Duration
}

// Window is the span of task statistics the rules judge.
const Window = 5 * time.Minute

// Input is what one evaluation judges.
type Input struct {
	Now time.Time
	// Tasks is the last Window of task statistics.
	Tasks window.Summary
	// Sample is the latest resource sample; nil when sampling is off.
	Sample *resources.Sample
	// FreeSlots is how many more tasks could be taken now (concurrency
	// and the pool's capacity, less the tasks running).
	FreeSlots int
}

// Decision is what an evaluation changed and asks for.
type Decision struct {
	Raised, Resolved []Alert
	// Recycle are the processes to replace at their next idle moment.
	Recycle []resources.ProcSample
	// Hold, when not empty, says why no task may be offered now.
	Hold string
}

// Engine holds the rules' state between evaluations. Not safe for
// concurrent use: one goroutine evaluates.
type Engine struct {
	th       Thresholds
	triggers map[string]*trigger
	active   map[string]Alert
	leaks    map[int]*leak // by pid
	// fullSince is when the pool last became full (zero: it is not).
	fullSince time.Time
}

// NewEngine returns an Engine with no alert active.
func NewEngine(th Thresholds) *Engine {
	e := &Engine{th: th, triggers: map[string]*trigger{}, active: map[string]Alert{}, leaks: map[int]*leak{}}
	for _, name := range Names {
		e.triggers[name] = &trigger{}
	}
	return e
}

// Active lists the active alerts by name.
func (e *Engine) Active() []Alert {
	out := make([]Alert, 0, len(e.active))
	for _, a := range e.active {
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b Alert) int { return cmpString(a.Name, b.Name) })
	return out
}

// Evaluate judges in with every rule.
func (e *Engine) Evaluate(in Input) Decision {
	var d Decision
	for _, r := range e.rules() {
		v := r.judge(in)
		e.apply(&d, in.Now, r.name, r.severity, v)
	}
	d.Recycle = e.leaking(in)
	if a, ok := e.active[MemoryExhausted]; ok {
		d.Hold = "stopped offering: " + a.Message
	} else if a, ok := e.active[DiskExhausted]; ok {
		d.Hold = "stopped offering: " + a.Message
	}
	return d
}

// apply moves one rule's trigger and the active set with a verdict.
func (e *Engine) apply(d *Decision, now time.Time, name string, sev Severity, v verdict) {
	t := e.triggers[name]
	changed := t.observe(v)
	a, was := e.active[name]
	switch {
	case changed && t.active:
		a = Alert{Name: name, Severity: sev, Since: now}
		a.Message, a.Value, a.Threshold, a.Unit = v.message, v.value, v.threshold, v.unit
		e.active[name] = a
		d.Raised = append(d.Raised, a)
	case changed:
		a.Message, a.Value = v.message, v.value
		delete(e.active, name)
		d.Resolved = append(d.Resolved, a)
	case was && v.message != "":
		// Still active: the latest numbers.
		a.Message, a.Value = v.message, v.value
		e.active[name] = a
	}
}

// verdict is one rule's judgement of one evaluation.
type verdict struct {
	// bad: beyond the threshold; good: within it by the margin (or no
	// evidence); neither: in between, which keeps the state.
	bad, good bool
	// waited: the rule counted its own wait (a duration, or each process's
	// streak), so bad raises at once.
	waited    bool
	value     float64
	threshold float64
	unit      string
	message   string
}

// trigger is one rule's hysteresis.
type trigger struct {
	active bool
	streak int // evaluations in a row towards the other state
}

// observe moves the trigger with one evaluation and reports whether it
// changed state.
func (t *trigger) observe(v verdict) bool {
	switch {
	case !t.active && v.bad:
		t.streak++
		if t.streak >= RaiseAfter || v.waited {
			t.active, t.streak = true, 0
			return true
		}
	case t.active && v.good:
		t.streak++
		if t.streak >= ClearAfter {
			t.active, t.streak = false, 0
			return true
		}
	default:
		t.streak = 0
	}
	return false
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
