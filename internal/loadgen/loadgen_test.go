package loadgen

import (
	"sync"
	"testing"
	"time"
)

func TestClosedLoop(t *testing.T) {
	var mu sync.Mutex
	calls := map[int]int{}
	res := ClosedLoop(100, 4, func(i int) (time.Duration, bool) {
		mu.Lock()
		calls[i]++
		mu.Unlock()
		return time.Duration(i+1) * time.Millisecond, i%10 != 0 // 1..100 ms; 10 failures
	})
	if len(calls) != 100 {
		t.Fatalf("%d distinct calls, want 100", len(calls))
	}
	for i, n := range calls {
		if n != 1 {
			t.Fatalf("call %d made %d times", i, n)
		}
	}
	if res.Tasks != 100 || res.Concurrency != 4 || res.Failed != 10 {
		t.Fatalf("%+v", res)
	}
	// Sorted latencies are 1..100 ms: index 0.5*99 = 49 -> 50 ms, 94 -> 95 ms, 98 -> 99 ms.
	if res.P50ms != 50 || res.P95ms != 95 || res.P99ms != 99 || res.PerSecond <= 0 {
		t.Fatalf("percentiles %+v", res)
	}
}
