package alerts

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/pyrunner/pyrunner/metrics/resources"
	"github.com/pyrunner/pyrunner/metrics/window"
)

const mb = 1 << 20

var t0 = time.Unix(1_800_000_000, 0)

var th = Thresholds{
	HighLatency: 5 * time.Second, MemoryLeak: 500 * mb, HighErrorRate: 0.1, CacheMiss: 0.3,
	MinAvailableMemory: 256 * mb, MinFreeDisk: 512 * mb, PoolExhaustedAfter: time.Minute,
}

// healthyHost is plenty of memory and disk.
var healthyHost = resources.Host{MemTotal: 8 << 30, MemAvailable: 4 << 30, Disks: []resources.Disk{{Path: "/cache", Free: 10 << 30}}}

// sampleOf is a sample with one idle reuse worker of rss, grown from a
// baseline of 40 MB (the Sampler's arithmetic).
func sampleOf(rss uint64) *resources.Sample {
	base := min(rss, 40*mb)
	return &resources.Sample{Host: healthyHost, Procs: []resources.ProcSample{
		{PID: 7, Role: "worker", RSS: rss, Baseline: base, Growth: rss - base, Since: t0},
		{PID: 3, Role: "zygote", RSS: 30 * mb, Baseline: 30 * mb},
	}}
}

// step evaluates one sample, 5 s after the last.
type series struct {
	e *Engine
	i int
}

func (s *series) step(in Input) Decision {
	in.Now = t0.Add(time.Duration(s.i) * 5 * time.Second)
	in.FreeSlots = max(in.FreeSlots, 1)
	s.i++
	return s.e.Evaluate(in)
}

func active(e *Engine, name string) bool {
	for _, a := range e.Active() {
		if a.Name == name {
			return true
		}
	}
	return false
}

func TestLeakRule(t *testing.T) {
	cases := []struct {
		name string
		rss  []uint64 // MB, one per sample
		// raisedAt is the sample at which the alert is raised (-1: never);
		// resolvedAt, when it resolves (-1: never).
		raisedAt, resolvedAt int
	}{
		{"steady growth", []uint64{40, 140, 240, 340, 440, 540, 640, 740, 840}, 8, -1},
		{"a spike", []uint64{40, 40, 900, 40, 40, 40, 40}, -1, -1},
		{"two spikes", []uint64{40, 900, 900, 40, 900, 900, 40}, -1, -1},
		{"recovery", []uint64{40, 600, 600, 600, 600, 100, 100, 100, 100}, 3, 7},
		// Growth between 450 and 500 MB is the margin: it neither raises nor resolves.
		{"hysteresis", []uint64{40, 600, 600, 600, 510, 510, 510, 510, 100, 100, 100}, 3, 10},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := &series{e: NewEngine(th)}
			raised, resolved := -1, -1
			for i, rss := range c.rss {
				d := s.step(Input{Sample: sampleOf(rss * mb)})
				for _, a := range d.Raised {
					if a.Name == MemoryLeak {
						raised = i
						if len(d.Recycle) != 1 || d.Recycle[0].PID != 7 {
							t.Errorf("raised without asking to replace worker 7: %+v", d.Recycle)
						}
						if !strings.Contains(a.Message, "worker 7 grew by") || a.Unit != "bytes" || a.Threshold != 500*mb {
							t.Errorf("alert %+v", a)
						}
					}
				}
				for _, a := range d.Resolved {
					if a.Name == MemoryLeak {
						resolved = i
					}
				}
			}
			if raised != c.raisedAt || resolved != c.resolvedAt {
				t.Fatalf("raised at %d, resolved at %d; want %d, %d", raised, resolved, c.raisedAt, c.resolvedAt)
			}
		})
	}
}

// TestNoisyFlatLineNeverAlerts: RSS wandering ±100 MB around 300 MB for an
// hour raises nothing.
func TestNoisyFlatLineNeverAlerts(t *testing.T) {
	s := &series{e: NewEngine(th)}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 720 {
		rss := uint64(200+rng.IntN(200)) * mb
		sample := sampleOf(rss)
		sample.Procs[0].Baseline, sample.Procs[0].Growth = 200*mb, rss-200*mb
		if d := s.step(Input{Sample: sample}); len(d.Raised) > 0 || len(d.Recycle) > 0 {
			t.Fatalf("sample %d (%d MB): raised %+v", s.i, rss>>20, d.Raised)
		}
	}
}

// TestBusyProcessesAreNotJudged: memory a task needs while it runs is not
// a leak; what the process keeps once idle is.
func TestBusyProcessesAreNotJudged(t *testing.T) {
	s := &series{e: NewEngine(th)}
	for range 5 {
		sample := sampleOf(900 * mb)
		sample.Procs[0].Busy = true
		if d := s.step(Input{Sample: sample}); len(d.Raised) > 0 {
			t.Fatalf("raised while busy: %+v", d.Raised)
		}
	}
	for range 3 {
		s.step(Input{Sample: sampleOf(900 * mb)})
	}
	if !active(s.e, MemoryLeak) {
		t.Fatal("not raised after three idle samples at 900 MB")
	}
}

func tasks(n int, p95 time.Duration, errors int) window.Summary {
	return window.Summary{Exec: window.Dist{Count: uint64(n), P95: p95},
		Outcomes: map[string]uint64{"success": uint64(n - errors), "error": uint64(errors)}}
}

func TestTaskRules(t *testing.T) {
	cases := []struct {
		name   string
		alert  string
		inputs []window.Summary
		want   []bool // active after each
	}{
		{"latency", HighLatency, []window.Summary{
			tasks(50, 6*time.Second, 0), tasks(50, 6*time.Second, 0), tasks(50, 6*time.Second, 0),
			tasks(50, 4800*time.Millisecond, 0), // margin: stays
			tasks(50, time.Second, 0), tasks(50, time.Second, 0), tasks(50, time.Second, 0),
		}, []bool{false, false, true, true, true, true, false}},
		{"latency of too few tasks", HighLatency, []window.Summary{
			tasks(3, time.Minute, 0), tasks(3, time.Minute, 0), tasks(3, time.Minute, 0), tasks(3, time.Minute, 0),
		}, []bool{false, false, false, false}},
		{"a latency spike", HighLatency, []window.Summary{
			tasks(50, time.Second, 0), tasks(50, 9*time.Second, 0), tasks(50, time.Second, 0), tasks(50, 9*time.Second, 0), tasks(50, 9*time.Second, 0),
		}, []bool{false, false, false, false, false}},
		{"error rate", HighErrorRate, []window.Summary{
			tasks(100, 0, 20), tasks(100, 0, 20), tasks(100, 0, 20), tasks(100, 0, 5), tasks(100, 0, 5), tasks(100, 0, 5),
		}, []bool{false, false, true, true, true, false}},
		{"cache misses", CacheMiss, []window.Summary{
			{Caches: map[string]window.CacheCounts{"verdicts": {Hits: 10, Misses: 90}}},
			{Caches: map[string]window.CacheCounts{"verdicts": {Hits: 10, Misses: 90}}},
			{Caches: map[string]window.CacheCounts{"verdicts": {Hits: 10, Misses: 90}, "code": {Hits: 100}}},
			{Caches: map[string]window.CacheCounts{"verdicts": {Hits: 5, Misses: 5}}}, // too few lookups: no evidence
			{Caches: map[string]window.CacheCounts{}},
			{Caches: map[string]window.CacheCounts{}},
		}, []bool{false, false, true, true, true, false}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := &series{e: NewEngine(th)}
			for i, in := range c.inputs {
				s.step(Input{Tasks: in})
				if got := active(s.e, c.alert); got != c.want[i] {
					t.Fatalf("after input %d: active %v, want %v (%+v)", i, got, c.want[i], s.e.Active())
				}
			}
		})
	}
}

func TestExhaustionHoldsOffers(t *testing.T) {
	s := &series{e: NewEngine(th)}
	host := func(avail, disk uint64) *resources.Sample {
		h := healthyHost
		h.MemAvailable = avail
		h.Disks = []resources.Disk{{Path: "/cache", Free: 10 << 30}, {Path: "/tmp", Free: disk}}
		return &resources.Sample{Host: h}
	}
	steps := []struct {
		sample *resources.Sample
		hold   string // a part of Hold; "" for none
	}{
		{host(180*mb, 8<<30), ""},
		{host(180*mb, 8<<30), ""},
		{host(180*mb, 8<<30), "stopped offering: available memory 180 MB < 256 MB"},
		{host(270*mb, 8<<30), "available memory 270 MB"}, // within the margin: still held
		{host(2<<30, 8<<30), "stopped offering"},
		{host(2<<30, 8<<30), "stopped offering"},
		{host(2<<30, 8<<30), ""},
		{host(2<<30, 100*mb), ""},
		{host(2<<30, 100*mb), ""},
		{host(2<<30, 100*mb), "stopped offering: free disk 100 MB < 512 MB at /tmp"},
	}
	for i, st := range steps {
		d := s.step(Input{Sample: st.sample})
		if (st.hold == "") != (d.Hold == "") || !strings.Contains(d.Hold, st.hold) {
			t.Fatalf("step %d: hold %q, want %q", i, d.Hold, st.hold)
		}
	}
	a := s.e.Active()
	if len(a) != 1 || a[0].Name != DiskExhausted || a[0].Severity != Critical || a[0].Value != 100*mb {
		t.Fatalf("active %+v", a)
	}
}

func TestPoolExhausted(t *testing.T) {
	e := NewEngine(th)
	at := func(s int, free int) Decision {
		return e.Evaluate(Input{Now: t0.Add(time.Duration(s) * time.Second), FreeSlots: free})
	}
	at(0, 2)
	at(5, 0)
	if d := at(60, 0); len(d.Raised) != 0 {
		t.Fatalf("raised after 55 s without a free slot: %+v", d.Raised)
	}
	d := at(66, 0)
	if len(d.Raised) != 1 || d.Raised[0].Name != PoolExhausted || d.Raised[0].Value != 61 {
		t.Fatalf("not raised after 61 s: %+v", d)
	}
	at(70, 1)
	at(75, 1)
	if d := at(80, 1); len(d.Resolved) != 1 {
		t.Fatalf("not resolved after three evaluations with a free slot: %+v", d)
	}
}
