"""What user code prints: the capturing print() and the stderr buffer (docs/code-node.md §9, §3).

PrintCapture records each print() call as one list of strings, formatted the way
n8n's runner formats them for the browser console (logNodeOutput). Both captures
are bounded, so a task cannot grow the task process's memory, or the result
frame, by printing in a loop.
"""

import builtins
import io
import json
import sys

# The most characters of print text kept per task, over all calls. A string that
# crosses the bound is cut there and ends with PRINT_TRUNCATED_MARKER; later
# calls are counted as not kept. Characters, not bytes: the UTF-8 frame may be up
# to 4x larger.
MAX_PRINT_CHARS = 1 << 20

_MARKER = "... [print output truncated: the task printed more than %d characters]"
PRINT_TRUNCATED_MARKER = _MARKER % MAX_PRINT_CHARS

# The most characters of stderr kept per task; the rest is dropped and
# STDERR_TRUNCATED_MARKER ends the captured text.
MAX_STDERR_CHARS = 64 * 1024

STDERR_TRUNCATED_MARKER = "\n[stderr truncated: the task wrote more than %d characters]\n" % MAX_STDERR_CHARS

_builtin_print = builtins.print
_dumps = json.JSONEncoder(default=str, ensure_ascii=False).encode


def format_print_arg(arg) -> str:
    """One print() argument as n8n's runner shows it (docs/code-node.md §9.1's table)."""
    if isinstance(arg, str):
        return "'" + arg + "'"  # no escaping, as n8n does
    if arg is None or isinstance(arg, (int, float)):  # bool is an int
        return str(arg)
    try:
        return _dumps(arg)
    except Exception:
        # n8n labels every value json cannot write "Circular", whatever the cause.
        return "[Circular " + type(arg).__name__ + "]"


class PrintCapture:
    """The print() given to one task's user code, and what it recorded.

    Calls beyond max_prints, or after max_chars (N8N_PYTHON_MAX_OUTPUT_KB), are
    only counted: their arguments are never formatted, so a loop printing big
    objects stays cheap.
    """

    __slots__ = ("_calls", "_max_prints", "_dropped", "_chars_left", "_marker")

    def __init__(self, max_prints: int, max_chars: int = MAX_PRINT_CHARS):
        self._calls = []
        self._max_prints = max_prints
        self._dropped = 0
        self._chars_left = max_chars
        self._marker = PRINT_TRUNCATED_MARKER if max_chars == MAX_PRINT_CHARS else _MARKER % max_chars

    def print(self, *args, sep=" ", end="\n", file=None, flush=False):
        if file is not None and file is not sys.stdout and file is not sys.__stdout__:
            # An explicit file (sys.stderr, a StringIO) gets ordinary print output.
            _builtin_print(*args, sep=sep, end=end, file=file, flush=flush)
            return
        for name, value in (("sep", sep), ("end", end)):
            if value is not None and not isinstance(value, str):
                raise TypeError("%s must be None or a string, not %s" % (name, type(value).__name__))
        if len(self._calls) >= self._max_prints or self._chars_left <= 0:
            self._dropped += 1
            return
        formatted = []
        for arg in args:
            text = format_print_arg(arg)
            self._chars_left -= len(text)
            if self._chars_left < 0:
                # Keep what fits; the rest of this call's arguments are dropped.
                text = text[: len(text) + self._chars_left] + self._marker
                formatted.append(text)
                break
            formatted.append(text)
        if sep not in (None, " ") or end not in (None, "\n"):
            formatted = [_joined(formatted, sep, end)]
        self._calls.append(formatted)

    def print_args(self) -> list:
        """The recorded calls, plus n8n's truncation entry if any were not kept."""
        if not self._dropped:
            return self._calls
        return self._calls + [["[Output truncated - %d more print statements]" % self._dropped]]


def _joined(formatted: list, sep, end) -> str:
    """One print() call with a sep or end of its own, as one console line.

    n8n's runner refuses these keywords (the task fails); pyrunner honours them as
    Python does: the arguments joined by sep, followed by end. A call is one line
    in n8n's console whatever end says, so a final newline of end is not repeated.
    """
    text = (" " if sep is None else sep).join(formatted)
    tail = "" if end is None else end
    return text + (tail[:-1] if tail.endswith("\n") else tail)


class StderrCapture(io.StringIO):
    """An in-memory sys.stderr that keeps only the first MAX_STDERR_CHARS."""

    def __init__(self, limit: int = MAX_STDERR_CHARS):
        super().__init__()
        self._left = limit
        self._truncated = False

    def write(self, s):
        if not isinstance(s, str):
            return super().write(s)  # raises TypeError, as StringIO does
        n = len(s)
        left = self._left
        if n <= left:
            self._left = left - n
            return super().write(s)
        if left > 0:
            super().write(s[:left])
            self._left = 0
        self._truncated = True
        return n

    def getvalue(self) -> str:
        text = super().getvalue()
        return text + STDERR_TRUNCATED_MARKER if self._truncated else text
