// Package resources samples what pyrunner's Python processes and the
// machine use: resident memory and CPU of each zygote and reuse worker and
// of the task processes together, the memory available (a container's
// limit included), the load, and the free disk where caches and task
// directories live.
//
// Reading is apart from making sense of readings, as in node_exporter: a
// Reader does the I/O (GopsutilReader: gopsutil and /sys/fs/cgroup), the
// Sampler turns its readings into a Sample (CPU from the difference
// between two readings, memory growth from the lowest reading of each
// process), and the parsers of cgroup files take text. Tests drive the
// Sampler with a fake Reader.
package resources
