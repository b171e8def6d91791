package metrics

import (
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestReadiness(t *testing.T) {
	capacity := 0
	s := NewState(New(), func() int { return capacity })
	if s.Ready().Ready {
		t.Fatal("ready before registering")
	}
	s.Registered()
	if r := s.Ready(); r.Ready || !r.Registered {
		t.Fatalf("ready without pool capacity: %+v", r)
	}
	capacity = 3
	if r := s.Ready(); !r.Ready || r.Capacity != 3 {
		t.Fatalf("not ready: %+v", r)
	}
	s.Connected(false)
	s.Failed(io.ErrUnexpectedEOF)
	if r := s.Ready(); r.Ready || r.LastError != "unexpected EOF" {
		t.Fatalf("ready after the connection dropped: %+v", r)
	}
}

func TestServer(t *testing.T) {
	m := New()
	s := NewState(m, nil)
	var logs strings.Builder
	srv, err := Listen("127.0.0.1", 0, s, m, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	if !strings.Contains(logs.String(), "Health check server listening on 127.0.0.1, port "+strconv.Itoa(srv.Port())) {
		t.Fatalf("log: %s", logs.String())
	}
	s.TaskAccepted()
	s.TaskFinished("success", 3*time.Millisecond)
	base := "http://127.0.0.1:" + strconv.Itoa(srv.Port())
	cases := []struct {
		method, path string
		code         int
		body         string
	}{
		{"GET", "/healthz", 200, "OK"},
		{"GET", "/", 200, "OK"},
		{"POST", "/anything", 200, "OK"},
		{"GET", "/readyz", 503, `"ready":false`},
		{"GET", "/metrics", 200, `pyrunner_tasks_finished_total{outcome="success"} 1`},
		{"GET", "/metrics", 200, `pyrunner_tasks_in_progress 0`},
	}
	for _, tc := range cases {
		req, _ := http.NewRequest(tc.method, base+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || !strings.Contains(string(body), tc.body) {
			t.Errorf("%s %s = %d %q, want %d with %q", tc.method, tc.path, resp.StatusCode, body, tc.code, tc.body)
		}
	}
}

func TestListenFailsOnBusyPort(t *testing.T) {
	m := New()
	s := NewState(m, nil)
	first, err := Listen("127.0.0.1", 0, s, m, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	if _, err := Listen("127.0.0.1", first.Port(), s, m, slog.New(slog.DiscardHandler)); err == nil ||
		!strings.Contains(err.Error(), "Port "+strconv.Itoa(first.Port())+" is already in use") {
		t.Fatalf("second bind: %v", err)
	}
}
