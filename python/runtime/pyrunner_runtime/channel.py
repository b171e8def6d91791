"""Length-prefixed JSON frames on a task channel (a stream socket): see python/doc.go."""

import struct

_HEADER = struct.Struct(">I")
MAX_FRAME = (1 << 32) - 1


class ChannelClosed(Exception):
    """The Go side closed the channel: the task process should exit."""


def _recv_exact(sock, size: int) -> bytearray:
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    while got < size:
        n = sock.recv_into(view[got:], size - got)
        if n == 0:
            raise ChannelClosed()
        got += n
    return buf


def read_frame(sock) -> bytearray:
    """The next frame's payload, in the buffer it was received into: json.loads takes it as it
    is, and a copy of a task's items costs as many page faults as the items' text has pages."""
    (size,) = _HEADER.unpack(_recv_exact(sock, 4))
    return _recv_exact(sock, size)


def write_frame(sock, payload: bytes) -> None:
    if len(payload) > MAX_FRAME:
        raise ValueError(f"frame of {len(payload)} bytes exceeds {MAX_FRAME}")
    header = _HEADER.pack(len(payload))
    if len(payload) < 65536:
        sock.sendall(header + payload)  # one system call for the common small frame
    else:
        sock.sendall(header)  # no copy of a large payload just to prepend four bytes
        sock.sendall(payload)
