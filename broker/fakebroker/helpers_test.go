package fakebroker

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/pyrunner/pyrunner/broker"
)

// testWait bounds every wait in these tests; reaching it is a failure, not
// a measurement.
const testWait = 30 * time.Second

// answerWindow is the broker's AcceptTimeout where a test answers some
// accepts (or sends deferred settings) in time and lets others lapse on
// purpose: an answer from this process takes milliseconds, even on a
// loaded machine; each lapse costs this long.
const answerWindow = time.Second

// noKeepAlive keeps test HTTP clients from leaving idle connections (and
// their goroutines) behind.
var noKeepAlive = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// startBroker starts a broker that the test closes on cleanup.
func startBroker(t *testing.T, opts Options) *Broker {
	t.Helper()
	b, err := Start(t.Context(), opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

func waitCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	t.Cleanup(cancel)
	return ctx
}

// runner is a scripted runner: every read and write is explicit, so a test
// can also stop reading.
type runner struct {
	t  *testing.T
	id string
	ws *websocket.Conn
}

// dial upgrades to the broker's runner endpoint with the given
// Authorization header ("" for none).
func dial(ctx context.Context, b *Broker, path, authorization string) (*websocket.Conn, *http.Response, error) {
	h := http.Header{}
	if authorization != "" {
		h.Set("Authorization", authorization)
	}
	return websocket.Dial(ctx, "ws://"+b.Addr()+path, &websocket.DialOptions{HTTPHeader: h, HTTPClient: noKeepAlive})
}

// connect opens a connection for id with a fresh grant and reads the
// broker's inforequest.
func connect(t *testing.T, b *Broker, id string) *runner {
	t.Helper()
	ws, _, err := dial(waitCtx(t), b, "/runners/_ws?id="+id, "Bearer "+b.MintGrant())
	if err != nil {
		t.Fatalf("dial %s: %v", id, err)
	}
	ws.SetReadLimit(-1)
	r := &runner{t: t, id: id, ws: ws}
	t.Cleanup(func() { _ = ws.CloseNow() })
	r.expect(broker.TypeInfoRequest)
	return r
}

// register connects and registers id for types (python when none).
func register(t *testing.T, b *Broker, id string, types ...string) *runner {
	t.Helper()
	if len(types) == 0 {
		types = []string{"python"}
	}
	r := connect(t, b, id)
	r.send(broker.Encode(broker.RunnerInfo("test runner", types...)))
	r.expect(broker.TypeRunnerRegistered)
	return r
}

func (r *runner) send(frame []byte) {
	r.t.Helper()
	if err := r.ws.Write(waitCtx(r.t), websocket.MessageText, frame); err != nil {
		r.t.Fatalf("runner %s: write: %v", r.id, err)
	}
}

func (r *runner) sendJSON(m broker.Message) { r.t.Helper(); r.send(broker.Encode(m)) }

// next reads the next frame.
func (r *runner) next() (broker.Message, []byte) {
	r.t.Helper()
	_, data, err := r.ws.Read(waitCtx(r.t))
	if err != nil {
		r.t.Fatalf("runner %s: read: %v", r.id, err)
	}
	m, err := broker.Decode(data)
	if err != nil {
		r.t.Fatalf("runner %s: decode %s: %v", r.id, data, err)
	}
	return m, data
}

// expect reads the next frame and fails unless it has type typ.
func (r *runner) expect(typ string) (broker.Message, []byte) {
	r.t.Helper()
	m, data := r.next()
	if m.Type != typ {
		r.t.Fatalf("runner %s: got %s, want %s", r.id, data, typ)
	}
	return m, data
}

// closeStatus reads until the connection ends and returns its close code.
func (r *runner) closeStatus() (websocket.StatusCode, string) {
	r.t.Helper()
	for {
		_, _, err := r.ws.Read(waitCtx(r.t))
		if err == nil {
			continue
		}
		var ce websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code, ce.Reason
		}
		return -1, err.Error()
	}
}

func (r *runner) offer(offerID, taskType string, validFor int) {
	r.t.Helper()
	r.sendJSON(broker.TaskOffer(offerID, taskType, validFor))
}

// acceptNext reads a taskofferaccept for offerID, accepts it and returns
// the task id.
func (r *runner) acceptNext(offerID string) string {
	r.t.Helper()
	m, data := r.expect(broker.TypeTaskOfferAccept)
	if m.OfferID != offerID {
		r.t.Fatalf("taskofferaccept %s: want offer %s", data, offerID)
	}
	r.sendJSON(broker.TaskAccepted(m.TaskID))
	return m.TaskID
}

// startTask offers, requests with settings, accepts, and reads the
// settings: a task is running on r when it returns.
func startTask(t *testing.T, b *Broker, r *runner, offerID string, settings string) (*Request, string) {
	t.Helper()
	r.offer(offerID, "python", 60000)
	req := b.Request(json.RawMessage(settings), RequestOptions{})
	taskID := r.acceptNext(offerID)
	m, _ := r.expect(broker.TypeTaskSettings)
	if m.TaskID != taskID {
		t.Fatalf("tasksettings for %s, want %s", m.TaskID, taskID)
	}
	return req, taskID
}

func wait(t *testing.T, req *Request) Outcome {
	t.Helper()
	out, err := req.Wait(waitCtx(t))
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	return out
}

// eventually polls cond until it holds or testWait passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// hasFrame reports whether the transcript holds a frame of runnerID in dir
// whose msg contains every fragment.
func hasFrame(b *Broker, runnerID, dir string, fragments ...string) bool {
	for _, f := range b.Transcript() {
		if f.RunnerID != runnerID || f.Dir != dir {
			continue
		}
		ok := true
		for _, frag := range fragments {
			ok = ok && strings.Contains(string(f.Msg), frag)
		}
		if ok {
			return true
		}
	}
	return false
}

func errorMessage(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var e struct {
		Message string `json:"message"`
	}
	if err := json.Unmarshal(raw, &e); err != nil {
		t.Fatalf("error object %s: %v", raw, err)
	}
	return e.Message
}

func bufferLogger(buf *SyncBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// settleGoroutines waits until the goroutine count is back to at most
// want, and reports the stacks if it never is.
func settleGoroutines(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(testWait)
	for runtime.NumGoroutine() > want {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Fatalf("goroutines: %d, want at most %d\n%s", runtime.NumGoroutine(), want, buf[:n])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// noErr fails the test on err.
func noErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
}
