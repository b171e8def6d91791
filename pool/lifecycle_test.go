package pool_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/pyrunner/pyrunner/internal/leakcheck"
	"github.com/pyrunner/pyrunner/pool"
	"github.com/pyrunner/pyrunner/pool/pooltest"
)

// TestCloseLeavesNoGoroutine: Close waits for every goroutine the executor
// started (supervisors, maintainer, process starts, the zygotes' readers),
// in each isolation mode, after tasks ran and while processes were being
// started.
func TestCloseLeavesNoGoroutine(t *testing.T) {
	modes := []struct {
		name string
		new  func(pool.Options) pool.Executor
		opts pool.Options
	}{
		{"isolated", func(o pool.Options) pool.Executor { return pool.NewZygoteExecutor(o) }, pool.Options{MaxWorkers: 3, MinWorkers: 2, Zygotes: 2}},
		{"reuse", func(o pool.Options) pool.Executor { return pool.NewZygoteExecutor(o) }, pool.Options{MaxWorkers: 3, MinWorkers: 2, Reuse: true}},
		{"spawn", func(o pool.Options) pool.Executor { return pool.NewSpawnExecutor(o) }, pool.Options{MaxWorkers: 3}},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			spec := pooltest.Spec(t)
			spec.Logger = slog.New(slog.DiscardHandler)
			before := goleak.IgnoreCurrent()
			m.opts.Spec = spec
			exec := m.new(m.opts)
			if err := exec.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			task := pool.Task{ID: "g", Settings: settings(t, "return [{'json': {'ok': True}}]", "runOnceForAllItems", []any{}), Timeout: time.Minute}
			for range 3 {
				if res := exec.Run(context.Background(), task); res.Err != nil {
					t.Fatalf("task: %s", errText(res.Err))
				}
			}
			// A task still waiting for a process when Close comes.
			waiting := make(chan pool.Result, 1)
			go func() { waiting <- exec.Run(context.Background(), task) }()
			if err := exec.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			<-waiting
			leakcheck.NoGoroutineIn(t, "github.com/pyrunner/pyrunner/pool", "pool_test.")
			goleak.VerifyNone(t, before)
		})
	}
}

// TestCloseDuringStart: Close while the zygotes are still starting ends the
// start, and leaves nothing behind either.
func TestCloseDuringStart(t *testing.T) {
	spec := pooltest.Spec(t)
	spec.Logger = slog.New(slog.DiscardHandler)
	before := goleak.IgnoreCurrent()
	exec := pool.NewZygoteExecutor(pool.Options{Spec: spec, MaxWorkers: 2, Zygotes: 2})
	started := make(chan error, 1)
	go func() { started <- exec.Start(context.Background()) }()
	if err := exec.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-started; err == nil {
		// The start won the race: Close came after it, and stopped it all.
		_ = exec.Close()
	}
	leakcheck.NoGoroutineIn(t, "github.com/pyrunner/pyrunner/pool", "pool_test.")
	goleak.VerifyNone(t, before)
}
