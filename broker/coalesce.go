package broker

import (
	"context"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// coalesceLimit is the most a coalescingConn gathers before it writes.
const coalesceLimit = 1 << 20

// closeFlushTimeout bounds how long Close waits to write what was gathered
// (the websocket's reply to the broker's close frame, say) before closing.
const closeFlushTimeout = time.Second

// coalescingConn is the connection under the websocket. While Send writes a
// message it gathers what the websocket writes, and writes it at once when
// the message is done (or each time coalesceLimit bytes are gathered). A
// websocket client masks what it sends through a 4 KB buffer of its own
// (github.com/coder/websocket, no option to change it), so an 80 KB result
// went out in 20 write system calls and as many segments for the broker to
// read. Bytes leave in the order they were written, the websocket's own
// control frames included (written during a Send, they wait for its end);
// while no Send is under way, writes go straight through.
type coalescingConn struct {
	net.Conn
	// holding counts the Sends under way: counted without mu, so that a Send
	// never waits for another's write before its own context applies.
	holding atomic.Int32
	mu      sync.Mutex // over buf and every write to Conn
	buf     []byte
}

func (c *coalescingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.holding.Load() == 0 {
		return c.Conn.Write(p)
	}
	if len(c.buf)+len(p) > coalesceLimit {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
		if len(p) > coalesceLimit {
			return c.Conn.Write(p)
		}
	}
	c.buf = append(c.buf, p...)
	return len(p), nil
}

// hold starts gathering, for one Send.
func (c *coalescingConn) hold() {
	c.holding.Add(1)
}

// release ends one Send's gathering and writes what was gathered (with
// several Sends under way, part of another's message may go too: the order
// is kept, so that is fine). If ctx ends while it writes, the socket is
// closed, as the websocket closes it when a write outlives its context; a
// ctx that had ended before (a Send that timed out waiting for its turn)
// closes nothing.
func (c *coalescingConn) release(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.holding.Add(-1)
	if len(c.buf) == 0 {
		return nil
	}
	if ctx.Err() == nil {
		stop := context.AfterFunc(ctx, func() { c.Conn.Close() })
		defer stop()
	}
	return c.flushLocked()
}

// Close writes what was gathered first, for at most closeFlushTimeout: the
// websocket answers the broker's close frame and closes the connection at
// once, and that answer may be waiting here for a Send's end. If a write is
// under way (stuck, when the websocket closes to end it), it closes at once.
func (c *coalescingConn) Close() error {
	if c.mu.TryLock() {
		if len(c.buf) > 0 {
			_ = c.Conn.SetWriteDeadline(time.Now().Add(closeFlushTimeout))
			_ = c.flushLocked()
		}
		c.mu.Unlock()
	}
	return c.Conn.Close()
}

func (c *coalescingConn) flushLocked() error {
	_, err := c.Conn.Write(c.buf)
	c.buf = c.buf[:0]
	return err
}

// coalescingTransport is base's transport, copied, with the connections it
// dials wrapped in a coalescingConn; dialed returns the last one. Without an
// *http.Transport to copy, it returns base and a dialed that returns nil.
func coalescingTransport(base *http.Client) (client *http.Client, dialed func() *coalescingConn, closeIdle func()) {
	rt := base.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	t, ok := rt.(*http.Transport)
	if !ok {
		return base, func() *coalescingConn { return nil }, func() {}
	}
	t = t.Clone()
	dial := t.DialContext
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	var mu sync.Mutex
	var last *coalescingConn
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		cc := &coalescingConn{Conn: conn}
		mu.Lock()
		last = cc
		mu.Unlock()
		return cc, nil
	}
	client = new(http.Client)
	*client = *base
	client.Transport = t
	return client, func() *coalescingConn {
		mu.Lock()
		defer mu.Unlock()
		return last
	}, t.CloseIdleConnections
}
