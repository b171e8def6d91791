package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pyrunner/pyrunner/broker"
	"github.com/pyrunner/pyrunner/broker/fakebroker"
	"github.com/pyrunner/pyrunner/metrics"
	"github.com/pyrunner/pyrunner/metrics/alerts"
	"github.com/pyrunner/pyrunner/metrics/resources"
	"github.com/pyrunner/pyrunner/pool/pooltest"
	"github.com/pyrunner/pyrunner/runner"
)

// shortMemory reads real processes as 30 MB each and a machine whose
// available memory the test sets: a memory exhaustion without exhausting
// the machine the tests share.
type shortMemory struct {
	mu        sync.Mutex
	available uint64
}

func (s *shortMemory) Process(context.Context, int) (resources.ProcReading, error) {
	return resources.ProcReading{RSS: 30 << 20}, nil
}

func (s *shortMemory) Host(context.Context, []string) (resources.HostReading, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return resources.HostReading{MemTotal: 8 << 30, MemAvailable: s.available, CPUs: 2}, nil
}

func (s *shortMemory) set(available uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.available = available
}

func codeSettings(code string) json.RawMessage {
	b, _ := json.Marshal(map[string]any{"code": code, "nodeMode": "runOnceForAllItems", "items": []any{}, "continueOnFail": false})
	return b
}

// TestMemoryExhaustionStopsOffers wires the runner, the real pool, the
// monitor and the health server as `pyrunner run` does, against the fake
// broker, with the machine's memory simulated: when it runs short, offers
// stop (the task running goes on and succeeds, a new one waits at the
// broker) and /readyz says why; when it is back, offers resume and the
// waiting task runs.
func TestMemoryExhaustionStopsOffers(t *testing.T) {
	b, err := fakebroker.Start(context.Background(), fakebroker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	logs := &fakebroker.SyncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, nil))
	exec := pooltest.Executor(t, 2)
	m := metrics.New()
	state := metrics.NewState(m, time.Now)
	memory := &shortMemory{available: 4 << 30}
	mon, gated := startMonitor(m, state, exec, metrics.MonitorOptions{
		Reader: memory, Thresholds: alerts.Thresholds{MinAvailableMemory: 256 << 20}, MaxConcurrency: 2, Logger: logger,
	})
	t.Cleanup(mon.Close)
	srv, err := metrics.Listen("127.0.0.1", 0, mon, m, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	base := "http://127.0.0.1:" + strconv.Itoa(srv.Port())
	r := runner.New(runner.Options{MaxConcurrency: 2, TaskTimeout: time.Minute, Observer: state, Logger: logger}, gated)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- r.Run(ctx, &broker.Dialer{BrokerURI: b.URL(), RunnerID: "runner-1", AuthToken: "test-token", OnFailure: state.Failed})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		if t.Failed() {
			t.Logf("log:\n%s", logs.String())
		}
	})
	wait, stop := context.WithTimeout(context.Background(), 2*time.Minute)
	defer stop()
	if err := b.WaitRegistered(wait, 1); err != nil {
		t.Fatal(err)
	}
	get := func(path string) (int, string) {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	tick := func(n int) {
		for range n {
			mon.Tick(context.Background())
		}
	}
	eventually := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(time.Minute); !ok(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("gave up waiting for %s", what)
			}
		}
	}

	tick(1)
	// The broker has the registration a moment before the runner knows.
	eventually("/readyz to answer 200", func() bool { code, _ := get("/readyz"); return code == 200 })
	running := b.Request(codeSettings("import time\ntime.sleep(2)\nreturn [{'json': {'ok': True}}]"), fakebroker.RequestOptions{})
	eventually("the task to run", func() bool { return exec.Stats().Busy == 1 })

	memory.set(100 << 20)
	tick(alerts.RaiseAfter)
	code, ready := get("/readyz")
	_, alertsBody := get("/alerts")
	t.Logf("/readyz while memory is short: %d %s", code, ready)
	t.Logf("/alerts while memory is short: %s", alertsBody)
	if code != 503 || !strings.Contains(ready, `"reason":"stopped offering: available memory 100 MB < 256 MB`) ||
		!strings.Contains(alertsBody, `"name":"memory_exhausted","severity":"critical"`) {
		t.Fatal("offers not stopped, or /readyz and /alerts do not say why")
	}
	eventually("the open offers to expire", func() bool { return len(b.OpenOffers()) == 0 })
	waiting := b.Request(codeSettings("return [{'json': {'waited': True}}]"), fakebroker.RequestOptions{})
	if out, err := running.Wait(wait); err != nil || !out.Done {
		t.Fatalf("the task running when memory ran short: %v %s", err, out.Error)
	}
	brief, briefStop := context.WithTimeout(context.Background(), time.Second)
	defer briefStop()
	if out, err := waiting.Wait(brief); !errors.Is(err, context.DeadlineExceeded) || len(b.OpenOffers()) != 0 {
		t.Fatalf("a task was taken while memory was short: %+v %v", out, err)
	}

	memory.set(4 << 30)
	tick(alerts.ClearAfter)
	if out, err := waiting.Wait(wait); err != nil || !out.Done {
		t.Fatalf("the task waiting at the broker: %v %s", err, out.Error)
	}
	if code, body := get("/readyz"); code != 200 {
		t.Fatalf("after: /readyz %d %s", code, body)
	}
	for _, want := range []string{"Stopped offering tasks to the broker until this clears", "Offering tasks to the broker again"} {
		if strings.Count(logs.String(), want) != 1 {
			t.Errorf("log has %q %d times, want once", want, strings.Count(logs.String(), want))
		}
	}
}
