package broker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"time"

	"github.com/coder/websocket"
)

// WSPath is where every n8n runner connects (docs/protocol.md §3.1).
const WSPath = "/runners/_ws"

// ErrGrantUsed is returned by Dialer.Run when the single connection a
// grant token allows has ended and no auth token is configured to mint
// another.
var ErrGrantUsed = errors.New("grant token already used")

// Dialer connects a runner to the broker, over and over if it can.
type Dialer struct {
	// BrokerURI is N8N_RUNNERS_TASK_BROKER_URI: http(s)://host:port. https
	// (or wss) gives a wss:// connection.
	BrokerURI string
	RunnerID  string
	// GrantToken allows one connection (what n8n's launcher hands over).
	GrantToken string
	// AuthToken, when set, is exchanged for a fresh grant before every
	// connection, so the runner survives broker restarts.
	AuthToken  string
	MaxPayload int64
	HTTPClient *http.Client
	Logger     *slog.Logger

	// OnFailure, if set, hears about every failed attempt and lost
	// connection (for health reporting).
	OnFailure func(error)

	// Backoff between attempts: from MinBackoff doubling to MaxBackoff,
	// with up to 50% jitter. Defaults 250 ms and 5 s (n8n's runner waits a
	// flat 5 s).
	MinBackoff, MaxBackoff time.Duration
}

// Conn is one registered-or-not websocket connection to the broker.
type Conn struct {
	ws *websocket.Conn
	in MessageReader
	// out gathers each message's writes into one; nil when the connection
	// was not dialed through a transport pyrunner could copy (or was dialed
	// by the transport's own DialTLSContext).
	out *coalescingConn
}

// Send writes one text frame, in one write to the connection where it can
// (coalescingConn). Safe for concurrent use.
func (c *Conn) Send(ctx context.Context, frame []byte) error {
	if c.out == nil {
		return c.ws.Write(ctx, websocket.MessageText, frame)
	}
	c.out.hold()
	err := c.ws.Write(ctx, websocket.MessageText, frame)
	if rerr := c.out.release(ctx); err == nil {
		err = rerr
	}
	return err
}

// Receive returns the next frame, text or binary (n8n accepts both).
// Control frames, pings included, are answered while Receive waits, so it
// must always have a caller, and only one at a time.
func (c *Conn) Receive(ctx context.Context) ([]byte, error) {
	return c.in.Read(ctx, c.ws)
}

// MessageReader reads whole websocket messages, text or binary, into a
// buffer it keeps between them (up to keptReadBuffer), and returns a copy
// of each at its size. websocket.Conn.Read grows a new slice for each
// message: for a task's settings or result of a few hundred KB, a dozen
// and more reads and two to three times the message allocated. The zero
// value is ready; one Read at a time.
type MessageReader struct {
	buf bytes.Buffer
}

// keptReadBuffer is the largest buffer a MessageReader keeps for the next
// message; a larger message's buffer goes once that message is read.
const keptReadBuffer = 4 << 20

// Read returns ws's next message. The connection's read limit applies.
func (m *MessageReader) Read(ctx context.Context, ws *websocket.Conn) ([]byte, error) {
	_, r, err := ws.Reader(ctx)
	if err != nil {
		return nil, err
	}
	m.buf.Reset()
	_, err = m.buf.ReadFrom(r)
	var msg []byte
	if err == nil {
		msg = bytes.Clone(m.buf.Bytes())
	}
	if m.buf.Cap() > keptReadBuffer {
		m.buf = bytes.Buffer{}
	}
	return msg, err
}

// Close closes the connection with a normal closure.
func (c *Conn) Close() error {
	return c.ws.Close(websocket.StatusNormalClosure, "")
}

// CloseNow drops the connection without a handshake.
func (c *Conn) CloseNow() error { return c.ws.CloseNow() }

// CloseStatus is the close code the broker sent, or -1.
func CloseStatus(err error) int { return int(websocket.CloseStatus(err)) }

// WebsocketURL turns N8N_RUNNERS_TASK_BROKER_URI into the runner endpoint:
// the scheme follows the URI's (https → wss), unlike n8n's runner which
// always uses ws://.
func WebsocketURL(brokerURI, runnerID string) (string, error) {
	u, err := url.Parse(brokerURI)
	if err != nil {
		return "", fmt.Errorf("broker URI %q: %w", brokerURI, err)
	}
	switch u.Scheme {
	case "http", "ws":
		u.Scheme = "ws"
	case "https", "wss":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("broker URI %q: scheme must be http, https, ws or wss", brokerURI)
	}
	if u.Host == "" {
		return "", fmt.Errorf("broker URI %q has no host", brokerURI)
	}
	u.Path = WSPath
	u.RawQuery = url.Values{"id": {runnerID}}.Encode()
	u.Fragment = ""
	return u.String(), nil
}

// httpBase is the broker's HTTP base for /runners/auth.
func httpBase(brokerURI string) string {
	u, err := url.Parse(brokerURI)
	if err != nil {
		return brokerURI
	}
	switch u.Scheme {
	case "ws":
		u.Scheme = "http"
	case "wss":
		u.Scheme = "https"
	}
	u.Path, u.RawQuery, u.Fragment = "", "", ""
	return u.String()
}

// Connect makes one connection: a fresh grant first when an auth token is
// set, else the configured grant token.
func (d *Dialer) Connect(ctx context.Context) (*Conn, error) {
	wsURL, err := WebsocketURL(d.BrokerURI, d.RunnerID)
	if err != nil {
		return nil, err
	}
	client := d.HTTPClient
	if client == nil {
		client = http.DefaultClient
	}
	grant := d.GrantToken
	if d.AuthToken != "" {
		grant, err = FetchGrant(ctx, client, httpBase(d.BrokerURI), d.AuthToken)
		if err != nil {
			return nil, err
		}
	}
	// A transport of this connection's own: its connection is the one Send
	// gathers writes on. What a refused upgrade leaves idle is closed.
	wsClient, dialed, closeIdle := coalescingTransport(client)
	defer closeIdle()
	ws, resp, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{
		HTTPClient: wsClient,
		HTTPHeader: http.Header{"Authorization": {"Bearer " + grant}},
	})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			return nil, &StatusError{Status: resp.StatusCode, Body: firstLine(body)}
		}
		return nil, err
	}
	limit := d.MaxPayload
	if limit <= 0 {
		limit = 1 << 30
	}
	ws.SetReadLimit(limit)
	return &Conn{ws: ws, out: dialed()}, nil
}

// Run connects and calls serve with each connection until ctx ends or no
// further connection is possible. serve returns when its connection is
// over; returning ErrStop from it (wrapped or not) ends Run without a
// reconnect.
//
// With an auth token, Run reconnects for as long as it takes, with a fresh
// grant each time. With only a grant token it makes one connection: a 403
// is fatal, and once that connection ends Run returns ErrGrantUsed.
func (d *Dialer) Run(ctx context.Context, serve func(ctx context.Context, c *Conn) error) error {
	logger := d.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	minB, maxB := d.MinBackoff, d.MaxBackoff
	if minB <= 0 {
		minB = 250 * time.Millisecond
	}
	if maxB <= 0 {
		maxB = 5 * time.Second
	}
	backoff := minB
	failures := 0 // attempts in a row that could not connect
	for {
		conn, err := d.Connect(ctx)
		if ctx.Err() != nil {
			if conn != nil {
				conn.CloseNow()
			}
			return ctx.Err()
		}
		if err != nil {
			d.failed(err)
			if errors.Is(err, ErrForbidden) && d.AuthToken == "" {
				logger.Error(fmt.Sprintf("Authentication failed with status 403: %v", err))
				return fmt.Errorf("broker refused the grant token (N8N_RUNNERS_GRANT_TOKEN is single-use and expires after N8N_RUNNERS_GRANT_TOKEN_TTL; set N8N_RUNNERS_AUTH_TOKEN to let pyrunner fetch its own): %w", err)
			}
			if errors.Is(err, ErrForbidden) {
				logger.Error(fmt.Sprintf("Authentication failed with status 403: %v - retrying...", err))
			} else {
				logger.Warn(fmt.Sprintf("Failed to connect to broker: %v - retrying...", err))
			}
			if failures++; failures == unreachableHintAfter {
				logger.Warn(d.unreachableHint(failures))
			}
			if !sleep(ctx, jitter(backoff)) {
				return ctx.Err()
			}
			backoff = min(backoff*2, maxB)
			continue
		}
		failures = 0
		logger.Info("Connected to broker")
		connected := time.Now()
		err = serve(ctx, conn)
		conn.CloseNow()
		if errors.Is(err, ErrStop) || ctx.Err() != nil {
			return err
		}
		if d.AuthToken == "" {
			return fmt.Errorf("%w: connection ended (%v)", ErrGrantUsed, err)
		}
		d.failed(fmt.Errorf("connection lost: %w", err))
		if time.Since(connected) >= stableConnection {
			backoff = minB
		}
		logger.Info("Reconnecting to broker...")
		if !sleep(ctx, jitter(backoff)) {
			return ctx.Err()
		}
		backoff = min(backoff*2, maxB)
	}
}

// unreachableHintAfter is how many failed attempts in a row (a few
// seconds of backoff) come before the log says, once per outage, what to
// check.
const unreachableHintAfter = 5

// unreachableHint says what usually stands between a runner and n8n's
// broker.
func (d *Dialer) unreachableHint(failures int) string {
	hint := fmt.Sprintf("Still cannot connect to the n8n task broker at %s after %d attempts; retrying until it answers. Check that "+
		"n8n runs with N8N_RUNNERS_MODE=external, that its broker listens where N8N_RUNNERS_TASK_BROKER_URI points "+
		"(n8n's N8N_RUNNERS_BROKER_LISTEN_ADDRESS, 127.0.0.1 by default, and N8N_RUNNERS_BROKER_PORT, 5679 by default) "+
		"and can be reached from here", d.BrokerURI, failures)
	if d.AuthToken != "" {
		hint += ", and that N8N_RUNNERS_AUTH_TOKEN is the same as n8n's"
	}
	return hint
}

// stableConnection is how long a connection must have lasted for the next
// one to be tried at once: a broker that takes the connection and drops it
// straight away (refusing the runner's registration, say) is retried with
// the growing backoff, not hammered with fresh grants.
const stableConnection = 10 * time.Second

func (d *Dialer) failed(err error) {
	if d.OnFailure != nil {
		d.OnFailure(err)
	}
}

// ErrStop, returned by a serve function, ends Dialer.Run without a
// reconnect (the runner is shutting down).
var ErrStop = errors.New("runner stopping")

// jitter adds up to 50% to d so that many runners do not reconnect in step.
func jitter(d time.Duration) time.Duration {
	return d + time.Duration(rand.Int64N(int64(d)/2+1))
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
