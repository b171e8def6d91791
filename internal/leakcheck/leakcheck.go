// Package leakcheck tells whether memory grows with the number of
// operations (Flat), and whether goroutines outlive what started them
// (NoGoroutineIn): it runs a workload N times, measures the live heap after a
// forced collection, runs it 3N more times and measures again. What a task
// leaves behind grows with the count; caches and pools that are bounded do
// not. The verdict is on bytes, never on time.
package leakcheck

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// HeapLive is the bytes held by live heap objects after two forced
// collections (the second frees what finalizers of the first released).
func HeapLive() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// Growth runs run(n) once to warm up caches and pools, measures, runs
// run(3n), and returns how many bytes the live heap grew by (0 when it
// shrank).
func Growth(n int, run func(n int)) (grew uint64, before, after uint64) {
	run(n)
	before = HeapLive()
	run(3 * n)
	after = HeapLive()
	if after > before {
		grew = after - before
	}
	return grew, before, after
}

// Flat fails t when the live heap after 4n operations is more than slack
// bytes above what it was after n. slack is fixed, not per operation: it
// covers the noise of a measurement (buffers, a map that grew once), while
// anything kept per operation grows by 3n times its size.
func Flat(t testing.TB, n int, slack uint64, run func(n int)) {
	t.Helper()
	goroutines := runtime.NumGoroutine()
	grew, before, after := Growth(n, run)
	t.Logf("live heap %s after %d operations, %s after %d; goroutines %d then %d",
		Bytes(before), n, Bytes(after), 4*n, goroutines, runtime.NumGoroutine())
	if grew > slack {
		t.Fatalf("live heap grew by %s over %d operations (%.0f bytes each), more than the %s allowed: something is kept per operation",
			Bytes(grew), 3*n, float64(grew)/float64(3*n), Bytes(slack))
	}
}

// Bytes formats a byte count for a failure message.
func Bytes(n uint64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// NoGoroutineIn fails t if a goroutine is running code of the package
// whose import path is pkg (test code aside, whose frames contain
// except). It is meant right after a Close or a Run that must have waited
// for what it started: such goroutines are gone, or at most finishing their
// last statement, so the check allows them 100 ms (not goleak's seconds of
// retries), which one that was only told to stop, and is still blocked or
// working, does not meet.
func NoGoroutineIn(t testing.TB, pkg, except string) {
	t.Helper()
	var left string
	for range 20 {
		left = goroutineIn(pkg+".", except)
		if left == "" {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("a goroutine of %s outlived what started it:\n%s", pkg, left)
}

func goroutineIn(frame, except string) string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, frame) && !strings.Contains(g, except) {
			return g
		}
	}
	return ""
}
