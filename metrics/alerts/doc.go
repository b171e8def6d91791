// Package alerts decides, from task statistics and resource samples, which
// alerts are active and what pyrunner does about them: replace a Python
// process whose memory keeps growing, stop offering tasks while memory or
// disk is short. It does no I/O and reads no clock: Engine.Evaluate takes
// everything it judges, so tests feed it synthetic series.
//
// Every rule raises only after RaiseAfter evaluations in a row beyond its
// threshold and resolves only after ClearAfter in a row back within it by
// a margin (hysteresis): a single sample neither raises nor resolves one.
//
// Read Engine and rules.go.
package alerts
