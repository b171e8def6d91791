package broker_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pyrunner/pyrunner/broker"
	"github.com/pyrunner/pyrunner/broker/fakebroker"
)

func TestWebsocketURL(t *testing.T) {
	cases := map[string]string{
		"http://127.0.0.1:5679":          "ws://127.0.0.1:5679/runners/_ws?id=r1",
		"https://n8n.example.com":        "wss://n8n.example.com/runners/_ws?id=r1",
		"http://n8n:5679/ignored/path?q": "ws://n8n:5679/runners/_ws?id=r1",
		"ws://h:1":                       "ws://h:1/runners/_ws?id=r1",
	}
	for in, want := range cases {
		got, err := broker.WebsocketURL(in, "r1")
		if err != nil || got != want {
			t.Errorf("%s: %s %v, want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"ftp://h:1", "http://", "::"} {
		if _, err := broker.WebsocketURL(bad, "r1"); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

func TestFetchGrant(t *testing.T) {
	b, err := fakebroker.Start(context.Background(), fakebroker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	grant, err := broker.FetchGrant(context.Background(), http.DefaultClient, b.URL(), "test-token")
	if err != nil || len(grant) != 64 {
		t.Fatalf("grant %q, %v", grant, err)
	}
	_, err = broker.FetchGrant(context.Background(), http.DefaultClient, b.URL(), "wrong")
	var se *broker.StatusError
	if !errors.Is(err, broker.ErrForbidden) || !errors.As(err, &se) || se.Status != 403 {
		t.Fatalf("wrong token: %v", err)
	}
}

// TestDialerReconnectsWithFreshGrants: with an auth token every connection
// uses a new grant; the broker refuses a used one.
func TestDialerReconnectsWithFreshGrants(t *testing.T) {
	b, err := fakebroker.Start(context.Background(), fakebroker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	d := &broker.Dialer{BrokerURI: b.URL(), RunnerID: "r", AuthToken: "test-token", MinBackoff: 10 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	connections := 0
	err = d.Run(ctx, func(ctx context.Context, c *broker.Conn) error {
		connections++
		if _, err := c.Receive(ctx); err != nil { // broker:inforequest
			return err
		}
		if connections == 3 {
			return broker.ErrStop
		}
		return errors.New("dropped") // as if the connection broke
	})
	if !errors.Is(err, broker.ErrStop) || connections != 3 {
		t.Fatalf("Run = %v after %d connections", err, connections)
	}
}

func TestDialerWithGrantOnlyConnectsOnce(t *testing.T) {
	b, err := fakebroker.Start(context.Background(), fakebroker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	d := &broker.Dialer{BrokerURI: b.URL(), RunnerID: "r", GrantToken: b.MintGrant(), MinBackoff: 10 * time.Millisecond}
	calls := 0
	err = d.Run(context.Background(), func(ctx context.Context, c *broker.Conn) error {
		calls++
		return errors.New("dropped")
	})
	if !errors.Is(err, broker.ErrGrantUsed) || calls != 1 {
		t.Fatalf("Run = %v after %d connections", err, calls)
	}
}

// TestDialerBacksOffFromConnectionsThatDropAtOnce: a broker that takes
// each connection and drops it straight away is retried ever more slowly.
func TestDialerBacksOffFromConnectionsThatDropAtOnce(t *testing.T) {
	b, err := fakebroker.Start(context.Background(), fakebroker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	d := &broker.Dialer{BrokerURI: b.URL(), RunnerID: "r", AuthToken: "test-token", MinBackoff: 20 * time.Millisecond, MaxBackoff: 160 * time.Millisecond}
	var at []time.Time
	err = d.Run(context.Background(), func(ctx context.Context, c *broker.Conn) error {
		at = append(at, time.Now())
		if len(at) == 6 {
			return broker.ErrStop
		}
		return errors.New("dropped")
	})
	if !errors.Is(err, broker.ErrStop) {
		t.Fatal(err)
	}
	// Waits of at least 20, 40, 80, 160, 160 ms: a lower bound, which a
	// slow machine cannot break.
	if gap := at[5].Sub(at[4]); gap < 160*time.Millisecond {
		t.Fatalf("fifth reconnect after %s, want the backoff grown to 160ms", gap)
	}
}

// TestDialerSaysOnceWhatToCheck: a broker nobody answers at is retried
// for ever; after a few attempts the log says, once, what to check.
func TestDialerSaysOnceWhatToCheck(t *testing.T) {
	b, err := fakebroker.Start(context.Background(), fakebroker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	uri := b.URL()
	b.Close() // nothing listens there now
	logs := &fakebroker.SyncBuffer{}
	d := &broker.Dialer{BrokerURI: uri, RunnerID: "r", AuthToken: "test-token",
		MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(logs, nil))}
	attempts := 0
	ctx, cancel := context.WithCancel(context.Background())
	d.OnFailure = func(error) {
		if attempts++; attempts == 12 {
			cancel()
		}
	}
	_ = d.Run(ctx, func(context.Context, *broker.Conn) error { return nil })
	out := logs.String()
	if n := strings.Count(out, "Still cannot connect to the n8n task broker"); n != 1 {
		t.Fatalf("the hint was logged %d times over %d attempts, want once:\n%s", n, attempts, out)
	}
	for _, want := range []string{"N8N_RUNNERS_MODE=external", "N8N_RUNNERS_BROKER_LISTEN_ADDRESS", "N8N_RUNNERS_AUTH_TOKEN", uri} {
		if !strings.Contains(out, want) {
			t.Errorf("the hint does not mention %s:\n%s", want, out)
		}
	}
}

// TestReceivedFramesStayIntact: Receive reads every frame into one buffer
// it keeps; what it returned must not change when the next frame comes,
// whether that buffer was kept or (past its size limit) dropped.
func TestReceivedFramesStayIntact(t *testing.T) {
	b, err := fakebroker.Start(context.Background(), fakebroker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	big := `{"code":"` + strings.Repeat("x", 5<<20) + `"}`
	d := &broker.Dialer{BrokerURI: b.URL(), RunnerID: "r", AuthToken: "test-token", MaxPayload: 16 << 20}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var frames [][]byte
	err = d.Run(ctx, func(ctx context.Context, c *broker.Conn) error {
		receive := func() []byte {
			f, err := c.Receive(ctx)
			if err != nil {
				t.Fatalf("Receive after %d frames: %v", len(frames), err)
			}
			frames = append(frames, f)
			return f
		}
		send := func(s string) {
			if err := c.Send(ctx, []byte(s)); err != nil {
				t.Fatal(err)
			}
		}
		receive() // broker:inforequest
		send(`{"type":"runner:info","name":"probe","types":["python"]}`)
		receive() // broker:runnerregistered
		for i, settings := range []string{big, `{"code":"small"}`} {
			send(`{"type":"runner:taskoffer","offerId":"o` + string(rune('1'+i)) + `","taskType":"python","validFor":60000}`)
			b.Request([]byte(settings), fakebroker.RequestOptions{})
			accept, err := broker.Decode(receive()) // broker:taskofferaccept
			if err != nil {
				t.Fatal(err)
			}
			send(`{"type":"runner:taskaccepted","taskId":"` + accept.TaskID + `"}`)
			receive() // broker:tasksettings
		}
		return broker.ErrStop
	})
	if !errors.Is(err, broker.ErrStop) {
		t.Fatalf("Run = %v", err)
	}
	wantTypes := []string{"broker:inforequest", "broker:runnerregistered", "broker:taskofferaccept", "broker:tasksettings",
		"broker:taskofferaccept", "broker:tasksettings"}
	if len(frames) != len(wantTypes) {
		t.Fatalf("%d frames", len(frames))
	}
	for i, f := range frames {
		if !strings.HasPrefix(string(f), `{"type":"`+wantTypes[i]+`"`) {
			t.Errorf("frame %d now starts %.60q, want %s", i, f, wantTypes[i])
		}
	}
	if !strings.HasSuffix(string(frames[3]), `"settings":`+big+`}`) {
		t.Errorf("the large settings frame changed: %d bytes, ends %q", len(frames[3]), frames[3][max(0, len(frames[3])-40):])
	}
	if !strings.HasSuffix(string(frames[5]), `"settings":{"code":"small"}}`) {
		t.Errorf("the last frame is %q", frames[5])
	}
}

// TestLargeSendReachesTheBrokerWhole: a Dialer's connection gathers each
// Send's writes (coalescingConn), and a 300 KB frame still arrives whole.
func TestLargeSendReachesTheBrokerWhole(t *testing.T) {
	b, err := fakebroker.Start(context.Background(), fakebroker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	d := &broker.Dialer{BrokerURI: b.URL(), RunnerID: "r", AuthToken: "test-token"}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := d.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if !broker.Coalesces(c) {
		t.Fatal("the connection was not dialed through a coalescingConn")
	}
	name := strings.Repeat("n", 300<<10)
	frame := `{"type":"runner:info","name":"` + name + `","types":["python"]}`
	if err := c.Send(ctx, []byte(frame)); err != nil {
		t.Fatal(err)
	}
	for {
		for _, f := range b.Transcript() {
			if f.Dir == fakebroker.DirRunnerToBroker && string(f.Msg) == frame {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatal("the 300 KB frame never reached the broker whole")
		case <-time.After(10 * time.Millisecond):
		}
	}
}
