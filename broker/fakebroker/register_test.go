package fakebroker

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/pyrunner/pyrunner/broker"
)

func TestRegistration(t *testing.T) {
	b := startBroker(t, Options{})
	r := connect(t, b, "r1") // reads broker:inforequest, the first frame

	// Before its runner:info the broker ignores the runner: this offer is
	// not recorded.
	r.offer("early", "python", -1)
	r.sendJSON(broker.RunnerInfo("Python Task Runner", "python"))
	_, data := r.expect(broker.TypeRunnerRegistered)
	if string(data) != `{"type":"broker:runnerregistered"}` {
		t.Errorf("runnerregistered frame %s", data)
	}
	if err := b.WaitRegistered(waitCtx(t), 1); err != nil {
		t.Fatalf("WaitRegistered: %v", err)
	}
	if got := b.Runners(); !slices.Equal(got, []string{"r1"}) {
		t.Errorf("Runners() = %v, want [r1]", got)
	}
	if got := b.OpenOffers(); len(got) != 0 {
		t.Errorf("offer sent before registration was recorded: %+v", got)
	}

	// After registration offers count.
	r.offer("later", "python", -1)
	eventually(t, "the offer to be recorded", func() bool { return len(b.OpenOffers()) == 1 })
	if o := b.OpenOffers()[0]; o.OfferID != "later" || o.RunnerID != "r1" || o.ValidFor != -1 || !o.ValidUntil.IsZero() {
		t.Errorf("offer %+v", o)
	}
}

func TestInfoRequestIsSentFirstAndExact(t *testing.T) {
	b := startBroker(t, Options{})
	ws, _, err := dial(waitCtx(t), b, "/runners/_ws?id=r1", "Bearer "+b.MintGrant())
	noErr(t, err)
	t.Cleanup(func() { _ = ws.CloseNow() })
	typ, data, err := ws.Read(waitCtx(t))
	noErr(t, err)
	if typ != websocket.MessageText || string(data) != `{"type":"broker:inforequest"}` {
		t.Errorf("first frame %v %s, want text {\"type\":\"broker:inforequest\"}", typ, data)
	}
}

// TestUnusableFramesAreDropped sends frames the broker cannot use and
// checks, by the order of what comes back, that none got a reply and the
// connection stayed open.
func TestUnusableFramesAreDropped(t *testing.T) {
	logs := &SyncBuffer{}
	b := startBroker(t, Options{Logger: bufferLogger(logs)})
	r := register(t, b, "r1")

	r.send([]byte(`{"type":"runner:taskoffer",`)) // not JSON
	r.send([]byte(`{"type":"runner:nosuchthing","taskId":"x"}`))
	r.send([]byte(`42`))
	r.send([]byte(`{"type":"runner:taskoffer","offerId":"o0"}`)) // no taskType, no validFor
	// A binary frame is decoded as UTF-8 JSON like a text frame.
	offer := broker.Encode(broker.TaskOffer("o1", "python", 60000))
	if err := r.ws.Write(waitCtx(t), websocket.MessageBinary, offer); err != nil {
		t.Fatalf("binary write: %v", err)
	}
	req := b.Request(json.RawMessage(`{}`), RequestOptions{})
	// The next frame is the answer to the binary offer: nothing before it.
	taskID := r.acceptNext("o1")
	r.expect(broker.TypeTaskSettings)
	if got, _ := req.TaskID(waitCtx(t)); got != taskID {
		t.Errorf("request task %q, want %q", got, taskID)
	}

	if n := strings.Count(logs.String(), "Couldn't parse message from runner"); n != 1 {
		t.Errorf("logged %d parse failures, want 1:\n%s", n, logs.String())
	}
	if !hasFrame(b, "r1", DirRunnerToBroker, `"{\"type\":\"runner:taskoffer\","`) {
		t.Errorf("the unparseable frame is not in the transcript as a string")
	}
}

func TestMaxPayload(t *testing.T) {
	b := startBroker(t, Options{MaxPayload: 64})
	r := register(t, b, "r1")
	r.send([]byte(`{"type":"runner:taskoffer","offerId":"` + strings.Repeat("x", 100) + `","taskType":"python","validFor":1}`))
	if code, _ := r.closeStatus(); code != websocket.StatusMessageTooBig {
		t.Errorf("close code %v, want 1009", code)
	}
	eventually(t, "the runner to be deregistered", func() bool { return len(b.Runners()) == 0 })
}

func TestDuplicateRunnerIDDropsOldConnection(t *testing.T) {
	b := startBroker(t, Options{})
	old := register(t, b, "dup")
	req, _ := startTask(t, b, old, "o1", `{}`)

	fresh := register(t, b, "dup")
	if code, reason := old.closeStatus(); code != websocket.StatusNormalClosure || reason != "" {
		t.Errorf("old connection closed with %v %q, want 1000 and no reason", code, reason)
	}
	out := wait(t, req)
	if msg := errorMessage(t, out.Error); msg != "Node execution failed" {
		t.Errorf("old connection's task error %q, want Node execution failed", msg)
	}
	if got := b.Runners(); !slices.Equal(got, []string{"dup"}) {
		t.Errorf("Runners() = %v", got)
	}
	// Work now goes to the new connection.
	startTask(t, b, fresh, "o2", `{}`)
}

func TestRunnerDisconnectFailsItsTasks(t *testing.T) {
	b := startBroker(t, Options{})
	r := register(t, b, "r1")
	req, _ := startTask(t, b, r, "o1", `{}`)
	r.offer("o2", "python", 60000)
	eventually(t, "the second offer", func() bool { return len(b.OpenOffers()) == 1 })

	noErr(t, r.ws.Close(websocket.StatusNormalClosure, "bye"))
	out := wait(t, req)
	if msg := errorMessage(t, out.Error); msg != "Node execution failed" || out.Done {
		t.Errorf("outcome %+v, want error Node execution failed", out)
	}
	if got := b.OpenOffers(); len(got) != 0 {
		t.Errorf("offers of a gone runner remain: %+v", got)
	}
	if len(b.Runners()) != 0 {
		t.Errorf("Runners() = %v after disconnect", b.Runners())
	}
	if !hasFrame(b, "r1", DirWSClose, `"code":1000`, `"reason":"bye"`, `"by":"runner"`) {
		t.Errorf("transcript lacks the runner's close")
	}
}

func TestSendRaw(t *testing.T) {
	b := startBroker(t, Options{})
	r := register(t, b, "r1")
	frame := []byte(`{"type":"broker:taskcancel","taskId":"nope",  "reason":"x"} `)
	noErr(t, b.SendRaw("r1", frame))
	_, got, err := r.ws.Read(waitCtx(t))
	noErr(t, err)
	if string(got) != string(frame) {
		t.Errorf("got %q, want %q byte for byte", got, frame)
	}
	noErr(t, b.SendRaw("r1", []byte(`{not json`)))
	_, got, err = r.ws.Read(waitCtx(t))
	noErr(t, err)
	if string(got) != `{not json` {
		t.Errorf("malformed frame arrived as %q", got)
	}
	if err := b.SendRaw("ghost", frame); !errors.Is(err, ErrUnknownRunner) {
		t.Errorf("SendRaw to an unknown runner: %v, want ErrUnknownRunner", err)
	}
}

func TestRunnerInfoWithoutTypesRegisters(t *testing.T) {
	b := startBroker(t, Options{})
	r := connect(t, b, "bare")
	r.send([]byte(`{"type":"runner:info","name":"no types"}`))
	r.expect(broker.TypeRunnerRegistered)
	// Matching goes by the offer's task type, not the declared types.
	startTask(t, b, r, "o1", `{}`)
}
