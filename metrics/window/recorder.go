package window

import (
	"sync"
	"time"
)

// SlotWidth is the resolution of the windows: a window of d covers the
// last d/SlotWidth slots, the current (partial) one included, so "the last
// minute" is the last 50 to 60 seconds.
const SlotWidth = 10 * time.Second

// History is how far back a Summary may reach, offset included.
const History = 15 * time.Minute

// nSlots holds History and the slot before it, whose cache counts a
// window starting History ago subtracts.
const nSlots = int(History/SlotWidth) + 2

// Outcomes a task can have; "rejected" counts offers the runner refused.
const (
	Success   = "success"
	Error     = "error"
	Timeout   = "timeout"
	Cancelled = "cancelled"
	Rejected  = "rejected"
)

// CacheCounts are a cache's lookups since it was made.
type CacheCounts struct{ Hits, Misses uint64 }

// slot is what happened during one SlotWidth.
type slot struct {
	num      int64 // which slot of time this is: Unix time / SlotWidth
	outcomes map[string]uint64
	limits   map[string]uint64
	exec     hist // execution time of tasks that ran to a result
	wait     hist // time tasks waited for a process
	queueMax int
	// caches holds the caches' counts as last recorded during the slot;
	// nil when none was.
	caches map[string]CacheCounts
}

// Recorder keeps the slots. Safe for concurrent use.
type Recorder struct {
	now     func() time.Time
	started time.Time

	mu    sync.Mutex
	slots [nSlots]slot
}

// New returns a Recorder reading the time from now (time.Now in production).
func New(now func() time.Time) *Recorder {
	r := &Recorder{now: now, started: now()}
	for i := range r.slots {
		r.slots[i].num = -1
	}
	return r
}

func slotNum(t time.Time) int64 { return t.UnixNano() / int64(SlotWidth) }

// current is the slot of now, cleared if it last held an older one.
func (r *Recorder) currentLocked() *slot {
	n := slotNum(r.now())
	s := &r.slots[n%int64(nSlots)]
	if s.num != n {
		*s = slot{num: n, exec: hist{}, wait: hist{}}
	}
	return s
}

// at is the slot numbered n, or nil when nothing was recorded in it (or
// it is older than the ring holds).
func (r *Recorder) atLocked(n int64) *slot {
	if n < 0 {
		return nil
	}
	s := &r.slots[n%int64(nSlots)]
	if s.num != n {
		return nil
	}
	return s
}

// Task records a task that ended: its outcome, and for one that ran to a
// result (success, error, timeout) how long it took.
func (r *Recorder) Task(outcome string, took time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.currentLocked()
	if s.outcomes == nil {
		s.outcomes = map[string]uint64{}
	}
	s.outcomes[outcome]++
	if outcome == Success || outcome == Error || outcome == Timeout {
		s.exec.add(took)
	}
}

// Ran records what the pool said of a task it ran: how long it waited for
// a process and the limit it hit ("" for none).
func (r *Recorder) Ran(waited time.Duration, limit string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.currentLocked()
	s.wait.add(waited)
	if limit != "" {
		if s.limits == nil {
			s.limits = map[string]uint64{}
		}
		s.limits[limit]++
	}
}

// Queue records the pool's queue length as sampled.
func (r *Recorder) Queue(n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.currentLocked()
	s.queueMax = max(s.queueMax, n)
}

// Caches records the caches' counts since they were made, so that a
// window's hit rate is what happened within it.
func (r *Recorder) Caches(counts map[string]CacheCounts) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.currentLocked()
	if s.caches == nil {
		s.caches = map[string]CacheCounts{}
	}
	for name, c := range counts {
		s.caches[name] = c
	}
}

// Summary is what happened in a window.
type Summary struct {
	// Window is the span asked for; Covered the part of it the recorder
	// saw (less right after it started).
	Window, Covered time.Duration
	Outcomes        map[string]uint64 // by outcome, rejected included
	Limits          map[string]uint64 // tasks that hit each limit
	Exec            Dist              // execution time (success, error, timeout)
	Wait            Dist              // time waited for a process
	QueueMax        int
	Caches          map[string]CacheCounts // lookups within the window
}

// Finished is how many tasks ended (rejected offers not counted).
func (s Summary) Finished() uint64 {
	return s.Outcomes[Success] + s.Outcomes[Error] + s.Outcomes[Timeout] + s.Outcomes[Cancelled]
}

// Throughput is tasks finished per second over the covered span.
func (s Summary) Throughput() float64 {
	if s.Covered <= 0 {
		return 0
	}
	return float64(s.Finished()) / s.Covered.Seconds()
}

// ErrorRate is the share of tasks that ran to a result and failed (error
// or timeout); 0 when none ran. Cancelled tasks count for neither side.
func (s Summary) ErrorRate() float64 {
	ran := s.Outcomes[Success] + s.Outcomes[Error] + s.Outcomes[Timeout]
	if ran == 0 {
		return 0
	}
	return float64(s.Outcomes[Error]+s.Outcomes[Timeout]) / float64(ran)
}

// SuccessRate is the share of tasks that ran to a result and succeeded.
func (s Summary) SuccessRate() float64 {
	ran := s.Outcomes[Success] + s.Outcomes[Error] + s.Outcomes[Timeout]
	if ran == 0 {
		return 0
	}
	return float64(s.Outcomes[Success]) / float64(ran)
}

// MissRate is the share of a cache's lookups in the window that missed,
// and how many lookups there were.
func (s Summary) MissRate(cache string) (rate float64, lookups uint64) {
	c := s.Caches[cache]
	lookups = c.Hits + c.Misses
	if lookups == 0 {
		return 0, 0
	}
	return float64(c.Misses) / float64(lookups), lookups
}

// Summary sums the window of d that ends offset ago (0: now), both whole
// multiples of SlotWidth; d+offset is at most History.
func (r *Recorder) Summary(d, offset time.Duration) Summary {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	k := max(int64(d/SlotWidth), 1)
	last := slotNum(now) - int64(offset/SlotWidth)
	first := last - k + 1
	out := Summary{Window: d, Outcomes: map[string]uint64{}, Limits: map[string]uint64{}, Caches: map[string]CacheCounts{}}

	// The span covered: from the first slot's start (or the recorder's)
	// to the last slot's end (or now).
	from := time.Unix(0, first*int64(SlotWidth))
	to := time.Unix(0, (last+1)*int64(SlotWidth))
	if offset == 0 {
		to = now
	}
	from = latest(from, r.started)
	out.Covered = max(to.Sub(from), 0)

	var exec, wait hist
	for n := first; n <= last; n++ {
		s := r.atLocked(n)
		if s == nil {
			continue
		}
		for k, v := range s.outcomes {
			out.Outcomes[k] += v
		}
		for k, v := range s.limits {
			out.Limits[k] += v
		}
		exec.merge(&s.exec)
		wait.merge(&s.wait)
		out.QueueMax = max(out.QueueMax, s.queueMax)
	}
	out.Exec, out.Wait = exec.dist(), wait.dist()

	end, start := r.cachesAtLocked(last, first-int64(nSlots)+1), r.cachesAtLocked(first-1, first-int64(nSlots)+1)
	for name, e := range end {
		b := start[name]
		if e.Hits >= b.Hits && e.Misses >= b.Misses {
			out.Caches[name] = CacheCounts{Hits: e.Hits - b.Hits, Misses: e.Misses - b.Misses}
		}
	}
	return out
}

// cachesAtLocked is the last cache counts recorded in slot n or before,
// back to slot floor; none recorded means none yet (all zero).
func (r *Recorder) cachesAtLocked(n, floor int64) map[string]CacheCounts {
	for ; n >= floor && n >= 0; n-- {
		if s := r.atLocked(n); s != nil && s.caches != nil {
			return s.caches
		}
	}
	return nil
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
