package pool

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
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

// reply is what a task process sends back for a task.
type reply struct {
	Op        string            `json:"op"`
	Kind      ErrorKind         `json:"kind"`
	Result    json.RawMessage   `json:"result"`
	Error     *TaskError        `json:"error"`
	PrintArgs []json.RawMessage `json:"print_args"`
}

// decodeReply turns a task process's frame into a Result. The frame comes
// from a process that ran user code, so it is checked, not trusted.
func decodeReply(frame []byte) (Result, error) {
	var r reply
	if err := json.Unmarshal(frame, &r); err != nil {
		return Result{}, fmt.Errorf("undecodable reply: %w", err)
	}
	for _, p := range r.PrintArgs {
		if len(p) == 0 || p[0] != '[' {
			return Result{}, errors.New("reply has a print entry that is not an array")
		}
	}
	switch r.Op {
	case "result":
		if r.Result == nil {
			return Result{}, errors.New("result reply without a result")
		}
		return Result{Result: r.Result, Prints: r.PrintArgs}, nil
	case "error":
		if r.Error == nil {
			return Result{}, errors.New("error reply without an error")
		}
		if r.Kind != KindStatic {
			r.Kind = KindUser
		}
		r.Error.Kind = r.Kind
		return Result{Err: r.Error, Prints: r.PrintArgs}, nil
	}
	return Result{}, fmt.Errorf("reply with unknown op %q", r.Op)
}
