package runner

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pyrunner/pyrunner/broker"
	"github.com/pyrunner/pyrunner/pool"
)

// handleFrame acts on one frame from the broker. Nothing a broker sends
// crashes the runner: a malformed frame is logged, and answered when it
// names a task that is waiting for an answer.
func (r *Runner) handleFrame(ctx context.Context, s *loopState, idle *idleTimer, ev frameIn) {
	m := ev.msg
	if ev.err != nil {
		r.log.Warn(fmt.Sprintf("Malformed message from broker: %v", ev.err), "frame", ev.excerpt)
		r.answerMalformed(s, m, ev.err)
		return
	}
	switch m.Type {
	case broker.TypeInfoRequest:
		_ = r.send(s.conn, broker.RunnerInfo(r.opts.Name, r.opts.TaskType))
	case broker.TypeRunnerRegistered:
		s.registered = true
		r.log.Info("Registered with broker")
		r.opts.Observer.Registered()
		idle.arm()
		r.topUp(s)
	case broker.TypeTaskOfferAccept:
		r.accept(s, idle, m.TaskID, m.OfferID)
	case broker.TypeTaskSettings:
		r.start(ctx, s, m, ev.settings, ev.settingsErr)
	case broker.TypeTaskCancel:
		r.cancel(s, m.TaskID)
	case broker.TypeDrain:
		s.draining = true
		clear(s.offers)
		r.opts.Observer.OffersOpen(0)
		r.drained.Store(true)
		r.log.Info("Received drain signal, stopped accepting new tasks")
	case broker.TypeRPCResponse:
		// logNodeOutput's answer; nothing waits for it (docs/protocol.md §5.6).
	case broker.TypeTaskDataResponse, broker.TypeNodeTypes:
		// JavaScript runners' messages; a Python task carries its items.
	default:
		r.log.Warn("Unknown message type: " + m.Type)
	}
}

// answerMalformed answers what the broker is waiting for, when the
// malformed frame says enough to know what that is.
func (r *Runner) answerMalformed(s *loopState, m broker.Message, err error) {
	if m.TaskID == "" {
		return
	}
	switch m.Type {
	case broker.TypeTaskOfferAccept:
		// The broker waits for an accept or a reject; a reject re-queues
		// the request for another offer.
		r.reject(s, m.TaskID, fmt.Sprintf("Malformed taskofferaccept: %v", err))
	case broker.TypeTaskSettings:
		if t, ok := s.tasks[m.TaskID]; ok && t.state == waitingForSettings {
			r.failWaiting(s, t, "Invalid task settings message: "+err.Error())
		}
	}
}

// failWaiting ends a task that is waiting for its settings with a
// runner:taskerror.
func (r *Runner) failWaiting(s *loopState, t *task, message string) {
	s.forget(t.id)
	r.sendError(t.conn, t.id, &pool.TaskError{Message: message, Description: new(string)})
	r.opts.Observer.TaskFinished("error", 0)
	r.topUp(s)
}

// accept answers broker:taskofferaccept with n8n's runner's checks, in its
// order (docs/protocol.md §5.4), after our own: a stopping runner refuses.
func (r *Runner) accept(s *loopState, idle *idleTimer, taskID, offerID string) {
	switch {
	case s.stopping:
		r.reject(s, taskID, broker.ReasonShuttingDown)
	case !s.offers.take(offerID, time.Now()):
		r.reject(s, taskID, broker.ReasonOfferExpired)
	case len(s.tasks) >= r.opts.MaxConcurrency || len(s.tasks) >= r.exec.Capacity():
		r.reject(s, taskID, broker.ReasonAtCapacity)
	case s.tasks[taskID] != nil:
		r.reject(s, taskID, "Task already accepted")
	default:
		s.tasks[taskID] = &task{id: taskID, state: waitingForSettings, conn: s.conn}
		if r.send(s.conn, broker.TaskAccepted(taskID)) != nil {
			s.forget(taskID)
			return
		}
		r.log.Info("Accepted task " + taskID)
		r.opts.Observer.TaskAccepted()
		r.opts.Observer.OffersOpen(len(s.offers))
		idle.arm()
	}
}

func (r *Runner) reject(s *loopState, taskID, reason string) {
	r.opts.Observer.TaskRejected(reason)
	_ = r.send(s.conn, broker.TaskRejected(taskID, reason))
}

// cancel handles broker:taskcancel in both states of a task (docs/protocol.md §8.2).
func (r *Runner) cancel(s *loopState, taskID string) {
	t, ok := s.tasks[taskID]
	if !ok {
		r.log.Info(fmt.Sprintf("Received cancel for unknown task: %s. Discarding message.", taskID))
		return
	}
	if t.state == waitingForSettings {
		r.drop(s, taskID)
		r.log.Info(fmt.Sprintf("Cancelled task %s (waiting for settings)", taskID))
		r.topUp(s)
		return
	}
	t.cancel(errCancelledByBroker)
	r.log.Info(fmt.Sprintf("Cancelled task %s for node %q (%s) in workflow %q (%s)",
		taskID, t.settings.NodeName, t.settings.NodeID, t.settings.WorkflowName, t.settings.WorkflowID))
}

// start handles broker:tasksettings: checks the settings and hands the
// task to the executor.
func (r *Runner) start(ctx context.Context, s *loopState, m broker.Message, set settings, err error) {
	t, ok := s.tasks[m.TaskID]
	if !ok {
		r.log.Warn(fmt.Sprintf("Received settings for unknown task: %s. Discarding message.", m.TaskID))
		return
	}
	if t.state != waitingForSettings {
		r.log.Warn(fmt.Sprintf("Received settings for task %s that is already running. Discarding message.", m.TaskID))
		return
	}
	if err != nil {
		// n8n's runner only logs this and the task hangs until the
		// broker's timeout; the workflow deserves to know now.
		r.log.Warn(fmt.Sprintf("Invalid settings for task %s: %v", t.id, err))
		r.failWaiting(s, t, err.Error())
		return
	}
	taskCtx, cancel := context.WithCancelCause(ctx)
	t.state, t.cancel, t.settings, t.started = running, cancel, set, time.Now()
	r.log.Info("Received task " + t.id)
	r.tasks.Add(1)
	go func() {
		defer r.tasks.Done()
		r.execute(taskCtx, t, m.Settings)
	}()
}

func truncate(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return string(b[:n]) + "…"
}

// isCause reports whether ctx was cancelled with target as its cause.
func isCause(ctx context.Context, target error) bool {
	return errors.Is(context.Cause(ctx), target)
}
