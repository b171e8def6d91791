package broker

import (
	"context"
	"net"
	"net/http"
	"sync"
)

// coalesceLimit is the most a coalescingConn gathers before it writes.
const coalesceLimit = 1 << 20

// coalescingConn is the connection under the websocket. While Send writes a
// message it gathers what the websocket writes, and writes it at once when
// the message is done (or each time coalesceLimit bytes are gathered). A
// websocket client masks what it sends through a 4 KB buffer of its own
// (github.com/coder/websocket, no option to change it), so an 80 KB result
// went out in 20 write system calls and as many segments for the broker to
// read. Bytes leave in the order they were written, the websocket's own
// control frames included; outside a Send, writes go straight through.
type coalescingConn struct {
	net.Conn
	mu      sync.Mutex
	holding int // Sends under way
	buf     []byte
}

func (c *coalescingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.holding == 0 {
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
	c.mu.Lock()
	c.holding++
	c.mu.Unlock()
}

// release ends one Send's gathering and writes what was gathered (with
// several Sends under way, part of another's message may go too: the order
// is kept, so that is fine). If ctx ends while it writes, the connection is
// closed, as the websocket closes it when a write outlives its context.
func (c *coalescingConn) release(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.holding--
	if len(c.buf) == 0 {
		return nil
	}
	stop := context.AfterFunc(ctx, func() { c.Conn.Close() })
	defer stop()
	return c.flushLocked()
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
