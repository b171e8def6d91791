package fakebroker

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Options configures a Broker. Zero values take n8n's defaults.
type Options struct {
	// Addr is the listen address. Reusing the address of a broker that was
	// closed simulates an n8n restart.
	Addr string // default "127.0.0.1:0"
	// AuthToken is N8N_RUNNERS_AUTH_TOKEN.
	AuthToken string // default "test-token"
	// GrantTTL is N8N_RUNNERS_GRANT_TOKEN_TTL.
	GrantTTL time.Duration // default 30s
	// HeartbeatInterval is N8N_RUNNERS_HEARTBEAT_INTERVAL.
	HeartbeatInterval time.Duration // default 30s
	// AcceptTimeout is N8N_RUNNERS_TASK_ACCEPT_TIMEOUT: how long a runner has
	// to answer broker:taskofferaccept, and how long the requester has to
	// send settings (DeferSettings).
	AcceptTimeout time.Duration // default 2s
	// TaskTimeout is the broker's N8N_RUNNERS_TASK_TIMEOUT.
	TaskTimeout time.Duration // default 300s
	// TaskRequestTimeout is N8N_RUNNERS_TASK_REQUEST_TIMEOUT.
	TaskRequestTimeout time.Duration // default 60s
	// DrainTimeout is floor(N8N_GRACEFUL_SHUTDOWN_TIMEOUT × 0.8).
	DrainTimeout time.Duration // default 24s
	// MaxPayload is N8N_RUNNERS_MAX_PAYLOAD, in bytes.
	MaxPayload int64 // default 1 GiB
	// AuthRateLimit is how many /runners/auth requests one client may make
	// per RateLimitWindow. Negative disables the limit.
	AuthRateLimit int // default 5
	// UpgradeRateLimit is how many WebSocket upgrades all clients together
	// may make per RateLimitWindow. Negative disables the limit.
	UpgradeRateLimit int // default 5
	// RateLimitWindow is the window of both rate limits. n8n's is fixed at
	// one second; tests lengthen it so that "six requests in one window"
	// does not depend on how fast the machine is.
	RateLimitWindow time.Duration // default 1s
	// TranscriptLimit, when positive, bounds the transcript to about the
	// most recent TranscriptLimit entries (between that and twice as many),
	// so that a long run (a soak, a leak test) holds constant memory. Zero
	// keeps every entry, which is what tests asserting on it want.
	TranscriptLimit int
	// NoTranscript keeps no transcript at all, as n8n's broker keeps none: a
	// benchmark's choice (each frame kept was a copy and a JSON check of
	// every task's settings and result, inside the time it measures).
	// It overrides TranscriptLimit.
	NoTranscript bool
	// Logger receives the broker's log lines.
	Logger *slog.Logger // default: discard
}

// Defaults, from n8n 2.41.1's task-runner configuration (docs/protocol.md §6).
const (
	defaultAddr               = "127.0.0.1:0"
	defaultAuthToken          = "test-token"
	defaultGrantTTL           = 30 * time.Second
	defaultHeartbeatInterval  = 30 * time.Second
	defaultAcceptTimeout      = 2 * time.Second
	defaultTaskTimeout        = 300 * time.Second
	defaultTaskRequestTimeout = 60 * time.Second
	defaultDrainTimeout       = 24 * time.Second // floor(30 s × 0.8)
	defaultMaxPayload         = 1 << 30
	defaultRateLimit          = 5
	defaultRateLimitWindow    = time.Second
)

// Validate reports every option that cannot be used, all at once.
func (o Options) Validate() error {
	var errs []error
	durations := []struct {
		name string
		d    time.Duration
	}{
		{"GrantTTL", o.GrantTTL},
		{"HeartbeatInterval", o.HeartbeatInterval},
		{"AcceptTimeout", o.AcceptTimeout},
		{"TaskTimeout", o.TaskTimeout},
		{"TaskRequestTimeout", o.TaskRequestTimeout},
		{"DrainTimeout", o.DrainTimeout},
		{"RateLimitWindow", o.RateLimitWindow},
	}
	for _, d := range durations {
		if d.d < 0 {
			errs = append(errs, fmt.Errorf("%s must not be negative, got %v", d.name, d.d))
		}
	}
	if o.TranscriptLimit < 0 {
		errs = append(errs, fmt.Errorf("TranscriptLimit must not be negative, got %d", o.TranscriptLimit))
	}
	if o.MaxPayload < 0 {
		errs = append(errs, fmt.Errorf("MaxPayload must not be negative, got %d", o.MaxPayload))
	}
	return errors.Join(errs...)
}

// withDefaults fills every zero field with n8n's default.
func (o Options) withDefaults() Options {
	setString(&o.Addr, defaultAddr)
	setString(&o.AuthToken, defaultAuthToken)
	setDuration(&o.GrantTTL, defaultGrantTTL)
	setDuration(&o.HeartbeatInterval, defaultHeartbeatInterval)
	setDuration(&o.AcceptTimeout, defaultAcceptTimeout)
	setDuration(&o.TaskTimeout, defaultTaskTimeout)
	setDuration(&o.TaskRequestTimeout, defaultTaskRequestTimeout)
	setDuration(&o.DrainTimeout, defaultDrainTimeout)
	setDuration(&o.RateLimitWindow, defaultRateLimitWindow)
	if o.MaxPayload == 0 {
		o.MaxPayload = defaultMaxPayload
	}
	if o.AuthRateLimit == 0 {
		o.AuthRateLimit = defaultRateLimit
	}
	if o.UpgradeRateLimit == 0 {
		o.UpgradeRateLimit = defaultRateLimit
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

func setString(p *string, def string) {
	if *p == "" {
		*p = def
	}
}

func setDuration(p *time.Duration, def time.Duration) {
	if *p == 0 {
		*p = def
	}
}
