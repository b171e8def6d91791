package broker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// AuthRequestTimeout bounds one POST /runners/auth.
const AuthRequestTimeout = 10 * time.Second

// ErrForbidden is returned when the broker refuses a token: a wrong auth
// token at /runners/auth, or an unknown, expired or used grant at upgrade.
var ErrForbidden = errors.New("forbidden")

// StatusError is a non-success HTTP status from the broker.
type StatusError struct {
	Status int
	Body   string
}

func (e *StatusError) Error() string {
	if e.Body == "" {
		return fmt.Sprintf("status %d", e.Status)
	}
	return fmt.Sprintf("status %d: %s", e.Status, e.Body)
}

func (e *StatusError) Unwrap() error {
	if e.Status == http.StatusForbidden {
		return ErrForbidden
	}
	return nil
}

// FetchGrant exchanges the auth token for a single-use grant token
// (docs/protocol.md §2.1). brokerURI is N8N_RUNNERS_TASK_BROKER_URI.
func FetchGrant(ctx context.Context, client *http.Client, brokerURI, authToken string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, AuthRequestTimeout)
	defer cancel()
	body, _ := json.Marshal(map[string]string{"token": authToken})
	url := strings.TrimRight(brokerURI, "/") + "/runners/auth"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return "", fmt.Errorf("grant request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("grant request: %w", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("grant request: %w", &StatusError{Status: resp.StatusCode, Body: firstLine(raw)})
	}
	var out struct {
		Data struct {
			Token string `json:"token"`
		} `json:"data"`
	}
	if err := json.Unmarshal(raw, &out); err != nil || out.Data.Token == "" {
		return "", fmt.Errorf("grant request: unexpected response %q", firstLine(raw))
	}
	return out.Data.Token, nil
}

// firstLine keeps error bodies (n8n sends stack traces) to one line.
func firstLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i] + " …"
	}
	if len(s) > 300 {
		s = s[:300] + " …"
	}
	return s
}
