package fakebroker

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/coder/websocket"
)

// ServeHTTP routes the broker's three endpoints (docs/protocol.md §1.1).
func (b *Broker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case isUpgrade(r) || r.URL.Path == pathWS:
		b.handleUpgrade(w, r)
	case r.URL.Path == pathAuth && r.Method == http.MethodPost:
		b.handleAuth(w, r)
	case r.URL.Path == pathHealthz && r.Method == http.MethodGet:
		// Always ok, whatever N8N_ENDPOINT_HEALTH says (docs/protocol.md §1.1).
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	default:
		http.NotFound(w, r)
	}
}

func isUpgrade(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

// handleUpgrade runs n8n's checks, in n8n's order (docs/protocol.md §3.2), then
// accepts the WebSocket and serves it until it ends.
func (b *Broker) handleUpgrade(w http.ResponseWriter, r *http.Request) {
	runnerID := r.URL.Query().Get("id")
	b.mu.Lock()
	b.recordEventLocked(runnerID, DirWSConnect, map[string]any{
		"url": r.URL.RequestURI(), "headers": map[string]string{"authorization": r.Header.Get("Authorization")},
	})
	b.mu.Unlock()

	if status := b.checkUpgrade(r, runnerID); status != 0 {
		b.rejectUpgrade(w, runnerID, status)
		return
	}

	c := newConn(b, runnerID)
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		// n8n checks no origin and, like the ws library's server default,
		// negotiates no compression.
		InsecureSkipVerify: true,
		CompressionMode:    websocket.CompressionDisabled,
		OnPongReceived:     func(context.Context, []byte) { c.alive.Store(true) },
	})
	if err != nil {
		b.log.Warn("Task runner connection attempt failed", "runnerId", runnerID, "error", err)
		return
	}
	ws.SetReadLimit(b.opts.MaxPayload)
	c.ws = ws

	if !b.openConn(c) {
		_ = ws.CloseNow()
		return
	}
	defer b.wg.Done()
	c.readLoop()
}

// checkUpgrade returns the status that rejects the upgrade, or 0. A valid
// grant token is consumed here, before the upgrade itself.
func (b *Broker) checkUpgrade(r *http.Request, runnerID string) int {
	if r.URL.Path != pathWS {
		return http.StatusNotFound
	}
	if !b.upgradeLimiter.allow(time.Now()) {
		return http.StatusTooManyRequests
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopping || b.closed {
		return http.StatusServiceUnavailable
	}
	if runnerID == "" {
		return http.StatusBadRequest
	}
	token, ok := bearerToken(r.Header.Get("Authorization"))
	if !ok {
		return http.StatusUnauthorized
	}
	if !b.consumeGrantLocked(token) {
		b.log.Warn("Task runner connection attempt failed: invalid or expired grant token. " +
			"If the runner takes long to connect, consider raising N8N_RUNNERS_GRANT_TOKEN_TTL")
		return http.StatusForbidden
	}
	return 0
}

// bearerToken matches n8n's check: case-insensitive ^Bearer .+$, and the
// token is everything after the first 7 characters.
func bearerToken(header string) (string, bool) {
	if len(header) <= len("Bearer ") || !strings.EqualFold(header[:len("Bearer ")], "Bearer ") {
		return "", false
	}
	token := header[len("Bearer "):]
	if strings.ContainsAny(token, "\r\n\u2028\u2029") { // "." matches no line terminator
		return "", false
	}
	return token, true
}

// rejectUpgrade answers like n8n: a bare "HTTP/1.1 <code> <text>" status
// line, no headers, no body, and the socket destroyed.
func (b *Broker) rejectUpgrade(w http.ResponseWriter, runnerID string, status int) {
	b.mu.Lock()
	b.recordEventLocked(runnerID, DirHTTPResponse, map[string]any{"status": status})
	b.mu.Unlock()
	b.log.Debug("rejected runner connection", "runnerId", runnerID, "status", status)

	hj, ok := w.(http.Hijacker)
	if !ok {
		w.WriteHeader(status)
		return
	}
	netConn, _, err := hj.Hijack()
	if err != nil {
		w.WriteHeader(status)
		return
	}
	defer netConn.Close()
	_ = netConn.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = fmt.Fprintf(netConn, "HTTP/1.1 %d %s\r\n\r\n", status, http.StatusText(status))
}
