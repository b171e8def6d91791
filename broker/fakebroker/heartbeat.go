package fakebroker

import (
	"context"
	"time"

	"github.com/coder/websocket"
)

// heartbeatLoop pings every registered connection each HeartbeatInterval
// and drops those that sent no pong since the previous tick with 1002
// (docs/protocol.md §7). Like n8n's checkConnectionLiveness it checks the
// runner connections, which are the registered ones, and it checks all of
// them: 2.27.4's loop stopped at the first dead connection, newer n8n checks
// every connection in a tick (docs/n8n-observed.md §13).
func (b *Broker) heartbeatLoop() {
	tick := time.NewTicker(b.opts.HeartbeatInterval)
	defer tick.Stop()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-tick.C:
			b.heartbeat()
		}
	}
}

func (b *Broker) heartbeat() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	for _, c := range b.runners {
		if !c.alive.Swap(false) {
			b.log.Warn("Runner failed heartbeat check, closing connection", "runnerId", c.runnerID)
			b.dropConnLocked(c, websocket.StatusProtocolError, "", errMsgHeartbeat)
			continue
		}
		b.recordEventLocked(c.runnerID, DirWSPing, struct{}{})
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			c.ping(b.opts.HeartbeatInterval)
		}()
	}
}

// ping sends one ping control frame. The pong is noted by the connection's
// OnPongReceived; waiting here only bounds the goroutine.
func (c *conn) ping(wait time.Duration) {
	ctx, cancel := context.WithTimeout(c.ctx, wait)
	defer cancel()
	_ = c.ws.Ping(ctx)
}
