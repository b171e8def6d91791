package fakebroker

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/pyrunner/pyrunner/broker"
)

// handleFrame processes one frame from a runner, as n8n's onMessage does
// (docs/protocol.md §3.3, §5).
func (b *Broker) handleFrame(c *conn, data []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.recordRawLocked(c.runnerID, DirRunnerToBroker, data)
	if c.removed {
		// Buffered frames of a connection the broker already dropped: n8n
		// no longer routes its runner's messages.
		return
	}
	if !json.Valid(data) {
		b.log.Error(fmt.Sprintf("Couldn't parse message from runner %q", c.runnerID), "runnerId", c.runnerID)
		return
	}
	msg, err := broker.Decode(data)
	if err != nil && !isRunnerInfo(data) {
		// Valid JSON that is not a usable message (not an object, no type,
		// or a known type without a field it needs). n8n would parse it and
		// then find nothing to act on; it sends nothing back either way.
		b.log.Debug("ignoring unusable message from runner", "runnerId", c.runnerID, "error", err)
		return
	}
	if !c.registered {
		// Before its first runner:info, n8n ignores everything else.
		if msg.Type == broker.TypeRunnerInfo {
			b.registerLocked(c, msg)
		}
		return
	}
	b.dispatchLocked(c, msg)
}

// isRunnerInfo reports whether data is a runner:info object, even one
// without "types": n8n registers such a runner all the same (its types are
// not used for matching), so the fake must too.
func isRunnerInfo(data []byte) bool {
	var probe struct {
		Type string `json:"type"`
	}
	return json.Unmarshal(data, &probe) == nil && probe.Type == broker.TypeRunnerInfo
}

// dispatchLocked handles a message from a registered runner. Unknown types
// and a repeated runner:info are ignored, as n8n does.
func (b *Broker) dispatchLocked(c *conn, msg broker.Message) {
	switch msg.Type {
	case broker.TypeTaskOffer:
		b.offerLocked(c, msg)
	case broker.TypeTaskAccepted:
		b.runnerAcceptedLocked(msg.TaskID)
	case broker.TypeTaskRejected:
		b.runnerRejectedLocked(msg.TaskID, msg.Reason)
	case broker.TypeTaskDeferred:
		b.runnerDeferredLocked(msg.TaskID)
	case broker.TypeTaskDone:
		b.taskDoneLocked(msg.TaskID, msg.Data)
	case broker.TypeTaskError:
		b.taskErrorLocked(msg.TaskID, msg.Error)
	case broker.TypeRPC:
		b.rpcLocked(msg)
	}
}

// registerLocked answers a connection's first runner:info: it drops any
// other connection registered under the same id, registers the runner and
// sends broker:runnerregistered (docs/protocol.md §5.1). The types it declares are
// only logged: n8n matches a request with an offer by the offer's own
// taskType.
func (b *Broker) registerLocked(c *conn, msg broker.Message) {
	if old := b.runners[c.runnerID]; old != nil && old != c {
		// n8n's removeConnection(id) with its defaults: close 1000.
		b.dropConnLocked(old, 1000, "", errMsgDisconnected)
	}
	c.registered = true
	b.runners[c.runnerID] = c
	b.notifyRunnersLocked()
	b.log.Info(fmt.Sprintf("Registered runner %q (%s)", msg.Name, c.runnerID), "types", msg.Types)
	c.enqueueLocked(broker.Encode(broker.Message{Type: broker.TypeRunnerRegistered}))
}

// deregisterLocked forgets a runner that is gone: its offers are
// discarded, acceptances it owes are rejected, and its tasks fail with
// failMsg (docs/protocol.md §9.2).
func (b *Broker) deregisterLocked(runnerID, failMsg string) {
	delete(b.missedAcks, runnerID)
	b.discardOffersFromLocked(runnerID)
	for _, a := range b.acceptancesOfLocked(runnerID) {
		b.runnerRejectedLocked(a.taskID, fmt.Sprintf("The Task Runner (%s) has disconnected: %s", runnerID, failMsg))
	}
	for _, t := range b.tasksOfLocked(runnerID) {
		b.failTaskLocked(t, failMsg)
	}
}

// sendLocked queues frame for the registered connection of runnerID, if
// there still is one.
func (b *Broker) sendLocked(runnerID string, frame []byte) {
	c := b.runners[runnerID]
	if c == nil || c.removed {
		b.log.Debug("no connection to send to", "runnerId", runnerID)
		return
	}
	c.enqueueLocked(frame)
}

// Offer is a runner's pending offer as the broker records it.
type Offer struct {
	OfferID  string
	RunnerID string
	TaskType string
	ValidFor int // milliseconds; -1 never expires
	// ValidUntil is when the broker received it plus ValidFor; zero when
	// ValidFor is -1.
	ValidUntil time.Time
}

func (o Offer) expired(now time.Time) bool {
	return o.ValidFor != -1 && o.ValidUntil.Before(now)
}

// offerLocked records a runner:taskoffer and settles (docs/protocol.md §5.3).
func (b *Broker) offerLocked(c *conn, msg broker.Message) {
	o := Offer{OfferID: msg.OfferID, RunnerID: c.runnerID, TaskType: msg.TaskType, ValidFor: *msg.ValidFor}
	if o.ValidFor != -1 {
		o.ValidUntil = time.Now().Add(time.Duration(o.ValidFor) * time.Millisecond)
	}
	b.offers = append(b.offers, o)
	b.settleLocked()
}

func (b *Broker) discardOffersFromLocked(runnerID string) {
	b.offers = slices.DeleteFunc(b.offers, func(o Offer) bool { return o.RunnerID == runnerID })
}
