package runner

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/pyrunner/pyrunner/broker"
	"github.com/pyrunner/pyrunner/broker/fakebroker"
	"github.com/pyrunner/pyrunner/internal/leakcheck"
	"github.com/pyrunner/pyrunner/pool"
)

// TestRunLeavesNoGoroutine: once Run has returned, nothing the runner
// started is still running: not the loop, not a connection's frame pump,
// not a task's goroutine. Checked at once (leakcheck.NoGoroutineIn): Run must
// have waited for them. (The HTTP client's idle connection to the broker, which
// fetched the grant, is net/http's and may stay.)
func TestRunLeavesNoGoroutine(t *testing.T) {
	for _, how := range []string{"shutdown", "cancel"} {
		t.Run(how, func(t *testing.T) {
			b, err := fakebroker.Start(context.Background(), fakebroker.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			exec := newGateExecutor(2)
			r := New(Options{MaxConcurrency: 2, GracefulShutdownTimeout: 100 * time.Millisecond}, exec)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- r.Run(ctx, &broker.Dialer{BrokerURI: b.URL(), RunnerID: "r", AuthToken: "test-token"}) }()
			wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer wcancel()
			if err := b.WaitRegistered(wctx, 1); err != nil {
				t.Fatal(err)
			}
			// One task done, one still running when the runner stops.
			req := b.Request(trivial, fakebroker.RequestOptions{})
			<-exec.started
			exec.release <- pool.Result{Result: json.RawMessage(`[]`)}
			if out, err := req.Wait(wctx); err != nil || !out.Done {
				t.Fatalf("%v %s", err, out.Error)
			}
			b.Request(trivial, fakebroker.RequestOptions{})
			<-exec.started
			if how == "shutdown" {
				r.Shutdown()
			} else {
				cancel()
			}
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("Run did not return")
			}
			leakcheck.NoGoroutineIn(t, "github.com/pyrunner/pyrunner/runner", "runner.TestRunLeavesNoGoroutine")
		})
	}
}
