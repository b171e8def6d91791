// Package loadgen drives pyrunner the way the benchmarks, the soak and
// the leak tests do: a closed-loop load (ClosedLoop, read it first) that
// summarises latencies and throughput as Result, and the workloads those
// numbers are measured on (TrivialCode, TransformCode over CustomerItems),
// defined once so that `make bench`, `pyrunner demo -bench` and
// `pyrunner exec -repeat` compare.
//
// It measures what a caller's function reports and knows nothing of how a
// task is run: through the broker, the pool or a whole binary.
package loadgen
