package fakebroker

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

func TestUpgradeRejections(t *testing.T) {
	b := startBroker(t, Options{UpgradeRateLimit: -1})
	tests := []struct {
		name       string
		path       string
		auth       func() string
		wantStatus int
	}{
		{"wrong path", "/runners/ws?id=r1", func() string { return "Bearer " + b.MintGrant() }, http.StatusNotFound},
		{"wrong path wins over missing auth", "/other?id=r1", func() string { return "" }, http.StatusNotFound},
		{"missing id", "/runners/_ws", func() string { return "Bearer " + b.MintGrant() }, http.StatusBadRequest},
		{"empty id", "/runners/_ws?id=", func() string { return "Bearer " + b.MintGrant() }, http.StatusBadRequest},
		{"missing id wins over missing auth", "/runners/_ws", func() string { return "" }, http.StatusBadRequest},
		{"no authorization", "/runners/_ws?id=r1", func() string { return "" }, http.StatusUnauthorized},
		{"not bearer", "/runners/_ws?id=r1", func() string { return "Basic " + b.MintGrant() }, http.StatusUnauthorized},
		{"bearer without token", "/runners/_ws?id=r1", func() string { return "Bearer " }, http.StatusUnauthorized},
		{"unknown grant", "/runners/_ws?id=r1", func() string { return "Bearer 0123" }, http.StatusForbidden},
		{"grant with an extra space", "/runners/_ws?id=r1", func() string { return "Bearer  " + b.MintGrant() }, http.StatusForbidden},
		{"lower-case bearer", "/runners/_ws?id=r1", func() string { return "bearer " + b.MintGrant() }, http.StatusSwitchingProtocols},
		{"upper-case bearer", "/runners/_ws?id=r1", func() string { return "BEARER " + b.MintGrant() }, http.StatusSwitchingProtocols},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws, resp, err := dial(waitCtx(t), b, tt.path, tt.auth())
			if tt.wantStatus == http.StatusSwitchingProtocols {
				if err != nil {
					t.Fatalf("dial: %v, want success", err)
				}
				_ = ws.CloseNow()
				return
			}
			if err == nil {
				_ = ws.CloseNow()
				t.Fatalf("dial succeeded, want %d", tt.wantStatus)
			}
			if resp == nil || resp.StatusCode != tt.wantStatus {
				t.Fatalf("dial: %v (response %v), want %d", err, resp, tt.wantStatus)
			}
		})
	}
}

// TestUpgradeRejectionIsBare checks the rejection byte for byte: n8n writes
// a status line and destroys the socket, with no headers and no body.
func TestUpgradeRejectionIsBare(t *testing.T) {
	b := startBroker(t, Options{})
	nc, err := net.Dial("tcp", b.Addr())
	noErr(t, err)
	defer nc.Close()
	noErr(t, nc.SetDeadline(time.Now().Add(testWait)))
	req := "GET /runners/_ws?id=r1 HTTP/1.1\r\nHost: " + b.Addr() + "\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer unknown\r\n\r\n"
	_, err = io.WriteString(nc, req)
	noErr(t, err)
	got, err := io.ReadAll(bufio.NewReader(nc))
	noErr(t, err)
	if string(got) != "HTTP/1.1 403 Forbidden\r\n\r\n" {
		t.Errorf("rejection %q, want a bare status line", got)
	}
}

func TestUpgradeRateLimit(t *testing.T) {
	b := startBroker(t, Options{UpgradeRateLimit: 2, RateLimitWindow: time.Hour})
	// Two upgrades pass the limiter (whatever happens to them next)...
	for i, want := range []int{http.StatusForbidden, http.StatusBadRequest} {
		path := "/runners/_ws?id=r1"
		if want == http.StatusBadRequest {
			path = "/runners/_ws"
		}
		_, resp, err := dial(waitCtx(t), b, path, "Bearer unknown")
		if err == nil || resp == nil || resp.StatusCode != want {
			t.Fatalf("upgrade %d: %v (%v), want %d", i+1, err, resp, want)
		}
	}
	// ...the third is refused before anything else is checked, even with a
	// valid grant; a wrong path is still checked first.
	_, resp, err := dial(waitCtx(t), b, "/runners/_ws?id=r1", "Bearer "+b.MintGrant())
	if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third upgrade: %v (%v), want 429", err, resp)
	}
	_, resp, err = dial(waitCtx(t), b, "/elsewhere", "")
	if err == nil || resp == nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("wrong path over the limit: %v (%v), want 404", err, resp)
	}
}

// TestUpgradeDuringShutdownGets503 uses a keep-alive connection opened
// before the shutdown: the listener is closed by then, but a connection
// already open can still ask, and finds the WebSocket server down.
func TestUpgradeDuringShutdownGets503(t *testing.T) {
	b, err := Start(t.Context(), Options{})
	noErr(t, err)
	t.Cleanup(func() { _ = b.Close() })
	nc, err := net.Dial("tcp", b.Addr())
	noErr(t, err)
	defer nc.Close()
	noErr(t, nc.SetDeadline(time.Now().Add(testWait)))
	br := bufio.NewReader(nc)
	_, err = io.WriteString(nc, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	noErr(t, err)
	resp, err := http.ReadResponse(br, nil)
	noErr(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()

	r := register(t, b, "r1")
	_, taskID := startTask(t, b, r, "o1", `{}`) // keeps the drain going
	shut := make(chan error, 1)
	go func() { shut <- b.Shutdown(waitCtx(t)) }()
	r.expect("broker:drain")

	_, err = io.WriteString(nc, "GET /runners/_ws?id=r2 HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer "+b.MintGrant()+"\r\n\r\n")
	noErr(t, err)
	got, err := io.ReadAll(br)
	noErr(t, err)
	if string(got) != "HTTP/1.1 503 Service Unavailable\r\n\r\n" {
		t.Errorf("upgrade during shutdown: %q, want a bare 503", got)
	}

	r.send([]byte(`{"type":"runner:taskdone","taskId":"` + taskID + `","data":{"result":[]}}`))
	r.closeStatus()
	noErr(t, <-shut)
}
