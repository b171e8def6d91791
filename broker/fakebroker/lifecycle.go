package fakebroker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/coder/websocket"
)

// drainPoll is how often Shutdown checks for active tasks while draining
// (n8n polls every 100 ms; finer here so tests do not wait for it).
const drainPoll = 10 * time.Millisecond

// Shutdown stops the broker the way n8n does when it stops (docs/protocol.md §9.1):
// it takes the WebSocket server down and stops listening, enters draining
// mode (new requests expire with reason "draining"), sends broker:drain to
// every registered runner, waits while tasks are active for at most
// DrainTimeout, then closes every connection with 1001 and an empty reason.
// Tasks still active then fail with "Node execution failed". If ctx ends
// first, the rest is done as Close does and ctx's error is returned.
func (b *Broker) Shutdown(ctx context.Context) error {
	b.mu.Lock()
	if b.closed || b.stopping {
		b.mu.Unlock()
		select {
		case <-b.closedCh:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("fakebroker shutdown: %w", ctx.Err())
		}
	}
	b.stopping = true
	b.draining = true
	for _, c := range b.runners {
		// n8n sends the drain to its registered runner connections only.
		c.enqueueLocked([]byte(`{"type":"broker:drain"}`))
	}
	b.mu.Unlock()

	// n8n's server.close() stops accepting connections at once: a runner
	// that reconnects during the drain finds nothing listening.
	if err := b.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		b.log.Debug("closing listener", "error", err)
	}

	err := b.drain(ctx)
	if err == nil {
		err = b.closeConnections(ctx)
	}
	if cerr := b.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fakebroker shutdown: %w", err)
	}
	return nil
}

// drain waits while tasks are active, at most DrainTimeout.
func (b *Broker) drain(ctx context.Context) error {
	deadline := time.NewTimer(b.opts.DrainTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(drainPoll)
	defer tick.Stop()
	for b.hasActiveTasks() {
		select {
		case <-deadline.C:
			b.log.Warn(fmt.Sprintf("Drain timeout reached after %s, will force-shutdown with active tasks...", b.opts.DrainTimeout))
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

// closeConnections closes every connection with 1001 and waits for the
// close handshakes, or for ctx.
func (b *Broker) closeConnections(ctx context.Context) error {
	b.mu.Lock()
	var done []chan struct{}
	for c := range b.conns {
		// n8n closes its registered runners with 1001; an unregistered
		// connection would die with the process, so it gets the same.
		b.dropConnLocked(c, websocket.StatusGoingAway, "", errMsgDisconnected)
		done = append(done, c.done)
	}
	b.mu.Unlock()
	for _, d := range done {
		select {
		case <-d:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (b *Broker) hasActiveTasks() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.tasks) > 0
}

// Close stops everything at once, without drain and without close frames:
// it simulates n8n crashing. Requests not yet finished end with ErrClosed.
// Close is idempotent; every goroutine the broker started has ended when it
// returns.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		<-b.closedCh
		return nil
	}
	b.closed = true
	for t := range b.timers {
		b.stopTimerLocked(t)
	}
	for r := range b.requests {
		r.finishLocked(ErrClosed)
	}
	conns := make([]*conn, 0, len(b.conns))
	for c := range b.conns {
		conns = append(conns, c)
	}
	b.mu.Unlock()

	b.cancel()
	err := b.srv.Close()
	for _, c := range conns {
		// Cancelling a connection's context makes the websocket library
		// drop the TCP connection with no close frame, like a crash.
		c.cancel()
	}
	b.wg.Wait()
	close(b.closedCh)
	if err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("fakebroker close: %w", err)
	}
	return nil
}

// brokerTimer is a timer whose callback runs with b.mu held, and that Close
// waits for and stops.
type brokerTimer struct {
	t    *time.Timer
	done bool // fired or stopped; guarded by b.mu
}

// startTimerLocked runs f, with b.mu held, after d, unless the timer is
// stopped first or the broker closes.
func (b *Broker) startTimerLocked(d time.Duration, f func()) *brokerTimer {
	bt := &brokerTimer{}
	if b.closed {
		bt.done = true
		return bt
	}
	b.timers[bt] = struct{}{}
	b.wg.Add(1)
	bt.t = time.AfterFunc(d, func() {
		defer b.wg.Done()
		b.mu.Lock()
		defer b.mu.Unlock()
		if bt.done || b.closed {
			return
		}
		bt.done = true
		delete(b.timers, bt)
		f()
	})
	return bt
}

// stopTimerLocked stops bt; nil and finished timers are fine.
func (b *Broker) stopTimerLocked(bt *brokerTimer) {
	if bt == nil || bt.done {
		return
	}
	bt.done = true
	delete(b.timers, bt)
	if bt.t.Stop() {
		b.wg.Done() // the callback will never run to do it
	}
}
