package fakebroker

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/pyrunner/pyrunner/broker"
)

func TestShutdownDrainsThenClosesWith1001(t *testing.T) {
	b, err := Start(t.Context(), Options{})
	noErr(t, err)
	t.Cleanup(func() { _ = b.Close() })
	r := register(t, b, "r1")
	req, taskID := startTask(t, b, r, "o1", `{}`)

	shut := make(chan error, 1)
	go func() { shut <- b.Shutdown(waitCtx(t)) }()

	_, data := r.expect(broker.TypeDrain)
	if string(data) != `{"type":"broker:drain"}` {
		t.Errorf("drain frame %s", data)
	}
	if out := wait(t, b.Request(json.RawMessage(`{}`), RequestOptions{})); out.Expired != ExpiredDraining {
		t.Errorf("request during drain: %+v, want expired %q", out, ExpiredDraining)
	}
	// The running task may finish during the drain.
	r.send(broker.AppendTaskDone(nil, taskID, json.RawMessage(`[1]`)))
	if out := wait(t, req); !out.Done || string(out.Result) != `[1]` {
		t.Errorf("task finished during drain: %+v", out)
	}
	if code, reason := r.closeStatus(); code != websocket.StatusGoingAway || reason != "" {
		t.Errorf("closed with %v %q, want 1001 and an empty reason", code, reason)
	}
	noErr(t, <-shut)
	if _, err := net.Dial("tcp", b.Addr()); err == nil {
		t.Error("broker still listening after Shutdown")
	}
}

func TestShutdownGivesUpAfterDrainTimeout(t *testing.T) {
	b, err := Start(t.Context(), Options{DrainTimeout: 30 * time.Millisecond})
	noErr(t, err)
	t.Cleanup(func() { _ = b.Close() })
	r := register(t, b, "r1")
	req, _ := startTask(t, b, r, "o1", `{}`)

	shut := make(chan error, 1)
	go func() { shut <- b.Shutdown(waitCtx(t)) }()
	r.expect(broker.TypeDrain)
	if code, _ := r.closeStatus(); code != websocket.StatusGoingAway {
		t.Errorf("close code %v, want 1001", code)
	}
	noErr(t, <-shut)
	if msg := errorMessage(t, wait(t, req).Error); msg != "Node execution failed" {
		t.Errorf("task cut off by shutdown: %q", msg)
	}
}

func TestCloseIsAHardStop(t *testing.T) {
	b, err := Start(t.Context(), Options{})
	noErr(t, err)
	r := register(t, b, "r1")
	running, _ := startTask(t, b, r, "o1", `{}`)
	pending := b.Request(json.RawMessage(`{}`), RequestOptions{})

	noErr(t, b.Close())
	noErr(t, b.Close()) // idempotent
	if code, _ := r.closeStatus(); code != -1 {
		t.Errorf("runner saw close code %v, want no close frame at all", code)
	}
	for name, req := range map[string]*Request{"running": running, "pending": pending} {
		if _, err := req.Wait(waitCtx(t)); !errors.Is(err, ErrClosed) {
			t.Errorf("%s request: %v, want ErrClosed", name, err)
		}
	}
	if err := b.WaitRegistered(waitCtx(t), 1); !errors.Is(err, ErrClosed) {
		t.Errorf("WaitRegistered after Close: %v", err)
	}
	if _, err := b.Request(nil, RequestOptions{}).Wait(waitCtx(t)); !errors.Is(err, ErrClosed) {
		t.Errorf("Request after Close: %v", err)
	}
	noErr(t, b.Shutdown(waitCtx(t)))
}

func TestRestartOnTheSameAddress(t *testing.T) {
	first, err := Start(t.Context(), Options{})
	noErr(t, err)
	old := register(t, first, "r1")
	noErr(t, first.Close())
	old.closeStatus()

	second := startBroker(t, Options{Addr: first.Addr()})
	if second.Addr() != first.Addr() {
		t.Fatalf("restarted on %s, want %s", second.Addr(), first.Addr())
	}
	register(t, second, "r1")
}

// TestNoGoroutinesLeft exercises every part of the broker, stops it, and
// checks that every goroutine it started has ended.
func TestNoGoroutinesLeft(t *testing.T) {
	stops := []struct {
		name string
		stop func(*testing.T, *Broker, []*runner)
	}{
		{"Close", func(t *testing.T, b *Broker, _ []*runner) { noErr(t, b.Close()) }},
		{"Shutdown", func(t *testing.T, b *Broker, rs []*runner) {
			shut := make(chan error, 1)
			go func() { shut <- b.Shutdown(waitCtx(t)) }()
			for _, r := range rs {
				r.closeStatus() // answers the close handshake
			}
			noErr(t, <-shut)
		}},
	}
	for _, tt := range stops {
		t.Run(tt.name, func(t *testing.T) {
			before := runtime.NumGoroutine()
			// r1 answers pings only while it reads, between the steps
			// below: a heartbeat it can keep up with on a loaded machine.
			b, err := Start(context.Background(), Options{HeartbeatInterval: 500 * time.Millisecond, TaskTimeout: time.Hour, DrainTimeout: 20 * time.Millisecond})
			noErr(t, err)
			r1, r2 := register(t, b, "r1"), register(t, b, "r2")
			keepReading(t, r2)
			req, taskID := startTask(t, b, r1, "o1", `{}`)
			r1.sendJSON(broker.RPC("c1", taskID, "logNodeOutput", json.RawMessage(`[]`)))
			r1.expect(broker.TypeRPCResponse)
			r1.send(broker.AppendTaskDone(nil, taskID, json.RawMessage(`[]`)))
			wait(t, req)
			startTask(t, b, r1, "o2", `{}`)  // left running
			b.Request(nil, RequestOptions{}) // left pending
			eventually(t, "heartbeat pings", func() bool { return hasFrame(b, "r1", DirWSPing) })

			tt.stop(t, b, []*runner{r1})
			_ = r1.ws.CloseNow()
			_ = r2.ws.CloseNow()
			settleGoroutines(t, before)
		})
	}
}
