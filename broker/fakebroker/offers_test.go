package fakebroker

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/pyrunner/pyrunner/broker"
)

func TestRequestsAreServedFIFOWithOldestOffer(t *testing.T) {
	b := startBroker(t, Options{})
	r := register(t, b, "r1", "python", "javascript")

	// Three requests wait for offers; they must be served in order.
	reqs := []*Request{
		b.Request(json.RawMessage(`{"n":1}`), RequestOptions{}),
		b.Request(json.RawMessage(`{"n":2}`), RequestOptions{}),
		b.Request(json.RawMessage(`{"n":3}`), RequestOptions{}),
	}
	for i, req := range reqs {
		offerID := "o" + string(rune('1'+i))
		r.offer(offerID, "python", 60000)
		taskID := r.acceptNext(offerID)
		m, _ := r.expect(broker.TypeTaskSettings)
		if want := `{"n":` + string(rune('1'+i)) + `}`; string(m.Settings) != want {
			t.Errorf("offer %s carried settings %s, want %s (request %d)", offerID, m.Settings, want, i+1)
		}
		if got, err := req.TaskID(waitCtx(t)); err != nil || got != taskID {
			t.Errorf("request %d: task %q (%v), want %q", i+1, got, err, taskID)
		}
		if !validTaskID(taskID) {
			t.Errorf("task id %q is not nanoid(8)", taskID)
		}
	}

	// With several offers pending, the oldest of the right type is used.
	r.offer("js", "javascript", 60000)
	r.offer("py-old", "python", 60000)
	r.offer("py-new", "python", 60000)
	eventually(t, "three offers", func() bool { return len(b.OpenOffers()) == 3 })
	b.Request(json.RawMessage(`{}`), RequestOptions{})
	r.acceptNext("py-old")
	r.expect(broker.TypeTaskSettings)
	js := b.Request(json.RawMessage(`{}`), RequestOptions{TaskType: "javascript"})
	r.acceptNext("js")
	r.expect(broker.TypeTaskSettings)
	if _, err := js.TaskID(waitCtx(t)); err != nil {
		t.Errorf("javascript request: %v", err)
	}
}

func validTaskID(id string) bool {
	if len(id) != taskIDLength {
		return false
	}
	for _, c := range id {
		if !strings.ContainsRune(nanoidAlphabet, c) {
			return false
		}
	}
	return true
}

func TestNanoidUsesWholeAlphabet(t *testing.T) {
	seen := map[rune]bool{}
	for range 2000 {
		for _, c := range nanoid(taskIDLength) {
			seen[c] = true
		}
	}
	for _, c := range "-_" {
		if !seen[c] {
			t.Errorf("2000 task ids never used %q", c)
		}
	}
	if len(seen) != 64 {
		t.Errorf("task ids used %d symbols, want 64", len(seen))
	}
}

func TestExpiredOffersAreNotMatched(t *testing.T) {
	b := startBroker(t, Options{})
	r := register(t, b, "r1")
	r.offer("short", "python", 1)
	r.offer("forever", "javascript", -1)
	eventually(t, "the short offer to expire", func() bool {
		offers := b.OpenOffers()
		return len(offers) == 1 && offers[0].OfferID == "forever"
	})

	req := b.Request(json.RawMessage(`{}`), RequestOptions{})
	r.offer("fresh", "python", 60000)
	// The expired offer was dropped on this new offer: the fresh one is
	// the first (and only) one accepted.
	taskID := r.acceptNext("fresh")
	r.expect(broker.TypeTaskSettings)
	if got, _ := req.TaskID(waitCtx(t)); got != taskID {
		t.Errorf("task %q, want %q", got, taskID)
	}
	if offers := b.OpenOffers(); len(offers) != 1 || offers[0].OfferID != "forever" {
		t.Errorf("open offers %+v, want only the never-expiring one", offers)
	}
}

func TestRejectedTaskGoesToALaterOffer(t *testing.T) {
	b := startBroker(t, Options{})
	r := register(t, b, "r1")
	r.offer("o1", "python", 60000)
	req := b.Request(json.RawMessage(`{"code":"x"}`), RequestOptions{})
	m, _ := r.expect(broker.TypeTaskOfferAccept)
	r.sendJSON(broker.TaskRejected(m.TaskID, broker.ReasonAtCapacity))

	r.offer("o2", "python", 60000)
	second := r.acceptNext("o2")
	if second == m.TaskID {
		t.Errorf("retry reused task id %s", second)
	}
	settings, _ := r.expect(broker.TypeTaskSettings)
	if settings.TaskID != second || string(settings.Settings) != `{"code":"x"}` {
		t.Errorf("settings %+v", settings)
	}
	if got, _ := req.TaskID(waitCtx(t)); got != second {
		t.Errorf("request's task %q, want %q", got, second)
	}
}

func TestAcceptTimeoutCancelsAndRequeues(t *testing.T) {
	b := startBroker(t, Options{AcceptTimeout: answerWindow})
	r := register(t, b, "r1")
	r.offer("o1", "python", 60000)
	r.offer("o2", "python", 60000)
	req := b.Request(json.RawMessage(`{}`), RequestOptions{})

	missed, _ := r.expect(broker.TypeTaskOfferAccept) // not answered
	cancel, data := r.expect(broker.TypeTaskCancel)
	if cancel.TaskID != missed.TaskID || cancel.Reason != ReasonAckWindowElapsed {
		t.Errorf("after the missed ack got %s", data)
	}
	// The runner's other offers were discarded with the miss.
	if offers := b.OpenOffers(); len(offers) != 0 {
		t.Errorf("offers kept after a missed ack: %+v", offers)
	}
	// A late ack changes nothing; the request waits for a new offer.
	r.sendJSON(broker.TaskAccepted(missed.TaskID))
	r.offer("o3", "python", 60000)
	retry := r.acceptNext("o3")
	settings, _ := r.expect(broker.TypeTaskSettings)
	if settings.TaskID != retry || retry == missed.TaskID {
		t.Errorf("settings for %s after retry %s (missed %s)", settings.TaskID, retry, missed.TaskID)
	}
	if got, _ := req.TaskID(waitCtx(t)); got != retry {
		t.Errorf("request's task %q, want %q", got, retry)
	}
}

func TestThreeMissedAcksDropTheRunner(t *testing.T) {
	b := startBroker(t, Options{AcceptTimeout: answerWindow})
	r := register(t, b, "r1")
	req := b.Request(json.RawMessage(`{}`), RequestOptions{})
	for i := range maxConsecutiveAcceptTimeouts {
		offerID := "o" + string(rune('1'+i))
		r.offer(offerID, "python", 60000)
		m, _ := r.expect(broker.TypeTaskOfferAccept)
		if c, _ := r.expect(broker.TypeTaskCancel); c.TaskID != m.TaskID {
			t.Fatalf("miss %d: cancel for %s, want %s", i+1, c.TaskID, m.TaskID)
		}
	}
	if code, _ := r.closeStatus(); code != websocket.StatusProtocolError {
		t.Errorf("close code %v, want 1002", code)
	}
	eventually(t, "the runner to be dropped", func() bool { return len(b.Runners()) == 0 })
	// The request is still pending for another runner.
	other := register(t, b, "r2")
	other.offer("p1", "python", 60000)
	taskID := other.acceptNext("p1")
	if got, _ := req.TaskID(waitCtx(t)); got != taskID {
		t.Errorf("request's task %q, want %q on the second runner", got, taskID)
	}
}

func TestAnAnswerResetsMissedAcks(t *testing.T) {
	b := startBroker(t, Options{AcceptTimeout: answerWindow})
	r := register(t, b, "r1")
	miss := func(offerID string) {
		t.Helper()
		r.offer(offerID, "python", 60000)
		r.expect(broker.TypeTaskOfferAccept)
		r.expect(broker.TypeTaskCancel)
	}
	b.Request(json.RawMessage(`{}`), RequestOptions{})
	miss("a1")
	miss("a2")
	r.offer("a3", "python", 60000)
	m, _ := r.expect(broker.TypeTaskOfferAccept)
	r.sendJSON(broker.TaskRejected(m.TaskID, broker.ReasonAtCapacity)) // resets the count
	miss("a4")
	miss("a5")
	if got := b.Runners(); len(got) != 1 {
		t.Fatalf("runner dropped after a reject reset its count: %v", got)
	}
}

func TestRequestTimeout(t *testing.T) {
	b := startBroker(t, Options{TaskRequestTimeout: 30 * time.Millisecond})
	req := b.Request(json.RawMessage(`{}`), RequestOptions{})
	out := wait(t, req)
	if out.Expired != ExpiredTimeout || out.Done || out.Error != nil {
		t.Errorf("outcome %+v, want expired %q", out, ExpiredTimeout)
	}
	if _, err := req.TaskID(waitCtx(t)); !errors.Is(err, ErrNoTask) {
		t.Errorf("TaskID: %v, want ErrNoTask", err)
	}
}

func TestDeferredTaskStaysPending(t *testing.T) {
	b := startBroker(t, Options{})
	launcher := register(t, b, "launcher")
	launcher.offer("l1", "python", -1)
	req := b.Request(json.RawMessage(`{}`), RequestOptions{})
	m, _ := launcher.expect(broker.TypeTaskOfferAccept)
	launcher.sendJSON(broker.Message{Type: broker.TypeTaskDeferred, TaskID: m.TaskID})

	real := register(t, b, "real")
	real.offer("r1", "python", 60000)
	taskID := real.acceptNext("r1")
	if got, _ := req.TaskID(waitCtx(t)); got != taskID {
		t.Errorf("deferred request's task %q, want %q from the real runner", got, taskID)
	}
}
