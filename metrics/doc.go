// Package metrics owns what pyrunner tells the outside about itself and
// the alerts that act on it: the Prometheus metrics (metrics.go, declared
// together; collector.go reads the pool at scrape time), the runner's
// events (State, a runner.Observer), the Monitor that samples the Python
// processes and the machine, judges the alerts and acts on them, and the
// HTTP server for health, readiness, metrics, /stats and /alerts (Server).
//
// Its subpackages do the parts that need no server: window (task
// statistics over the last minutes), resources (sampling), alerts (the
// rules) and report (the markdown of `pyrunner report`).
//
// It knows nothing of n8n, and nothing of processes beyond the Pool
// interface that cmd adapts the pool to.
package metrics
