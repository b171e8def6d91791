"""exec, eval and compile, where the deny list leaves them in: source is checked as code is.

n8n denies the three by default. An operator who allows them lets user code run source
built at run time, which the analysis of the task's code never saw. Here such source goes
through the same analysis and rewrite first, under the task's allowlists: its violations
are refused with the static analysis's own texts, its .format-style calls go through the
format guard, and (before 3.13) its import statements through the import guard.

Two more things the builtins would otherwise get wrong from inside this module:
- exec and eval without globals use the caller's namespace, not this module's;
- globals without "__builtins__" get the caller's builtins (the task's mapping), where
  CPython would put the builtins of the frame that runs exec: this module's real ones.

The compiled code gets the caller's virtual file name, so that it counts as user code
wherever that matters (the transitive-imports rule, module views from importlib).
Code objects are run as they are: in a task they come from this compile.
"""

import ast
import sys

from . import sandbox_analysis, sandbox_rewrite
from .sandbox_callables import SecurityViolationError
from .sandbox_helpers import frame_locals
from .sandbox_rules import RUNTIME_FORMAT_MESSAGE, USER_FILENAMES

_getframe = sys._getframe
_compile, _exec, _eval = compile, exec, eval
_SOURCE_TYPES = (str, bytes, bytearray, ast.AST)
_DEFAULT_FILENAME = "<all_items_task_execution>"


class GuardedCompiler:
    """The three builtins of one configuration; each method is wrapped in a HardenedCallable."""

    __slots__ = ("policy",)

    def __init__(self, policy):
        self.policy = policy

    def code(self, source, mode: str, depth: int, flags: int = 0, optimize: int = -1):
        """source, analysed and rewritten, compiled under the caller's file name (or an AST)."""
        caller = _getframe(depth + 1).f_code.co_filename
        filename = caller if caller in USER_FILENAMES else _DEFAULT_FILENAME
        if isinstance(source, ast.AST):
            tree = source
        else:
            if isinstance(source, bytearray):
                source = bytes(source)
            tree = ast.parse(source, filename, mode, type_comments=bool(flags & ast.PyCF_TYPE_COMMENTS))
        size = len(source) if not isinstance(source, ast.AST) else 0
        verdict = sandbox_analysis.analyze(tree, size, self.policy)
        if verdict.violations:
            raise SecurityViolationError(RUNTIME_FORMAT_MESSAGE, "\n".join(verdict.violations))
        if flags & ast.PyCF_ONLY_AST:
            return tree  # as written: compiling it is what rewrites it
        tree = sandbox_rewrite.apply(tree, verdict.sites, verdict.built)
        ast.fix_missing_locations(tree)
        return _compile(tree, filename, mode, flags, True, optimize)

    def compile(self, source, filename, mode, flags=0, dont_inherit=False, optimize=-1, **kwargs):
        # Frames: 0 this, 1 HardenedCallable.__call__, 2 the caller.
        return self.code(source, mode, 2, flags, optimize)

    def exec(self, source, globals=None, locals=None, /, **kwargs):
        globals, locals = _namespaces(globals, locals)
        if isinstance(source, _SOURCE_TYPES):
            source = self.code(source, "exec", 2)
        return _exec(source, globals, locals, **kwargs)

    def eval(self, source, globals=None, locals=None, /):
        globals, locals = _namespaces(globals, locals)
        if isinstance(source, _SOURCE_TYPES):
            if isinstance(source, str):
                source = source.lstrip(" \t")  # as eval does
            source = self.code(source, "eval", 2)
        return _eval(source, globals, locals)


def _namespaces(globals, locals):
    # Frames: 0 this, 1 GuardedCompiler's method, 2 HardenedCallable.__call__, 3 the caller.
    caller = _getframe(3)
    if globals is None:
        globals = caller.f_globals
        if locals is None:
            locals = frame_locals(caller)
    elif locals is None:
        locals = globals
    if isinstance(globals, dict) and "__builtins__" not in globals:
        globals["__builtins__"] = caller.f_builtins
    return globals, locals
