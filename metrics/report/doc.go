// Package report renders a running pyrunner's /stats (metrics.Stats) as a
// markdown performance report: a short reading in plain words first (the
// trend of latency, limits hit, alerts, readiness), then the numbers.
// `pyrunner report` fetches /stats and calls Render; the rendering itself
// does no I/O but writing, so a golden file tests it.
package report
