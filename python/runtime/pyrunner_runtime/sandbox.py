"""The seam for the security sandbox (reference §12). It ENFORCES NOTHING yet.

Today user code can import anything, call every builtin and read any attribute.
What keeps secrets away from it is the process boundary: the task process runs
with its own environment and file descriptors, apart from the Go runner and its
credentials. A later change fills these hooks in with n8n's static analysis
(§12.3), restricted builtins and import guard (§12.4), and the format guard;
execute.run_task already calls each one at the point where it takes effect:

    check(tree, code, cfg)       on the raw user code, before anything runs
    rewrite(tree, cfg)           on the user's module, before it is wrapped and compiled
    make_builtins(cfg, print_fn) once per task, for the user code's __builtins__

A rewrite that adds AST nodes must give them locations (ast.copy_location or
ast.fix_missing_locations): run_task only locates the nodes it adds itself.
"""

import ast
import builtins

_BUILTINS = vars(builtins)


def check(tree: ast.Module, code: str, cfg) -> list:
    """Violations in the raw user code, each as "Line <n>: <text>" (§12.3). None yet."""
    return []


def rewrite(tree: ast.Module, cfg) -> ast.Module:
    """The user's module as it should be compiled (the format guard goes here). Identity now."""
    return tree


def make_builtins(cfg, print_fn) -> dict:
    """The __builtins__ mapping for one task: every builtin, with print capturing."""
    b = _BUILTINS.copy()
    b["print"] = print_fn
    return b


def prepare_process(cfg) -> None:
    """Once per task process, before its first task: nothing yet (see the module docstring)."""
