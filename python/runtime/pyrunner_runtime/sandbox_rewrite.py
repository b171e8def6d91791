"""The AST rewrite applied before compiling user code (docs/code-node.md §3, docs/sandbox.md §4.6).

- Every `.format(…)`, `.format_map(…)`, `.vformat(…)` and `.get_field(…)` call becomes
  `__n8n_internal_safe_format__("<method>", <receiver>, …)`, as in n8n's runner.
- Before Python 3.13 only: every import statement (but `from x import *` and `__future__`
  imports, which stay to fail at compile time as before) becomes an assignment from
  `__n8n_internal_safe_import__(...)`. The reason: up to 3.12 the IMPORT_NAME opcode reads
  `__import__` from the frame's builtins with a dict-only call, which fails with SystemError
  on any other mapping; 3.13 reads it through the mapping protocol. The helper performs the
  same import through the same guard and binds the same names (sandbox_imports).

New nodes take the location of the node they replace: execute.py does not run
fix_missing_locations over the user's tree.
"""

import ast

from .sandbox_analysis import REWRITE_IMPORTS
from .sandbox_rules import FORMAT_METHOD_NAMES, SAFE_FORMAT_NAME, SAFE_IMPORT_NAME

_Call, _Attribute, _Import, _ImportFrom = ast.Call, ast.Attribute, ast.Import, ast.ImportFrom


def apply(tree: ast.Module, sites, built=None) -> ast.Module:
    """Rewrites tree at sites (see sandbox_analysis.Verdict); sites None: find them first.

    built: a dict kept with the sites, where the replacement of each import statement is
    kept and used again for the next tree of the same code. It holds no node of the user's
    tree, and compile() never changes the tree it is given.
    """
    if sites is None:
        targets = _find(tree)
        built = None
    else:
        targets = []
        for kind, path in sites:
            located = _locate(tree, path)
            if located is None:  # not the tree the paths were taken from: never expected
                return apply(tree, None)
            targets.append(located)
    # Reverse pre-order: a site nested in another (x.format(y.format())) is replaced first,
    # and the outer replacement then carries the already rewritten inner call along.
    for number in range(len(targets) - 1, -1, -1):
        parent, field, index, node = targets[number]
        if node.__class__ is _Call:
            new = _format_call(node)
        elif built is None:
            new = _import_statement(node)
        else:
            new = built.get(number)
            if new is None:
                new = built[number] = _import_statement(node)
        if index is None:
            setattr(parent, field, new)
        else:
            getattr(parent, field)[index] = new
    return tree


def _locate(tree, path):
    parent, node = None, tree
    field = index = None
    try:
        for field, index in path:
            parent = node
            node = getattr(node, field) if index is None else getattr(node, field)[index]
    except (AttributeError, IndexError, TypeError):
        return None
    if not _is_site(node):
        return None
    return parent, field, index, node


def _is_site(node) -> bool:
    cls = node.__class__
    if cls is _Call:
        return node.func.__class__ is _Attribute and node.func.attr in FORMAT_METHOD_NAMES
    if not REWRITE_IMPORTS:
        return False
    if cls is _Import:
        return True
    return cls is _ImportFrom and node.module != "__future__" and node.names[0].name != "*"


def _find(tree) -> list:
    """Every site as (parent, field, index, node), in pre-order; iterative."""
    found = []
    stack = [(None, None, None, tree)]
    while stack:
        entry = stack.pop()
        node = entry[3]
        if entry[0] is not None and _is_site(node):
            found.append(entry)
        children = []
        for field in node._fields:
            value = getattr(node, field, None)
            if value.__class__ is list:
                for index, item in enumerate(value):
                    if isinstance(item, ast.AST):
                        children.append((node, field, index, item))
            elif isinstance(value, ast.AST):
                children.append((node, field, None, value))
        children.reverse()
        stack.extend(children)
    return found


def _located(new, old):
    new.lineno, new.col_offset = old.lineno, old.col_offset
    new.end_lineno, new.end_col_offset = old.end_lineno, old.end_col_offset
    return new


def _format_call(call):
    """x.format(a, k=v) -> __n8n_internal_safe_format__("format", x, a, k=v)."""
    func = call.func
    return _located(ast.Call(
        func=_located(ast.Name(id=SAFE_FORMAT_NAME, ctx=ast.Load()), call),
        args=[_located(ast.Constant(value=func.attr), call), func.value, *call.args],
        keywords=call.keywords,
    ), call)


def _import_statement(stmt):
    """`import a.b, c as d`  -> `a, d = __n8n_internal_safe_import__(None, (("a.b", False), ("c", True)), 0)`
    `from .m import x as y` -> `y, = __n8n_internal_safe_import__("m", ("x",), 1)`
    """
    if stmt.__class__ is _Import:
        targets = [a.asname or a.name.partition(".")[0] for a in stmt.names]
        module = None
        names = tuple((a.name, a.asname is not None and "." in a.name) for a in stmt.names)
        level = 0
    else:
        targets = [a.asname or a.name for a in stmt.names]
        module = stmt.module or ""
        names = tuple(a.name for a in stmt.names)
        level = stmt.level or 0
    value = _located(ast.Call(
        func=_located(ast.Name(id=SAFE_IMPORT_NAME, ctx=ast.Load()), stmt),
        args=[_located(ast.Constant(value=v), stmt) for v in (module, names, level)],
        keywords=[],
    ), stmt)
    target = _located(ast.Tuple(
        elts=[_located(ast.Name(id=t, ctx=ast.Store()), stmt) for t in targets], ctx=ast.Store()), stmt)
    return _located(ast.Assign(targets=[target], value=value, type_comment=None), stmt)
