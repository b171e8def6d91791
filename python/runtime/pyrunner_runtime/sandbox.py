"""The Python-level sandbox: n8n's security model, reproduced (docs/sandbox.md).

What execute.run_task calls, in order, for every task (sections of docs/sandbox.md):

    check(tree, code, cfg)       violations in the raw user code ("Line <n>: <text>"), §3
    rewrite(tree, cfg)           the format guard (and, before 3.13, import statements), §4.4, §4.6
    make_builtins(cfg, print_fn) the read-only __builtins__ of the task, §4.3
    task_print(cfg)              the hardened print to put in the task's globals

and what the task process calls once, before its first task:

    prepare_process(cfg)         prunes sys.modules, guards importlib, builds the builtins

The zygote may call prepare_zygote(cfg) before it forks, so that each task process inherits
the built builtins instead of building them (it changes nothing process-wide).

Run-time violations raise SecurityViolationError, whose str() is the message and whose
description is the detail; execute.run_task reports both as they are.

Unless both allowlists are "*", pyrunner's own checks come on top of n8n's: private
attribute names are refused (sandbox_rules.attribute_refusal, in the analysis and at run
time), imports hand out module views (sandbox_views), and the helpers that take attribute
names or source at run time are guarded (sandbox_helpers, sandbox_compile).

These checks are one layer. What keeps secrets out of reach is the task process's own
boundary (its environment, file descriptors, user and Landlock domain: hardening.py).
"""

import ast
import importlib

import linecache

from . import sandbox_analysis, sandbox_builtins, sandbox_imports, sandbox_rewrite
from .sandbox_callables import HardenedCallable, SecurityViolationError, harden
from .sandbox_helpers import source_files_only
from .sandbox_rules import policy_for

__all__ = ["check", "rewrite", "make_builtins", "task_print", "prepare_process", "prepare_zygote",
           "SecurityViolationError"]

# The tree check() last analysed without violations, and its rewrite sites, so rewrite()
# can use them instead of walking again: run_task calls the two in a row on one tree.
_pending = (None, None)


def check(tree: ast.Module, code: str, cfg) -> list:
    """Violations in the raw user code, each "Line <n>: <text>", in n8n's order (docs/sandbox.md §3).

    With both allowlists "*" nothing is checked (as in n8n); the rewrite's sites are still
    found. Verdicts are cached per sha256(code) and allowlists, LRU of 500.
    """
    global _pending
    policy = policy_for(cfg)
    key = sandbox_analysis.cache_key(code, policy)
    verdict = sandbox_analysis.cached(key)
    if verdict is None:
        verdict = sandbox_analysis.analyze(tree, len(code), None if policy.skip_static else policy)
        sandbox_analysis.remember(key, verdict)
    if verdict.violations:
        _pending = (None, None)
        return list(verdict.violations)
    _pending = (tree, verdict)
    return []


def rewrite(tree: ast.Module, cfg) -> ast.Module:
    """tree with its .format-style calls (and, before 3.13, import statements) guarded.

    Treat the result as read-only: before 3.13 the nodes that replace import statements are
    shared with earlier trees of the same code (compile() never changes a tree).
    """
    global _pending
    pending_tree, verdict = _pending
    _pending = (None, None)
    if pending_tree is not tree:
        return sandbox_rewrite.apply(tree, None)  # not the tree check() saw: find the sites
    if verdict.sites == ():
        return tree
    return sandbox_rewrite.apply(tree, verdict.sites, verdict.built)


def make_builtins(cfg, print_fn):
    """The task's __builtins__: read-only, not a dict, cfg.builtins_deny removed, guarded __import__."""
    return sandbox_builtins.make_builtins(cfg, print_fn)


def task_print(cfg) -> HardenedCallable:
    """The hardened print for the task's globals; it writes to the last make_builtins' print_fn."""
    return sandbox_builtins.task_print(cfg)


def prepare_process(cfg) -> None:
    """Hardens the task process once, before its first task (docs/sandbox.md §4.2, §4.4).

    Prunes sys.modules to what the allowlists allow, puts importlib.import_module and
    importlib.__import__ behind the import guard (trusting package callers when
    cfg.allow_transitive_imports, docs/sandbox.md §6; handing user code module views) and builds the
    builtins so the first task pays nothing for them. Unless both allowlists are "*",
    linecache then reads Python source files only, and the views of the allowed modules
    already loaded are made (sandbox_views.Views.prepare). Idempotent. The zygote calls it
    before it forks, so its tasks inherit all this. N8N_BLOCK_RUNNER_ENV_ACCESS is
    child.prepare's: it clears os.environ before this runs.
    """
    global _prepared
    if _prepared is cfg and sandbox_imports.unchanged_since_prune():
        return  # a zygote's task process: everything below is done and inherited
    policy = policy_for(cfg)
    sandbox_imports.prune_modules(policy, bool(cfg.allow_transitive_imports))
    views = sandbox_builtins.views(cfg)
    if not isinstance(importlib.import_module, HardenedCallable):
        trust = bool(cfg.allow_transitive_imports)
        importlib.import_module = harden(
            sandbox_imports.Guard(policy, sandbox_imports.ORIGINAL_IMPORT_MODULE, True, trust, views),
            "<built-in function import_module>")
        importlib.__import__ = harden(
            sandbox_imports.Guard(policy, sandbox_imports.ORIGINAL_IMPORTLIB_IMPORT, False, trust, views),
            "<built-in function __import__>")
    if views is not None:
        source_files_only(linecache)
        views.prepare()
    _prepared = cfg


# The configuration prepare_process last prepared this process for. Every step above is
# idempotent, but each walks objects shared with the zygote, and each object it touches is a
# copy-on-write page fault in a forked task process: the zygote's tasks skip them all.
_prepared = None


def prepare_zygote(cfg) -> None:
    """Builds cfg's builtins ahead of the forks; optional, and safe in a process that runs no task."""
    sandbox_builtins.prepare(cfg)
