package python

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
)

// ErrFrameTooLarge is returned by ReadFrame when a frame announces more
// bytes than the caller allows; the frame is not read.
var ErrFrameTooLarge = errors.New("frame too large")

// WriteFrame sends one task-channel frame: a 4-byte big-endian length, then
// the payload, in a single writev (no copy of a large payload to prepend
// its header).
func WriteFrame(w io.Writer, payload []byte) error {
	var header [4]byte
	binary.BigEndian.PutUint32(header[:], uint32(len(payload)))
	bufs := net.Buffers{header[:], payload}
	_, err := bufs.WriteTo(w)
	return err
}

// ReadFrame reads one task-channel frame of at most max bytes.
func ReadFrame(r io.Reader, max int) ([]byte, error) {
	var header [4]byte
	if _, err := io.ReadFull(r, header[:]); err != nil {
		return nil, err
	}
	size := binary.BigEndian.Uint32(header[:])
	if uint64(size) > uint64(max) {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, size, max)
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
