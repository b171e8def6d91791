package fakebroker

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/pyrunner/pyrunner/broker"
)

func TestSettingsPassThroughUnchanged(t *testing.T) {
	b := startBroker(t, Options{})
	r := register(t, b, "r1")
	// Key order, HTML-significant characters, escapes and non-ASCII text
	// must all reach the runner as the requester wrote them.
	settings := `{"code":"if a < b && c > d:\n    return [{'json': {'s': '\u00e9\"'}}]","nodeMode":"runOnceForAllItems",` +
		`"workflowMode":"webhook","continueOnFail":false,"items":[{"json":{"a":1,"ü":"日本"},"pairedItem":{"item":0}}],` +
		`"nodeId":"0b5a1c6e","nodeName":"Code","workflowId":"w","workflowName":"e2e","zeta":null,"alpha":1.50}`
	r.offer("o1", "python", 60000)
	b.Request(json.RawMessage(settings), RequestOptions{})
	taskID := r.acceptNext("o1")
	_, frame := r.expect(broker.TypeTaskSettings)

	want := `{"type":"broker:tasksettings","taskId":"` + taskID + `","settings":` + settings + `}`
	if string(frame) != want {
		t.Errorf("tasksettings frame\n got %s\nwant %s", frame, want)
	}
}

func TestSettingsAreCompactedLikeJSONStringify(t *testing.T) {
	b := startBroker(t, Options{})
	r := register(t, b, "r1")
	r.offer("o1", "python", 60000)
	b.Request(json.RawMessage("{\n  \"code\": \"x = 1\",\n  \"items\": [ ]\n}"), RequestOptions{})
	r.acceptNext("o1")
	m, _ := r.expect(broker.TypeTaskSettings)
	if string(m.Settings) != `{"code":"x = 1","items":[]}` {
		t.Errorf("settings %s", m.Settings)
	}
}

func TestCompletionOutcomes(t *testing.T) {
	tests := []struct {
		name      string
		reply     func(taskID string) []byte
		wantDone  bool
		wantData  string
		wantRes   string
		wantError string
	}{
		{
			name: "taskdone",
			reply: func(id string) []byte {
				return []byte(`{"taskId":"` + id + `","data":{"result":[{"json":{"sum":42}}],"customData":{"k":"v"}},"type":"runner:taskdone"}`)
			},
			wantDone: true,
			wantData: `{"result":[{"json":{"sum":42}}],"customData":{"k":"v"}}`,
			wantRes:  `[{"json":{"sum":42}}]`,
		},
		{
			name: "taskerror",
			reply: func(id string) []byte {
				return []byte(`{"taskId":"` + id + `","error":{"message":"boom","description":""},"type":"runner:taskerror"}`)
			},
			wantError: `{"message":"boom","description":""}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := startBroker(t, Options{})
			r := register(t, b, "r1")
			req, taskID := startTask(t, b, r, "o1", `{"code":"x"}`)
			r.send(tt.reply(taskID))
			out := wait(t, req)
			if out.TaskID != taskID || out.Done != tt.wantDone || string(out.Data) != tt.wantData ||
				string(out.Result) != tt.wantRes || string(out.Error) != tt.wantError {
				t.Errorf("outcome %+v", out)
			}
			if out.Accepted.IsZero() || out.SettingsSent.Before(out.Accepted) || out.Completed.Before(out.SettingsSent) {
				t.Errorf("timestamps out of order: accepted %v, settings %v, completed %v", out.Accepted, out.SettingsSent, out.Completed)
			}
			// A second completion for the same task is ignored.
			r.sendJSON(broker.TaskError(taskID, json.RawMessage(`{"message":"late"}`)))
			syncRunner(t, b, r)
			if again := wait(t, req); string(again.Error) != tt.wantError {
				t.Errorf("outcome changed by a second completion: %s", again.Error)
			}
		})
	}
}

// syncRunner makes sure the broker has processed everything r sent so
// far, by a round trip that needs an answer.
func syncRunner(t *testing.T, b *Broker, r *runner) {
	t.Helper()
	id := "sync-" + nanoid(6)
	r.offer(id, "sync", 60000)
	req := b.Request(json.RawMessage(`{}`), RequestOptions{TaskType: "sync"})
	m, _ := r.expect(broker.TypeTaskOfferAccept)
	r.sendJSON(broker.TaskRejected(m.TaskID, broker.ReasonAtCapacity))
	noErr(t, req.Cancel(""))
}

func TestCancelRunningTask(t *testing.T) {
	b := startBroker(t, Options{})
	r := register(t, b, "r1", "python", "sync")
	req, taskID := startTask(t, b, r, "o1", `{}`)

	noErr(t, req.Cancel(""))
	m, data := r.expect(broker.TypeTaskCancel)
	if m.TaskID != taskID || m.Reason != "Task cancelled by user" {
		t.Errorf("cancel frame %s", data)
	}
	// n8n deleted the task before telling the runner: its late answers are
	// ignored.
	r.sendJSON(broker.TaskError(taskID, json.RawMessage(`{"message":"Task was cancelled"}`)))
	r.send([]byte(`{"type":"runner:taskdone","taskId":"` + taskID + `","data":{"result":[]}}`))
	syncRunner(t, b, r)
	out := wait(t, req)
	if out.Cancelled != ReasonCancelledByUser || out.Done || out.Error != nil {
		t.Errorf("outcome %+v, want cancelled and nothing else", out)
	}
	if err := req.Cancel(""); !errors.Is(err, ErrRequestDone) {
		t.Errorf("second Cancel: %v, want ErrRequestDone", err)
	}
}

func TestCancelBeforeSettings(t *testing.T) {
	b := startBroker(t, Options{})
	r := register(t, b, "r1")
	r.offer("o1", "python", 60000)
	req := b.Request(json.RawMessage(`{}`), RequestOptions{DeferSettings: true})
	taskID := r.acceptNext("o1")
	if got, err := req.TaskID(waitCtx(t)); err != nil || got != taskID {
		t.Fatalf("TaskID %q %v", got, err)
	}
	noErr(t, req.Cancel("Execution stopped"))
	// The cancel is the next frame: no settings went out.
	if m, data := r.expect(broker.TypeTaskCancel); m.TaskID != taskID || m.Reason != "Execution stopped" {
		t.Errorf("cancel frame %s", data)
	}
	if err := req.SendSettings(); !errors.Is(err, ErrRequestDone) {
		t.Errorf("SendSettings after cancel: %v", err)
	}
}

func TestDeferredSettings(t *testing.T) {
	b := startBroker(t, Options{AcceptTimeout: answerWindow})
	r := register(t, b, "r1")

	t.Run("sent when asked", func(t *testing.T) {
		r.offer("o1", "python", 60000)
		req := b.Request(json.RawMessage(`{"a":1}`), RequestOptions{DeferSettings: true})
		if err := req.SendSettings(); !errors.Is(err, ErrNotAccepted) {
			t.Errorf("SendSettings before accept: %v", err)
		}
		taskID := r.acceptNext("o1")
		_, err := req.TaskID(waitCtx(t))
		noErr(t, err)
		noErr(t, req.SendSettings())
		if m, _ := r.expect(broker.TypeTaskSettings); m.TaskID != taskID || string(m.Settings) != `{"a":1}` {
			t.Errorf("settings %+v", m)
		}
		r.sendJSON(broker.TaskError(taskID, json.RawMessage(`{"message":"x"}`)))
		wait(t, req)
	})
	t.Run("cancelled when the requester is late", func(t *testing.T) {
		r.offer("o2", "python", 60000)
		req := b.Request(json.RawMessage(`{}`), RequestOptions{DeferSettings: true})
		taskID := r.acceptNext("o2")
		if m, data := r.expect(broker.TypeTaskCancel); m.TaskID != taskID || m.Reason != ReasonRequesterTimedOut {
			t.Errorf("cancel %s", data)
		}
		if out := wait(t, req); out.Cancelled != ReasonRequesterTimedOut {
			t.Errorf("outcome %+v", out)
		}
	})
	t.Run("not deferred", func(t *testing.T) {
		if err := b.Request(nil, RequestOptions{}).SendSettings(); !errors.Is(err, ErrNotDeferred) {
			t.Errorf("SendSettings without DeferSettings: %v", err)
		}
	})
}

func TestBrokerTaskTimeout(t *testing.T) {
	b := startBroker(t, Options{TaskTimeout: 50 * time.Millisecond})
	r := register(t, b, "r1", "python", "sync")
	req, taskID := startTask(t, b, r, "o1", `{}`)

	m, data := r.expect(broker.TypeTaskCancel)
	if m.TaskID != taskID || m.Reason != "Task execution timed out" {
		t.Errorf("cancel frame %s", data)
	}
	out := wait(t, req)
	if msg := errorMessage(t, out.Error); msg != "Task execution timed out after 0.05 seconds" || out.Done {
		t.Errorf("outcome %+v (message %q)", out, msg)
	}
	r.sendJSON(broker.Message{Type: broker.TypeTaskDone, TaskID: taskID, Data: json.RawMessage(`{"result":1}`)})
	syncRunner(t, b, r)
	if again := wait(t, req); again.Done {
		t.Errorf("a taskdone after the timeout was accepted")
	}
}

func TestTimeoutMessage(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{300 * time.Second, "Task execution timed out after 300 seconds"},
		{time.Second, "Task execution timed out after 1 second"},
		{2 * time.Second, "Task execution timed out after 2 seconds"},
		{1500 * time.Millisecond, "Task execution timed out after 1.5 seconds"},
	}
	for _, tt := range tests {
		if got := timeoutMessage(tt.d); got != tt.want {
			t.Errorf("timeoutMessage(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

func TestRunTask(t *testing.T) {
	b := startBroker(t, Options{})
	r := register(t, b, "r1")
	r.offer("o1", "python", 60000)
	type result struct {
		out Outcome
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := b.RunTask(waitCtx(t), json.RawMessage(`{"code":"return"}`))
		done <- result{out, err}
	}()
	taskID := r.acceptNext("o1")
	r.expect(broker.TypeTaskSettings)
	r.send(broker.AppendTaskDone(nil, taskID, json.RawMessage(`[{"json":{"ok":true}}]`)))
	got := <-done
	noErr(t, got.err)
	if !got.out.Done || string(got.out.Result) != `[{"json":{"ok":true}}]` {
		t.Errorf("outcome %+v", got.out)
	}
}

func TestInvalidSettings(t *testing.T) {
	b := startBroker(t, Options{})
	if _, err := b.Request(json.RawMessage(`{nope`), RequestOptions{}).Wait(waitCtx(t)); !errors.Is(err, ErrInvalidSettings) {
		t.Errorf("Wait: %v, want ErrInvalidSettings", err)
	}
}
