// Package pool runs Code-node tasks in Python processes behind the Executor
// interface, so the runner never sees a process. It knows nothing of n8n's
// protocol; the messages to and from Python are package python's.
//
// Read Executor (pool.go) first, then ZygoteExecutor (executor.go): zygotes
// (zygote.go, kept alive by slots.go) fork task processes that the
// maintainer (maintain.go) starts ahead of demand and the scheduler
// (scheduler.go) hands to tasks by priority (waitqueue.go) as they arrive
// (ratemeter.go); in workflow mode a worker serves one workflow's tasks
// (workflow.go). A task runs on a taskProcess (process.go, task.go), forked
// by a zygote or spawned as its own interpreter (spawn.go, the benchmarks'
// baseline). Every goroutine an executor starts ends, and is waited for, in
// Close.
package pool
