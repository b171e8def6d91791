package fakebroker

import (
	"fmt"
	"slices"
	"time"

	"github.com/coder/websocket"
	"github.com/pyrunner/pyrunner/broker"
)

// Constants of n8n's task broker (task-broker.service.ts).
const (
	// maxRequestTimeoutRefreshes caps how often a missed or deferred
	// acceptance restarts a request's timeout.
	maxRequestTimeoutRefreshes = 3
	// maxConsecutiveAcceptTimeouts is how many acknowledgements in a row a
	// runner may miss before it is reported unresponsive and dropped.
	maxConsecutiveAcceptTimeouts = 3
	// taskIDLength is nanoid(8).
	taskIDLength = 8
)

// acceptance is a broker:taskofferaccept waiting for the runner's answer.
type acceptance struct {
	taskID   string
	runnerID string
	req      *Request
	timer    *brokerTimer
}

// settleLocked is n8n's settleTasks: drop expired offers, then give each
// pending request, in FIFO order, the first pending offer of its task type
// (docs/protocol.md §5.3).
func (b *Broker) settleLocked() {
	now := time.Now()
	b.offers = slices.DeleteFunc(b.offers, func(o Offer) bool {
		c := b.runners[o.RunnerID]
		return o.expired(now) || c == nil || c.removed
	})
	for _, r := range b.pending {
		if r.acceptInProgress {
			continue
		}
		i := slices.IndexFunc(b.offers, func(o Offer) bool { return o.TaskType == r.opts.TaskType })
		if i < 0 {
			b.warnMismatchLocked(r)
			continue
		}
		o := b.offers[i]
		b.offers = slices.Delete(b.offers, i, i+1)
		r.acceptInProgress = true
		r.mismatchWarned = false
		b.offerAcceptLocked(o, r)
	}
}

// warnMismatchLocked logs, once per request, that offers exist but none of
// the request's type.
func (b *Broker) warnMismatchLocked(r *Request) {
	if len(b.offers) == 0 || r.mismatchWarned {
		return
	}
	var types []string
	for _, o := range b.offers {
		if !slices.Contains(types, o.TaskType) {
			types = append(types, o.TaskType)
		}
	}
	b.log.Warn(fmt.Sprintf("No matching task offer for request %q (type %q). Available offer types: %v", r.id, r.opts.TaskType, types))
	r.mismatchWarned = true
}

// offerAcceptLocked sends broker:taskofferaccept with a new task id and
// waits AcceptTimeout for the runner's answer.
func (b *Broker) offerAcceptLocked(o Offer, r *Request) {
	a := &acceptance{taskID: nanoid(taskIDLength), runnerID: o.RunnerID, req: r}
	a.timer = b.startTimerLocked(b.opts.AcceptTimeout, func() { b.acceptTimedOutLocked(a) })
	b.accepting[a.taskID] = a
	b.sendLocked(o.RunnerID, broker.Encode(broker.Message{
		Type: broker.TypeTaskOfferAccept, TaskID: a.taskID, OfferID: o.OfferID,
	}))
}

// takeAcceptanceLocked ends the wait for taskID's answer. Any answer
// proves the runner alive and resets its count of missed acknowledgements.
func (b *Broker) takeAcceptanceLocked(taskID string) *acceptance {
	a := b.accepting[taskID]
	if a == nil {
		return nil
	}
	delete(b.accepting, taskID)
	b.stopTimerLocked(a.timer)
	delete(b.missedAcks, a.runnerID)
	a.req.acceptInProgress = false
	return a
}

// runnerAcceptedLocked handles runner:taskaccepted: the task exists, and
// its settings go out at once unless the requester holds them.
func (b *Broker) runnerAcceptedLocked(taskID string) {
	a := b.takeAcceptanceLocked(taskID)
	if a == nil {
		return // late (after the accept timeout) or unknown
	}
	r := a.req
	t := &task{id: taskID, runnerID: a.runnerID, req: r}
	b.tasks[taskID] = t
	i := slices.Index(b.pending, r)
	if i < 0 {
		b.log.Warn(fmt.Sprintf("Task request (%s) expired while runner (%s) was accepting task (%s), canceling task", r.id, a.runnerID, taskID))
		b.cancelTaskLocked(t, ReasonRequestExpired)
		return
	}
	b.pending = slices.Delete(b.pending, i, i+1)
	b.stopTimerLocked(r.timer)
	r.taskID = taskID
	r.out.TaskID = taskID
	r.out.Accepted = time.Now()
	close(r.accepted)
	if !r.opts.DeferSettings {
		b.sendSettingsLocked(t)
		return
	}
	t.settingsTimer = b.startTimerLocked(b.opts.AcceptTimeout, func() {
		if b.tasks[t.id] == t && !t.settingsSent {
			b.cancelTaskLocked(t, ReasonRequesterTimedOut)
			r.out.Cancelled = ReasonRequesterTimedOut
			r.finishLocked(nil)
		}
	})
}

// runnerRejectedLocked handles runner:taskrejected: the request is pending
// again and is matched at once with any other offer.
func (b *Broker) runnerRejectedLocked(taskID, reason string) {
	a := b.takeAcceptanceLocked(taskID)
	if a == nil {
		return
	}
	b.log.Info(fmt.Sprintf("Task (%s) rejected by Runner with reason %q", taskID, reason))
	b.settleLocked()
}

// runnerDeferredLocked handles the launcher's runner:taskdeferred: the
// request stays pending with a fresh timeout (docs/protocol.md §5.7).
func (b *Broker) runnerDeferredLocked(taskID string) {
	a := b.takeAcceptanceLocked(taskID)
	if a == nil {
		return
	}
	b.refreshRequestTimeoutLocked(a.req)
}

// acceptTimedOutLocked is n8n 2.41.1's answer to a missed acknowledgement
// (docs/protocol.md §5.4): the request is pending again with a fresh timeout, the
// runner gets broker:taskcancel (it may have created the task), its other
// offers are discarded, and after maxConsecutiveAcceptTimeouts misses in a
// row it is dropped. The reason text, the discarding of offers and the count
// come from n8n's task-broker.service.ts.
func (b *Broker) acceptTimedOutLocked(a *acceptance) {
	if b.accepting[a.taskID] != a {
		return
	}
	delete(b.accepting, a.taskID)
	a.req.acceptInProgress = false
	b.log.Warn(fmt.Sprintf("Runner (%s) took too long to acknowledge acceptance of task (%s)", a.runnerID, a.taskID))
	b.refreshRequestTimeoutLocked(a.req)
	b.sendLocked(a.runnerID, taskCancelFrame(a.taskID, ReasonAckWindowElapsed))
	b.discardOffersFromLocked(a.runnerID)

	misses := b.missedAcks[a.runnerID] + 1
	if misses < maxConsecutiveAcceptTimeouts {
		b.missedAcks[a.runnerID] = misses
	} else {
		delete(b.missedAcks, a.runnerID)
		b.log.Warn(fmt.Sprintf("Runner (%s) failed to acknowledge %d consecutive task acceptances, reporting it as unresponsive", a.runnerID, misses))
		if c := b.runners[a.runnerID]; c != nil {
			b.dropConnLocked(c, websocket.StatusProtocolError, "", errMsgDisconnected)
		}
	}
	b.settleLocked()
}

// requestTimedOutLocked expires a request no runner took in time.
func (b *Broker) requestTimedOutLocked(r *Request) {
	i := slices.Index(b.pending, r)
	if i < 0 {
		return
	}
	b.pending = slices.Delete(b.pending, i, i+1)
	r.out.Expired = ExpiredTimeout
	r.finishLocked(nil)
}

// refreshRequestTimeoutLocked restarts a pending request's timeout, at
// most maxRequestTimeoutRefreshes times.
func (b *Broker) refreshRequestTimeoutLocked(r *Request) {
	if !slices.Contains(b.pending, r) || r.refreshes >= maxRequestTimeoutRefreshes {
		return
	}
	r.refreshes++
	b.stopTimerLocked(r.timer)
	r.timer = b.startTimerLocked(b.opts.TaskRequestTimeout, func() { b.requestTimedOutLocked(r) })
}

func (b *Broker) acceptancesOfLocked(runnerID string) []*acceptance {
	var out []*acceptance
	for _, a := range b.accepting {
		if a.runnerID == runnerID {
			out = append(out, a)
		}
	}
	return out
}
