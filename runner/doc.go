// Package runner drives n8n tasks from offer to result: it registers with
// the broker, keeps offers open, accepts or rejects, validates settings,
// hands tasks to a pool.Executor, reports taskdone/taskerror, and handles
// cancel, drain, idle shutdown and graceful shutdown.
//
// One goroutine (Runner.loop) owns all task and offer state and is fed by
// channels; connections come and go under it (broker restarts), tasks do
// not know which connection they arrived on beyond where to send their
// result. Read Runner and loop.go first.
//
// It knows nothing of processes (that is pool's) nor of websockets (that is
// broker's).
package runner
