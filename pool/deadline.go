package pool

import (
	"context"
	"time"
)

// deadliner is a connection whose blocked reads and writes end at a
// deadline (a net.Conn).
type deadliner interface {
	SetDeadline(time.Time) error
}

// deadlineOrDone bounds the reads and writes on conn that follow: they end
// at deadline (zero: none), or as soon as ctx ends, which moves the
// deadline into the past. The returned release waits for such a wake
// already under way, clears the deadline for the connection's next user
// (nothing sets it again once release has returned), and reports whether
// ctx ended first.
func deadlineOrDone(ctx context.Context, conn deadliner, deadline time.Time) (release func() (woken bool)) {
	_ = conn.SetDeadline(deadline)
	woke := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		_ = conn.SetDeadline(time.Unix(1, 0))
		close(woke)
	})
	return func() bool {
		woken := !stop()
		if woken {
			<-woke
		}
		_ = conn.SetDeadline(time.Time{})
		return woken
	}
}
