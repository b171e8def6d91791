"""The task process's reply as bytes: UTF-8 JSON that n8n's broker can always parse (docs/code-node.md §11).

Like n8n's runner, values JSON has no type for become str(value) and text is not
ASCII-escaped. Unlike it, NaN and ±Infinity become null, as JavaScript's
JSON.stringify writes them: Python's bare NaN token makes the broker drop the
whole frame and the workflow wait for the task timeout (docs/deviations.md §1.6).
"""

import json
import math

# The fast path: C encoder, compact separators, and allow_nan=False so that a
# non-finite float raises instead of writing a token JSON.parse rejects.
_encode = json.JSONEncoder(default=str, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode
# For text with lone surrogates, which UTF-8 cannot encode: \udXXX escapes instead.
_encode_ascii = json.JSONEncoder(default=str, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode

_isfinite = math.isfinite


def encode_message(msg: dict) -> bytes:
    """msg as UTF-8 JSON; raises ValueError or TypeError if it cannot be encoded (cycles, bad keys)."""
    try:
        text = _encode(msg)
    except ValueError:
        # A non-finite float, or a cycle: _finite_copy raises ValueError for the latter.
        msg = _finite_copy(msg, set())
        text = _encode(msg)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return _encode_ascii(msg).encode("ascii")


def encode_or_error(msg: dict) -> bytes:
    """encode_message(msg), or an encoded error message saying why msg could not be encoded."""
    try:
        return encode_message(msg)
    except Exception as exc:  # ValueError, TypeError, RecursionError, MemoryError
        print_args = msg.get("print_args", []) if isinstance(msg, dict) else []
        error = {
            "op": "error",
            "kind": "user",
            "error": {"message": str(exc), "description": "", "stack": ""},
            "print_args": print_args,
        }
        try:
            return encode_message(error)
        except Exception:
            error["print_args"] = []
            return encode_message(error)


def _finite_copy(value, active: set):
    """value with every non-finite float as None (and as "NaN"/"Infinity"/"-Infinity" where it is a dict key).

    Only the slow path calls this. `active` holds the ids of the containers being
    copied, so a cycle raises ValueError like the encoder does, instead of recursing forever.
    """
    if isinstance(value, float):
        return value if _isfinite(value) else None
    if isinstance(value, dict):
        key = id(value)
        if key in active:
            raise ValueError("Circular reference detected")
        active.add(key)
        out = {}
        for k, v in value.items():
            if isinstance(k, float) and not _isfinite(k):
                # A key is a string in JSON, so no null here: the text JavaScript's String(key) gives.
                k = "NaN" if k != k else ("Infinity" if k > 0 else "-Infinity")
            out[k] = _finite_copy(v, active)
        active.discard(key)
        return out
    if isinstance(value, (list, tuple)):
        key = id(value)
        if key in active:
            raise ValueError("Circular reference detected")
        active.add(key)
        out = [_finite_copy(v, active) for v in value]
        active.discard(key)
        return out
    return value
