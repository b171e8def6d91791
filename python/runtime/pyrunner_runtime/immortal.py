"""Makes the zygote's objects immortal, so that its task processes share their pages.

A forked task process shares the zygote's memory copy-on-write, and CPython writes to every
object it touches, if only to count a reference: each page so written costs a page fault and a
copy, in the task process and, as the zygote goes on, in the zygote. Python 3.12 made some
objects immortal: their reference count is never written. This marks the objects the zygote's
collector tracks, and what they refer to, the same way once it is warm, as CPython's own
_Py_SetImmortal does, so that task processes only read them (about a third fewer page faults
per isolated task on 3.12 and 3.13, see the README's Performance section).

Only on the builds whose object header is known: CPython 3.12 and 3.13, 64-bit, with the GIL,
neither a debug nor a reference-tracing build; and only after a probe has shown that taking a
reference to an object so marked leaves its count alone. Elsewhere nothing is touched.

What immortality costs: the marked objects are never freed, which the zygote's objects never
were before it exits, and the process must not finalize, which would skip their finalizers
(the zygote and its task processes leave through os._exit, whatever ends them).
"""

import ctypes
import gc
import sys
import types

# _Py_IMMORTAL_REFCNT on 64-bit builds of 3.12 and 3.13.
_IMMORTAL = 0xFFFFFFFF


def supported() -> bool:
    """Whether this interpreter's objects can be marked immortal here."""
    return (
        sys.implementation.name == "cpython"
        and (3, 12) <= sys.version_info[:2] <= (3, 13)
        and sys.maxsize > 2**32
        # A debug build asserts that what it interns was not immortal before.
        and not hasattr(sys, "gettotalrefcount")
        # The plain 16-byte header: a free-threaded or reference-tracing build has a longer one.
        and sys.getsizeof(object()) == 16
        and _marking_holds()
    )


def _marking_holds() -> bool:
    """Marks a fresh object immortal, checks that references to it are not counted, and
    restores its count (the references taken while marked were not counted either)."""
    probe = [None]
    count = ctypes.c_ssize_t.from_address(id(probe))
    before = count.value
    count.value = _IMMORTAL
    held = [probe, probe, probe]
    seen = sys.getrefcount(probe)
    del held
    count.value = before
    return seen == _IMMORTAL


def _parts(code: types.CodeType) -> tuple:
    """A code object's constants and names; gc.get_referents sees none of them (code objects
    are not tracked). Not co_code, which 3.12 builds anew on first access."""
    return (code.co_consts, code.co_names, code.co_filename, code.co_name, code.co_qualname,
            code.co_linetable, code.co_exceptiontable)


def immortalize() -> int:
    """Marks every object reachable from the collector's objects immortal and freezes the
    collector's, so that no later collection writes to their headers either; returns how many
    were marked. Call only where supported() holds."""
    gc.collect()
    pending = gc.get_objects()
    marked = 0
    while pending:
        obj = pending.pop()
        if sys.getrefcount(obj) >= _IMMORTAL:  # marked already, or immortal by birth
            continue
        ctypes.c_ssize_t.from_address(id(obj)).value = _IMMORTAL
        marked += 1
        if type(obj) is types.CodeType:
            pending.extend(_parts(obj))
        else:
            pending.extend(gc.get_referents(obj))
    gc.freeze()
    return marked
