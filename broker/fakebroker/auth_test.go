package fakebroker

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// postAuth posts body to /runners/auth and returns status and body.
func postAuth(t *testing.T, b *Broker, body string) (int, string) {
	t.Helper()
	resp, err := noKeepAlive.Post(b.URL()+"/runners/auth", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST /runners/auth: %v", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading auth response: %v", err)
	}
	return resp.StatusCode, string(raw)
}

func TestAuth(t *testing.T) {
	b := startBroker(t, Options{AuthRateLimit: -1})
	hex64 := regexp.MustCompile(`^[0-9a-f]{64}$`)

	tests := []struct {
		name        string
		body        string
		wantStatus  int
		wantMessage string // the body's "message"
	}{
		{"right token", `{"token":"test-token"}`, http.StatusOK, ""},
		{"wrong token", `{"token":"wrong-token"}`, http.StatusForbidden, "Forbidden"},
		{"token of another length", `{"token":"test-token-longer"}`, http.StatusForbidden, "Forbidden"},
		{"empty token", `{"token":""}`, http.StatusBadRequest, "too_small"},
		{"token not a string", `{"token":5}`, http.StatusBadRequest, "invalid_type"},
		{"null token", `{"token":null}`, http.StatusBadRequest, "invalid_type"},
		{"no token", `{}`, http.StatusBadRequest, "invalid_type"},
		{"not an object", `["test-token"]`, http.StatusBadRequest, "invalid_type"},
		{"not JSON", `token=test-token`, http.StatusBadRequest, "invalid_type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := postAuth(t, b, tt.body)
			if status != tt.wantStatus {
				t.Fatalf("status %d, want %d (body %s)", status, tt.wantStatus, body)
			}
			var got struct {
				Code       int    `json:"code"`
				Message    string `json:"message"`
				Stacktrace string `json:"stacktrace"`
				Data       struct {
					Token string `json:"token"`
				} `json:"data"`
			}
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatalf("body %q: %v", body, err)
			}
			if tt.wantStatus == http.StatusOK {
				if !hex64.MatchString(got.Data.Token) {
					t.Fatalf("grant token %q, want 64 hex characters", got.Data.Token)
				}
				return
			}
			if got.Code != tt.wantStatus || got.Message != tt.wantMessage {
				t.Errorf("body code %d message %q, want %d %q", got.Code, got.Message, tt.wantStatus, tt.wantMessage)
			}
			if !strings.HasPrefix(got.Stacktrace, "ResponseError: "+tt.wantMessage) {
				t.Errorf("stacktrace %q, want n8n's ResponseError", got.Stacktrace)
			}
		})
	}
}

func TestAuthForbiddenBodyIsN8ns(t *testing.T) {
	b := startBroker(t, Options{})
	_, body := postAuth(t, b, `{"token":"wrong-token"}`)
	// Recorded from n8n 2.41.1 (docs/n8n-observed.md §12).
	want := `{"code":403,"message":"Forbidden","stacktrace":"ResponseError: Forbidden\n    at TaskBrokerAuthController.createGrantToken (<path>:29:10)\n    at processTicksAndRejections (node:internal/process/task_queues:104:5)\n    at <path>:193:24\n    at <path>:121:17"}`
	if body != want {
		t.Errorf("403 body\n got %s\nwant %s", body, want)
	}
}

func TestAuthRateLimit(t *testing.T) {
	// A long window, so that the sixth request is in the first one's window
	// however slow the machine.
	b := startBroker(t, Options{RateLimitWindow: time.Hour})
	for i := range 5 {
		if status, body := postAuth(t, b, `{"token":"test-token"}`); status != http.StatusOK {
			t.Fatalf("request %d: status %d %s, want 200", i+1, status, body)
		}
	}
	// The limiter runs before validation: even a wrong body gets 429.
	for _, body := range []string{`{"token":"test-token"}`, `{}`} {
		status, got := postAuth(t, b, body)
		if status != http.StatusTooManyRequests || got != `{"message":"Too many requests"}` {
			t.Errorf("over the limit with %s: %d %s, want 429 {\"message\":\"Too many requests\"}", body, status, got)
		}
	}
	// /healthz is not limited.
	resp, err := noKeepAlive.Get(b.URL() + "/healthz")
	noErr(t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("healthz after the auth limit: %d", resp.StatusCode)
	}
}

func TestHealthz(t *testing.T) {
	b := startBroker(t, Options{})
	resp, err := noKeepAlive.Get(b.URL() + "/healthz")
	noErr(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	noErr(t, err)
	if resp.StatusCode != http.StatusOK || string(body) != `{"status":"ok"}` {
		t.Errorf("GET /healthz: %d %s, want 200 {\"status\":\"ok\"}", resp.StatusCode, body)
	}
}

func TestGrantIsSingleUse(t *testing.T) {
	b := startBroker(t, Options{})
	_, body := postAuth(t, b, `{"token":"test-token"}`)
	var got struct {
		Data struct {
			Token string `json:"token"`
		} `json:"data"`
	}
	noErr(t, json.Unmarshal([]byte(body), &got))

	ws, _, err := dial(waitCtx(t), b, "/runners/_ws?id=r1", "Bearer "+got.Data.Token)
	if err != nil {
		t.Fatalf("first connection with the grant: %v", err)
	}
	t.Cleanup(func() { _ = ws.CloseNow() })

	_, resp, err := dial(waitCtx(t), b, "/runners/_ws?id=r1", "Bearer "+got.Data.Token)
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("second connection with the same grant: %v (%v), want 403", err, resp)
	}
}

func TestGrantExpires(t *testing.T) {
	b := startBroker(t, Options{GrantTTL: 20 * time.Millisecond})
	grant := b.MintGrant()
	time.Sleep(50 * time.Millisecond) // past the TTL
	_, resp, err := dial(waitCtx(t), b, "/runners/_ws?id=r1", "Bearer "+grant)
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("connection with an expired grant: %v (%v), want 403", err, resp)
	}
}
