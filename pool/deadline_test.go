package pool

import (
	"context"
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// TestDeadlineOrDone: the end of the context wakes a blocked read; release
// reports it and clears the deadline, and once release has returned
// nothing moves the deadline again, so the connection serves its next
// user.
func TestDeadlineOrDone(t *testing.T) {
	t.Run("woken", func(t *testing.T) {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		ctx, cancel := context.WithCancel(context.Background())
		release := deadlineOrDone(ctx, a, time.Time{})
		time.AfterFunc(50*time.Millisecond, cancel)
		if _, err := a.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read: %v, want the deadline", err)
		}
		if !release() {
			t.Fatal("release says the context did not end")
		}
		readAfter(t, a, b, 0)
	})
	t.Run("released first", func(t *testing.T) {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		ctx, cancel := context.WithCancel(context.Background())
		if deadlineOrDone(ctx, a, time.Time{})() {
			t.Fatal("release says the context ended")
		}
		cancel()
		readAfter(t, a, b, 0)
	})
	// Cancelled just before release, with a wake that takes its time:
	// release waits for it, so the reset after it holds.
	t.Run("wake under way", func(t *testing.T) {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		ctx, cancel := context.WithCancel(context.Background())
		release := deadlineOrDone(ctx, slowWake{a}, time.Time{})
		cancel()
		if !release() {
			t.Fatal("release says the context did not end")
		}
		// Read well after a wake that release had not waited for would
		// have landed (a machine too slow for that only lets it pass).
		readAfter(t, a, b, 300*time.Millisecond)
	})
}

// readAfter reads, after wait, what b writes: a's deadline must have been
// cleared.
func readAfter(t *testing.T, a, b net.Conn, wait time.Duration) {
	t.Helper()
	time.Sleep(wait)
	go func() { _, _ = b.Write([]byte{1}) }()
	if _, err := a.Read(make([]byte, 1)); err != nil {
		t.Fatalf("read after the reset: %v", err)
	}
}

// slowWake delays setting a deadline in the past, as a wake running on a
// busy machine might.
type slowWake struct{ net.Conn }

func (c slowWake) SetDeadline(t time.Time) error {
	if !t.IsZero() && t.Before(time.Now()) {
		time.Sleep(100 * time.Millisecond)
	}
	return c.Conn.SetDeadline(t)
}
