"""The run-time format guard behind __n8n_internal_safe_format__ (docs/sandbox.md §4.6).

The rewrite sends every `.format(…)`, `.format_map(…)`, `.vformat(…)` and `.get_field(…)`
call here. Templates are checked when the call happens, so ones built at run time
(chr(95) * 2, join, concatenation) are caught as well as literals.
"""

from collections import UserString

from .sandbox_callables import SecurityViolationError
from .sandbox_rules import (
    ERROR_DANGEROUS_STRING_PATTERN,
    RUNTIME_FORMAT_MESSAGE,
    BudgetExceeded,
    ScanBudget,
    blocked_format_tokens,
    lenient_format_tokens,
)

_exact_str = str.__str__
_TEMPLATE_METHODS = frozenset({"format", "format_map", "vformat"})

# Templates already found safe: formatting in a loop checks each distinct template once.
# Exact str only (a subclass could hash or compare as another string), short ones, bounded.
_safe_templates = set()
_SAFE_TEMPLATES_MAX = 4096
_SAFE_TEMPLATE_MAX_LEN = 1024


def safe_format(method, receiver, /, *args, **kwargs):
    """receiver.<method>(*args, **kwargs), once the template or field it would use is checked.

    Which argument is the template follows n8n: the receiver for a str (or UserString), the
    first argument for an unbound str.format(tpl, …) and for any other receiver (a
    string.Formatter, or a user object with its own format(), whose non-str argument is
    not checked), the second for an unbound Formatter.vformat(formatter, tpl, …).
    """
    if type(receiver) is str and receiver in _safe_templates and (method == "format" or method == "format_map"):
        return getattr(receiver, method)(*args, **kwargs)
    is_template = method in _TEMPLATE_METHODS
    if not is_template and method != "get_field":
        return getattr(receiver, method)(*args, **kwargs)

    text = None
    snapshot = None  # a UserString's data, read once: a property could answer differently twice
    if is_template and isinstance(receiver, str):
        text = receiver
    elif is_template and isinstance(receiver, UserString):
        text = snapshot = receiver.data
    elif isinstance(receiver, type):
        if issubclass(receiver, str):
            text = args[0] if args else None
        elif issubclass(receiver, UserString) and is_template:
            if args and isinstance(args[0], UserString):
                text = snapshot = args[0].data
        else:
            text = args[1] if len(args) >= 2 else None
    else:
        text = args[0] if args else None

    if isinstance(text, str):
        # An exact copy: a str subclass could answer `in`, ==, + (__radd__) with anything.
        text = _exact_str(text)
        check_template(text if is_template else "{" + text + "}")
        if snapshot is not None:
            snapshot = text
            # Format the checked text itself, when the UserString method is the stock one.
            if isinstance(receiver, type):
                if getattr(receiver, method, None) is getattr(UserString, method, False):
                    return getattr(str, method)(snapshot, *args[1:], **kwargs)
            elif getattr(type(receiver), method, None) is getattr(UserString, method, False):
                return getattr(str, method)(snapshot, *args, **kwargs)
    return getattr(receiver, method)(*args, **kwargs)


def check_template(template: str) -> None:
    """Raises SecurityViolationError if template's fields reach a blocked name or attribute."""
    template = _exact_str(template)
    if "{" not in template or template in _safe_templates:
        return
    try:
        tokens = blocked_format_tokens(template, ScanBudget(4 * len(template) + 100_000))
    except BudgetExceeded:
        tokens = lenient_format_tokens(template)
    if tokens:
        raise SecurityViolationError(RUNTIME_FORMAT_MESSAGE, ERROR_DANGEROUS_STRING_PATTERN.format(attr=tokens[0]))
    if len(template) <= _SAFE_TEMPLATE_MAX_LEN:
        if len(_safe_templates) >= _SAFE_TEMPLATES_MAX:
            _safe_templates.clear()
        _safe_templates.add(template)
