package fakebroker

import (
	"crypto/subtle"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"time"
)

// Paths of the broker's endpoints. n8n's N8N_RUNNERS_PATH could move the
// first two, but the launcher and every runner hard-code them
// (docs/protocol.md §2.1).
const (
	pathAuth    = "/runners/auth"
	pathWS      = "/runners/_ws"
	pathHealthz = "/healthz"
)

// forbiddenBody is n8n 2.41.1's 403 body for a wrong auth token, as
// recorded (docs/n8n-observed.md §12).
const forbiddenBody = `{"code":403,"message":"Forbidden","stacktrace":"ResponseError: Forbidden\n    at TaskBrokerAuthController.createGrantToken (<path>:29:10)\n    at processTicksAndRejections (node:internal/process/task_queues:104:5)\n    at <path>:193:24\n    at <path>:121:17"}`

// maxAuthBody bounds what /runners/auth reads; a token is 64 characters.
const maxAuthBody = 1 << 20

// handleAuth is POST /runners/auth (docs/protocol.md §2.1): auth token in, grant
// token out.
func (b *Broker) handleAuth(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(io.LimitReader(r.Body, maxAuthBody))
	b.mu.Lock()
	b.recordEventLocked("", DirHTTPRequest, map[string]any{
		"method": r.Method, "url": r.URL.String(), "body": jsonOrString(raw),
	})
	b.mu.Unlock()

	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if !b.authLimiter.allow(host, time.Now()) {
		b.respondJSON(w, http.StatusTooManyRequests, []byte(`{"message":"Too many requests"}`))
		return
	}

	token, issue := parseAuthBody(raw)
	if issue != "" {
		// n8n answers with the first zod issue code as the message.
		body, _ := json.Marshal(map[string]any{
			"code": http.StatusBadRequest, "message": issue,
			"stacktrace": "ResponseError: " + issue + "\n    at TaskBrokerAuthController.createGrantToken (<path>)",
		})
		b.respondJSON(w, http.StatusBadRequest, body)
		return
	}
	// ConstantTimeCompare fails at once on a length mismatch, as n8n's does.
	if subtle.ConstantTimeCompare([]byte(token), []byte(b.opts.AuthToken)) != 1 {
		b.respondJSON(w, http.StatusForbidden, []byte(forbiddenBody))
		return
	}

	b.mu.Lock()
	grant := b.mintGrantLocked()
	b.mu.Unlock()
	body, _ := json.Marshal(map[string]any{"data": map[string]string{"token": grant}})
	b.respondJSON(w, http.StatusOK, body)
}

// parseAuthBody applies n8n's schema, z.object({token: z.string().min(1)}),
// and returns the token or the zod issue code of the first problem.
func parseAuthBody(raw []byte) (token, issue string) {
	var body map[string]json.RawMessage
	if err := json.Unmarshal(raw, &body); err != nil || body == nil {
		return "", "invalid_type"
	}
	rawToken := body["token"]
	if len(rawToken) == 0 || rawToken[0] != '"' {
		return "", "invalid_type"
	}
	if err := json.Unmarshal(rawToken, &token); err != nil {
		return "", "invalid_type"
	}
	if token == "" {
		return "", "too_small"
	}
	return token, ""
}

// respondJSON writes a JSON response and records it.
func (b *Broker) respondJSON(w http.ResponseWriter, status int, body []byte) {
	b.mu.Lock()
	b.recordEventLocked("", DirHTTPResponse, map[string]any{"status": status, "body": json.RawMessage(body)})
	b.mu.Unlock()
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// mintGrantLocked stores a new grant token valid for GrantTTL, and forgets
// expired ones.
func (b *Broker) mintGrantLocked() string {
	now := time.Now()
	for t, exp := range b.grants {
		if !now.Before(exp) {
			delete(b.grants, t)
		}
	}
	token := newGrantToken()
	b.grants[token] = now.Add(b.opts.GrantTTL)
	return token
}

// consumeGrantLocked deletes token and reports whether it was valid: known,
// unexpired and unused (docs/protocol.md §2.2).
func (b *Broker) consumeGrantLocked(token string) bool {
	exp, ok := b.grants[token]
	delete(b.grants, token)
	return ok && time.Now().Before(exp)
}

// jsonOrString keeps a JSON body as JSON and anything else as a string.
func jsonOrString(raw []byte) json.RawMessage {
	if json.Valid(raw) {
		return append(json.RawMessage(nil), raw...)
	}
	s, _ := json.Marshal(string(raw))
	return s
}
