package fakebroker

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/pyrunner/pyrunner/broker"
)

func TestRPCAnswers(t *testing.T) {
	tests := []struct {
		method string
		want   string // the rpcresponse frame, with TASK for the task id
	}{
		{"logNodeOutput", `{"type":"broker:rpcresponse","taskId":"TASK","callId":"c1","status":"success"}`},
		{"helpers.httpRequest", `{"type":"broker:rpcresponse","taskId":"TASK","callId":"c1","status":"success"}`},
		{"helpers.binaryToString", `{"type":"broker:rpcresponse","taskId":"TASK","callId":"c1","status":"success"}`},
		{"process.exit", `{"type":"broker:rpcresponse","taskId":"TASK","callId":"c1","status":"error","data":"Method not allowed"}`},
	}
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			b := startBroker(t, Options{})
			r := register(t, b, "r1")
			req, taskID := startTask(t, b, r, "o1", `{}`)
			params := json.RawMessage(`["'hello'",42]`)
			r.sendJSON(broker.RPC("c1", taskID, tt.method, params))
			_, frame := r.expect(broker.TypeRPCResponse)
			if want := strings.ReplaceAll(tt.want, "TASK", taskID); string(frame) != want {
				t.Errorf("response\n got %s\nwant %s", frame, want)
			}
			r.send(broker.AppendTaskDone(nil, taskID, json.RawMessage(`[]`)))
			out := wait(t, req)
			if len(out.RPCs) != 1 || out.RPCs[0].Name != tt.method || out.RPCs[0].CallID != "c1" || string(out.RPCs[0].Params) != string(params) {
				t.Errorf("recorded calls %+v", out.RPCs)
			}
		})
	}
}

// TestRPCsRecordedInOrderAndAnsweredAfterDone mirrors the official
// runner: prints are sent as RPCs right before taskdone, without waiting.
func TestRPCsRecordedInOrderAndAnsweredAfterDone(t *testing.T) {
	b := startBroker(t, Options{})
	r := register(t, b, "r1")
	req, taskID := startTask(t, b, r, "o1", `{}`)
	for i, p := range []string{`["'one'"]`, `["'two'"]`, `["'three'"]`} {
		r.sendJSON(broker.RPC("call"+string(rune('1'+i)), taskID, "logNodeOutput", json.RawMessage(p)))
	}
	r.send(broker.AppendTaskDone(nil, taskID, json.RawMessage(`[{"json":{}}]`)))
	out := wait(t, req)
	if len(out.RPCs) != 3 {
		t.Fatalf("recorded %d calls, want 3: %+v", len(out.RPCs), out.RPCs)
	}
	for i, want := range []string{`["'one'"]`, `["'two'"]`, `["'three'"]`} {
		if c := out.RPCs[i]; c.Name != "logNodeOutput" || string(c.Params) != want || c.CallID != "call"+string(rune('1'+i)) {
			t.Errorf("call %d: %+v", i, c)
		}
	}
	// Answers for calls queued before the taskdone still arrive: the
	// requester processes the completion after them.
	for i := range 3 {
		if m, data := r.expect(broker.TypeRPCResponse); m.Status != "success" || m.CallID != "call"+string(rune('1'+i)) {
			t.Errorf("answer %d: %s", i, data)
		}
	}
}

func TestRPCForUnknownTaskGetsNoAnswer(t *testing.T) {
	b := startBroker(t, Options{})
	r := register(t, b, "r1")
	cancelled, cancelledID := startTask(t, b, r, "o1", `{}`)
	_, activeID := startTask(t, b, r, "o2", `{}`)
	noErr(t, cancelled.Cancel(""))
	r.expect(broker.TypeTaskCancel)

	r.sendJSON(broker.RPC("for-cancelled", cancelledID, "logNodeOutput", json.RawMessage(`[]`)))
	r.sendJSON(broker.RPC("for-active", activeID, "logNodeOutput", json.RawMessage(`[]`)))
	// Answers go out in order, so an answer to the first would come first.
	if m, data := r.expect(broker.TypeRPCResponse); m.CallID != "for-active" {
		t.Errorf("got %s, want only the active task's answer", data)
	}
	if out := wait(t, cancelled); len(out.RPCs) != 0 {
		t.Errorf("cancelled task recorded %+v", out.RPCs)
	}
}
