package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Server is the health-check server n8n's launcher probes (docs/protocol.md §11),
// with readiness and metrics besides:
//
//	GET /healthz  200 "OK" while the process serves (liveness)
//	GET /readyz   200 when registered with the broker and able to run a
//	              task, else 503; JSON either way
//	GET /metrics  Prometheus
//	anything else 200 "OK", as n8n's runner answers every request
type Server struct {
	srv      *http.Server
	listener net.Listener
}

// Listen binds host:port (port 0: any free port) and logs the bound
// address in n8n's runner's words, which the launcher and conformance
// tests look for.
func Listen(host string, port int, state *State, m *Metrics, logger *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return nil, fmt.Errorf("Port %d is already in use or cannot be bound on %s: %w", port, host, err)
	}
	mux := http.NewServeMux()
	ok := func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("OK"))
	}
	mux.HandleFunc("/", ok)
	mux.HandleFunc("/healthz", ok)
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		r := state.Ready()
		w.Header().Set("Content-Type", "application/json")
		if !r.Ready {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		json.NewEncoder(w).Encode(r)
	})
	mux.Handle("/metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	s := &Server{
		srv:      &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second},
		listener: ln,
	}
	addr := ln.Addr().(*net.TCPAddr)
	logger.Info(fmt.Sprintf("Health check server listening on %s, port %d", host, addr.Port))
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("health check server stopped", "error", err)
		}
	}()
	return s, nil
}

// Port is the bound port.
func (s *Server) Port() int { return s.listener.Addr().(*net.TCPAddr).Port }

// Close stops the server within a second.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return s.srv.Shutdown(ctx)
}
