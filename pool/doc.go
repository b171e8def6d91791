// Package pool runs Code-node tasks in Python processes behind the Executor
// interface, so the runner never sees a process.
//
// Read Executor (pool.go) first. SpawnExecutor starts a new interpreter per
// task; it is the simple, slow baseline. The worker protocol the Go side and
// the Python side share is described in package python.
package pool
