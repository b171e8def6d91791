"""Static analysis of the raw user code (docs/sandbox.md §3), and where the rewrite must act.

One iterative pre-order walk does both jobs. Violations come out in the order n8n's
ast.NodeVisitor finds them: a node's own checks, then its children in _fields order.
Results are cached per code and allowlists (an LRU of 500, as in n8n).

Bounded on any tree ast.parse accepts: no recursion (3.10 parses chains 100000 deep), and
string concatenations are folded once per node, bottom-up, with the exact per-node format
scan n8n does only while a character budget lasts (see _Concat).
"""

import ast
import hashlib
import sys
from collections import OrderedDict

from .sandbox_rules import (
    BLOCKED_ATTRIBUTES,
    BLOCKED_NAMES,
    ERROR_BARE_FORMAT_ATTRIBUTE,
    ERROR_CLASSDEF_BLOCKED_NAME,
    ERROR_DANGEROUS_ATTRIBUTE,
    ERROR_DANGEROUS_NAME,
    ERROR_DANGEROUS_STRING_PATTERN,
    ERROR_DYNAMIC_IMPORT,
    ERROR_FUNCDEF_BLOCKED_NAME,
    ERROR_GLOBAL_BLOCKED_NAME,
    ERROR_MATCH_PATTERN_ATTRIBUTE,
    ERROR_MATCH_POSITIONAL_PATTERN,
    ERROR_NAME_MANGLED_ATTRIBUTE,
    ERROR_PARAM_BLOCKED_NAME,
    ERROR_PRIVATE_ATTRIBUTE,
    ERROR_RELATIVE_IMPORT,
    FORMAT_METHOD_NAMES,
    MAX_BLOCKED_LEN,
    PUBLIC_UNDERSCORE_NAMES,
    PYRUNNER_BLOCKED_ATTRIBUTES,
    BudgetExceeded,
    ScanBudget,
    blocked_format_tokens,
    lenient_format_tokens,
)

CACHE_SIZE = 500  # n8n's MAX_VALIDATION_CACHE_SIZE

# Before 3.13, IMPORT_NAME needs __builtins__ to be a real dict, which the read-only mapping
# is not: import statements are rewritten into calls (sandbox_rewrite) and are sites too.
REWRITE_IMPORTS = sys.version_info < (3, 13)

# Characters the exact checks may spend on one analysis, beyond the code's own size: past
# it, the remaining format scans are lenient (a superset of tokens, each once per string).
_EXTRA_BUDGET = 2_000_000

_AST = ast.AST
_Name, _Constant, _Attribute, _Call = ast.Name, ast.Constant, ast.Attribute, ast.Call
_BinOp, _Add, _Subscript, _arg = ast.BinOp, ast.Add, ast.Subscript, ast.arg
_Import, _ImportFrom, _Global, _ExceptHandler = ast.Import, ast.ImportFrom, ast.Global, ast.ExceptHandler
_ClassDef, _MatchClass, _AnnAssign = ast.ClassDef, ast.MatchClass, ast.AnnAssign
_FUNCTION_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef)

# Fields that never hold a node some check looks at: names, flags, contexts, operators.
_SKIPPED_FIELDS = frozenset({
    "ctx", "op", "ops", "id", "attr", "name", "names", "arg", "kwd_attrs", "module", "level", "kind",
    "conversion", "is_async", "type_comment", "simple", "tag", "type_ignores",
})
_child_fields = {_Constant: (), ast.MatchSingleton: ()}
_BUILTINS_NAMES = ("builtins", "__builtins__")

_cache = OrderedDict()


class Verdict:
    """What the analysis of one code found: violations, and the rewrite's sites.

    sites is a tuple of (kind, path) in pre-order, kind "format" (a .format()-style call) or
    "import" (an import statement, Python < 3.13), path the (field, index) steps from the
    module; None when the paths were too costly to keep (the rewrite then walks).
    """

    __slots__ = ("violations", "sites", "built")

    def __init__(self, violations, sites):
        self.violations = violations
        self.sites = sites
        self.built = {}  # sandbox_rewrite's import-statement replacements, by site number


def cache_key(code: str, policy) -> tuple:
    return hashlib.sha256(code.encode("utf-8", "surrogatepass")).digest(), policy.key


def cached(key):
    verdict = _cache.get(key)
    if verdict is not None:
        _cache.move_to_end(key)
    return verdict


def remember(key, verdict) -> None:
    if len(_cache) >= CACHE_SIZE:
        _cache.popitem(last=False)
    _cache[key] = verdict


def analyze(tree: ast.Module, code_len: int, policy) -> Verdict:
    """Walks tree once; policy None finds the rewrite's sites only (both allowlists "*")."""
    violations, sites = _walk(tree, code_len, policy, set(), False)
    return Verdict(tuple(violations), _materialize(sites))


def _walk(tree, code_len: int, policy, checked_modules: set, annotation: bool):
    """The violations and rewrite sites of tree, in pre-order.

    annotation: tree is the text of a string annotation, parsed. typing.get_type_hints
    evaluates such text (functools.singledispatch calls it on the user's functions), so it
    is checked as code; it is never rewritten, so a .format-style call in it counts as
    taking the method as a value, and every string in it is an annotation in turn.
    """
    violations = []
    add = violations.append
    sites = []
    called_attrs = set()  # ids of .format-style Attribute nodes that are some Call's func
    concat = _Concat(code_len)
    checking = policy is not None

    def validate_import(module_path, lineno):
        if module_path.startswith("."):
            add("Line %d: %s" % (lineno, ERROR_RELATIVE_IMPORT))
            return
        top = module_path.partition(".")[0]
        if top in checked_modules:
            return  # n8n reports each top-level package once
        checked_modules.add(top)
        error = policy.import_error(module_path)
        if error is not None:
            add("Line %d: %s" % (lineno, error))

    stack = [(tree, None)]
    pop, push = stack.pop, stack.append
    while stack:
        node, path = pop()
        cls = node.__class__
        if cls is _Name:
            if checking and node.id in BLOCKED_NAMES:
                add("Line %d: %s" % (node.lineno, ERROR_DANGEROUS_NAME.format(name=node.id)))
        elif cls is _Constant:
            if checking and node.value.__class__ is str:
                for text in concat.literal_violations(node.value):
                    add("Line %d: %s" % (node.lineno, text))
                if annotation:
                    violations.extend(_annotation_violations(node, policy, checked_modules))
            continue  # no children
        elif cls is _Attribute:
            if checking:
                attr = node.attr
                blocked = attr in BLOCKED_ATTRIBUTES or attr in PYRUNNER_BLOCKED_ATTRIBUTES
                if blocked:
                    add("Line %d: %s" % (node.lineno, ERROR_DANGEROUS_ATTRIBUTE.format(attr=attr)))
                if attr in FORMAT_METHOD_NAMES and id(node) not in called_attrs:
                    add("Line %d: %s" % (node.lineno, ERROR_BARE_FORMAT_ATTRIBUTE.format(attr=attr)))
                if attr[:1] == "_":
                    if "__" in attr and attr.split("__", 1)[0][:1] == "_":
                        add("Line %d: %s" % (node.lineno, ERROR_NAME_MANGLED_ATTRIBUTE))
                    elif not blocked and attr not in PUBLIC_UNDERSCORE_NAMES:
                        add("Line %d: %s" % (node.lineno, ERROR_PRIVATE_ATTRIBUTE.format(attr=attr)))
        elif cls is _Call:
            func = node.func
            if func.__class__ is _Attribute and func.attr in FORMAT_METHOD_NAMES and not annotation:
                called_attrs.add(id(func))
                sites.append(("format", path))
            if checking and (
                (func.__class__ is _Name and func.id == "__import__")
                or (func.__class__ is _Attribute and func.attr == "__import__"
                    and func.value.__class__ is _Name and func.value.id in _BUILTINS_NAMES)
            ):
                args = node.args
                if args and args[0].__class__ is _Constant and isinstance(args[0].value, str):
                    validate_import(args[0].value, node.lineno)
                else:
                    add("Line %d: %s" % (node.lineno, ERROR_DYNAMIC_IMPORT))
        elif cls is _BinOp:
            if checking and node.op.__class__ is _Add:
                for text in concat.binop_violations(node):
                    add("Line %d: %s" % (node.lineno, text))
        elif cls is _Subscript:
            if checking:
                value, key = node.value, node.slice
                if ((value.__class__ is _Name and value.id in _BUILTINS_NAMES)
                        or (value.__class__ is _Attribute and value.attr in _BUILTINS_NAMES)) \
                        and key.__class__ is _Constant and isinstance(key.value, str) \
                        and key.value in BLOCKED_ATTRIBUTES:
                    add("Line %d: %s" % (node.lineno, ERROR_DANGEROUS_ATTRIBUTE.format(attr=key.value)))
        elif cls is _arg:
            if checking:
                if node.arg in BLOCKED_NAMES:
                    add("Line %d: %s" % (node.lineno, ERROR_PARAM_BLOCKED_NAME.format(name=node.arg)))
                if node.annotation is not None:
                    violations.extend(_annotation_violations(node.annotation, policy, checked_modules))
        elif cls in _FUNCTION_DEFS:
            if checking:
                if node.name in BLOCKED_NAMES:
                    add("Line %d: %s" % (node.lineno, ERROR_FUNCDEF_BLOCKED_NAME.format(name=node.name)))
                if node.returns is not None:
                    violations.extend(_annotation_violations(node.returns, policy, checked_modules))
        elif cls is _AnnAssign:
            if checking:
                violations.extend(_annotation_violations(node.annotation, policy, checked_modules))
        elif cls is _Import:
            if REWRITE_IMPORTS:
                sites.append(("import", path))
            if checking:
                for alias in node.names:
                    validate_import(alias.name, node.lineno)
                    _alias_violation(add, node.lineno, alias.asname, None)
                    _private_path_violation(add, node.lineno, alias.name)
        elif cls is _ImportFrom:
            if REWRITE_IMPORTS and node.module != "__future__" and node.names[0].name != "*":
                sites.append(("import", path))
            if checking:
                if node.level > 0:
                    add("Line %d: %s" % (node.lineno, ERROR_RELATIVE_IMPORT))
                elif node.module:
                    validate_import(node.module, node.lineno)
                    _private_path_violation(add, node.lineno, node.module)
                for alias in node.names:
                    if not _alias_violation(add, node.lineno, alias.asname, alias.name) and alias.name != "*":
                        _private_path_violation(add, node.lineno, "." + alias.name)
        elif cls is _Global:
            if checking:
                for name in node.names:
                    if name in BLOCKED_NAMES:
                        add("Line %d: %s" % (node.lineno, ERROR_GLOBAL_BLOCKED_NAME.format(name=name)))
        elif cls is _ClassDef:
            if checking and node.name in BLOCKED_NAMES:
                add("Line %d: %s" % (node.lineno, ERROR_CLASSDEF_BLOCKED_NAME.format(name=node.name)))
        elif cls is _ExceptHandler:
            if checking and node.name and node.name in BLOCKED_NAMES:
                add("Line %d: %s" % (node.lineno, ERROR_DANGEROUS_NAME.format(name=node.name)))
        elif cls is _MatchClass:
            if checking:
                if node.patterns:
                    add("Line %d: %s" % (node.lineno, ERROR_MATCH_POSITIONAL_PATTERN))
                for attr in node.kwd_attrs:
                    # A keyword pattern reads the attribute with no Attribute node: the same
                    # attributes are refused, and the format methods, which it would bind.
                    if (attr in BLOCKED_ATTRIBUTES or attr in PYRUNNER_BLOCKED_ATTRIBUTES
                            or attr in FORMAT_METHOD_NAMES
                            or (attr[:1] == "_" and attr not in PUBLIC_UNDERSCORE_NAMES)):
                        add("Line %d: %s" % (node.lineno, ERROR_MATCH_PATTERN_ATTRIBUTE.format(attr=attr)))

        fields = _child_fields.get(cls)
        if fields is None:
            fields = _child_fields[cls] = tuple(f for f in cls._fields if f not in _SKIPPED_FIELDS)
        children = []
        for field in fields:
            value = getattr(node, field, None)
            if value.__class__ is list:
                for index, item in enumerate(value):
                    if isinstance(item, _AST):
                        children.append((item, (path, field, index)))
            elif isinstance(value, _AST):
                children.append((value, (path, field, None)))
        if children:
            children.reverse()
            stack.extend(children)

    return violations, sites


def _annotation_violations(annotation, policy, checked_modules) -> list:
    """Violations in the strings of an annotation, each parsed and checked as code.

    A string that is no expression is left alone: typing cannot evaluate it either.
    """
    found = []
    for node in ast.walk(annotation):
        if node.__class__ is not _Constant or node.value.__class__ is not str:
            continue
        try:
            parsed = ast.parse(node.value, mode="eval")
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        for inner in ast.walk(parsed):
            if "lineno" in inner._attributes:
                inner.lineno = node.lineno
        violations, _ = _walk(parsed.body, len(node.value), policy, checked_modules, True)
        found.extend(violations)
    return found


def _alias_violation(add, lineno, asname, name) -> bool:
    """An import alias (`as x`) or imported name that is blocked; the first match only, as n8n."""
    for candidate in (asname, name):
        if not candidate:
            continue
        if candidate in BLOCKED_NAMES:
            add("Line %d: %s" % (lineno, ERROR_DANGEROUS_NAME.format(name=candidate)))
            return True
        if candidate in BLOCKED_ATTRIBUTES:
            add("Line %d: %s" % (lineno, ERROR_DANGEROUS_ATTRIBUTE.format(attr=candidate)))
            return True
    return False


def _private_path_violation(add, lineno, dotted: str) -> None:
    """The first private name of an import path below its top-level package (`a._b`, `from a import _b`).

    A top-level module is governed by the allowlists alone (`_thread` may be allowed).
    """
    for part in dotted.split(".")[1:]:
        if part[:1] == "_" and part not in PUBLIC_UNDERSCORE_NAMES:
            add("Line %d: %s" % (lineno, ERROR_PRIVATE_ATTRIBUTE.format(attr=part)))
            return


# The most (field, index) steps kept for the sites of one code; beyond, the rewrite walks.
_MAX_PATH_STEPS = 100_000


def _materialize(sites):
    """The linked paths of the walk as tuples of steps, or None if that would cost too much."""
    out = []
    steps = 0
    for kind, link in sites:
        path = []
        while link is not None:
            link, field, index = link
            path.append((field, index))
        steps += len(path)
        if steps > _MAX_PATH_STEPS:
            return None
        path.reverse()
        out.append((kind, tuple(path)))
    return tuple(out)


class _Concat:
    """String literals and compile-time `+` concatenations of them (docs/sandbox.md §3.4).

    n8n folds every BinOp(Add) whose leaves are all str constants, and checks the folded
    string for an exact blocked name and for format-template tokens. Folding each node of a
    chain from scratch is quadratic in its length; here lengths and "contains '{'" are
    computed bottom-up once per node, the exact-name test folds only strings short enough
    to match, and the format scan folds only strings with a "{", within a character budget.
    Past the budget a node's whole folded string is scanned once, leniently, and its
    descendants are covered by that scan.
    """

    __slots__ = ("info", "covered", "budget", "scan_budget")

    def __init__(self, code_len: int):
        self.info = {}  # id(BinOp) -> (length, has "{") if every leaf is a str constant, else None
        self.covered = set()  # ids of BinOps whose format tokens an ancestor's lenient scan reported
        self.budget = 4 * code_len + _EXTRA_BUDGET
        self.scan_budget = ScanBudget(4 * code_len + _EXTRA_BUDGET)

    def literal_violations(self, text: str) -> list:
        if len(text) <= MAX_BLOCKED_LEN:
            if text in BLOCKED_NAMES:
                return [ERROR_DANGEROUS_NAME.format(name=text)]
            if text in BLOCKED_ATTRIBUTES:
                return [ERROR_DANGEROUS_ATTRIBUTE.format(attr=text)]
        if "{" not in text:
            return []
        return [ERROR_DANGEROUS_STRING_PATTERN.format(attr=t) for t in self._tokens(text)]

    def binop_violations(self, node) -> list:
        info = self.info.get(id(node), False)
        if info is False:
            self._measure(node)
            info = self.info[id(node)]
        if info is None:
            return []
        length, has_brace = info
        if length <= MAX_BLOCKED_LEN:
            return self.literal_violations(_fold(node))
        if not has_brace or id(node) in self.covered:
            return []
        if length <= self.budget:
            self.budget -= length
            return self.literal_violations(_fold(node))
        tokens = lenient_format_tokens(_fold(node))
        self._cover(node)
        return [ERROR_DANGEROUS_STRING_PATTERN.format(attr=t) for t in tokens]

    def _tokens(self, text: str) -> list:
        if len(text) <= self.scan_budget.left:
            try:
                return blocked_format_tokens(text, self.scan_budget)
            except BudgetExceeded:
                pass
        return lenient_format_tokens(text)

    def _measure(self, root) -> None:
        """Fills info for root and every BinOp(Add) below it through BinOp(Add) links."""
        info = self.info
        stack = [(root, False)]
        while stack:
            node, ready = stack.pop()
            if not ready:
                stack.append((node, True))
                for child in (node.left, node.right):
                    if child.__class__ is _BinOp and child.op.__class__ is _Add:
                        stack.append((child, False))
                continue
            left, right = _leaf(node.left, info), _leaf(node.right, info)
            if left is None or right is None:
                info[id(node)] = None
            else:
                info[id(node)] = (left[0] + right[0], left[1] or right[1])

    def _cover(self, root) -> None:
        stack = [root]
        while stack:
            node = stack.pop()
            self.covered.add(id(node))
            for child in (node.left, node.right):
                if child.__class__ is _BinOp and child.op.__class__ is _Add:
                    stack.append(child)


def _leaf(node, info):
    if node.__class__ is _Constant:
        value = node.value
        return (len(value), "{" in value) if value.__class__ is str else None
    if node.__class__ is _BinOp and node.op.__class__ is _Add:
        return info[id(node)]
    return None


def _fold(node) -> str:
    """The string a foldable BinOp(Add) tree evaluates to; iterative, linear."""
    parts = []
    stack = [node]
    while stack:
        node = stack.pop()
        if node.__class__ is _Constant:
            parts.append(node.value)
        else:
            stack.append(node.right)
            stack.append(node.left)
    return "".join(parts)
