"""The run-time import guard and the task process's module table (docs/sandbox.md §4.2, §4.4, §6).

One Guard sits behind each import entry point user code can reach: the __import__ of its
builtins, importlib.import_module and importlib.__import__. It checks the allowlists again
at run time and resolves package-relative imports against their anchor package first.
Package code's own import statements use the real builtins and are never checked (as in
n8n): what a package imports for itself is the package's business.

What an import gives user code is a view of the module (sandbox_views), and user code may
not name a private module below its top-level package (`json._x`, `__import__('a', fromlist
=['_b'])`); package code calling importlib gets the module itself.
"""

import builtins
import importlib
import sys
from importlib.util import resolve_name
from operator import index as _exact_int
from types import ModuleType

from .sandbox_callables import SecurityViolationError
from .sandbox_rules import (
    ERROR_EXTERNAL_DISALLOWED,
    ERROR_PRIVATE_ATTRIBUTE,
    ERROR_RELATIVE_IMPORT,
    INTERNAL_MODULES,
    RUNTIME_IMPORT_MESSAGE,
    USER_FILENAMES,
    is_private,
)
from .sandbox_views import is_view

ORIGINAL_IMPORT = builtins.__import__
ORIGINAL_IMPORT_MODULE = importlib.import_module
ORIGINAL_IMPORTLIB_IMPORT = importlib.__import__

_getframe = sys._getframe
_exact_str = str.__str__  # a str subclass's exact copy, without calling any override
_modules = sys.modules


class Guard:
    """An import entry point behind the allowlists.

    module_style: the import_module(name, package=None) signature, else __import__'s.
    trust_packages: N8N_RUNNERS_ALLOW_TRANSITIVE_IMPORTS for the importlib entry points:
    a call whose caller is not user code (not one of the two virtual file names) is let
    through unchecked. The builtins' __import__ never trusts: only user code sees it.
    views: the sandbox_views.Views to hand user code views from (None: the modules
    themselves, with both allowlists "*").
    only_user_code: the entry point is the builtins' __import__, which only user code sees;
    otherwise (importlib) the caller's frame tells.
    """

    __slots__ = ("policy", "original", "module_style", "trust_packages", "views", "only_user_code")

    def __init__(self, policy, original, module_style: bool, trust_packages: bool, views=None,
                 only_user_code: bool = False):
        self.policy = policy
        self.original = original
        self.module_style = module_style
        self.trust_packages = trust_packages
        self.views = views
        self.only_user_code = only_user_code

    def __call__(self, *args, **kwargs):
        # Frames: 0 this, 1 HardenedCallable.__call__, 2 whoever called the entry point.
        user = self.only_user_code or not (self.trust_packages or self.views) or _called_by_user_code(2)
        if self.trust_packages and not user:
            return self.original(*args, **kwargs)
        if self.module_style:
            module = self._import_module(user, *args, **kwargs)
        else:
            module = self._dunder_import(user, *args, **kwargs)
        return self.views.imported(module) if user and self.views is not None else module

    def dunder_import(self, name, globals=None, locals=None, fromlist=(), level=0):
        """__import__ for user code: a view of what it imports."""
        module = self._dunder_import(True, name, globals, locals, fromlist, level)
        return self.views.imported(module) if self.views is not None else module

    def _dunder_import(self, user, name, globals=None, locals=None, fromlist=(), level=0):
        # Exact str and int copies: the import machinery calls methods of what it is given
        # (startswith, rpartition, __getitem__, __format__), which a subclass could override.
        name = _exact_name(name)
        level = _exact_int(level)
        if fromlist:
            fromlist = tuple(_exact_str(item) for item in fromlist)
            if user and self.views is not None:
                for item in fromlist:
                    if is_private(item):
                        raise SecurityViolationError(RUNTIME_IMPORT_MESSAGE, ERROR_PRIVATE_ATTRIBUTE.format(attr=item))
        if level == 0:
            self.require(name, user)
            return self.original(name, globals, locals, fromlist, 0)
        if level < 0:
            return self.original(name, globals, locals, fromlist, level)  # ValueError
        anchor = dict.get(globals, "__package__") if isinstance(globals, dict) else None
        target = _resolve_relative(name, anchor, level)
        self.require(target, user)
        # The import machinery reads the anchor again: give it the checked copy only.
        return self.original(name, {"__package__": _exact_str(anchor)}, locals, fromlist, level)

    def _import_module(self, user, name, package=None):
        name = _exact_name(name)
        if not name.startswith("."):
            self.require(name, user)
            return self.original(name)
        level = len(name) - len(name.lstrip("."))
        target = _resolve_relative(name[level:], package, level)
        self.require(target, user)
        return self.original(name, _exact_str(package))

    def require(self, module_path: str, user: bool = True) -> None:
        error = self.policy.import_error(module_path)
        if error is None and module_path.partition(".")[0] in INTERNAL_MODULES:
            error = ERROR_EXTERNAL_DISALLOWED.format(module=module_path, allowed=self.policy.external_text)
        if error is None and user and self.views is not None and "." in module_path:
            for part in module_path.split(".")[1:]:
                if is_private(part):
                    error = ERROR_PRIVATE_ATTRIBUTE.format(attr=part)
                    break
        if error is not None:
            raise SecurityViolationError(RUNTIME_IMPORT_MESSAGE, error)


def _exact_name(name) -> str:
    if not isinstance(name, str):
        raise TypeError("module name must be str, not " + type(name).__name__)
    return _exact_str(name)  # TypeError for an object that only claims to be a str


def _called_by_user_code(depth: int) -> bool:
    try:
        frame = _getframe(depth + 1)
    except ValueError:
        return True  # no caller to inspect: treat it as user code
    return frame.f_code.co_filename in USER_FILENAMES


def _resolve_relative(name: str, anchor, level: int) -> str:
    """The absolute name of a relative import; no usable anchor, or beyond the top: blocked."""
    if not isinstance(anchor, str) or not anchor or level > anchor.count(".") + 1:
        raise SecurityViolationError(RUNTIME_IMPORT_MESSAGE, ERROR_RELATIVE_IMPORT)
    try:
        return resolve_name("." * level + name, _exact_str(anchor))
    except (ImportError, ValueError):
        raise SecurityViolationError(RUNTIME_IMPORT_MESSAGE, ERROR_RELATIVE_IMPORT) from None


class StatementImport:
    """What the rewritten import statements call on Python < 3.13 (sandbox_rewrite).

    Imports through the builtins' guard exactly as IMPORT_NAME would call __import__, then
    binds what IMPORT_FROM would: returns the values of the statement's targets, in order.
    """

    __slots__ = ("guard",)

    def __init__(self, guard: Guard):
        self.guard = guard

    def __call__(self, module, names, level):
        # Frames: 0 this, 1 HardenedCallable.__call__, 2 the user's import statement.
        user_globals = _getframe(2).f_globals
        dunder_import = self.guard.dunder_import
        if module is None:  # import a.b, c.d as e
            values = []
            for dotted, bind_leaf in names:
                value = dunder_import(dotted, user_globals, None, None, 0)
                if bind_leaf:
                    for part in dotted.split(".")[1:]:
                        value = import_from(value, part)
                values.append(value)
            return values
        parent = dunder_import(module, user_globals, None, names, level)
        return [import_from(parent, name) for name in names]


def import_from(module, name: str):
    """CPython's IMPORT_FROM (3.10-3.12): an attribute, else the submodule in sys.modules.

    A view has looked in sys.modules itself, and hands out views only.
    """
    try:
        return getattr(module, name)
    except AttributeError:
        pass
    try:
        package = module.__name__
    except AttributeError:
        package = None
    if isinstance(package, str):
        found = None if is_view(module) else _modules.get(package + "." + name)
        if found is not None:
            return found
    else:
        package = None
    path = None
    if isinstance(module, ModuleType):
        path = module.__dict__.get("__file__")
        path = path if isinstance(path, str) else None
    where = path or "unknown location"
    if package is None:
        raise ImportError("cannot import name %r from '<unknown module name>' (unknown location)" % (name,))
    spec = getattr(module, "__spec__", None)
    if spec is not None and getattr(spec, "_initializing", False):
        message = "cannot import name %r from partially initialized module %r (most likely due to a circular import) (%s)"
    else:
        message = "cannot import name %r from %r (%s)"
    raise ImportError(message % (name, package, where), name=package, path=path)


# Always kept in sys.modules (docs/sandbox.md §4.2), with their submodules.
_ALWAYS_KEPT = frozenset({"builtins", "__main__", "sys", "traceback", "linecache", "importlib", "importlib.machinery"})

# Also kept: the modules the interpreter loads before any code of ours and that the
# interpreter's C half holds on to. Dropped, the next library that imports one gets a
# second copy: codecs' second CodecInfo class makes every text stream a package opens
# fail ("'NoneType' object is not callable", pandas' import), warnings.catch_warnings
# looks up sys.modules['warnings'] (KeyError). Kept is not allowed: the import guard
# still decides.
_INTERPRETER = frozenset({
    "_abc", "_codecs", "_collections_abc", "_frozen_importlib", "_frozen_importlib_external", "_imp",
    "_io", "_signal", "_stat", "_thread", "_warnings", "_weakref", "abc", "codecs", "encodings",
    "genericpath", "io", "marshal", "os", "posix", "posixpath", "stat", "time", "warnings", "zipimport",
})


def prune_modules(policy, transitive: bool = False) -> None:
    """Drops from sys.modules everything user code may not import (docs/sandbox.md §4.2).

    With transitive imports allowed (docs/sandbox.md §6), every loaded non-stdlib module is
    kept too: what was preloaded imported them, and dropped, the next import of them would
    load second copies (numpy warns that it was reloaded, and each task would pay for it).
    Kept: _ALWAYS_KEPT, _INTERPRETER, the stdlib allowlist (every stdlib module for "*"), the external
    allowlist (every loaded non-stdlib module for "*"), and their submodules; never
    pyrunner_runtime, whose modules keep their own references and need no entry.
    """
    global _pruned
    if _pruned is not None and _pruned[:2] == (policy, transitive) and unchanged_since_prune():
        return
    stdlib = sys.stdlib_module_names
    keep = set(_ALWAYS_KEPT | _INTERPRETER)
    keep.update(stdlib if policy.stdlib_all else policy.stdlib)
    keep.update(policy.implied)
    if policy.external_all or transitive:
        keep.update(name for name in _modules if name.partition(".")[0] not in stdlib)
    else:
        keep.update(policy.external)
    keep.discard("pyrunner_runtime")
    for name in list(_modules):
        if name.partition(".")[0] == "pyrunner_runtime" or not _kept(name, keep):
            del _modules[name]
    _pruned = (policy, transitive, len(_modules), _last_name())


# What the last prune left: its policy, and how many modules with which one last. An import
# adds its module at the end of sys.modules (a dict keeps insertion order), and before user code
# runs nothing but a prune removes one; so a task process forked after its zygote's prune, with
# the same count and the same last name, holds exactly what that prune left, and pruning again
# would only write to the reference count of every module name: with the allowlists at "*", about
# 100 copy-on-write page faults in each task process.
_pruned = None


def unchanged_since_prune() -> bool:
    """Whether sys.modules holds what the last prune left (False before any prune)."""
    return _pruned is not None and _pruned[2:] == (len(_modules), _last_name())


def _last_name():
    return next(reversed(_modules), None)


def _kept(name: str, keep) -> bool:
    while True:
        if name in keep:
            return True
        name, dot, _ = name.rpartition(".")
        if not dot:
            return False
