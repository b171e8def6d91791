"""The sandbox's ground truth: blocked names and attributes, message texts, allowlist policy.

Shared by the static analysis (sandbox_analysis), the import guard (sandbox_imports) and the
format guard (sandbox_format), so the build-time and run-time checks can never disagree.
Texts and lists follow n8n's Python runner (docs/sandbox.md §2, §3).
"""

import re
import sys

from _string import formatter_parser  # what string.Formatter().parse calls

# The key of the hidden format guard in the user's namespace (n8n's name).
SAFE_FORMAT_NAME = "__n8n_internal_safe_format__"
# pyrunner's own hidden name: the import-statement helper of the rewrite on Python < 3.13
# (sandbox_rewrite). Blocked like n8n's key, so user code can never call it directly.
SAFE_IMPORT_NAME = "__n8n_internal_safe_import__"

FORMAT_METHOD_NAMES = frozenset({"format", "format_map", "vformat", "get_field"})

BLOCKED_NAMES = frozenset(
    {"__loader__", "__builtins__", "__globals__", "__spec__", "__name__", SAFE_FORMAT_NAME, SAFE_IMPORT_NAME}
)

BLOCKED_ATTRIBUTES = frozenset({
    # frame, traceback and generator internals
    "__subclasses__", "__globals__", "__builtins__", "__traceback__", "tb_frame", "tb_next",
    "f_back", "f_globals", "f_locals", "f_code", "f_builtins", "__getattribute__", "__qualname__",
    "__module__", "gi_frame", "gi_code", "gi_yieldfrom", "cr_frame", "cr_code", "ag_frame",
    "ag_code", "obj", "__thisclass__", "__self_class__", "__objclass__",
    # serialization, metaclass and match hooks
    "__reduce__", "__reduce_ex__", "__prepare__", "__instancecheck__", "__subclasscheck__",
    "__match_args__",
    # introspection
    "__base__", "__class__", "__bases__", "__code__", "__closure__", "__loader__", "__cached__",
    "__dict__", "__import__", "__mro__", "__init_subclass__", "__getattr__", "__setattr__",
    "__delattr__", "__self__", "__func__", "__wrapped__", "__annotations__", "__spec__",
})

# pyrunner's own additions to n8n's list. `mro` hands out every base class, `object`
# included (int.mro()[-1]), which the deny list keeps out of the builtins.
PYRUNNER_BLOCKED_ATTRIBUTES = frozenset({"mro"})

# Names with a leading underscore that user code may still use as attributes: what ordinary
# code needs (namedtuple's API, a function's or module's name and version, super().__init__).
# Every other one is private and refused, in the code and at run time.
PUBLIC_UNDERSCORE_NAMES = frozenset({
    "_replace", "_asdict", "_fields", "_make", "_field_defaults",
    "__name__", "__doc__", "__version__", "__init__",
})

BLOCKED = BLOCKED_NAMES | BLOCKED_ATTRIBUTES
# No string longer than this can equal a blocked name: longer ones skip the exact-match test.
MAX_BLOCKED_LEN = max(len(s) for s in BLOCKED)

ERROR_RELATIVE_IMPORT = "Relative imports are disallowed."
ERROR_STDLIB_DISALLOWED = "Import of standard library module '{module}' is disallowed. Allowed stdlib modules: {allowed}"
ERROR_EXTERNAL_DISALLOWED = "Import of external package '{module}' is disallowed. Allowed external packages: {allowed}"
ERROR_DANGEROUS_NAME = "Access to name '{name}' is disallowed, because it can be used to bypass security restrictions."
ERROR_DANGEROUS_ATTRIBUTE = (
    "Access to attribute '{attr}' is disallowed, because it can be used to bypass security restrictions."
)
ERROR_DANGEROUS_STRING_PATTERN = (
    "String pattern accessing '{attr}' is disallowed, because it can be used to bypass security restrictions."
)
ERROR_NAME_MANGLED_ATTRIBUTE = (
    "Access to name-mangled attributes (pattern: _ClassName__attr) is disallowed for security reasons."
)
ERROR_DYNAMIC_IMPORT = "Dynamic __import__() calls are not allowed for security reasons."
ERROR_MATCH_PATTERN_ATTRIBUTE = (
    "Match pattern extracting attribute '{attr}' is disallowed, because it can be used to bypass security restrictions."
)
ERROR_MATCH_POSITIONAL_PATTERN = "Positional match patterns are disallowed for security reasons."
ERROR_GLOBAL_BLOCKED_NAME = (
    "Global declaration of '{name}' is disallowed, because it can be used to bypass security restrictions."
)
ERROR_FUNCDEF_BLOCKED_NAME = "Function named '{name}' is disallowed, because it can be used to bypass security restrictions."
ERROR_CLASSDEF_BLOCKED_NAME = "Class named '{name}' is disallowed, because it can be used to bypass security restrictions."
ERROR_PARAM_BLOCKED_NAME = "Parameter named '{name}' is disallowed, because it can be used to bypass security restrictions."
ERROR_BARE_FORMAT_ATTRIBUTE = "Extracting '{attr}' as a bound method is disallowed; call it directly on its receiver instead."
# pyrunner's own texts, in n8n's style.
ERROR_PRIVATE_ATTRIBUTE = (
    "Access to private attribute '{attr}' is disallowed, because it can be used to bypass security restrictions."
)
ERROR_MODULE_ATTRIBUTE = "Access to module '{module}' through '{path}' is disallowed. Allowed {kind}: {allowed}"
ERROR_INTROSPECTION = (
    "Access to '{path}' is disallowed unless module '{module}' is allowed, because it can be used to bypass "
    "security restrictions."
)
ERROR_CLASS_VARS = "vars() of a class is disallowed, because it can be used to bypass security restrictions."

# The virtual file names user code is compiled under (execute.py; docs/code-node.md §3).
# The transitive-imports rule (docs/sandbox.md §6) tells user frames from package frames by them.
USER_FILENAMES = frozenset({"<all_items_task_execution>", "<per_item_task_execution>"})

# The message texts of the two runtime violations (docs/errors.md §3.2).
RUNTIME_IMPORT_MESSAGE = "Security violation detected"
RUNTIME_FORMAT_MESSAGE = "Security violations detected"
# pyrunner's run-time refusals of attributes (module views, getattr and its kin) read like an import's.
RUNTIME_ACCESS_MESSAGE = RUNTIME_IMPORT_MESSAGE

_STDLIB = frozenset(sys.stdlib_module_names)
# pyrunner's own modules and the zygote's bootstrap: never importable by user code at run time,
# whatever the allowlists say (they would hand out the runner's internals).
INTERNAL_MODULES = frozenset({"pyrunner_runtime", "__main__"})


# Private stdlib modules that allowed modules import from C at run time, through the importing
# frame's __import__ (the user's): datetime.strptime and time.strptime import _strptime.
# They are allowed with the module that needs them.
IMPLIED_MODULES = {"datetime": ("_strptime",), "time": ("_strptime",)}


def is_private(name: str) -> bool:
    """Whether an attribute name is private: a leading underscore, and not a public exception."""
    return name[:1] == "_" and name not in PUBLIC_UNDERSCORE_NAMES


def attribute_refusal(name: str):
    """The text refusing access to attribute name at run time, or None if it may be used.

    The same rule as the static analysis: n8n's blocked attributes and pyrunner's, then
    every private name.
    """
    if name in BLOCKED_ATTRIBUTES or name in PYRUNNER_BLOCKED_ATTRIBUTES:
        return ERROR_DANGEROUS_ATTRIBUTE.format(attr=name)
    if name[:1] == "_" and name not in PUBLIC_UNDERSCORE_NAMES:
        return ERROR_PRIVATE_ATTRIBUTE.format(attr=name)
    return None


class Policy:
    """The import allowlists of one configuration (docs/sandbox.md §2); immutable once built."""

    __slots__ = ("stdlib", "external", "stdlib_all", "external_all", "skip_static", "key", "_stdlib_text",
                 "external_text", "implied")

    def __init__(self, stdlib_allow, external_allow):
        self.stdlib = frozenset(stdlib_allow or ())
        self.external = frozenset(external_allow or ())
        self.stdlib_all = "*" in self.stdlib
        self.external_all = "*" in self.external
        # Both wildcards: n8n skips the static analysis entirely (docs/sandbox.md §1).
        self.skip_static = self.stdlib_all and self.external_all
        self.key = (tuple(sorted(self.stdlib)), tuple(sorted(self.external)))
        self._stdlib_text = ", ".join(self.key[0]) if self.stdlib else "none"
        self.external_text = ", ".join(self.key[1]) if self.external else "none"
        self.implied = frozenset(m for name in self.stdlib for m in IMPLIED_MODULES.get(name, ()))

    def import_error(self, module_path: str):
        """None if module_path may be imported, else the allowlist message (docs/sandbox.md §2).

        Only the top-level package is compared; the message names the path as written.
        """
        top = module_path.partition(".")[0]
        if top in _STDLIB:
            if self.stdlib_all or top in self.stdlib or top in self.implied:
                return None
            return ERROR_STDLIB_DISALLOWED.format(module=module_path, allowed=self._stdlib_text)
        if self.external_all or top in self.external:
            return None
        return ERROR_EXTERNAL_DISALLOWED.format(module=module_path, allowed=self.external_text)

    def allows_module(self, name: str) -> bool:
        """Whether user code may hold the module of this name (never pyrunner's own)."""
        return self.import_error(name) is None and name.partition(".")[0] not in INTERNAL_MODULES

    def module_attribute_error(self, module: str, path: str) -> str:
        """The text refusing module `module`, reached as attribute path `path` of an allowed one."""
        if module.partition(".")[0] in _STDLIB:
            kind, allowed = "stdlib modules", self._stdlib_text
        else:
            kind, allowed = "external packages", self.external_text
        return ERROR_MODULE_ATTRIBUTE.format(module=module, path=path, kind=kind, allowed=allowed)


_policies = {}


def policy_for(cfg) -> Policy:
    """The Policy of cfg's allowlists, built once per distinct pair."""
    key = (cfg.stdlib_allow, cfg.external_allow)
    policy = _policies.get(key)
    if policy is None:
        policy = _policies[key] = Policy(cfg.stdlib_allow, cfg.external_allow)
    return policy


_FIELD_ATTR = re.compile(r"\.(\w+)")
_FIELD_SUBSCRIPT = re.compile(r"""\[(['"]?)(\w+)\1\]""")


class ScanBudget:
    """Characters the exact template scan may still parse; shared by one analysis or call.

    Nested format specs are parsed again at every level, so an exact scan costs
    O(length x depth); past the budget callers switch to lenient_format_tokens.
    """

    __slots__ = ("left",)

    def __init__(self, chars: int):
        self.left = chars


class BudgetExceeded(Exception):
    pass


def blocked_format_tokens(template: str, budget: ScanBudget, private: bool = False) -> list:
    """The blocked names and attributes a str.format template's fields reach, in n8n's order.

    private: also the attributes attribute_refusal refuses (the run-time guard's rule; the
    static analysis keeps n8n's, so that literals never formatted are not refused).

    Fields are found the way str.format finds them, and a nested format spec
    ("{x:{y.__class__}}") is itself a template whose tokens come right after its field's.
    A template that str.format would reject yields nothing; a nested spec it would reject
    drops only that spec's tokens (both as in n8n). Iterative, so deep nesting cannot
    exhaust the recursion limit; raises BudgetExceeded when the budget runs out.
    """
    if "{" not in template:
        return []
    found = []
    stack = []
    text = template
    while True:
        if text is not None:
            budget.left -= len(text)
            if budget.left < 0:
                raise BudgetExceeded()
            try:
                stack.append(iter(list(formatter_parser(text))))
            except ValueError:
                pass
            text = None
        if not stack:
            return found
        item = next(stack[-1], None)
        if item is None:
            stack.pop()
            continue
        field, spec = item[1], item[2]
        if field is not None:
            for match in _FIELD_ATTR.finditer(field):
                if match.group(1) in BLOCKED or (private and attribute_refusal(match.group(1))):
                    found.append(match.group(1))
            for match in _FIELD_SUBSCRIPT.finditer(field):
                if match.group(2) in BLOCKED:
                    found.append(match.group(2))
        if spec and "{" in spec:  # a spec without "{" has no fields
            text = spec


def lenient_format_tokens(text: str, private: bool = False) -> list:
    """A linear superset of blocked_format_tokens, for text too costly to scan exactly.

    Every ".name" and "[name]" anywhere in the text counts, inside a field or not, each
    token once: field names are substrings cut at non-word characters, so no exact token
    is missed.
    """
    if "{" not in text:
        return []
    seen = []
    for match in _FIELD_ATTR.finditer(text):
        if (match.group(1) in BLOCKED or (private and attribute_refusal(match.group(1)))) and match.group(1) not in seen:
            seen.append(match.group(1))
    for match in _FIELD_SUBSCRIPT.finditer(text):
        if match.group(2) in BLOCKED and match.group(2) not in seen:
            seen.append(match.group(2))
    return seen
