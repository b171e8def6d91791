package runner

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/pyrunner/pyrunner/broker/fakebroker"
	"github.com/pyrunner/pyrunner/internal/leakcheck"
	"github.com/pyrunner/pyrunner/internal/loadgen"
	"github.com/pyrunner/pyrunner/pool"
	"github.com/pyrunner/pyrunner/pool/pooltest"
)

// instantExecutor answers every task at once, after looking at its
// context as the pool does: the runner's per-task work without Python.
type instantExecutor struct{}

func (instantExecutor) Start(context.Context) error { return nil }
func (instantExecutor) Capacity() int               { return 8 }
func (instantExecutor) Close() error                { return nil }
func (instantExecutor) Run(ctx context.Context, _ pool.Task) pool.Result {
	select {
	case <-ctx.Done():
		return pool.Result{Err: pool.CancelledError()}
	default:
		return pool.Result{Result: json.RawMessage(`[{"json":{"ok":true}}]`)}
	}
}

// runTasks runs n tasks through the broker, concurrency at a time, and
// fails t if one does not complete.
func runTasks(t *testing.T, b *fakebroker.Broker, settings json.RawMessage, n, concurrency int) {
	t.Helper()
	res := loadgen.ClosedLoop(n, concurrency, func(int) (time.Duration, bool) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out, err := b.RunTask(ctx, settings)
		return 0, err == nil && out.Done
	})
	if res.Failed > 0 {
		t.Fatalf("%d of %d tasks failed", res.Failed, n)
	}
}

// TestRunnerKeepsNothingPerTask: a pyrunner runs for months; what it holds
// must not grow with the tasks it ran. 400 bytes kept per task would show
// as some 6 MB here.
func TestRunnerKeepsNothingPerTask(t *testing.T) {
	h := start(t, instantExecutor{}, Options{MaxConcurrency: 5, Logger: slog.New(slog.DiscardHandler)},
		fakebroker.Options{TranscriptLimit: 100})
	leakcheck.Flat(t, 5000, 1<<20, func(n int) { runTasks(t, h.b, trivial, n, 5) })
}

// TestRunnerWithIsolatedPoolKeepsNothingPerTask: the same through the real
// pool in its default mode, where every task is a process of its own.
func TestRunnerWithIsolatedPoolKeepsNothingPerTask(t *testing.T) {
	spec := pooltest.Spec(t)
	spec.Logger = slog.New(slog.DiscardHandler)
	exec := pool.NewZygoteExecutor(pool.Options{Spec: spec, MaxWorkers: 4})
	if err := exec.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { exec.Close() })
	h := start(t, exec, Options{MaxConcurrency: 3, Logger: slog.New(slog.DiscardHandler)},
		fakebroker.Options{TranscriptLimit: 100})
	leakcheck.Flat(t, 100, 32<<10, func(n int) { runTasks(t, h.b, trivial, n, 3) })
}
