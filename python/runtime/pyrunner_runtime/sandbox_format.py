"""The run-time format guard behind __n8n_internal_safe_format__ (docs/sandbox.md §4.6).

The rewrite sends every `.format(…)`, `.format_map(…)`, `.vformat(…)` and `.get_field(…)`
call here. Templates are checked when the call happens, so ones built at run time
(chr(95) * 2, join, concatenation) are caught as well as literals. At run time a template
may not reach a private attribute either (sandbox_rules.attribute_refusal).

string.Formatter resolves fields in Python, through its get_field, with whatever its parse
returns; a subclass or an instance attribute can replace parse and hand get_field fields
that no template showed. guard_formatter puts the check into get_field itself, so every
Formatter, however its fields were found, checks each one before resolving it.
"""

from collections import UserString

from _string import formatter_field_name_split

from . import sandbox_callables
from .sandbox_callables import SecurityViolationError, harden
from .sandbox_rules import (
    BLOCKED,
    ERROR_DANGEROUS_STRING_PATTERN,
    RUNTIME_FORMAT_MESSAGE,
    BudgetExceeded,
    ScanBudget,
    attribute_refusal,
    blocked_format_tokens,
    lenient_format_tokens,
)

_exact_str = str.__str__
_TEMPLATE_METHODS = frozenset({"format", "format_map", "vformat"})

_SAFE_TEMPLATES_MAX = 4096
_SAFE_TEMPLATE_MAX_LEN = 1024


class FormatGuard:
    """What __n8n_internal_safe_format__ calls, under one rule.

    private False is n8n's rule (blocked names and attributes), kept where both allowlists
    are "*"; True adds the private attributes, as everywhere else in pyrunner's checks.
    """

    __slots__ = ("private", "safe_templates")

    def __init__(self, private: bool):
        self.private = private
        # Templates already found safe: formatting in a loop checks each distinct template
        # once. Exact str only (a subclass could hash or compare as another string), short
        # ones, bounded.
        self.safe_templates = set()

    def __call__(self, method, receiver, /, *args, **kwargs):
        """receiver.<method>(*args, **kwargs), once the template or field it would use is checked.

        Which argument is the template follows n8n: the receiver for a str (or UserString), the
        first argument for an unbound str.format(tpl, …) and for any other receiver (a
        string.Formatter, or a user object with its own format(), whose non-str argument is
        not checked), the second for an unbound Formatter.vformat(formatter, tpl, …).
        """
        if type(receiver) is str and receiver in self.safe_templates and (method == "format" or method == "format_map"):
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
            self.check(text if is_template else "{" + text + "}")
            if snapshot is not None:
                snapshot = text
                # Format the checked text itself, when the UserString method is the stock one.
                if isinstance(receiver, type):
                    if getattr(receiver, method, None) is getattr(UserString, method, False):
                        return getattr(str, method)(snapshot, *args[1:], **kwargs)
                elif getattr(type(receiver), method, None) is getattr(UserString, method, False):
                    return getattr(str, method)(snapshot, *args, **kwargs)
        return getattr(receiver, method)(*args, **kwargs)

    def check(self, template: str) -> None:
        """Raises SecurityViolationError if template's fields reach a name or attribute the rule refuses."""
        template = _exact_str(template)
        safe = self.safe_templates
        if "{" not in template or template in safe:
            return
        try:
            tokens = blocked_format_tokens(template, ScanBudget(4 * len(template) + 100_000), self.private)
        except BudgetExceeded:
            tokens = lenient_format_tokens(template, self.private)
        if tokens:
            raise SecurityViolationError(RUNTIME_FORMAT_MESSAGE, ERROR_DANGEROUS_STRING_PATTERN.format(attr=tokens[0]))
        if len(template) <= _SAFE_TEMPLATE_MAX_LEN:
            if len(safe) >= _SAFE_TEMPLATES_MAX:
                safe.clear()
            safe.add(template)


safe_format = FormatGuard(private=False)
safe_format_private = FormatGuard(private=True)


class _FieldCheck:
    """string.Formatter.get_field's check: each attribute and item of the field, as it will be resolved."""

    __slots__ = ("original",)

    def __init__(self, original):
        self.original = original

    def __call__(self, formatter, field_name, args, kwargs):
        if isinstance(field_name, str):
            field_name = _exact_str(field_name)
            _, rest = formatter_field_name_split(field_name)
            for is_attribute, part in rest:
                if is_attribute and attribute_refusal(part) is not None or not is_attribute and part in BLOCKED:
                    raise SecurityViolationError(RUNTIME_FORMAT_MESSAGE, ERROR_DANGEROUS_STRING_PATTERN.format(attr=part))
        return self.original(formatter, field_name, args, kwargs)


def guard_formatter(string_module) -> None:
    """Puts the field check into string_module.Formatter.get_field; idempotent."""
    formatter = string_module.Formatter
    original = formatter.__dict__.get("get_field")
    if original is sandbox_callables.formatter_get_field:
        return
    if sandbox_callables._field_check is None:
        sandbox_callables._field_check = harden(_FieldCheck(original), "<function Formatter.get_field>")
    formatter.get_field = sandbox_callables.formatter_get_field
