package python

import (
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/pyrunner/pyrunner/internal/jsonscan"
)

// Reply is what a task process sends back for a task: a "result" or an
// "error" message.
type Reply struct {
	// Op is "result" or "error".
	Op string
	// Kind of an error: "user" or "static".
	Kind string
	// Result is the JSON of the result, validated.
	Result json.RawMessage
	// Prints holds one JSON array of strings per recorded print() call.
	Prints []json.RawMessage
	Error  *ErrorObject
	// AnalysisPassed: the code got past the static analysis.
	AnalysisPassed bool
	// OwnCompiled: a reuse worker ran its own compiled copy of the code.
	OwnCompiled bool
}

// ErrorObject is the "error" member of an error reply.
type ErrorObject struct {
	Message string
	// Description is nil when the key is absent (some of n8n's errors have
	// none), not only when it is empty.
	Description *string
	Stack       string
}

// DecodeReply reads a task process's reply. The frame comes from a process
// that ran user code, so it is checked, not trusted: valid UTF-8 (the
// runner passes results and prints on in websocket text messages, and n8n
// closes the connection over invalid UTF-8), only the fields doc.go lists,
// at most maxPrints+1 print entries (the kept calls and n8n's truncation
// entry), and a result that is valid JSON. One scan locates the members;
// only the small ones are decoded.
func DecodeReply(frame []byte, maxPrints int) (Reply, error) {
	if !utf8.Valid(frame) {
		return Reply{}, errors.New("reply is not valid UTF-8")
	}
	var r Reply
	var keys []string
	var errObj []byte
	err := jsonscan.EachMember(frame, func(key string, v []byte) error {
		keys = append(keys, key)
		switch key {
		case "op":
			return json.Unmarshal(v, &r.Op)
		case "kind":
			return json.Unmarshal(v, &r.Kind)
		case "result":
			r.Result = json.RawMessage(v)
		case "error":
			errObj = v
		case "print_args":
			return json.Unmarshal(v, &r.Prints)
		case "analysis":
			r.AnalysisPassed = string(v) == `"passed"`
		case "ownCompiled":
			r.OwnCompiled = string(v) == "true"
		}
		return nil
	})
	if err != nil {
		return Reply{}, fmt.Errorf("undecodable reply: %w", err)
	}
	if r.Op != "result" && r.Op != "error" {
		return Reply{}, fmt.Errorf("reply with unknown op %q", r.Op)
	}
	if err := checkFields(message{TaskChannel, FromChild, r.Op}, keys); err != nil {
		return Reply{}, err
	}
	if len(r.Prints) > maxPrints+1 {
		return Reply{}, fmt.Errorf("reply has %d print entries, more than %d", len(r.Prints), maxPrints+1)
	}
	for _, p := range r.Prints {
		if len(p) == 0 || p[0] != '[' {
			return Reply{}, errors.New("reply has a print entry that is not an array")
		}
	}
	if r.Op == "result" {
		if r.Result == nil {
			return Reply{}, errors.New("result reply without a result")
		}
		if !json.Valid(r.Result) {
			return Reply{}, errors.New("result reply whose result is not valid JSON")
		}
		return r, nil
	}
	if errObj == nil || string(errObj) == "null" {
		return Reply{}, errors.New("error reply without an error")
	}
	if r.Error, err = decodeErrorObject(errObj); err != nil {
		return Reply{}, fmt.Errorf("undecodable error in reply: %w", err)
	}
	r.Result = nil
	return r, nil
}

func decodeErrorObject(b []byte) (*ErrorObject, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	if err := checkFields(message{TaskChannel, FromChild, "(error)"}, keysOf(m)); err != nil {
		return nil, err
	}
	var raw struct {
		Message     string  `json:"message"`
		Description *string `json:"description"`
		Stack       string  `json:"stack"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, err
	}
	return &ErrorObject{Message: raw.Message, Description: raw.Description, Stack: raw.Stack}, nil
}
