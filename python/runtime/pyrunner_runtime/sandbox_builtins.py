"""The user code's __builtins__: a read-only mapping that is not a dict (docs/sandbox.md §4.3).

Why this shape. exec() accepts any mapping as globals["__builtins__"], and name lookups
fall back to its __getitem__ when it is not a dict, on 3.10-3.13. Two things need more:
up to 3.12 the IMPORT_NAME opcode fetches __import__ with a dict-only call (SystemError on
anything else; sandbox_rewrite turns import statements into calls there), and C code that
imports (PyImport_Import: datetime.strptime, time.strptime) reads __import__ as an
attribute of a non-dict mapping. A dict (or a dict subclass: dict.__setitem__ bypasses any
override) and a module (object.__setattr__ writes its __dict__) can both be changed, so
the mapping is an instance of a class whose lookup methods are bound methods of a
types.MappingProxyType: C-speed lookups, and nothing in the instance to write to.

Cost: the class and proxy are built once per configuration; a task gets a new, empty
instance (so a __class__ swap made by one task never reaches the next) and points the
shared hardened print at its own capture.

Unless both allowlists are "*" (then, as in n8n, no Python-level check but the deny list
applies), the getattr, setattr, delattr and vars the deny list leaves in are guarded
(sandbox_helpers), so are exec, eval and compile (sandbox_compile), and the import entry
points hand out module views (sandbox_views).
"""

import builtins
from types import MappingProxyType

from .sandbox_callables import HardenedCallable, ReadOnlyBuiltins, harden
from .sandbox_compile import GuardedCompiler
from .sandbox_format import guard_formatter, safe_format, safe_format_private
from .sandbox_helpers import REPLACEMENTS, builtins_replacements
from .sandbox_imports import ORIGINAL_IMPORT, StatementImport, Guard
from .sandbox_rules import SAFE_FORMAT_NAME, SAFE_IMPORT_NAME, policy_for
from .sandbox_views import Views

# Builtins that are importers themselves (BuiltinImporter, its ModuleSpec): never exposed.
# n8n keeps them and relies on the static analysis rejecting the names.
_NEVER_EXPOSED = frozenset({"__loader__", "__spec__"})


def _print_not_ready(*args, **kwargs):
    raise RuntimeError("print() used outside a task")


class _Built:
    __slots__ = ("mapping_class", "print", "views")

    def __init__(self, cfg):
        policy = policy_for(cfg)
        deny = frozenset(cfg.builtins_deny or ())
        names = {k: v for k, v in vars(builtins).items() if k not in deny and k not in _NEVER_EXPOSED}
        proxy = MappingProxyType(names)
        self.views = None
        if not policy.skip_static:
            self.views = Views(policy, REPLACEMENTS, proxy, module_hooks=[("string", guard_formatter)])
            names.update((k, v) for k, v in builtins_replacements(self.views).items() if k in names)
            compiler = GuardedCompiler(policy)
            for name in ("exec", "eval", "compile"):
                if name in names:
                    names[name] = harden(getattr(compiler, name), "<built-in function %s>" % name)
        guard = Guard(policy, ORIGINAL_IMPORT, module_style=False, trust_packages=False, views=self.views,
                      only_user_code=True)
        names["__import__"] = harden(guard, "<built-in function __import__>")
        format_guard = safe_format if policy.skip_static else safe_format_private
        names[SAFE_FORMAT_NAME] = harden(format_guard, "<built-in function format>")
        names[SAFE_IMPORT_NAME] = harden(StatementImport(guard), "<built-in function __import__>")
        self.print = harden(_print_not_ready, "<built-in function print>")
        if "print" not in deny:
            names["print"] = self.print
        self.mapping_class = type("builtins", (ReadOnlyBuiltins,), {
            "__slots__": (),
            "__module__": "builtins",
            # Bound methods of the proxy, not functions: stored on the class they are used
            # as they are (no binding), and they run in C.
            "__getitem__": proxy.__getitem__,
            "__contains__": proxy.__contains__,
            "__iter__": proxy.__iter__,
            "__len__": proxy.__len__,
            "get": proxy.get,
            "keys": proxy.keys,
            "values": proxy.values,
            "items": proxy.items,
            "copy": proxy.copy,
        })


_built = {}
_last = (None, None)  # (cfg, _Built) of the last call: one configuration per task process


def _for(cfg) -> _Built:
    global _last
    if _last[0] is cfg:
        return _last[1]
    key = (tuple(cfg.builtins_deny or ()), cfg.stdlib_allow, cfg.external_allow)
    built = _built.get(key)
    if built is None:
        built = _built[key] = _Built(cfg)
    _last = (cfg, built)
    return built


def make_builtins(cfg, print_fn) -> ReadOnlyBuiltins:
    """The __builtins__ of one task: cfg's builtins less its deny list, print capturing to print_fn."""
    built = _for(cfg)
    object.__setattr__(built.print, "_impl", print_fn)
    return object.__new__(built.mapping_class)


def task_print(cfg) -> HardenedCallable:
    """The hardened print of cfg's builtins, writing to the print_fn of the last make_builtins."""
    return _for(cfg).print


def prepare(cfg) -> None:
    _for(cfg)


def views(cfg):
    """The module views of cfg's task process; None with both allowlists "*"."""
    return _for(cfg).views
