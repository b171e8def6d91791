"""Leaf module: the classes of every object the sandbox hands to user code (docs/sandbox.md §4.5).

User code may reach the namespace of any function defined here (a method's __globals__), so
this module imports nothing and holds no reference to the runner. The implementations these
objects forward to are stored in instance slots, which the objects refuse to show.

Every function below is defined after __builtins__ is narrowed to the few names they use;
since Python 3.10 a function keeps the builtins it was created with, so even their
__builtins__ attribute hands out nothing of use. No function here creates another function
(a lambda, a generator expression, a comprehension on 3.10/3.11) at run time.
"""

__builtins__ = {
    "object": object,
    "Exception": Exception,
    "AttributeError": AttributeError,
    "KeyError": KeyError,
    "TypeError": TypeError,
}

# Shown instead of the real class name, so errors are those of a real builtin function and
# never reveal which class enforces the boundary.
_SPOOFED_TYPE = "'builtin_function_or_method' object has no attribute '"


class SecurityViolationError(Exception):
    """A violation found at run time: str() is the message, .description the detail (docs/errors.md §3.2).

    execute.run_task reports an exception's str() as the error message and its str
    description attribute as the description, so this needs no special handling there.
    The name is n8n's; the module is shown as builtins so a traceback prints no runner path.
    """

    __module__ = "builtins"

    def __init__(self, message, description=""):
        Exception.__init__(self, message)
        self.description = description


class HardenedCallable:
    """print, __import__, the importlib entry points and the format guard, as user code sees them.

    Every attribute read, write and delete fails with the spoofed AttributeError, whether the
    attribute exists or not, so neither the error text nor its presence is an oracle.
    Calling still works: Python looks __call__ up on the type, not through __getattribute__.
    """

    __slots__ = ("_impl", "_repr")

    def __getattribute__(self, name):
        raise AttributeError(_SPOOFED_TYPE + name + "'")

    def __setattr__(self, name, value):
        raise AttributeError(_SPOOFED_TYPE + name + "'")

    def __delattr__(self, name):
        raise AttributeError(_SPOOFED_TYPE + name + "'")

    def __call__(self, *args, **kwargs):
        return object.__getattribute__(self, "_impl")(*args, **kwargs)

    def __repr__(self):
        return object.__getattribute__(self, "_repr")


def harden(impl, text):
    """impl behind a HardenedCallable whose repr() is text."""
    wrapper = object.__new__(HardenedCallable)
    object.__setattr__(wrapper, "_impl", impl)
    object.__setattr__(wrapper, "_repr", text)
    return wrapper


# What string.Formatter.get_field checks a field name with: a HardenedCallable set by
# sandbox_format.guard_formatter.
_field_check = None


def formatter_get_field(self, field_name, args, kwargs):
    """string.Formatter.get_field in a task process: the field name is checked, then resolved."""
    return _field_check(self, field_name, args, kwargs)


formatter_get_field.__name__ = "get_field"
formatter_get_field.__qualname__ = "Formatter.get_field"
formatter_get_field.__module__ = "string"

_READ_ONLY = "'builtins' mapping is read-only"


class ReadOnlyBuiltins:
    """The base of the user code's __builtins__ mapping (docs/sandbox.md §4.3).

    sandbox_builtins derives one class per configuration whose lookup methods are bound
    methods of a mappingproxy: they run in C, and the only object they reveal is the proxy.
    Instances have no storage of their own (no __dict__, no slots), so object.__setattr__
    and vars() find nothing to change, and every mutating method raises.
    """

    __slots__ = ()

    def __getattr__(self, name):
        # C code imports through getattr(__builtins__, "__import__") when the mapping is not
        # a dict (PyImport_Import: datetime.strptime, time.strptime).
        try:
            return self[name]
        except KeyError:
            raise AttributeError("'builtins' mapping has no attribute '" + name + "'") from None

    def __setattr__(self, name, value):
        raise AttributeError(_READ_ONLY)

    def __delattr__(self, name):
        raise AttributeError(_READ_ONLY)

    def __setitem__(self, key, value):
        raise TypeError(_READ_ONLY)

    def __delitem__(self, key):
        raise TypeError(_READ_ONLY)

    def update(self, *args, **kwargs):
        raise TypeError(_READ_ONLY)

    def clear(self):
        raise TypeError(_READ_ONLY)

    def pop(self, *args):
        raise TypeError(_READ_ONLY)

    def popitem(self):
        raise TypeError(_READ_ONLY)

    def setdefault(self, *args):
        raise TypeError(_READ_ONLY)

    def __ior__(self, other):
        raise TypeError(_READ_ONLY)

    def __repr__(self):
        return "<read-only builtins>"
