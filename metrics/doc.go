// Package metrics owns what pyrunner tells the outside about itself: the
// Prometheus metrics (metrics.go), the runner's state as health and
// readiness (State), and the HTTP server that serves them (Server).
//
// It knows nothing of n8n: callers report connections and tasks through
// State's methods.
package metrics
