package pool_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/pyrunner/pyrunner/internal/leakcheck"
	"github.com/pyrunner/pyrunner/internal/loadgen"
	"github.com/pyrunner/pyrunner/pool"
	"github.com/pyrunner/pyrunner/pool/pooltest"
)

// TestPoolKeepsNothingPerTask: the pool on its own, in each isolation mode,
// holds no more after 4N tasks than after N. Each task's context is a
// child of one long-lived context, as the runner's are, so that anything
// the pool hangs on it shows. The processes' own log goes nowhere: the
// test log would grow with every line.
func TestPoolKeepsNothingPerTask(t *testing.T) {
	cases := []struct {
		name  string
		reuse bool
		n     int
		slack uint64
	}{
		// A reuse task costs well under a millisecond: thousands are cheap.
		{"reuse", true, 2000, 256 << 10},
		// An isolated task forks a process; fewer tasks, and a slack that
		// anything of 100 bytes or more kept per task exceeds.
		{"isolated", false, 100, 24 << 10},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			spec := pooltest.Spec(t)
			spec.Logger = slog.New(slog.DiscardHandler)
			exec := pool.NewZygoteExecutor(pool.Options{Spec: spec, MaxWorkers: 4, Reuse: c.reuse})
			if err := exec.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { exec.Close() })
			parent, stop := context.WithCancel(context.Background())
			defer stop()
			task := pool.Task{ID: "leak", Settings: settings(t, loadgen.TrivialCode, "runOnceForAllItems", []any{}),
				Code: loadgen.TrivialCode, Timeout: time.Minute}
			leakcheck.Flat(t, c.n, c.slack, func(n int) {
				res := loadgen.ClosedLoop(n, 3, func(int) (time.Duration, bool) {
					ctx, cancel := context.WithCancelCause(parent)
					defer cancel(nil)
					return 0, exec.Run(ctx, task).Err == nil
				})
				if res.Failed > 0 {
					t.Fatalf("%d of %d tasks failed", res.Failed, n)
				}
			})
		})
	}
}
