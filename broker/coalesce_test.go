package broker

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// writesConn records each write that reaches the connection, and a close.
type writesConn struct {
	net.Conn
	writes [][]byte
	closed bool
}

func (w *writesConn) Close() error {
	w.closed = true
	return nil
}

func (w *writesConn) Write(p []byte) (int, error) {
	w.writes = append(w.writes, bytes.Clone(p))
	return len(p), nil
}

func TestCoalescingConnWritesEachHeldMessageAtOnce(t *testing.T) {
	under := &writesConn{}
	c := &coalescingConn{Conn: under}
	write := func(s string) {
		if n, err := c.Write([]byte(s)); err != nil || n != len(s) {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	write("a")
	write("b")
	if len(under.writes) != 2 {
		t.Fatalf("outside a Send: %d writes, want each of the 2 at once", len(under.writes))
	}
	c.hold()
	write("head")
	write("body")
	write("tail")
	if len(under.writes) != 2 {
		t.Fatalf("%d writes reached the connection before the message was done", len(under.writes)-2)
	}
	if err := c.release(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(under.writes) != 3 || string(under.writes[2]) != "headbodytail" {
		t.Fatalf("writes %q, want the held ones as one, in order", under.writes)
	}

	// Past the limit what is gathered goes first, and a write larger than
	// the limit goes straight through after it.
	c.hold()
	write(strings.Repeat("x", coalesceLimit-10))
	write(strings.Repeat("y", 20))
	big := strings.Repeat("z", coalesceLimit+1)
	write(big)
	write("end")
	if err := c.release(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := under.writes[3:]
	want := []string{strings.Repeat("x", coalesceLimit-10), strings.Repeat("y", 20), big, "end"}
	if len(got) != len(want) {
		t.Fatalf("%d writes past the limit, want %d", len(got), len(want))
	}
	for i := range want {
		if string(got[i]) != want[i] {
			t.Errorf("write %d is %d bytes starting %.10q, want %d bytes starting %.10q", i, len(got[i]), got[i], len(want[i]), want[i])
		}
	}
}

// TestReleaseAfterItsContextEndedClosesNothing: a Send that timed out
// waiting for its turn still lets what was gathered go (another Send's
// bytes, a pong), and does not close the connection.
func TestReleaseAfterItsContextEndedClosesNothing(t *testing.T) {
	under := &writesConn{}
	c := &coalescingConn{Conn: under}
	c.hold()
	if _, err := c.Write([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.release(ctx); err != nil {
		t.Fatal(err)
	}
	if len(under.writes) != 1 || string(under.writes[0]) != "pong" || under.closed {
		t.Fatalf("writes %q, closed %v; want the gathered bytes written and the connection open", under.writes, under.closed)
	}
}

// TestCloseReplyLeavesDuringASend: the broker closes the connection while a
// Send is under way; the websocket's answering close frame, gathered for
// that Send, must still reach the broker before the socket closes.
func TestCloseReplyLeavesDuringASend(t *testing.T) {
	closed := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			closed <- err
			return
		}
		closed <- ws.Close(websocket.StatusNormalClosure, "bye")
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := (&Dialer{BrokerURI: srv.URL, RunnerID: "r", GrantToken: "g"}).Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if c.out == nil {
		t.Fatal("the connection was not dialed through a coalescingConn")
	}
	c.out.hold() // a Send under way
	if _, err := c.Receive(ctx); websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Fatalf("Receive: %v, want the broker's normal closure", err)
	}
	if err := <-closed; err != nil {
		t.Errorf("the broker's close handshake: %v (the runner's answer did not arrive)", err)
	}
}
