package window

import (
	"math"
	"slices"
	"testing"
	"time"
)

// clock is a fake clock the tests move by hand.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newClock() *clock { return &clock{t: time.Unix(1_800_000_000, 0)} } // on a slot boundary

// nearestRank is the exact nearest-rank quantile of sorted values.
func nearestRank(sorted []time.Duration, q float64) time.Duration {
	return sorted[int(math.Ceil(q*float64(len(sorted))))-1]
}

func within(got, want time.Duration, rel float64) bool {
	return math.Abs(float64(got-want)) <= rel*float64(want)
}

func TestPercentilesAreWithinHalfABin(t *testing.T) {
	c := newClock()
	r := New(c.now)
	var took []time.Duration
	// 1..200 ms, and a long tail.
	for i := 1; i <= 200; i++ {
		took = append(took, time.Duration(i)*time.Millisecond)
	}
	took = append(took, 3*time.Second, 7*time.Second)
	for _, d := range took {
		r.Task(Success, d)
	}
	slices.Sort(took)
	got := r.Summary(time.Minute, 0).Exec
	for _, q := range []struct {
		name string
		got  time.Duration
		p    float64
	}{{"p50", got.P50, 0.5}, {"p95", got.P95, 0.95}, {"p99", got.P99, 0.99}} {
		if want := nearestRank(took, q.p); !within(q.got, want, 0.022) {
			t.Errorf("%s = %s, want %s within 2.2%%", q.name, q.got, want)
		}
	}
	var sum time.Duration
	for _, d := range took {
		sum += d
	}
	if got.Count != uint64(len(took)) || got.Max != 7*time.Second || got.Avg != sum/time.Duration(len(took)) {
		t.Errorf("count %d max %s avg %s", got.Count, got.Max, got.Avg)
	}
}

func TestWindowsSlide(t *testing.T) {
	c := newClock()
	r := New(c.now)
	// Minute 0: 10 successes of 1 s. Minute 1..4: nothing. Minute 5: 10 errors of 2 s.
	for range 10 {
		r.Task(Success, time.Second)
	}
	c.advance(5 * time.Minute)
	for range 10 {
		r.Task(Error, 2*time.Second)
	}
	r.Task(Rejected, 0)
	r.Task(Cancelled, 0)
	c.advance(5 * time.Second)

	last := r.Summary(time.Minute, 0)
	if last.Outcomes[Error] != 10 || last.Outcomes[Success] != 0 || last.Exec.P50 != 2*time.Second || last.ErrorRate() != 1 {
		t.Fatalf("last minute: %+v", last)
	}
	if last.Finished() != 11 || last.Outcomes[Rejected] != 1 || last.Exec.Count != 10 {
		t.Fatalf("cancelled and rejected tasks: %+v", last)
	}
	whole := r.Summary(15*time.Minute, 0)
	if whole.Outcomes[Success] != 10 || whole.Outcomes[Error] != 10 || whole.ErrorRate() != 0.5 || whole.SuccessRate() != 0.5 {
		t.Fatalf("15 minutes: %+v", whole)
	}
	// Right after the start the recorder has seen 5 min 5 s, not 15 min.
	if whole.Covered != 5*time.Minute+5*time.Second {
		t.Fatalf("covered %s", whole.Covered)
	}
	if got := whole.Throughput(); math.Abs(got-21.0/305) > 1e-9 {
		t.Fatalf("throughput %v", got)
	}
	before := r.Summary(5*time.Minute, 5*time.Minute)
	if before.Outcomes[Success] != 10 || before.Outcomes[Error] != 0 {
		t.Fatalf("the 5 minutes before: %+v", before)
	}
	// Fifteen minutes on, everything has slid out.
	c.advance(16 * time.Minute)
	if s := r.Summary(15*time.Minute, 0); s.Finished() != 0 || s.Exec.Count != 0 {
		t.Fatalf("after 16 min: %+v", s)
	}
}

func TestCacheRatesAreWithinTheWindow(t *testing.T) {
	c := newClock()
	r := New(c.now)
	// 100 misses in the first minutes, then only hits.
	r.Caches(map[string]CacheCounts{"verdicts": {Hits: 0, Misses: 100}})
	c.advance(3 * time.Minute)
	r.Caches(map[string]CacheCounts{"verdicts": {Hits: 50, Misses: 100}})
	c.advance(2 * time.Minute)
	r.Caches(map[string]CacheCounts{"verdicts": {Hits: 90, Misses: 100}})

	if rate, n := r.Summary(time.Minute, 0).MissRate("verdicts"); rate != 0 || n != 40 {
		t.Fatalf("last minute: miss rate %v of %d lookups", rate, n)
	}
	if rate, n := r.Summary(15*time.Minute, 0).MissRate("verdicts"); n != 190 || math.Abs(rate-100.0/190) > 1e-9 {
		t.Fatalf("15 minutes: miss rate %v of %d lookups", rate, n)
	}
}

func TestLimitsWaitsAndQueue(t *testing.T) {
	c := newClock()
	r := New(c.now)
	r.Ran(0, "")
	r.Ran(30*time.Millisecond, "memory")
	r.Ran(10*time.Millisecond, "memory")
	r.Queue(3)
	r.Queue(1)
	s := r.Summary(time.Minute, 0)
	if s.Limits["memory"] != 2 || s.Wait.Count != 3 || s.Wait.Max != 30*time.Millisecond || s.QueueMax != 3 {
		t.Fatalf("%+v", s)
	}
}
