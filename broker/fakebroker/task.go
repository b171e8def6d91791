package fakebroker

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/pyrunner/pyrunner/broker"
)

// Reasons the broker sends in broker:taskcancel, and the messages of the
// errors it gives the requester, exactly as n8n words them.
const (
	// ReasonCancelledByUser is a user's cancel (docs/protocol.md §8.1); Cancel("")
	// sends it.
	ReasonCancelledByUser = "Task cancelled by user"
	// ReasonTaskTimedOut is the broker task timeout's cancel (docs/protocol.md §6).
	ReasonTaskTimedOut = "Task execution timed out"
	// ReasonAckWindowElapsed follows a missed accept acknowledgement (docs/protocol.md §5.4).
	ReasonAckWindowElapsed = "Acknowledgement window elapsed"
	// ReasonRequestExpired cancels a task whose request expired or was
	// cancelled while the runner was acknowledging it.
	ReasonRequestExpired = "Task request expired"
	// ReasonRequesterTimedOut cancels a task whose settings the requester
	// (DeferSettings) did not send within AcceptTimeout.
	ReasonRequesterTimedOut = "Requester took too long to acknowledge the task"

	errMsgDisconnected = "Node execution failed" // TaskRunnerDisconnectedError
	errMsgHeartbeat    = "Task execution aborted because runner became unresponsive"
)

// Reasons of Outcome.Expired, as in broker:requestexpired.
const (
	ExpiredTimeout  = "timeout"
	ExpiredDraining = "draining"
)

// task is an accepted task, known to the broker until it completes, fails
// or is cancelled.
type task struct {
	id       string
	runnerID string
	req      *Request

	settingsSent bool
	// completing: runner:taskdone or runner:taskerror arrived; the task
	// stays known until the requester has processed it (see requester.go).
	completing    bool
	timer         *brokerTimer // broker task timeout, armed with the settings
	settingsTimer *brokerTimer // the requester's deadline, with DeferSettings
}

// sendSettingsLocked sends broker:tasksettings and starts the broker's
// task timer (docs/protocol.md §5.5, §6).
func (b *Broker) sendSettingsLocked(t *task) {
	t.settingsSent = true
	b.stopTimerLocked(t.settingsTimer)
	t.timer = b.startTimerLocked(b.opts.TaskTimeout, func() { b.taskTimedOutLocked(t) })
	t.req.out.SettingsSent = time.Now()
	b.sendLocked(t.runnerID, taskSettingsFrame(t.id, t.req.settings))
}

// untrackLocked forgets t and disarms its timers.
func (b *Broker) untrackLocked(t *task) {
	if b.tasks[t.id] == t {
		delete(b.tasks, t.id)
	}
	b.stopTimerLocked(t.timer)
	b.stopTimerLocked(t.settingsTimer)
}

// cancelTaskLocked deletes the task first, then sends broker:taskcancel
// (docs/protocol.md §8.1), so a later taskdone or taskerror is ignored.
func (b *Broker) cancelTaskLocked(t *task, reason string) {
	b.untrackLocked(t)
	b.sendLocked(t.runnerID, taskCancelFrame(t.id, reason))
}

// failTaskLocked deletes the task and gives the requester the broker's own
// error.
func (b *Broker) failTaskLocked(t *task, message string) {
	b.untrackLocked(t)
	if t.completing {
		return
	}
	r := t.req
	r.out.Error = errorObject(message)
	r.out.Completed = time.Now()
	r.finishLocked(nil)
}

// taskTimedOutLocked is the broker task timeout in external mode: cancel
// the runner's task, then fail it to the requester.
func (b *Broker) taskTimedOutLocked(t *task) {
	if b.tasks[t.id] != t || t.completing {
		return
	}
	b.sendLocked(t.runnerID, taskCancelFrame(t.id, ReasonTaskTimedOut))
	b.failTaskLocked(t, timeoutMessage(b.opts.TaskTimeout))
}

// taskDoneLocked handles runner:taskdone. A task the broker no longer
// knows (cancelled, timed out, failed) is ignored.
func (b *Broker) taskDoneLocked(taskID string, data json.RawMessage) {
	t := b.completeLocked(taskID)
	if t == nil {
		return
	}
	r := t.req
	r.out.Done = true
	r.out.Data = data
	var d struct {
		Result json.RawMessage `json:"result"`
	}
	if json.Unmarshal(data, &d) == nil {
		r.out.Result = d.Result
	}
	r.finishLocked(nil)
}

// taskErrorLocked handles runner:taskerror, ignored like taskdone for a
// task the broker no longer knows.
func (b *Broker) taskErrorLocked(taskID string, errObj json.RawMessage) {
	t := b.completeLocked(taskID)
	if t == nil {
		return
	}
	t.req.out.Error = errObj
	t.req.finishLocked(nil)
}

// completeLocked marks a known task as completing and stamps its outcome.
// The requester forgets it after the RPC answers queued before it.
func (b *Broker) completeLocked(taskID string) *task {
	t := b.tasks[taskID]
	if t == nil || t.completing {
		return nil
	}
	t.completing = true
	b.stopTimerLocked(t.timer)
	b.stopTimerLocked(t.settingsTimer)
	t.req.out.Completed = time.Now()
	b.deferLocked(func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.tasks[t.id] == t {
			delete(b.tasks, t.id)
		}
	})
	return t
}

func (b *Broker) tasksOfLocked(runnerID string) []*task {
	var out []*task
	for _, t := range b.tasks {
		if t.runnerID == runnerID {
			out = append(out, t)
		}
	}
	return out
}

// timeoutMessage is TaskRunnerExecutionTimeoutError's message. n8n's
// timeout is whole seconds; a shorter one, as tests use, prints as a
// decimal number of seconds.
func timeoutMessage(d time.Duration) string {
	secs := strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
	unit := "seconds"
	if d == time.Second {
		unit = "second"
	}
	return fmt.Sprintf("Task execution timed out after %s %s", secs, unit)
}

// errorObject is the broker's own error as the requester sees it.
func errorObject(message string) json.RawMessage {
	b, _ := json.Marshal(map[string]string{"message": message}) // strings always marshal
	return b
}

// taskSettingsFrame builds broker:tasksettings by hand so that the settings
// (compacted by Request, as JSON.stringify would send them) pass through
// unchanged: encoding/json would escape <, > and & in them, which n8n's
// JSON.stringify does not.
func taskSettingsFrame(taskID string, settings json.RawMessage) []byte {
	id, _ := json.Marshal(taskID)
	frame := make([]byte, 0, len(settings)+len(id)+64)
	frame = append(frame, `{"type":"broker:tasksettings","taskId":`...)
	frame = append(frame, id...)
	frame = append(frame, `,"settings":`...)
	frame = append(frame, settings...)
	return append(frame, '}')
}

func taskCancelFrame(taskID, reason string) []byte {
	return broker.Encode(broker.Message{Type: broker.TypeTaskCancel, TaskID: taskID, Reason: reason})
}
