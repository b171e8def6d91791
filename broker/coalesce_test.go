package broker

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
)

// writesConn records each write that reaches the connection.
type writesConn struct {
	net.Conn
	writes [][]byte
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

	// Past the limit what is gathered goes first, and a write as large as
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
