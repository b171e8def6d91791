"""Run-time guards of the helpers that reach attributes by a name given at run time.

The static analysis sees `x.name`; it cannot see getattr(x, name), operator.attrgetter(name)
or functools.update_wrapper(w, f, assigned=[name]) with a name built while the code runs.
These check the name when the call happens, by the analysis's own rule
(sandbox_rules.attribute_refusal): n8n's blocked attributes, `mro`, and private names; and,
as the analysis refuses taking a .format-style method as a value, the getters refuse those
names too, while methodcaller sends such calls through the format guard.

The builtins getattr, setattr, delattr and vars are replaced only where the deny list leaves
them in; the helpers of operator and functools are what those modules' views hand out
(sandbox_views). Also here: linecache reads Python source files only (traceback would read
any file for it).
"""

import functools
import sys
from operator import attrgetter as _attrgetter
from operator import methodcaller as _methodcaller

from .sandbox_callables import HardenedCallable, SecurityViolationError, harden
from .sandbox_format import safe_format_private
from .sandbox_rules import (
    ERROR_BARE_FORMAT_ATTRIBUTE,
    ERROR_CLASS_VARS,
    FORMAT_METHOD_NAMES,
    RUNTIME_ACCESS_MESSAGE,
    attribute_refusal,
)
from .sandbox_views import is_view

_exact_str = str.__str__
_getframe = sys._getframe
_FRAME_LOCALS_ARE_SNAPSHOTS = sys.version_info >= (3, 13)  # locals() in a function, PEP 667


def frame_locals(frame):
    """What locals() would give in frame: since 3.13 a snapshot, not the frame's write-through proxy."""
    return dict(frame.f_locals) if _FRAME_LOCALS_ARE_SNAPSHOTS else frame.f_locals


def _checked(name, reading: bool) -> str:
    if not isinstance(name, str):
        raise TypeError("attribute name must be string, not '%s'" % type(name).__name__)
    name = _exact_str(name)  # a str subclass could compare as another name
    refusal = attribute_refusal(name)
    if refusal is None and reading and name in FORMAT_METHOD_NAMES:
        refusal = ERROR_BARE_FORMAT_ATTRIBUTE.format(attr=name)
    if refusal is not None:
        raise SecurityViolationError(RUNTIME_ACCESS_MESSAGE, refusal)
    return name


def guarded_getattr(obj, name, *default):
    if len(default) > 1:
        raise TypeError("getattr expected at most 3 arguments, got %d" % (2 + len(default)))
    return getattr(obj, _checked(name, True), *default)


def guarded_setattr(obj, name, value):
    setattr(obj, _checked(name, False), value)


def guarded_delattr(obj, name):
    delattr(obj, _checked(name, False))


class GuardedVars:
    """vars(): a module view's public attributes; no class's namespace; no object's private state."""

    __slots__ = ("views",)

    def __init__(self, views):
        self.views = views

    def __call__(self, *args):
        if not args:
            # Frames: 0 this, 1 HardenedCallable.__call__, 2 the caller, whose locals vars() gives.
            return frame_locals(_getframe(2))
        if len(args) > 1:
            raise TypeError("vars expected at most 1 argument, got %d" % len(args))
        obj = args[0]
        if is_view(obj):
            return self.views.public_vars(obj)
        if isinstance(obj, type):
            raise SecurityViolationError(RUNTIME_ACCESS_MESSAGE, ERROR_CLASS_VARS)
        namespace = vars(obj)
        for key in list(namespace):
            if isinstance(key, str):
                refusal = attribute_refusal(_exact_str(key))
                if refusal is not None:
                    raise SecurityViolationError(RUNTIME_ACCESS_MESSAGE, refusal)
        return namespace


def guarded_attrgetter(*attrs):
    """operator.attrgetter, every dotted part of every name checked first."""
    if not attrs:
        raise TypeError("attrgetter expected 1 argument, got 0")
    exact = []
    for attr in attrs:
        if not isinstance(attr, str):
            raise TypeError("attribute name must be a string")
        attr = _exact_str(attr)
        for part in attr.split("."):
            _checked(part, True)
        exact.append(attr)
    # Wrapped, so that type() of it is no constructor of unchecked getters.
    return harden(_attrgetter(*exact), "operator.attrgetter(%s)" % ", ".join(map(repr, exact)))


class _FormatCall:
    __slots__ = ("method", "args", "kwargs")

    def __init__(self, method, args, kwargs):
        self.method, self.args, self.kwargs = method, args, kwargs

    def __call__(self, obj):
        return safe_format_private(self.method, obj, *self.args, **self.kwargs)


def guarded_methodcaller(name, /, *args, **kwargs):
    """operator.methodcaller, its name checked; a .format-style call goes through the format guard."""
    if not isinstance(name, str):
        raise TypeError("method name must be a string")
    name = _checked(name, False)
    text = "operator.methodcaller(%s)" % ", ".join(
        [repr(name)] + [repr(a) for a in args] + ["%s=%r" % item for item in kwargs.items()])
    if name in FORMAT_METHOD_NAMES:
        return harden(_FormatCall(name, args, kwargs), text)
    return harden(_methodcaller(name, *args, **kwargs), text)


# What functools copies by default: dunders the rule would refuse, and harmless to copy.
_WRAPPER_ASSIGNMENTS = frozenset(functools.WRAPPER_ASSIGNMENTS)
_WRAPPER_UPDATES = frozenset(functools.WRAPPER_UPDATES)
_update_wrapper = functools.update_wrapper


def _wrapper_names(assigned, updated):
    """assigned and updated as tuples of exact names, each a default or one the rule allows."""
    names = []
    for given, defaults in ((assigned, _WRAPPER_ASSIGNMENTS), (updated, _WRAPPER_UPDATES)):
        exact = []
        for name in given:
            if not isinstance(name, str):
                raise TypeError("attribute name must be string, not '%s'" % type(name).__name__)
            name = _exact_str(name)
            exact.append(name if name in defaults else _checked(name, True))
        names.append(tuple(exact))
    return names


def guarded_update_wrapper(wrapper, wrapped, assigned=functools.WRAPPER_ASSIGNMENTS,
                           updated=functools.WRAPPER_UPDATES):
    """functools.update_wrapper: it reads and writes the attributes it is given by name."""
    assigned, updated = _wrapper_names(assigned, updated)
    return _update_wrapper(wrapper, wrapped, assigned, updated)


_GUARDED_UPDATE_WRAPPER = harden(guarded_update_wrapper, "<function update_wrapper>")


def guarded_wraps(wrapped, assigned=functools.WRAPPER_ASSIGNMENTS, updated=functools.WRAPPER_UPDATES):
    """functools.wraps, whose partial calls the guarded update_wrapper (its .func is public)."""
    assigned, updated = _wrapper_names(assigned, updated)
    return functools.partial(_GUARDED_UPDATE_WRAPPER, wrapped=wrapped, assigned=assigned, updated=updated)


# The helpers the views of operator and functools hand out instead of the originals.
REPLACEMENTS = {
    ("operator", "attrgetter"): harden(guarded_attrgetter, "<class 'operator.attrgetter'>"),
    ("operator", "methodcaller"): harden(guarded_methodcaller, "<class 'operator.methodcaller'>"),
    ("functools", "update_wrapper"): _GUARDED_UPDATE_WRAPPER,
    ("functools", "wraps"): harden(guarded_wraps, "<function wraps>"),
}


def builtins_replacements(views) -> dict:
    """The guarded getattr, setattr, delattr and vars of one configuration's builtins."""
    return {
        "getattr": harden(guarded_getattr, "<built-in function getattr>"),
        "setattr": harden(guarded_setattr, "<built-in function setattr>"),
        "delattr": harden(guarded_delattr, "<built-in function delattr>"),
        "vars": harden(GuardedVars(views), "<built-in function vars>"),
    }


_SOURCE_SUFFIXES = (".py", ".pyw")


class _SourceOnly:
    __slots__ = ("original",)

    def __init__(self, original):
        self.original = original

    def __call__(self, filename, module_globals=None):
        if not isinstance(filename, str) or not filename.endswith(_SOURCE_SUFFIXES):
            return []
        return self.original(filename, module_globals)


def source_files_only(linecache) -> None:
    """Makes linecache read Python source files only; idempotent.

    traceback formats any (file name, line) it is given, reading the line through linecache:
    with `open` denied, that would still read the files a task may read. Tracebacks of real
    code only ever name .py files (and virtual names, which linecache never opens).
    """
    if not isinstance(linecache.updatecache, HardenedCallable):
        linecache.updatecache = harden(_SourceOnly(linecache.updatecache), "<function updatecache>")
