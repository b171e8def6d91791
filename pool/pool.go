package pool

import (
	"context"
	"encoding/json"
	"strings"
	"time"
)

// Priority orders tasks waiting for a worker. Tasks from n8n are Normal;
// local callers (pyrunner exec) may choose.
type Priority int

const (
	Low Priority = iota - 1
	Normal
	High
)

// Task is one Code-node execution.
type Task struct {
	// ID is n8n's task id; it appears in logs only.
	ID string
	// Settings is broker:tasksettings.settings exactly as received. The pool
	// hands it to Python untouched; only the runner looks inside.
	Settings json.RawMessage
	// Timeout is the runner-side execution limit; zero means none.
	Timeout  time.Duration
	Priority Priority
	// Code is settings.code and Mode settings.nodeMode, when the caller
	// has read them: the keys of the executor's caches of analysis
	// verdicts (Code) and of compiled code (both). Empty: no caching.
	Code string
	Mode string
	// Workflow is settings.workflowId ("" when absent). In workflow mode
	// (Options.PerWorkflow) it decides which workers may run the task.
	Workflow string
	// analyzed: the code is known to pass the static analysis.
	analyzed bool
}

// ErrorKind says where a task failure came from, which decides how the
// runner reports it (continueOnFail does not apply to Static errors).
type ErrorKind string

const (
	// KindUser: the user's code raised, exited or was refused at run time.
	KindUser ErrorKind = "user"
	// KindStatic: rejected before running (security analysis, syntax error).
	KindStatic ErrorKind = "static"
	// KindTimeout: the runner-side task timeout fired.
	KindTimeout ErrorKind = "timeout"
	// KindCancelled: the caller cancelled the task's context.
	KindCancelled ErrorKind = "cancelled"
	// KindCrashed: the task process died without a result (signal, exit code,
	// broken channel, limit exceeded).
	KindCrashed ErrorKind = "crashed"
	// KindInternal: the pool could not run the task at all.
	KindInternal ErrorKind = "internal"
)

// TaskError is a failed task in the shape n8n expects in runner:taskerror
// (docs/errors.md §1). Description is a pointer because some errors omit the
// key altogether. Stack is the Python traceback through the user's own
// frames, with the user's line numbers (never pyrunner's paths); n8n's
// broker accepts it and n8n copies it onto the node's error. n8n's runner
// does not send one.
type TaskError struct {
	Message     string    `json:"message"`
	Description *string   `json:"description,omitempty"`
	Stack       string    `json:"stack,omitempty"`
	Kind        ErrorKind `json:"-"`
}

func (e *TaskError) Error() string { return e.Message }

// The per-task limits a TaskError may report hitting (Limit).
const (
	LimitMemory  = "memory"
	LimitCPU     = "cpu"
	LimitResult  = "result"
	LimitTimeout = "timeout"
)

// Limit names the per-task limit the error reports hitting (LimitMemory,
// LimitCPU, LimitResult, LimitTimeout), or is empty. It reads the
// messages the pool and the task process give those errors.
func (e *TaskError) Limit() string {
	switch {
	case e == nil:
		return ""
	case e.Kind == KindTimeout:
		return LimitTimeout
	case strings.HasPrefix(e.Message, "Task exceeded the memory limit"):
		return LimitMemory
	case strings.HasPrefix(e.Message, "Task exceeded the CPU time limit"):
		return LimitCPU
	case strings.HasPrefix(e.Message, "Task result is too large"), strings.HasPrefix(e.Message, "Task result of"):
		return LimitResult
	}
	return ""
}

// Result is the outcome of Run: exactly one of Result and Err is set.
type Result struct {
	// Result is the JSON of runner:taskdone's data.result, validated.
	Result json.RawMessage
	// Prints holds one JSON array of strings per captured print() call, in
	// order, each ready to be logNodeOutput's params.
	Prints []json.RawMessage
	Err    *TaskError
	// AnalysisPassed: the task process reports that the code got past the
	// static analysis (it ran, or was refused only at run time).
	AnalysisPassed bool
	// Waited is how long the task waited for a process.
	Waited time.Duration
	// ownCompiled: the reuse worker ran its own compiled copy of the code
	// (for the code cache's counts).
	ownCompiled bool
}

// ContinueOnFail is the Code node's "Continue On Fail" applied to r: a
// failure while running becomes one {"json": {"error": message}} item, as
// n8n's runner reports it (even in per-item mode; docs/code-node.md §7), and the prints are
// dropped. A static error (syntax, security analysis, settings) still
// fails the task. The runner and `pyrunner exec` both apply it here.
func (r Result) ContinueOnFail() Result {
	if r.Err == nil || r.Err.Kind == KindStatic {
		return r
	}
	item, _ := json.Marshal([]map[string]map[string]string{{"json": {"error": r.Err.Message}}}) // strings always marshal
	return Result{Result: item, AnalysisPassed: r.AnalysisPassed}
}

// Executor runs tasks in Python processes. The runner asks it for capacity
// and hands it tasks; it knows nothing of processes.
type Executor interface {
	// Start brings the executor up and returns once it can run a task, or
	// with an error when it cannot (bad interpreter, startup timeout). ctx
	// bounds the start-up only; Close stops the executor.
	Start(ctx context.Context) error
	// Capacity is how many tasks may run at once right now; 0 while the
	// executor cannot run any (not started, restarting, closed).
	Capacity() int
	// Run executes t and returns its result; it never returns without one.
	// Cancelling ctx stops the task's processes (SIGTERM, 1 s, SIGKILL) and
	// yields a KindCancelled error. Safe for concurrent use; callers keep
	// the number of concurrent Runs within Capacity.
	Run(ctx context.Context, t Task) Result
	// Close kills every process and waits for them. Safe to call twice.
	Close() error
}

// UnmarshalJSON reads the error object a task process sends, keeping
// whether "description" was present at all.
func (e *TaskError) UnmarshalJSON(b []byte) error {
	var raw struct {
		Message     string  `json:"message"`
		Description *string `json:"description"`
		Stack       string  `json:"stack"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	e.Message, e.Description, e.Stack = raw.Message, raw.Description, raw.Stack
	return nil
}
