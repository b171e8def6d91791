package pool

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// TestDecodeReplyRefusesWhatNoHonestProcessSends: the reply comes from a
// process that ran user code; what it could forge must not reach n8n.
func TestDecodeReplyRefusesWhatNoHonestProcessSends(t *testing.T) {
	many := `{"op":"result","result":[],"print_args":[` + strings.Repeat(`["x"],`, maxPrintEntries) + `["x"]]}`
	cases := map[string]struct{ frame, err string }{
		"invalid UTF-8":      {"{\"op\":\"result\",\"result\":[\"\xff\"],\"print_args\":[]}", "reply is not valid UTF-8"},
		"too many prints":    {many, "reply has 102 print entries, more than 101"},
		"print not an array": {`{"op":"result","result":[],"print_args":["x"]}`, "reply has a print entry that is not an array"},
		"result not JSON":    {`{"op":"result","result":[1,],"print_args":[]}`, "result reply whose result is not valid JSON"},
		"no error object":    {`{"op":"error","kind":"user","print_args":[]}`, "error reply without an error"},
		"unknown op":         {`{"op":"exec","print_args":[]}`, `reply with unknown op "exec"`},
		"result without one": {`{"op":"result","print_args":[]}`, "result reply without a result"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := decodeReply([]byte(c.frame))
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Fatalf("error %v, want one with %q", err, c.err)
			}
		})
	}
	res, err := decodeReply([]byte(`{"op":"result","result":[{"json":{"s":"é"}}],"print_args":[["a"]],"analysis":"passed"}`))
	if err != nil || string(res.Result) != `[{"json":{"s":"é"}}]` || len(res.Prints) != 1 || !res.AnalysisPassed {
		t.Fatalf("honest reply: %+v, %v", res, err)
	}
}

// TestReplyLimit: a frame is bounded by N8N_PYTHON_MAX_RESULT_MB (plus room
// for the error that replaces a larger result) when that is the tighter limit.
func TestReplyLimit(t *testing.T) {
	opts := Options{MaxPayload: 1 << 30}
	opts.Spec.Config.MaxResultBytes = 32 << 20
	if limit, setting := opts.replyLimit(); limit != 32<<20+replySlack || setting != "N8N_PYTHON_MAX_RESULT_MB" {
		t.Fatalf("limit %d %s", limit, setting)
	}
	opts.MaxPayload = 1 << 20
	if limit, setting := opts.replyLimit(); limit != 1<<20 || setting != "N8N_RUNNERS_MAX_PAYLOAD" {
		t.Fatalf("limit %d %s", limit, setting)
	}
	opts.Spec.Config.MaxResultBytes = 0
	opts.MaxPayload = 1 << 30
	if limit, _ := opts.replyLimit(); limit != 1<<30 {
		t.Fatalf("limit %d without a result limit", limit)
	}
	var frame bytes.Buffer
	frame.Write([]byte{0x40, 0, 0, 0})
	if _, err := readFrame(&frame, 1<<20); !errors.Is(err, errFrameTooLarge) {
		t.Fatalf("readFrame of a 1 GiB announcement: %v", err)
	}
}
