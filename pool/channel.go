package pool

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"unicode/utf8"

	"github.com/pyrunner/pyrunner/internal/jsonscan"
)

// errFrameTooLarge is returned by readFrame when a frame announces more
// bytes than the caller allows.
var errFrameTooLarge = errors.New("frame too large")

// writeFrame sends one length-prefixed frame (python/doc.go) in a single
// writev, without copying a large payload to prepend its header.
func writeFrame(w io.Writer, payload []byte) error {
	var header [4]byte
	binary.BigEndian.PutUint32(header[:], uint32(len(payload)))
	bufs := net.Buffers{header[:], payload}
	_, err := bufs.WriteTo(w)
	return err
}

// readFrame reads one frame of at most max bytes.
func readFrame(r io.Reader, max int) ([]byte, error) {
	var header [4]byte
	if _, err := io.ReadFull(r, header[:]); err != nil {
		return nil, err
	}
	size := binary.BigEndian.Uint32(header[:])
	if uint64(size) > uint64(max) {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", errFrameTooLarge, size, max)
	}
	buf := make([]byte, size)
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return buf, nil
}

// taskFrame is the "task" message. Built by hand: settings can be megabytes
// that Go passes through without decoding.
func taskFrame(t Task) []byte {
	id, _ := json.Marshal(t.ID) // a string always marshals
	settings := t.Settings
	if len(settings) == 0 {
		settings = json.RawMessage("null")
	}
	b := make([]byte, 0, len(settings)+len(id)+40)
	b = append(b, `{"op":"task","taskId":`...)
	b = append(b, id...)
	if t.analyzed {
		b = append(b, `,"analyzed":true`...)
	}
	b = append(b, `,"settings":`...)
	b = append(b, settings...)
	return append(b, '}')
}

// maxPrintEntries is the most print entries an honest reply has: the task
// process keeps the first 100 print() calls (config.py's max_prints) and adds
// one entry saying how many it dropped. Each becomes a message to n8n.
const maxPrintEntries = 100 + 1

// decodeReply turns a task process's frame into a Result. The frame comes
// from a process that ran user code, so it is checked, not trusted: the
// result must be valid JSON before it goes to the broker, and that is the
// one scan it gets (encoding/json would scan it twice more to decode it).
func decodeReply(frame []byte) (Result, error) {
	// The runner passes results and prints on to the broker as they are, in
	// websocket text messages: invalid UTF-8 there would make n8n close the
	// connection (RFC 6455 §8.1), and json.Valid does not look.
	if !utf8.Valid(frame) {
		return Result{}, errors.New("reply is not valid UTF-8")
	}
	var op, kind string
	var res Result
	var errObj []byte
	err := jsonscan.EachMember(frame, func(key string, v []byte) error {
		switch key {
		case "op":
			return json.Unmarshal(v, &op)
		case "kind":
			return json.Unmarshal(v, &kind)
		case "result":
			res.Result = json.RawMessage(v)
		case "error":
			errObj = v
		case "print_args":
			return json.Unmarshal(v, &res.Prints)
		case "analysis":
			res.AnalysisPassed = string(v) == `"passed"`
		}
		return nil
	})
	if err != nil {
		return Result{}, fmt.Errorf("undecodable reply: %w", err)
	}
	if len(res.Prints) > maxPrintEntries {
		return Result{}, fmt.Errorf("reply has %d print entries, more than %d", len(res.Prints), maxPrintEntries)
	}
	for _, p := range res.Prints {
		if len(p) == 0 || p[0] != '[' {
			return Result{}, errors.New("reply has a print entry that is not an array")
		}
	}
	switch op {
	case "result":
		if res.Result == nil {
			return Result{}, errors.New("result reply without a result")
		}
		if !json.Valid(res.Result) {
			return Result{}, errors.New("result reply whose result is not valid JSON")
		}
		return res, nil
	case "error":
		if errObj == nil || string(errObj) == "null" {
			return Result{}, errors.New("error reply without an error")
		}
		res.Err = &TaskError{}
		if err := json.Unmarshal(errObj, res.Err); err != nil {
			return Result{}, fmt.Errorf("undecodable error in reply: %w", err)
		}
		res.Err.Kind = KindUser
		if ErrorKind(kind) == KindStatic {
			res.Err.Kind = KindStatic
		}
		res.Result = nil
		return res, nil
	}
	return Result{}, fmt.Errorf("reply with unknown op %q", op)
}
