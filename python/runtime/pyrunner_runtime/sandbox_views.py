"""Allowed modules as user code holds them: guarded views.

What an import gives user code (the builtins' __import__, importlib's two entry points, the
import statements rewritten before 3.13) is not the module but a view of it: a plain module
object of its own. Reading an attribute of a view gives what the real module has, except:

- a private name (sandbox_rules.is_private) is refused: `random._os`, `collections._sys`;
- a module is given only if user code could import it, and then as a view: `re.enum` is
  refused unless enum is allowed; `os.path` is posixpath, given where os is, because
  sys.modules holds it as os.path;
- an introspection helper re-exported by an allowed module is refused unless the module it
  comes from is allowed (traceback.walk_stack gives frames as sys._getframe does);
- a helper that reaches attributes by a name given at run time is replaced by the guarded
  version the Views is given for it (operator.attrgetter, functools.update_wrapper, ...).

Speed. A view's dict is a cache. A read that misses it calls the __getattr__ stored there
(PEP 562), which checks the value and keeps what modules do not rebind (functions, classes,
modules, immutable scalars); the next read of that name is a plain module attribute read,
which the interpreter specialises as for any module (a view is exactly a ModuleType, no
subclass, for that reason). Values a module may rebind (sys.stdout, time.timezone,
os.environ) are looked up every time.

Writes. Assigning to a view's attribute changes the view, never the real module: library
code does not see it (n8n's runner hands out the module, and such a write changes it).

The real module behind a view is only in this module's tables; user code would need a
private or blocked attribute (a function's __globals__) to reach them.
"""

import sys
from functools import partial
from types import BuiltinFunctionType, FunctionType, MethodType, ModuleType

from .sandbox_callables import HardenedCallable, SecurityViolationError, harden
from .sandbox_rules import (
    BLOCKED_ATTRIBUTES,
    ERROR_DANGEROUS_ATTRIBUTE,
    ERROR_INTROSPECTION,
    ERROR_PRIVATE_ATTRIBUTE,
    PUBLIC_UNDERSCORE_NAMES,
    PYRUNNER_BLOCKED_ATTRIBUTES,
    RUNTIME_ACCESS_MESSAGE,
)

_modules = sys.modules
_module_dict = ModuleType.__dict__["__dict__"].__get__

# Values a view keeps in its cache: what modules define once and do not rebind.
_CACHED = (FunctionType, BuiltinFunctionType, MethodType, type, ModuleType, HardenedCallable, int, float, complex,
           str, bytes)
# Modules whose scalars change while a task runs (sys.stdout, time.timezone after tzset).
_LIVE = frozenset({"sys", "time"})

# Functions that hand out frames or every object, by the module that owns what they give:
# a view refuses them unless that module is allowed too.
INTROSPECTION = (
    ("sys", "_getframe", "sys"), ("sys", "_current_frames", "sys"), ("sys", "_current_exceptions", "sys"),
    ("sys", "settrace", "sys"), ("sys", "setprofile", "sys"), ("sys", "_getframemodulename", "sys"),
    ("gc", "get_objects", "gc"), ("gc", "get_referents", "gc"), ("gc", "get_referrers", "gc"),
    ("traceback", "walk_stack", "sys"), ("logging", "currentframe", "sys"),
    ("threading", "settrace", "sys"), ("threading", "setprofile", "sys"),
    ("threading", "settrace_all_threads", "sys"), ("threading", "setprofile_all_threads", "sys"),
)

_owners = {}  # every view of this process -> its Views


def is_view(value) -> bool:
    return type(value) is ModuleType and value in _owners


def _refuse(text):
    raise SecurityViolationError(RUNTIME_ACCESS_MESSAGE, text)


def _name_of(module):
    name = _module_dict(module).get("__name__")
    return name if type(name) is str else None


class Views:
    """The views of one configuration's task process, and what they hand out.

    replacements: {(module name, attribute): value handed out instead}, for the helpers
    that take attribute names at run time. builtins: the task's builtins mapping, shown
    by a view of the builtins module (so allowing `builtins` does not undo the deny list).
    """

    __slots__ = ("policy", "_by_module", "_real", "_entries", "_seen", "_special", "_builtins", "_hooks", "_hooked",
                 "_prepared")

    def __init__(self, policy, replacements, builtins, module_hooks=()):
        self.policy = policy
        self._by_module = {}  # id(real module) -> (real module, view)
        self._real = {}  # view -> (real module, view dict, module name, live)
        # id(original) -> (original, replacement or None, module it needs), for every copy of
        # the modules the entries name that has been loaded (see _register).
        self._special = {}
        self._entries = {}  # module name -> [(attribute, replacement or None, module it needs)]
        for (module, attr), replacement in replacements.items():
            self._entries.setdefault(module, []).append((attr, replacement, None))
        for module, attr, needs in INTROSPECTION:
            self._entries.setdefault(module, []).append((attr, None, needs))
        self._seen = {}  # module name -> the module object last registered
        self._builtins = builtins
        self._hooks = dict(module_hooks)  # module name -> function run on each copy of it
        self._hooked = {}  # module name -> the module object the hook last ran on
        self._prepared = False
        # Now, in case the modules are pruned before the first view: an allowed module may
        # keep a pruned one's functions (contextlib.wraps is functools.wraps).
        self._register()

    def prepare(self) -> None:
        """Once per process, before user code runs: registers and hooks what is loaded, and
        makes the views of the allowed modules already imported. Done in the zygote, it is
        inherited by every task process, whose first import of such a module is a lookup."""
        if self._prepared:
            return
        self._prepared = True
        self._refresh()
        for name in sorted(self.policy.stdlib | self.policy.external):
            module = _modules.get(name)
            if module is not None and self.policy.allows_module(name):
                self.view(module)

    def imported(self, module):
        """The view of a module an import gave; the guard has checked its name already."""
        entry = self._by_module.get(id(module))
        if entry is not None and entry[0] is module:
            return entry[1]
        if isinstance(module, ModuleType) and not is_view(module):
            return self.view(module)
        return module

    def view(self, real) -> ModuleType:
        """The view of module real: made once, then the same object for every import."""
        entry = self._by_module.get(id(real))
        if entry is not None and entry[0] is real:
            return entry[1]
        self._refresh()
        original = real
        name = _name_of(real) or "?"
        if real is _modules.get("builtins"):
            real = ModuleType("builtins", real.__doc__)
            _module_dict(real).update(self._builtins)
        view = ModuleType(name, _module_dict(real).get("__doc__"))
        cache = _module_dict(view)
        path = _module_dict(real).get("__file__")
        if type(path) is str:
            cache["__file__"] = path
        cache["__getattr__"] = harden(partial(self.attribute, view), "<built-in method __getattr__ of module object>")
        cache["__dir__"] = harden(partial(self.public_names, view), "<built-in method __dir__ of module object>")
        self._real[view] = (real, cache, name, name.partition(".")[0] in _LIVE)
        self._by_module[id(original)] = (original, view)
        _owners[view] = self
        return view

    def attribute(self, view, name):
        """A view's __getattr__: the checked value of name in the real module."""
        real, cache, module_name, live = self._real[view]
        if name[:1] == "_" and name not in PUBLIC_UNDERSCORE_NAMES:
            if name[:2] == "__" and name[-2:] == "__":
                # Only the interpreter asks views for these (repr, import errors): user code
                # is refused before, by the analysis or the getattr family. Absent, as plain.
                raise AttributeError("module '%s' has no attribute '%s'" % (module_name, name))
            _refuse(ERROR_PRIVATE_ATTRIBUTE.format(attr=name))
        if name in BLOCKED_ATTRIBUTES or name in PYRUNNER_BLOCKED_ATTRIBUTES:
            _refuse(ERROR_DANGEROUS_ATTRIBUTE.format(attr=name))
        path = module_name + "." + name
        try:
            value = getattr(real, name)
        except AttributeError:
            value = _modules.get(path)  # a submodule not (yet) bound in its package
            if value is None:
                raise
        value = self.hand_out(value, path)
        if isinstance(value, _CACHED) and not (live and not callable(value)):
            cache[name] = value
        return value

    def hand_out(self, value, path: str):
        """value, reached as path, as user code may have it: a view, a replacement, or itself."""
        if isinstance(value, ModuleType):
            if is_view(value):
                return value
            name = _name_of(value)
            policy = self.policy
            if not ((name is not None and policy.allows_module(name))
                    or (_modules.get(path) is value and policy.allows_module(path))):
                _refuse(policy.module_attribute_error(name or "?", path))
            return self.view(value)
        special = self._special.get(id(value))
        if special is not None and special[0] is value:
            if special[1] is not None:
                return special[1]
            if not self.policy.allows_module(special[2]):
                _refuse(ERROR_INTROSPECTION.format(path=path, module=special[2]))
        return value

    def public_vars(self, view) -> dict:
        """What vars(view) gives: every public attribute the view would hand out."""
        out = {}
        for name in self.public_names(view):
            try:
                out[name] = getattr(view, name)
            except (AttributeError, SecurityViolationError):
                pass
        return out

    def public_names(self, view) -> list:
        """dir(view): the real module's public names, less those the view refuses."""
        real, _, module_name, _ = self._real[view]
        names = []
        for name, value in list(_module_dict(real).items()):
            if type(name) is not str or name[:1] == "_" or name in BLOCKED_ATTRIBUTES \
                    or name in PYRUNNER_BLOCKED_ATTRIBUTES:
                continue
            try:
                self.hand_out(value, module_name + "." + name)
            except SecurityViolationError:
                continue
            names.append(name)
        return sorted(names)

    def _refresh(self):
        """Before a view is made: registers what was loaded since, and runs the module hooks.
        Hooks change their module, so __init__ (which prepare_zygote reaches, and which must
        change nothing process-wide) does not run them."""
        self._register()
        for name, hook in self._hooks.items():
            module = _modules.get(name)
            if module is not None and self._hooked.get(name) is not module:
                self._hooked[name] = module
                hook(module)

    def _register(self):
        """Registers the entries of every module loaded since. A module pruned from
        sys.modules and imported again is a new copy with new functions: each copy is
        registered."""
        seen = self._seen
        for name, entries in self._entries.items():
            module = _modules.get(name)
            if module is None or seen.get(name) is module:
                continue
            seen[name] = module
            namespace = _module_dict(module)
            for attr, replacement, needs in entries:
                original = namespace.get(attr)
                if original is not None:
                    self._special[id(original)] = (original, replacement, needs)
