package loadgen

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Result summarises a closed-loop run: latency percentiles and
// throughput. JSON names are what `pyrunner exec -repeat` and
// `pyrunner demo -bench` print.
type Result struct {
	Tasks       int     `json:"tasks"`
	Concurrency int     `json:"concurrency"`
	Failed      int64   `json:"failed"`
	P50ms       float64 `json:"p50_ms"`
	P95ms       float64 `json:"p95_ms"`
	P99ms       float64 `json:"p99_ms"`
	PerSecond   float64 `json:"tasks_per_second"`
}

// ClosedLoop calls run n times from c goroutines, each starting its next
// call as soon as the last returns, and summarises the latencies run
// reports (a run that returns ok=false counts as failed).
func ClosedLoop(n, c int, run func(i int) (latency time.Duration, ok bool)) Result {
	n, c = max(n, 1), max(c, 1)
	took := make([]time.Duration, n)
	next := make(chan int)
	var failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				d, ok := run(i)
				if !ok {
					failed.Add(1)
				}
				took[i] = d
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(took)
	pct := func(p float64) float64 { return float64(took[int(p*float64(n-1))]) / 1e6 }
	return Result{
		Tasks: n, Concurrency: c, Failed: failed.Load(),
		P50ms: pct(0.5), P95ms: pct(0.95), P99ms: pct(0.99),
		PerSecond: float64(n) / elapsed.Seconds(),
	}
}

// The workloads of `make bench` and `pyrunner demo -bench`, defined once so
// that their numbers compare.
const (
	// TrivialCode is the trivial task: a little arithmetic, no items.
	TrivialCode = "return [{'json': {'sum': sum(range(10000))}}]"
	// TransformCode maps each of CustomerItems to a new record.
	TransformCode = "return [{'json': {'id': it['json']['id'], 'name': it['json']['name'].upper(), " +
		"'total': it['json']['qty'] * it['json']['price'], 'city': it['json']['address']['city']}} for it in _items]"
)

// CustomerItems is n Code-node items, each a small customer record with
// its pairedItem, as a webhook or a database node would pass them.
func CustomerItems(n int) []map[string]any {
	items := make([]map[string]any, n)
	for i := range items {
		items[i] = map[string]any{"json": map[string]any{
			"id": i, "name": fmt.Sprintf("customer %d", i), "qty": i%7 + 1, "price": 9.5 + float64(i%13),
			"tags": []string{"a", "b", "c"}, "address": map[string]any{"city": "Lisbon", "zip": "1000-001"},
		}, "pairedItem": map[string]any{"item": i}}
	}
	return items
}
