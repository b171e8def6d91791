package fakebroker

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// Directions and events of a Frame, as in the transcripts recorded from n8n
// (docs/n8n-observed.md §12).
const (
	DirBrokerToRunner = "broker->runner"
	DirRunnerToBroker = "runner->broker"
	DirHTTPRequest    = "http-request"  // POST /runners/auth: method, url, body
	DirHTTPResponse   = "http-response" // its status and body, or an upgrade's rejection status
	DirWSConnect      = "ws-connect"    // an upgrade attempt: url, authorization header
	DirWSOpen         = "ws-open"       // the upgrade succeeded
	DirWSClose        = "ws-close"      // code, reason, and who closed ("broker" or "runner")
	DirWSPing         = "ws-ping"       // a heartbeat ping control frame
)

// Frame is one entry of the broker's transcript: a WebSocket frame in either
// direction or a connection event, in the format of the recorded transcripts
// (one JSON object with t, runnerId, dir, msg).
type Frame struct {
	T        time.Time
	RunnerID string
	Dir      string
	// Msg is the frame as received or sent, byte for byte, when it is JSON;
	// a frame that is not JSON is kept as a JSON string of its text. For
	// events it is an object with the event's details.
	Msg json.RawMessage
}

// transcriptTime is the transcripts' timestamp format: UTC, milliseconds.
const transcriptTime = "2006-01-02T15:04:05.000Z07:00"

// MarshalJSON writes the frame as one transcript line. Note that
// json.Marshal HTML-escapes what a MarshalJSON returns ("->" becomes
// "-\u003e"); WriteTranscript, or an Encoder with SetEscapeHTML(false),
// keeps the recorded transcripts' exact text.
func (f Frame) MarshalJSON() ([]byte, error) {
	line := struct {
		T        string          `json:"t"`
		RunnerID string          `json:"runnerId,omitempty"`
		Dir      string          `json:"dir"`
		Msg      json.RawMessage `json:"msg"`
	}{f.T.UTC().Format(transcriptTime), f.RunnerID, f.Dir, f.Msg}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(line); err != nil {
		return nil, fmt.Errorf("encoding transcript frame: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// WriteTranscript writes the transcript so far as JSON lines, the format of
// the recorded transcripts. Useful to dump when an end-to-end test fails.
func (b *Broker) WriteTranscript(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for _, f := range b.Transcript() {
		if err := enc.Encode(f); err != nil {
			return fmt.Errorf("writing transcript: %w", err)
		}
	}
	return nil
}

// Transcript returns a copy of every frame and event so far, in order (the
// most recent ones only, beyond Options.TranscriptLimit).
func (b *Broker) Transcript() []Frame {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]Frame, len(b.transcript))
	copy(out, b.transcript)
	return out
}

// recordRawLocked appends a frame whose bytes are kept as they are.
func (b *Broker) recordRawLocked(runnerID, dir string, data []byte) {
	if b.opts.NoTranscript {
		return
	}
	var msg json.RawMessage
	if json.Valid(data) {
		msg = append(json.RawMessage(nil), data...)
	} else {
		msg, _ = json.Marshal(string(data)) // a string always marshals
	}
	b.appendLocked(Frame{T: time.Now(), RunnerID: runnerID, Dir: dir, Msg: msg})
}

// recordEventLocked appends a connection or HTTP event.
func (b *Broker) recordEventLocked(runnerID, dir string, details any) {
	if b.opts.NoTranscript {
		return
	}
	msg, err := json.Marshal(details)
	if err != nil {
		msg = json.RawMessage(`{}`)
	}
	b.appendLocked(Frame{T: time.Now(), RunnerID: runnerID, Dir: dir, Msg: msg})
}

// appendLocked adds f to the transcript, dropping the oldest half once it
// holds more than Options.TranscriptLimit entries (amortised: a long run
// costs no copy per frame).
func (b *Broker) appendLocked(f Frame) {
	b.transcript = append(b.transcript, f)
	if limit := b.opts.TranscriptLimit; limit > 0 && len(b.transcript) > 2*limit {
		keep := b.transcript[len(b.transcript)-limit:]
		b.transcript = append(make([]Frame, 0, 2*limit+1), keep...)
	}
}

// record is recordRawLocked for callers that do not hold b.mu.
func (b *Broker) record(runnerID, dir string, data []byte) {
	if b.opts.NoTranscript {
		return // without taking b.mu for every frame sent
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.recordRawLocked(runnerID, dir, data)
}
