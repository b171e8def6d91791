package python

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// The channels and senders of doc.go's table of messages.
const (
	TaskChannel    = "task"
	ControlChannel = "control"
	FromGo         = "go"
	FromChild      = "child"
	FromZygote     = "zygote"
)

// message names one row of doc.go's table.
type message struct{ channel, sender, op string }

// everyConfigField stands for the fields of Config in the table.
const everyConfigField = "every field of Config"

// messageFields is doc.go's table of messages, besides "op": the one list
// the decoders below check what Python sends against, and that the tests
// hold both to doc.go and to what the Go side sends. A field Python sends
// that is not here makes the message invalid.
var messageFields = map[message][]string{
	{TaskChannel, FromGo, "config"}:             {everyConfigField},
	{TaskChannel, FromGo, "task"}:               {"taskId", "analyzed", "compiled", "wantCompiled", "settings"},
	{TaskChannel, FromChild, "ready"}:           {},
	{TaskChannel, FromChild, "compiled"}:        {"code"},
	{TaskChannel, FromChild, "result"}:          {"result", "print_args", "analysis", "ownCompiled"},
	{TaskChannel, FromChild, "error"}:           {"kind", "error", "print_args", "analysis", "ownCompiled"},
	{TaskChannel, FromChild, "(error)"}:         {"message", "description", "stack"},
	{ControlChannel, FromGo, "config"}:          {everyConfigField},
	{ControlChannel, FromZygote, "ready"}:       {"pid", "version", "landlock"},
	{ControlChannel, FromZygote, "failed"}:      {"error"},
	{ControlChannel, FromGo, "spawn"}:           {"id", "maxTasks"},
	{ControlChannel, FromZygote, "spawned"}:     {"id", "pid"},
	{ControlChannel, FromZygote, "spawnfailed"}: {"id", "error"},
	{ControlChannel, FromGo, "kill"}:            {"id", "pid", "signal"},
	{ControlChannel, FromZygote, "exited"}:      {"pid", "code", "signal"},
}

// checkFields refuses a message from Python that carries a field doc.go's
// table does not list for it. Go and Python are built together (the
// runtime is embedded and content-hashed), so an unknown field is a bug or
// a forgery, never a version skew.
func checkFields(m message, keys []string) error {
	allowed, ok := messageFields[m]
	if !ok {
		return fmt.Errorf("unknown %s message %q from the %s", m.channel, m.op, m.sender)
	}
	for _, k := range keys {
		if k != "op" && !slices.Contains(allowed, k) {
			return fmt.Errorf("%s message %q has a field the protocol does not describe: %q", m.sender, m.op, k)
		}
	}
	return nil
}

// TaskFlags are what the "task" message says besides the settings.
type TaskFlags struct {
	// Analyzed: the code is known to pass the static analysis under these
	// allowlists (the executor's verdict cache).
	Analyzed bool
	// Compiled is the code's compiled form (marshal), from the code cache.
	Compiled []byte
	// WantCompiled asks the process, which has run no user code yet, to
	// send its compiled form ("compiled") before it runs the code.
	WantCompiled bool
}

// TaskFrame is the "task" message. Built by hand: settings can be
// megabytes that Go passes through without decoding.
func TaskFrame(taskID string, settings json.RawMessage, f TaskFlags) []byte {
	id, _ := json.Marshal(taskID) // a string always marshals
	if len(settings) == 0 {
		settings = json.RawMessage("null")
	}
	b := make([]byte, 0, len(settings)+len(id)+base64.StdEncoding.EncodedLen(len(f.Compiled))+80)
	b = append(b, `{"op":"task","taskId":`...)
	b = append(b, id...)
	if f.Analyzed {
		b = append(b, `,"analyzed":true`...)
	}
	if len(f.Compiled) > 0 {
		b = append(b, `,"compiled":"`...)
		b = base64.StdEncoding.AppendEncode(b, f.Compiled)
		b = append(b, '"')
	}
	if f.WantCompiled {
		b = append(b, `,"wantCompiled":true`...)
	}
	b = append(b, `,"settings":`...)
	b = append(b, settings...)
	return append(b, '}')
}

// DecodeCompiled reads a "compiled" message: ok is false when the frame is
// another message (the process sent its reply at once: the code did not
// compile).
func DecodeCompiled(frame []byte) (code []byte, ok bool, err error) {
	var m map[string]json.RawMessage
	if json.Unmarshal(frame, &m) != nil || string(m["op"]) != `"compiled"` {
		return nil, false, nil
	}
	if err := checkFields(message{TaskChannel, FromChild, "compiled"}, keysOf(m)); err != nil {
		return nil, true, err
	}
	var text string
	if err := json.Unmarshal(m["code"], &text); err != nil {
		return nil, true, fmt.Errorf("compiled message: %w", err)
	}
	code, err = base64.StdEncoding.DecodeString(text)
	if err != nil || len(code) == 0 {
		return nil, true, fmt.Errorf("compiled message without code (%v)", err)
	}
	return code, true, nil
}

// ConfigFrame is the "config" message: c with its op set.
func ConfigFrame(c Config) []byte {
	c.Op = "config"
	b, _ := json.Marshal(c) // a Config always marshals
	return b
}

// CheckReady checks the frame a task process sends once its fences are up
// and it can take a task: {"op":"ready"} and nothing else.
func CheckReady(frame []byte) error {
	var m map[string]json.RawMessage
	if json.Unmarshal(frame, &m) != nil || string(m["op"]) != `"ready"` {
		return fmt.Errorf("sent %q instead of ready", frame)
	}
	return checkFields(message{TaskChannel, FromChild, "ready"}, keysOf(m))
}

func keysOf(m map[string]json.RawMessage) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}

// describe renders messageFields as doc.go's table rows, for the test that
// holds the two together.
func describe() []string {
	var rows []string
	for m, fields := range messageFields {
		f := strings.Join(fields, " ")
		if f == "" {
			f = "-"
		}
		rows = append(rows, fmt.Sprintf("%s %s %s %s", m.channel, m.sender, m.op, f))
	}
	slices.Sort(rows)
	return rows
}
