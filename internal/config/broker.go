package config

import (
	"fmt"
	"net/url"
	"slices"
)

// maxPipeMessage is n8n's runner's PIPE_MSG_MAX_SIZE; N8N_RUNNERS_MAX_PAYLOAD
// may not exceed it (docs/errors.md §8).
const maxPipeMessage = 4294967295

// Broker is how pyrunner meets n8n: the broker it connects to and how it
// proves who it is, how much work it takes, when it stops, and the health
// server that tells n8n's side how it is doing. n8n's runner's variables,
// same names and defaults (docs/protocol.md §10.2), but for the auth token.
type Broker struct {
	GrantToken string `env:"N8N_RUNNERS_GRANT_TOKEN"`
	// AuthToken is pyrunner's own: with it, pyrunner fetches its own grants.
	AuthToken               string  `env:"N8N_RUNNERS_AUTH_TOKEN"`
	URI                     string  `env:"N8N_RUNNERS_TASK_BROKER_URI, default=http://127.0.0.1:5679"`
	MaxConcurrency          Int     `env:"N8N_RUNNERS_MAX_CONCURRENCY, default=5"`
	MaxPayload              Int     `env:"N8N_RUNNERS_MAX_PAYLOAD, default=1073741824"` // bytes
	AutoShutdownTimeout     Seconds `env:"N8N_RUNNERS_AUTO_SHUTDOWN_TIMEOUT, default=0"`
	GracefulShutdownTimeout Seconds `env:"N8N_RUNNERS_GRACEFUL_SHUTDOWN_TIMEOUT, default=10"`
	HealthEnabled           Bool    `env:"N8N_RUNNERS_HEALTH_CHECK_SERVER_ENABLED, default=false"`
	HealthHost              string  `env:"N8N_RUNNERS_HEALTH_CHECK_SERVER_HOST, default=127.0.0.1"`
	HealthPort              Int     `env:"N8N_RUNNERS_HEALTH_CHECK_SERVER_PORT, default=5681"`

	// unreadable names the variables whose <NAME>_FILE could not be read:
	// that is their problem, reported once, not also a missing token.
	unreadable map[string]bool
}

// Validate checks the section against n8n's runner's rules, with its texts
// (docs/errors.md §8), plus pyrunner's own.
func (b *Broker) Validate() []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if b.GrantToken == "" && b.AuthToken == "" && !b.unreadable["N8N_RUNNERS_GRANT_TOKEN"] && !b.unreadable["N8N_RUNNERS_AUTH_TOKEN"] {
		add("Environment variable N8N_RUNNERS_GRANT_TOKEN is required (or N8N_RUNNERS_AUTH_TOKEN, to let pyrunner fetch its own grants)")
	}
	if u, err := url.Parse(b.URI); err != nil || u.Host == "" || !slices.Contains([]string{"http", "https", "ws", "wss"}, u.Scheme) {
		add("N8N_RUNNERS_TASK_BROKER_URI must be an http://, https://, ws:// or wss:// URL with a host, got '%s'", b.URI)
	}
	if b.MaxConcurrency < 1 {
		add("N8N_RUNNERS_MAX_CONCURRENCY must be at least 1, got %d", b.MaxConcurrency)
	}
	if b.MaxPayload < 1 {
		add("N8N_RUNNERS_MAX_PAYLOAD must be positive, got %d", b.MaxPayload)
	}
	if int64(b.MaxPayload) > maxPipeMessage {
		add("Max payload size of %d bytes exceeds pipe message limit of %d bytes. Reduce N8N_RUNNERS_MAX_PAYLOAD.", b.MaxPayload, int64(maxPipeMessage))
	}
	if b.AutoShutdownTimeout < 0 {
		add("Auto shutdown timeout must be non-negative, got %d (N8N_RUNNERS_AUTO_SHUTDOWN_TIMEOUT)", b.AutoShutdownTimeout)
	}
	if b.GracefulShutdownTimeout <= 0 {
		add("Graceful shutdown timeout must be positive, got %d (N8N_RUNNERS_GRACEFUL_SHUTDOWN_TIMEOUT)", b.GracefulShutdownTimeout)
	}
	if b.HealthPort < 0 || b.HealthPort > 65535 {
		add("N8N_RUNNERS_HEALTH_CHECK_SERVER_PORT must be between 0 and 65535, got %d", b.HealthPort)
	}
	return errs
}
