package fakebroker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Errors of the requester side.
var (
	// ErrNoTask is returned by TaskID when the request ended before a runner
	// accepted it (expired, cancelled, or the broker closed).
	ErrNoTask = errors.New("fakebroker: request ended without a task")
	// ErrRequestDone is returned by Cancel and SendSettings once the request
	// has its outcome.
	ErrRequestDone = errors.New("fakebroker: request already finished")
	// ErrNotAccepted is returned by SendSettings before a runner accepted
	// the request.
	ErrNotAccepted = errors.New("fakebroker: no runner has accepted the request yet")
	// ErrNotDeferred is returned by SendSettings for a request without
	// DeferSettings, whose settings went out with the accept.
	ErrNotDeferred = errors.New("fakebroker: request does not defer its settings")
	// ErrInvalidSettings is returned by Wait for settings that are not JSON.
	ErrInvalidSettings = errors.New("fakebroker: settings are not valid JSON")
)

// RequestOptions shapes a task request.
type RequestOptions struct {
	TaskType string // default "python"
	// DeferSettings holds broker:tasksettings after the runner accepted,
	// until SendSettings. Without SendSettings within AcceptTimeout the
	// broker cancels the task, as n8n does when its requester is late.
	DeferSettings bool
}

// Outcome is what the requester learnt about its request.
type Outcome struct {
	TaskID string
	// Done: runner:taskdone arrived. Result is its data.result, Data its
	// whole data object.
	Done   bool
	Result json.RawMessage
	Data   json.RawMessage
	// Error is runner:taskerror's error, or the broker's own error for
	// timeouts and disconnects, as {"message": ...}.
	Error json.RawMessage
	// Expired is "timeout" or "draining" when no runner took the request.
	Expired string
	// Cancelled is the reason of a cancel by the requester (Cancel) or of
	// the broker's cancel when DeferSettings' deadline passed.
	Cancelled string
	// RPCs are the runner:rpc calls received for the task before it
	// completed, in order.
	RPCs []RPCCall
	// Accepted: runner:taskaccepted; SettingsSent: broker:tasksettings
	// queued; Completed: the outcome was settled. Completed.Sub(SettingsSent)
	// is the task's latency as the broker sees it.
	Accepted     time.Time
	SettingsSent time.Time
	Completed    time.Time
}

// Request is one task request from the requester (n8n's Code node).
type Request struct {
	b        *Broker
	id       string
	settings json.RawMessage
	opts     RequestOptions
	accepted chan struct{} // closed when a runner accepted
	done     chan struct{} // closed when the outcome is final

	// Guarded by b.mu.
	taskID           string
	acceptInProgress bool
	refreshes        int
	mismatchWarned   bool
	timer            *brokerTimer // the request timeout, while pending
	finished         bool
	out              Outcome
	err              error
}

// Request asks for a task, as requester:taskrequest does, and matches it
// with the runners' offers. settings go to the runner compacted, otherwise
// unchanged; nil settings are sent as {}.
func (b *Broker) Request(settings json.RawMessage, opts RequestOptions) *Request {
	if opts.TaskType == "" {
		opts.TaskType = "python"
	}
	if settings == nil {
		settings = json.RawMessage(`{}`)
	}
	r := &Request{
		b:        b,
		id:       nanoid(21),
		opts:     opts,
		accepted: make(chan struct{}),
		done:     make(chan struct{}),
	}
	// Compacted here, as JSON.stringify would send them, which checks them
	// in the same pass: one pass over settings that can be megabytes.
	var compact bytes.Buffer
	valid := json.Compact(&compact, settings) == nil
	r.settings = compact.Bytes()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.requests[r] = struct{}{}
	switch {
	case !valid:
		r.finishLocked(ErrInvalidSettings)
	case b.closed:
		r.finishLocked(ErrClosed)
	case b.draining:
		r.out.Expired = ExpiredDraining
		r.finishLocked(nil)
	default:
		r.timer = b.startTimerLocked(b.opts.TaskRequestTimeout, func() { b.requestTimedOutLocked(r) })
		b.pending = append(b.pending, r)
		b.settleLocked()
	}
	return r
}

// RunTask requests a task and waits for its outcome. If ctx ends first the
// task is cancelled as a user would, and ctx's error returned.
func (b *Broker) RunTask(ctx context.Context, settings json.RawMessage) (Outcome, error) {
	r := b.Request(settings, RequestOptions{})
	out, err := r.Wait(ctx)
	if err != nil && ctx.Err() != nil {
		_ = r.Cancel(ReasonCancelledByUser)
	}
	return out, err
}

// TaskID waits until a runner accepted the request and returns the task id.
func (r *Request) TaskID(ctx context.Context) (string, error) {
	select {
	case <-r.accepted:
	case <-r.done:
	case <-ctx.Done():
		return "", fmt.Errorf("waiting for a runner to accept: %w", ctx.Err())
	}
	r.b.mu.Lock()
	defer r.b.mu.Unlock()
	if r.taskID == "" {
		return "", fmt.Errorf("%w (expired %q, cancelled %q, error %v)", ErrNoTask, r.out.Expired, r.out.Cancelled, r.err)
	}
	return r.taskID, nil
}

// SendSettings sends the held broker:tasksettings of a DeferSettings
// request, which starts the broker's task timer.
func (r *Request) SendSettings() error {
	b := r.b
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case !r.opts.DeferSettings:
		return ErrNotDeferred
	case r.finished:
		return ErrRequestDone
	case r.taskID == "":
		return ErrNotAccepted
	}
	t := b.tasks[r.taskID]
	if t == nil || t.req != r || t.settingsSent {
		return ErrRequestDone
	}
	b.sendSettingsLocked(t)
	return nil
}

// Cancel is requester:taskcancel: the broker deletes the task, then sends
// broker:taskcancel with reason (ReasonCancelledByUser when empty). A
// request no runner has accepted yet is withdrawn.
func (r *Request) Cancel(reason string) error {
	if reason == "" {
		reason = ReasonCancelledByUser
	}
	b := r.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if r.finished {
		return ErrRequestDone
	}
	if t := b.tasks[r.taskID]; r.taskID != "" && t != nil && t.req == r {
		b.cancelTaskLocked(t, reason)
	}
	if i := slices.Index(b.pending, r); i >= 0 {
		b.pending = slices.Delete(b.pending, i, i+1)
	}
	r.out.Cancelled = reason
	r.out.Completed = time.Now()
	r.finishLocked(nil)
	return nil
}

// Wait blocks until the request has its outcome, ctx ends, or the broker
// closes (ErrClosed, with what the outcome had so far).
func (r *Request) Wait(ctx context.Context) (Outcome, error) {
	select {
	case <-r.done:
	case <-ctx.Done():
		return r.snapshot(), fmt.Errorf("waiting for task outcome: %w", ctx.Err())
	}
	r.b.mu.Lock()
	defer r.b.mu.Unlock()
	return r.snapshotLocked(), r.err
}

func (r *Request) snapshot() Outcome {
	r.b.mu.Lock()
	defer r.b.mu.Unlock()
	return r.snapshotLocked()
}

func (r *Request) snapshotLocked() Outcome {
	out := r.out
	out.RPCs = slices.Clone(r.out.RPCs)
	return out
}

// finishLocked settles the request once; err is what Wait returns.
func (r *Request) finishLocked(err error) {
	if r.finished {
		return
	}
	r.finished = true
	r.err = err
	r.b.stopTimerLocked(r.timer)
	delete(r.b.requests, r)
	close(r.done)
}
