package fakebroker

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// keepReading reads, and so answers pings, until the connection ends.
func keepReading(t *testing.T, r *runner) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if _, _, err := r.ws.Read(context.Background()); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		_ = r.ws.CloseNow()
		<-done
	})
}

// TestHeartbeatDropsRunnerThatStopsAnswering: a runner that stops reading
// is dropped; one that reads answers every ping in time. The interval is
// the time the healthy one has for each pong: 500 ms, where a pong from
// this process takes milliseconds, even on a loaded machine.
func TestHeartbeatDropsRunnerThatStopsAnswering(t *testing.T) {
	b := startBroker(t, Options{HeartbeatInterval: 500 * time.Millisecond})
	healthy := register(t, b, "healthy")
	keepReading(t, healthy)
	stuck := register(t, b, "stuck")
	req, _ := startTask(t, b, stuck, "o1", `{}`)
	// stuck stops reading now, so it answers no ping.

	eventually(t, "the stuck runner to be dropped", func() bool {
		return hasFrame(b, "stuck", DirWSClose, `"code":1002`, `"by":"broker"`)
	})
	out := wait(t, req)
	if msg := errorMessage(t, out.Error); msg != "Task execution aborted because runner became unresponsive" {
		t.Errorf("task error %q", msg)
	}
	if code, reason := stuck.closeStatus(); code != websocket.StatusProtocolError || reason != "" {
		t.Errorf("stuck runner closed with %v %q, want 1002", code, reason)
	}

	// The healthy runner has answered every ping since, over several ticks.
	eventually(t, "three pings to the healthy runner after the drop", func() bool {
		pings := 0
		dropped := false
		for _, f := range b.Transcript() {
			if f.RunnerID == "stuck" && f.Dir == DirWSClose {
				dropped = true
			}
			if dropped && f.RunnerID == "healthy" && f.Dir == DirWSPing {
				pings++
			}
		}
		return pings >= 3
	})
	if got := b.Runners(); len(got) != 1 || got[0] != "healthy" {
		t.Errorf("Runners() = %v, want [healthy]", got)
	}
	if hasFrame(b, "healthy", DirWSClose) {
		t.Error("the healthy runner was closed")
	}
}

func TestHeartbeatIsAPingControlFrame(t *testing.T) {
	b := startBroker(t, Options{HeartbeatInterval: 20 * time.Millisecond})
	pinged := make(chan struct{}, 1)
	ws, _, err := websocket.Dial(waitCtx(t), "ws://"+b.Addr()+"/runners/_ws?id=r1", &websocket.DialOptions{
		HTTPHeader: map[string][]string{"Authorization": {"Bearer " + b.MintGrant()}},
		HTTPClient: noKeepAlive,
		OnPingReceived: func(context.Context, []byte) bool {
			select {
			case pinged <- struct{}{}:
			default:
			}
			return true
		},
	})
	noErr(t, err)
	r := &runner{t: t, id: "r1", ws: ws}
	t.Cleanup(func() { _ = ws.CloseNow() })
	r.expect("broker:inforequest")
	r.send([]byte(`{"type":"runner:info","name":"x","types":["python"]}`))
	r.expect("broker:runnerregistered")
	keepReading(t, r)
	select {
	case <-pinged:
	case <-waitCtx(t).Done():
		t.Fatal("no ping control frame arrived")
	}
	for _, f := range b.Transcript() {
		if f.Dir == DirBrokerToRunner && strings.Contains(string(f.Msg), "ping") {
			t.Errorf("heartbeat sent as a JSON message: %s", f.Msg)
		}
	}
}

// TestPingWaitsForThePong: Ping returns once the runner has answered; a
// runner that does not read never answers, and an unknown one is named.
func TestPingWaitsForThePong(t *testing.T) {
	b := startBroker(t, Options{})
	keepReading(t, register(t, b, "reading"))
	register(t, b, "stuck")
	noErr(t, b.Ping(waitCtx(t), "reading"))
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := b.Ping(ctx, "stuck"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("ping to a runner that does not read: %v, want the deadline", err)
	}
	if err := b.Ping(waitCtx(t), "nobody"); !errors.Is(err, ErrUnknownRunner) {
		t.Errorf("ping to an unknown runner: %v", err)
	}
}
