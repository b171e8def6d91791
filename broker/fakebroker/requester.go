package fakebroker

import (
	"encoding/json"
	"slices"

	"github.com/pyrunner/pyrunner/broker"
)

// rpcMethods is n8n's AVAILABLE_RPC_METHODS (docs/protocol.md §4.4).
var rpcMethods = []string{
	"helpers.assertBinaryData",
	"helpers.getBinaryDataBuffer",
	"helpers.prepareBinaryData",
	"helpers.setBinaryDataBuffer",
	"helpers.binaryToString",
	"helpers.httpRequest",
	"helpers.request",
	"logNodeOutput",
}

// RPCCall is a runner:rpc the broker received for a task.
type RPCCall struct {
	Name   string
	CallID string
	Params json.RawMessage
}

// rpcLocked handles runner:rpc: the call is recorded for the task and
// relayed to the requester, which answers it asynchronously
// (docs/protocol.md §5.6). An RPC for a task the broker does not know is dropped.
func (b *Broker) rpcLocked(msg broker.Message) {
	t := b.tasks[msg.TaskID]
	if t == nil || t.completing {
		return
	}
	r := t.req
	r.out.RPCs = append(r.out.RPCs, RPCCall{Name: msg.Name, CallID: msg.CallID, Params: msg.Params})

	status, data := "success", json.RawMessage(nil) // n8n's success answer has no data
	if !slices.Contains(rpcMethods, msg.Name) {
		status, data = "error", json.RawMessage(`"Method not allowed"`)
	}
	frame := broker.Encode(broker.Message{
		Type: broker.TypeRPCResponse, TaskID: msg.TaskID, CallID: msg.CallID, Status: status, Data: data,
	})
	b.deferLocked(func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		// Only while the broker still knows the task. A task that completed
		// is known until the requester processed its completion, which is
		// queued after this answer: so the answer usually reaches the runner
		// after its taskdone, as recorded from n8n 2.41.1.
		if b.closed || b.tasks[t.id] != t {
			return
		}
		b.sendLocked(t.runnerID, frame)
	})
}

// deferLocked queues job for the requester, which runs its jobs in order
// on its own goroutine, as n8n's requester answers from its own event loop
// turn rather than inside the broker's message handler.
func (b *Broker) deferLocked(job func()) {
	b.jobs = append(b.jobs, job)
	select {
	case b.jobWake <- struct{}{}:
	default:
	}
}

// requesterLoop runs queued requester jobs until Close.
func (b *Broker) requesterLoop() {
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-b.jobWake:
		}
		for {
			b.mu.Lock()
			jobs := b.jobs
			b.jobs = nil
			b.mu.Unlock()
			if len(jobs) == 0 {
				break
			}
			for _, job := range jobs {
				job()
			}
		}
	}
}
