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

// wakeOnDone makes the end of ctx wake a read or write blocked on conn, by
// setting its deadline in the past. The returned release undoes that and
// reports whether ctx ended first: once it has returned, nothing will set
// the deadline again (a wake already started is waited for), so the caller
// may reset it for the connection's next user.
func wakeOnDone(ctx context.Context, conn deadliner) (release func() (woken bool)) {
	woke := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		_ = conn.SetDeadline(time.Unix(1, 0))
		close(woke)
	})
	return func() bool {
		if stop() {
			return false
		}
		<-woke
		return true
	}
}
