package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pyrunner/pyrunner/broker"
	"github.com/pyrunner/pyrunner/broker/fakebroker"
	"github.com/pyrunner/pyrunner/internal/excerpt"
	"github.com/pyrunner/pyrunner/pool"
	"github.com/pyrunner/pyrunner/pool/pooltest"
)

// gateExecutor is an Executor whose tasks finish when the test says so,
// with a capacity the test sets: the runner's lifecycle without Python.
type gateExecutor struct {
	capacity atomic.Int32
	started  chan string
	release  chan pool.Result
}

func newGateExecutor(capacity int) *gateExecutor {
	e := &gateExecutor{started: make(chan string, 100), release: make(chan pool.Result, 100)}
	e.capacity.Store(int32(capacity))
	return e
}

func (e *gateExecutor) Start(context.Context) error { return nil }
func (e *gateExecutor) Capacity() int               { return int(e.capacity.Load()) }
func (e *gateExecutor) Close() error                { return nil }
func (e *gateExecutor) Run(ctx context.Context, t pool.Task) pool.Result {
	e.started <- t.ID
	select {
	case r := <-e.release:
		return r
	case <-ctx.Done():
		return pool.Result{Err: pool.CancelledError()}
	}
}

// testWait bounds every wait in these tests for something bound to
// happen: long enough for a loaded 2-core machine, free when things go
// well. Reaching it is a failure, not a measurement.
const testWait = 30 * time.Second

type harness struct {
	t      *testing.T
	b      *fakebroker.Broker
	r      *Runner
	done   chan error
	logs   *fakebroker.SyncBuffer
	runner string
}

func start(t *testing.T, exec pool.Executor, opts Options, bopts fakebroker.Options) *harness {
	t.Helper()
	b, err := fakebroker.Start(context.Background(), bopts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	logs := &fakebroker.SyncBuffer{}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	r := New(opts, exec)
	h := &harness{t: t, b: b, r: r, done: make(chan error, 1), logs: logs}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		h.done <- r.Run(ctx, &broker.Dialer{BrokerURI: b.URL(), RunnerID: "runner-1", AuthToken: "test-token"})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-h.done:
		case <-time.After(testWait):
			t.Error("runner did not stop")
		}
		if t.Failed() {
			t.Logf("runner log:\n%s", excerpt.Of(logs.String()))
		}
	})
	wctx, wcancel := context.WithTimeout(context.Background(), testWait)
	defer wcancel()
	if err := b.WaitRegistered(wctx, 1); err != nil {
		t.Fatal(err)
	}
	return h
}

// sent returns the runner's frames of one type, decoded.
func (h *harness) sent(typ string) []broker.Message {
	var out []broker.Message
	for _, f := range h.b.Transcript() {
		if f.Dir != fakebroker.DirRunnerToBroker {
			continue
		}
		m, err := broker.Decode(f.Msg)
		if err == nil && m.Type == typ {
			out = append(out, m)
		}
	}
	return out
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(testWait); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

var trivial = json.RawMessage(`{"code":"return []","nodeMode":"runOnceForAllItems","items":[]}`)

// topUps counts the runner's top-ups of its offers (every OfferInterval
// tick, and when a slot frees) through the Observer, and keeps the last
// count of open offers it reported: a test can wait for ticks to pass,
// however slowly they come, instead of sleeping.
type topUps struct {
	nopObserver
	n    atomic.Int32
	open atomic.Int32
}

func newTopUps() *topUps {
	c := &topUps{}
	c.open.Store(-1)
	return c
}

func (c *topUps) OffersOpen(n int) {
	c.open.Store(int32(n))
	c.n.Add(1)
}

// wait returns once the runner has topped up its offers k more times.
func (c *topUps) wait(t *testing.T, k int) {
	t.Helper()
	from := c.n.Load()
	eventually(t, fmt.Sprintf("%d offer ticks", k), func() bool { return c.n.Load() >= from+int32(k) })
}

func TestOffersFollowN8NsRunner(t *testing.T) {
	exec := newGateExecutor(8)
	ticks := newTopUps()
	h := start(t, exec, Options{MaxConcurrency: 3, Observer: ticks}, fakebroker.Options{})
	eventually(t, "3 open offers", func() bool { return len(h.b.OpenOffers()) == 3 })
	for _, o := range h.b.OpenOffers() {
		if o.TaskType != "python" || o.ValidFor < 5000 || o.ValidFor > 5500 {
			t.Fatalf("offer %+v: want python, validFor 5000..5500", o)
		}
	}
	// No more than concurrency, tick after tick, while those are valid
	// (an offer that expired is replaced, rightly, and a loaded machine
	// may take that long for three ticks).
	ticks.wait(t, 3)
	var first time.Time
	n := 0
	for _, f := range h.b.Transcript() {
		if m, err := broker.Decode(f.Msg); f.Dir != fakebroker.DirRunnerToBroker || err != nil || m.Type != broker.TypeTaskOffer {
			continue
		}
		if first.IsZero() {
			first = f.T
		}
		if f.T.Before(first.Add(OfferValidity)) {
			n++
		}
	}
	if n != 3 {
		t.Fatalf("%d offers sent while the first were valid, want 3", n)
	}
	// A task takes a slot; its end frees it at once, not on the next tick.
	req := h.b.Request(trivial, fakebroker.RequestOptions{})
	<-exec.started
	eventually(t, "offers back to 2", func() bool { return len(h.b.OpenOffers()) == 2 })
	exec.release <- pool.Result{Result: json.RawMessage(`[]`)}
	out, err := req.Wait(context.Background())
	if err != nil || !out.Done {
		t.Fatalf("%v %s", err, out.Error)
	}
	eventually(t, "3 open offers again", func() bool { return len(h.b.OpenOffers()) == 3 })
}

func TestOffersFollowPoolCapacity(t *testing.T) {
	exec := newGateExecutor(0)
	ticks := newTopUps()
	h := start(t, exec, Options{MaxConcurrency: 5, Observer: ticks}, fakebroker.Options{})
	ticks.wait(t, 2)
	if n := len(h.b.OpenOffers()); n != 0 {
		t.Fatalf("%d offers while the pool cannot run anything", n)
	}
	exec.capacity.Store(2)
	eventually(t, "2 offers once the pool can run 2", func() bool { return len(h.b.OpenOffers()) == 2 })
}

func TestRejections(t *testing.T) {
	exec := newGateExecutor(1)
	h := start(t, exec, Options{MaxConcurrency: 1}, fakebroker.Options{})
	eventually(t, "an offer", func() bool { return len(h.b.OpenOffers()) == 1 })
	offer := h.b.OpenOffers()[0].OfferID

	send := func(frame string) {
		if err := h.b.SendRaw("runner-1", []byte(frame)); err != nil {
			t.Fatal(err)
		}
	}
	// An offer the runner never made.
	send(`{"type":"broker:taskofferaccept","taskId":"t1","offerId":"nope"}`)
	// Capacity gone while the offer was open.
	exec.capacity.Store(0)
	send(fmt.Sprintf(`{"type":"broker:taskofferaccept","taskId":"t2","offerId":%q}`, offer))
	eventually(t, "two rejections", func() bool { return len(h.sent(broker.TypeTaskRejected)) == 2 })
	got := h.sent(broker.TypeTaskRejected)
	if got[0].TaskID != "t1" || got[0].Reason != broker.ReasonOfferExpired {
		t.Errorf("unknown offer: %+v", got[0])
	}
	if got[1].TaskID != "t2" || got[1].Reason != broker.ReasonAtCapacity {
		t.Errorf("no capacity: %+v", got[1])
	}
}

func TestShuttingDownRejectsAndReportsKilledTasks(t *testing.T) {
	exec := newGateExecutor(2)
	offersOpen := newTopUps()
	// The late accepts below must arrive within the graceful timeout.
	h := start(t, exec, Options{MaxConcurrency: 2, GracefulShutdownTimeout: 3 * time.Second, Observer: offersOpen}, fakebroker.Options{})
	eventually(t, "offers", func() bool { return len(h.b.OpenOffers()) == 2 })
	offers := h.b.OpenOffers()
	req := h.b.Request(trivial, fakebroker.RequestOptions{})
	<-exec.started
	h.r.Shutdown()
	// An accept racing the shutdown is refused, as n8n's JS runner does.
	// The runner has taken the shutdown in once it dropped its offers
	// (with a task running and a slot free it has one open otherwise).
	eventually(t, "the offers dropped for the shutdown", func() bool { return offersOpen.open.Load() == 0 })
	for _, o := range offers {
		h.b.SendRaw("runner-1", []byte(fmt.Sprintf(`{"type":"broker:taskofferaccept","taskId":"late","offerId":%q}`, o.OfferID)))
	}
	select {
	case err := <-h.done:
		h.done <- err
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(testWait):
		t.Fatal("runner did not stop after the graceful timeout")
	}
	out, err := req.Wait(context.Background())
	if err != nil || !strings.Contains(string(out.Error), "runner is shutting down") {
		t.Fatalf("killed task: %v %s", err, out.Error)
	}
	rej := h.sent(broker.TypeTaskRejected)
	if len(rej) == 0 || rej[0].Reason != broker.ReasonShuttingDown {
		t.Fatalf("late accept: %+v", rej)
	}
}

func TestIdleTimerWaitsForRunningTasks(t *testing.T) {
	// The countdown starts at registration: the timeout is long enough
	// for the task to be accepted first on a loaded machine.
	const idle = time.Second
	exec := newGateExecutor(1)
	h := start(t, exec, Options{MaxConcurrency: 1, AutoShutdownTimeout: idle}, fakebroker.Options{})
	req := h.b.Request(trivial, fakebroker.RequestOptions{})
	<-exec.started
	time.Sleep(2 * idle) // past the idle timeout, but busy
	select {
	case err := <-h.done:
		t.Fatalf("runner stopped while a task ran: %v", err)
	default:
	}
	exec.release <- pool.Result{Result: json.RawMessage(`[]`)}
	if out, err := req.Wait(context.Background()); err != nil || !out.Done {
		t.Fatalf("%v %s", err, out.Error)
	}
	select {
	case err := <-h.done:
		h.done <- err
		if err != nil {
			t.Fatalf("idle exit: %v", err)
		}
	case <-time.After(testWait):
		t.Fatal("no idle exit")
	}
	if !strings.Contains(h.logs.String(), "Reached idle timeout, starting shutdown...") {
		t.Fatal("no idle log")
	}
}

// TestPongsWhileTasksRunCPUBound: the broker pings every second and drops
// a runner that misses a pong (close 1002). Two CPU-bound Python tasks
// filling both cores must not delay the pongs. A second is 30 times
// n8n's rate and still generous: a pong takes milliseconds, even on a
// machine whose other work keeps both cores busy too.
func TestPongsWhileTasksRunCPUBound(t *testing.T) {
	exec := pooltest.Executor(t, 2)
	h := start(t, exec, Options{MaxConcurrency: 2}, fakebroker.Options{HeartbeatInterval: time.Second})
	busy := json.RawMessage(`{"code":"import time\nend = time.time() + 5\nn = 0\nwhile time.time() < end:\n    n += 1\nreturn [{'json': {'spun': n > 0}}]","nodeMode":"runOnceForAllItems","items":[]}`)
	var reqs []*fakebroker.Request
	for range 2 {
		reqs = append(reqs, h.b.Request(busy, fakebroker.RequestOptions{}))
	}
	var bothSpun, firstDone time.Time
	for _, req := range reqs {
		out, err := req.Wait(context.Background())
		if err != nil || !out.Done || string(out.Result) != `[{"json":{"spun":true}}]` {
			t.Fatalf("task lost with the connection: %v %s %s", err, out.Result, out.Error)
		}
		if out.SettingsSent.After(bothSpun) {
			bothSpun = out.SettingsSent
		}
		if firstDone.IsZero() || out.Completed.Before(firstDone) {
			firstDone = out.Completed
		}
	}
	pings := 0
	for _, f := range h.b.Transcript() {
		switch {
		case f.Dir == fakebroker.DirWSClose:
			t.Fatalf("connection closed: %s", f.Msg)
		case f.Dir == fakebroker.DirWSPing && f.T.After(bothSpun) && f.T.Before(firstDone):
			pings++
		}
	}
	// Each ping's pong is checked at the next one: three pings while both
	// tasks spun are two pongs on time under full load.
	if pings < 3 {
		t.Fatalf("only %d pings while both tasks spun: the heartbeat did not run", pings)
	}
}

// runningCounter counts accepted tasks not yet finished, as the
// tasks_running gauge does.
type runningCounter struct {
	nopObserver
	running  atomic.Int32
	finished sync.Map // outcome -> *atomic.Int32
}

func (c *runningCounter) TaskAccepted() { c.running.Add(1) }
func (c *runningCounter) TaskFinished(outcome string, _ time.Duration) {
	c.running.Add(-1)
	n, _ := c.finished.LoadOrStore(outcome, new(atomic.Int32))
	n.(*atomic.Int32).Add(1)
}

// TestTasksWithoutSettingsAreCountedWhenDropped: a task accepted but
// never sent its settings ends with the connection or the shutdown; the
// running count must come back to zero.
func TestTasksWithoutSettingsAreCountedWhenDropped(t *testing.T) {
	for _, how := range []string{"connection lost", "shutdown"} {
		t.Run(how, func(t *testing.T) {
			obs := &runningCounter{}
			h := start(t, newGateExecutor(2), Options{MaxConcurrency: 2, GracefulShutdownTimeout: 100 * time.Millisecond, Observer: obs}, fakebroker.Options{})
			eventually(t, "offers", func() bool { return len(h.b.OpenOffers()) == 2 })
			offer := h.b.OpenOffers()[0]
			h.b.SendRaw("runner-1", []byte(fmt.Sprintf(`{"type":"broker:taskofferaccept","taskId":"no-settings","offerId":%q}`, offer.OfferID)))
			eventually(t, "the accept", func() bool { return obs.running.Load() == 1 })
			if how == "shutdown" {
				h.r.Shutdown()
			} else {
				h.b.Close()
			}
			eventually(t, "the dropped task counted", func() bool { return obs.running.Load() == 0 })
			n, _ := obs.finished.Load("cancelled")
			if n == nil || n.(*atomic.Int32).Load() != 1 {
				t.Fatalf("finished outcomes: want one cancelled")
			}
		})
	}
}

// TestPrintLargerThanThePayloadLimitIsNotSent: the broker would close the
// connection over a frame above N8N_RUNNERS_MAX_PAYLOAD; the print is
// skipped and the task still completes.
func TestPrintLargerThanThePayloadLimitIsNotSent(t *testing.T) {
	exec := newGateExecutor(1)
	h := start(t, exec, Options{MaxConcurrency: 1, MaxPayload: 4096}, fakebroker.Options{MaxPayload: 4096})
	req := h.b.Request(trivial, fakebroker.RequestOptions{})
	<-exec.started
	big := json.RawMessage(`["` + strings.Repeat("x", 5000) + `"]`)
	exec.release <- pool.Result{Result: json.RawMessage(`[]`), Prints: []json.RawMessage{json.RawMessage(`["small"]`), big}}
	out, err := req.Wait(context.Background())
	if err != nil || !out.Done {
		t.Fatalf("%v %s", err, out.Error)
	}
	rpcs := h.sent(broker.TypeRPC)
	if len(rpcs) != 1 || !strings.Contains(string(rpcs[0].Params), "small") {
		t.Fatalf("rpcs sent: %+v", rpcs)
	}
}

// TestFramesLargerThanThePayloadLimitBecomeErrors: a taskdone or taskerror
// the broker would not accept is replaced by a taskerror saying so; the
// connection stays up for the next task.
func TestFramesLargerThanThePayloadLimitBecomeErrors(t *testing.T) {
	big := strings.Repeat("x", 5000)
	cases := []struct {
		name string
		res  pool.Result
		want string
	}{
		{"result", pool.Result{Result: json.RawMessage(`["` + big + `"]`)}, `^Task result of \d+ bytes exceeds the maximum payload of 4096 bytes \(N8N_RUNNERS_MAX_PAYLOAD\)$`},
		{"error", pool.Result{Err: &pool.TaskError{Message: big, Description: new(string)}}, `^Task error of \d+ bytes exceeds the maximum payload of 4096 bytes \(N8N_RUNNERS_MAX_PAYLOAD\)$`},
	}
	exec := newGateExecutor(1)
	h := start(t, exec, Options{MaxConcurrency: 1, MaxPayload: 4096}, fakebroker.Options{MaxPayload: 4096})
	for _, c := range cases {
		req := h.b.Request(trivial, fakebroker.RequestOptions{})
		<-exec.started
		exec.release <- c.res
		out, err := req.Wait(context.Background())
		if err != nil || out.Done {
			t.Fatalf("%s: %v done=%v", c.name, err, out.Done)
		}
		var e struct{ Message string }
		if json.Unmarshal(out.Error, &e) != nil || !regexp.MustCompile(c.want).MatchString(e.Message) {
			t.Fatalf("%s: error %s, want %s", c.name, out.Error, c.want)
		}
	}
	if len(h.b.Runners()) != 1 {
		t.Fatalf("the runner lost its connection: %v", h.b.Runners())
	}
}

// TestRefusedImportNamesTheSettingInTheLog: the task error keeps n8n's
// text; pyrunner's log says which setting allows the import.
func TestRefusedImportNamesTheSettingInTheLog(t *testing.T) {
	exec := newGateExecutor(1)
	h := start(t, exec, Options{MaxConcurrency: 1}, fakebroker.Options{})
	req := h.b.Request(trivial, fakebroker.RequestOptions{})
	<-exec.started
	desc := "Line 1: Import of standard library module 'os' is disallowed. Allowed stdlib modules: none\n" +
		"Line 2: Import of external package 'pandas' is disallowed. Allowed external packages: none\n" +
		"Line 3: Import of standard library module 'os' is disallowed. Allowed stdlib modules: none"
	exec.release <- pool.Result{Err: &pool.TaskError{Message: "Security violations detected", Description: &desc, Kind: pool.KindStatic}}
	out, err := req.Wait(context.Background())
	if err != nil || out.Done {
		t.Fatalf("%v done=%v", err, out.Done)
	}
	if want := `{"message":"Security violations detected","description":` + strconv.Quote(desc) + `}`; string(out.Error) != want {
		t.Fatalf("the task error changed:\n got %s\nwant %s", out.Error, want)
	}
	logs := h.logs.String()
	for _, want := range []string{
		"imports standard library module 'os', which N8N_RUNNERS_STDLIB_ALLOW does not allow",
		"imports external package 'pandas', which N8N_RUNNERS_EXTERNAL_ALLOW does not allow",
	} {
		if strings.Count(logs, want) != 1 {
			t.Errorf("want one log line with %q:\n%s", want, logs)
		}
	}
}
