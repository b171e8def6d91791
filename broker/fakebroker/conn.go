package fakebroker

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/pyrunner/pyrunner/broker"
)

// conn is one runner WebSocket connection. Its reader runs on the HTTP
// handler's goroutine, its writer on its own, so that a runner that stops
// reading never blocks the broker: frames queue up instead.
type conn struct {
	b        *Broker
	ws       *websocket.Conn
	runnerID string
	opened   time.Time
	// ctx ends the connection's goroutines; cancelling it makes the
	// websocket library drop the TCP connection.
	ctx    context.Context
	cancel context.CancelFunc
	alive  atomic.Bool   // a pong arrived since the last heartbeat ping
	done   chan struct{} // closed when the reader has returned

	// Guarded by b.mu.
	registered bool
	removed    bool // the broker dropped it, or it ended: route nothing more
	queue      []outFrame
	closing    bool // a close is queued: queue nothing more
	wake       chan struct{}
}

// outFrame is a text frame to send, or, with close set, the close
// handshake that ends the writer.
type outFrame struct {
	data   []byte
	close  bool
	code   websocket.StatusCode
	reason string
}

func newConn(b *Broker, runnerID string) *conn {
	ctx, cancel := context.WithCancel(b.ctx)
	c := &conn{
		b:        b,
		runnerID: runnerID,
		opened:   time.Now(),
		ctx:      ctx,
		cancel:   cancel,
		done:     make(chan struct{}),
		wake:     make(chan struct{}, 1),
	}
	c.alive.Store(true) // n8n marks a new connection alive
	return c
}

// openConn registers c with the broker, starts its writer and sends
// broker:inforequest at once (docs/protocol.md §5.1). It reports false, having
// started nothing, when the broker is closed; otherwise the caller owns one
// count of b.wg for the reader.
func (b *Broker) openConn(c *conn) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		c.cancel()
		return false
	}
	b.conns[c] = struct{}{}
	b.recordEventLocked(c.runnerID, DirWSOpen, struct{}{})
	c.enqueueLocked([]byte(`{"type":"broker:inforequest"}`))
	b.wg.Add(2)
	go func() {
		defer b.wg.Done()
		c.writeLoop()
	}()
	return true
}

// enqueueLocked queues a text frame for the writer.
func (c *conn) enqueueLocked(frame []byte) {
	if c.closing {
		return
	}
	c.queue = append(c.queue, outFrame{data: frame})
	c.signal()
}

// closeLocked queues the close handshake after the frames already queued.
func (c *conn) closeLocked(code websocket.StatusCode, reason string) {
	if c.closing {
		return
	}
	c.closing = true
	c.queue = append(c.queue, outFrame{close: true, code: code, reason: reason})
	c.signal()
}

func (c *conn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// writeLoop sends queued frames in order until the close handshake, a
// write error, or the end of c.ctx.
func (c *conn) writeLoop() {
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-c.wake:
		}
		c.b.mu.Lock()
		batch := c.queue
		c.queue = nil
		c.b.mu.Unlock()
		for _, f := range batch {
			if f.close {
				// Close waits for the runner's close frame (at most 5 s,
				// the library's bound) before dropping the connection.
				_ = c.ws.Close(f.code, f.reason)
				return
			}
			c.b.record(c.runnerID, DirBrokerToRunner, f.data)
			if err := c.ws.Write(c.ctx, websocket.MessageText, f.data); err != nil {
				c.b.log.Debug("write to runner failed", "runnerId", c.runnerID, "error", err)
				return
			}
		}
	}
}

// readLoop reads frames, text or binary, until the connection ends.
func (c *conn) readLoop() {
	defer close(c.done)
	defer c.cancel()
	var in broker.MessageReader
	for {
		data, err := in.Read(c.ctx, c.ws)
		if err != nil {
			c.b.connEnded(c, err)
			return
		}
		c.b.handleFrame(c, data)
	}
}

// dropConnLocked is n8n's removeConnection: the broker stops routing to c
// at once, deregisters its runner (offers discarded, pending accepts
// rejected, tasks failed with failMsg) and closes it with code.
func (b *Broker) dropConnLocked(c *conn, code websocket.StatusCode, reason, failMsg string) {
	if c.removed {
		return
	}
	c.removed = true
	b.recordEventLocked(c.runnerID, DirWSClose, map[string]any{"code": int(code), "reason": reason, "by": "broker"})
	if b.runners[c.runnerID] == c {
		delete(b.runners, c.runnerID)
		b.notifyRunnersLocked()
		b.deregisterLocked(c.runnerID, failMsg)
	}
	c.closeLocked(code, reason)
}

// connEnded handles the end of a connection the broker did not close
// itself: the runner closed it, or it broke (docs/protocol.md §9.2).
func (b *Broker) connEnded(c *conn, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.conns, c)
	if c.removed {
		return
	}
	c.removed = true
	var ce websocket.CloseError
	code, reason := websocket.StatusAbnormalClosure, ""
	if errors.As(err, &ce) {
		code, reason = ce.Code, ce.Reason
	}
	b.recordEventLocked(c.runnerID, DirWSClose, map[string]any{"code": int(code), "reason": reason, "by": "runner"})
	b.log.Debug(fmt.Sprintf("runner %q disconnected", c.runnerID), "error", err)
	if b.runners[c.runnerID] == c {
		delete(b.runners, c.runnerID)
		b.notifyRunnersLocked()
		b.deregisterLocked(c.runnerID, errMsgDisconnected)
		b.log.Debug(fmt.Sprintf("Deregistered runner %q", c.runnerID))
	}
}
