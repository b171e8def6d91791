package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/pyrunner/pyrunner/broker"
	"github.com/pyrunner/pyrunner/pool"
)

// execute runs one task on the executor and reports it: logNodeOutput
// calls, then exactly one runner:taskdone or runner:taskerror. It runs on
// its own goroutine and tells the loop when it is done.
func (r *Runner) execute(ctx context.Context, t *task, raw json.RawMessage) {
	res := r.exec.Run(ctx, pool.Task{ID: t.id, Settings: raw, Timeout: r.opts.TaskTimeout, Priority: pool.Normal,
		Code: t.settings.Code, Mode: t.settings.NodeMode, Workflow: t.settings.Workflow})
	took := time.Since(t.started)
	r.opts.Observer.TaskRan(res.Waited, res.Err.Limit())
	outcome := "success"

	if res.Err != nil {
		outcome = "error"
		switch {
		case isCause(ctx, errShutdown):
			res.Err = &pool.TaskError{Message: "Task was cancelled because the runner is shutting down", Kind: pool.KindCancelled}
			outcome = "cancelled"
		case isCause(ctx, errConnectionLost):
			// Nobody to tell: the broker already failed it to n8n.
			r.log.Info(fmt.Sprintf("Stopped task %s: %v", t.id, context.Cause(ctx)))
			r.post(taskEnded{id: t.id, outcome: "cancelled", took: took})
			return
		case res.Err.Kind == pool.KindCancelled:
			outcome = "cancelled"
		case res.Err.Kind == pool.KindTimeout:
			outcome = "timeout"
		}
		r.logPrints(res.Prints)
		r.logAllowlistHints(t.id, res.Err)
		if t.settings.ContinueOnFail {
			res = res.ContinueOnFail()
		}
		if res.Err != nil {
			r.sendError(t.conn, t.id, res.Err)
		} else {
			r.sendDone(t, res.Result, took)
		}
		r.post(taskEnded{id: t.id, outcome: outcome, took: took})
		return
	}

	r.logPrints(res.Prints)
	for _, params := range res.Prints {
		err := r.send(t.conn, broker.RPC(newID(), t.id, "logNodeOutput", params))
		if errors.Is(err, errFrameTooLarge) {
			// The print is only in pyrunner's log.
			r.log.Warn(fmt.Sprintf("Not sending a print of task %s to n8n: %v", t.id, err))
			continue
		}
		if err != nil {
			break
		}
	}
	if !r.sendDone(t, res.Result, took) {
		outcome = "error"
	}
	r.post(taskEnded{id: t.id, outcome: outcome, took: took})
}

// sendDone sends runner:taskdone, or a taskerror when the frame would be
// larger than the broker accepts (it would close the connection).
func (r *Runner) sendDone(t *task, result json.RawMessage, took time.Duration) bool {
	frame := broker.AppendTaskDone(make([]byte, 0, len(result)+64), t.id, result)
	err := r.sendFrame(t.conn, frame)
	if errors.Is(err, errFrameTooLarge) {
		r.sendError(t.conn, t.id, tooLargeError("result", len(frame), r.opts.MaxPayload))
		return false
	}
	if err != nil {
		return false
	}
	r.log.Info(fmt.Sprintf("Completed task %s in %s (%s) for node %q (%s) in workflow %q (%s)",
		t.id, took.Round(time.Microsecond), byteSize(len(result)),
		t.settings.NodeName, t.settings.NodeID, t.settings.WorkflowName, t.settings.WorkflowID))
	return true
}

// sendError sends runner:taskerror; an error too large to send (a huge
// message or description) is replaced by one saying so.
func (r *Runner) sendError(conn *broker.Conn, taskID string, e *pool.TaskError) {
	frame := broker.Encode(broker.TaskError(taskID, errorJSON(e)))
	if err := r.sendFrame(conn, frame); errors.Is(err, errFrameTooLarge) {
		_ = r.send(conn, broker.TaskError(taskID, errorJSON(tooLargeError("error", len(frame), r.opts.MaxPayload))))
	}
}

// tooLargeError reports a taskdone or taskerror frame ("result", "error")
// of size bytes that the broker would not accept.
func tooLargeError(what string, size, limit int) *pool.TaskError {
	return &pool.TaskError{
		Message:     fmt.Sprintf("Task %s of %d bytes exceeds the maximum payload of %d bytes (N8N_RUNNERS_MAX_PAYLOAD)", what, size, limit),
		Description: new(string),
	}
}

// logPrints writes the task's print() calls to the runner's log, as n8n's
// runner's child does ("[user code] …").
func (r *Runner) logPrints(prints []json.RawMessage) {
	for _, p := range prints {
		var args []string
		if json.Unmarshal(p, &args) == nil {
			r.log.Info("[user code] " + strings.Join(args, " "))
		}
	}
}

func byteSize(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// disallowedImport finds the sandbox's refusals of an import, in n8n's
// words, in a task error's message or description.
var disallowedImport = regexp.MustCompile(`Import of (standard library module|external package) '([^']+)' is disallowed`)

// logAllowlistHints says in pyrunner's log which setting would allow an
// import the sandbox refused. The task error keeps n8n's exact text
// ("Allowed stdlib modules: none"), which names no setting.
func (r *Runner) logAllowlistHints(taskID string, e *pool.TaskError) {
	text := e.Message
	if e.Description != nil {
		text += "\n" + *e.Description
	}
	seen := map[string]bool{}
	for _, m := range disallowedImport.FindAllStringSubmatch(text, -1) {
		kind, module := m[1], m[2]
		if seen[module] {
			continue
		}
		seen[module] = true
		setting := "N8N_RUNNERS_STDLIB_ALLOW"
		if kind == "external package" {
			setting = "N8N_RUNNERS_EXTERNAL_ALLOW"
		}
		r.log.Warn(fmt.Sprintf("Task %s imports %s '%s', which %s does not allow: add it there (comma-separated, or * for all) to allow it",
			taskID, kind, module, setting))
	}
}
