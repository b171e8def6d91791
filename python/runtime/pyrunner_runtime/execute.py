"""One Code-node task: the semantics of n8n's Python Code node (docs/code-node.md §3–§10).

run_task takes broker:tasksettings.settings and returns the one message the task
process sends back (python/doc.go): {"op": "result", ...} or {"op": "error", ...}.
It never raises. continueOnFail is not applied here: the Go side turns an error of
kind "user" into the single {"json": {"error": message}} item.
"""

import ast
import sys
import traceback

from . import sandbox
from .printing import MAX_PRINT_CHARS, PrintCapture, StderrCapture
from .texts import text

ALL_ITEMS = "runOnceForAllItems"
EACH_ITEM = "runOnceForEachItem"

# The virtual file names n8n's runner compiles user code under (docs/code-node.md §3);
# the transitive-imports check (docs/sandbox.md §6) recognises user frames by them.
ALL_ITEMS_FILENAME = "<all_items_task_execution>"
PER_ITEM_FILENAME = "<per_item_task_execution>"
_FILENAMES = {ALL_ITEMS: ALL_ITEMS_FILENAME, EACH_ITEM: PER_ITEM_FILENAME}
_USER_FILENAMES = frozenset(_FILENAMES.values())

# The global the wrapper stores the user function's return value in (n8n's name).
OUTPUT_KEY = "__n8n_internal_user_output__"
_USER_FUNCTION = "_user_function"

# The message when the static analysis itself failed (out of memory, say): the code is not run.
ANALYSIS_FAILED = "The code could not be checked for security violations"

# The most characters of traceback sent as error.stack; n8n never shows it.
MAX_STACK_CHARS = 16 * 1024

# FunctionDef gained type_params in 3.12; set it there so the wrapper node is complete.
_FUNCTION_DEF_EXTRA = {"type_params": []} if sys.version_info >= (3, 12) else {}


def run_task(settings: dict, cfg, analyzed: bool = False, compiled=None, on_compiled=None) -> dict:
    """Run one task's user code and return its result or error message.

    analyzed: the runner has seen this very code pass the static analysis under the same
    allowlists (its verdict cache), so the check is skipped.
    compiled: the code object of this very code, as a process that had run no user code
    compiled it (the runner's code cache, or this worker's own): parsing, analysis, rewriting
    and compiling are skipped.
    on_compiled: called with the code object once the code is compiled and before it runs.
    """
    capture = PrintCapture(cfg.max_prints, cfg.max_output_chars or MAX_PRINT_CHARS)
    try:
        return _run(settings, cfg, capture, analyzed, compiled, on_compiled)
    except BaseException as exc:  # a failure of this module, not of user code
        return _error("user", _safe_str(exc), "", "", capture.print_args())


def _run(settings, cfg, capture, analyzed, compiled_code=None, on_compiled=None):
    # The runner checked the settings already (runner/settings.go); this is the defence in
    # depth, in the same words (texts.json).
    if not isinstance(settings, dict):
        return _settings_error(text("settings_not_object"))
    code = settings.get("code")
    mode = settings.get("nodeMode")
    items = settings.get("items")
    if code is None:
        return _settings_error(text("missing_field", field="code"))
    if not isinstance(code, str):
        return _settings_error(text("invalid_field", field="code", kind="a string"))
    filename = _FILENAMES.get(mode) if isinstance(mode, str) else None
    if mode is None:
        return _settings_error(text("missing_field", field="nodeMode"))
    if filename is None:
        return _settings_error(text("unknown_node_mode", mode=mode))
    if items is None:
        return _settings_error(text("missing_field", field="items"))
    if not isinstance(items, list):
        return _settings_error(text("invalid_field", field="items", kind="an array"))

    # Redirected from parsing on, so a SyntaxWarning lands in the task's stderr
    # (and so in a later error's description), as in n8n's child process.
    real_stderr = sys.stderr
    sys.stderr = stderr = StderrCapture()
    try:
        compiled = compiled_code if compiled_code is not None else _compile(code, filename, cfg, analyzed)
        if isinstance(compiled, dict):
            return compiled
        if on_compiled is not None and compiled_code is None:
            on_compiled(compiled)
        return _execute(compiled, filename, settings, cfg, capture, stderr)
    finally:
        sys.stderr = real_stderr


def _compile(code: str, filename: str, cfg, analyzed: bool):
    """The static stage, before any user code runs: the code object, or a "static" error."""
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        return _static_error(exc)
    except (ValueError, RecursionError, MemoryError) as exc:  # null bytes, absurd nesting
        return _error("static", _safe_str(exc), None, "", [])
    try:
        violations = [] if analyzed else sandbox.check(tree, code, cfg)
        if violations:
            return _error("static", "Security violations detected", "\n".join(violations), "", [])
        tree = sandbox.rewrite(tree, cfg)
    except Exception as exc:  # noqa: BLE001 - code that could not be checked does not run
        return _error("static", ANALYSIS_FAILED, _safe_str(exc) or type(exc).__name__, "", [])
    try:
        return compile(_wrap(tree), filename, "exec")
    except SyntaxError as exc:  # what only the compiler sees, e.g. a bad nonlocal
        return _static_error(exc)
    except (ValueError, RecursionError, MemoryError) as exc:
        return _error("static", _safe_str(exc), None, "", [])


def _execute(compiled, filename: str, settings: dict, cfg, capture: PrintCapture, stderr: StderrCapture) -> dict:
    user_builtins = sandbox.make_builtins(cfg, capture.print)
    # The hardened print (docs/sandbox.md §4.5), writing to this task's capture.
    print_fn = sandbox.task_print(cfg)
    items = settings["items"]
    try:
        if filename == ALL_ITEMS_FILENAME:
            result = _run_all_items(compiled, user_builtins, print_fn, items, settings.get("query"))
        else:
            result = _run_each_item(compiled, user_builtins, print_fn, items)
    except BaseException as exc:  # SystemExit and KeyboardInterrupt are user errors too
        reply = _user_error(exc, stderr.getvalue(), settings["code"], capture.print_args(), cfg.memory_mb)
    else:
        reply = {"op": "result", "result": result, "print_args": capture.print_args()}
    # The code got past the static analysis: the runner may remember that for this code.
    reply["analysis"] = "passed"
    return reply


def _wrap(tree: ast.Module) -> ast.Module:
    """def _user_function(): <the user's statements>; __n8n_internal_user_output__ = _user_function()

    Wrapping the parsed statements, not indented text, keeps multi-line string
    literals intact and keeps every statement's own line number. n8n's runner
    indents the text under a def line, so its tracebacks are shifted by +1; ours
    deliberately show the user's line numbers.
    """
    body = tree.body
    if not body:  # only comments or whitespace
        body = [ast.Pass(lineno=1, col_offset=0, end_lineno=1, end_col_offset=0)]
    func = ast.FunctionDef(
        name=_USER_FUNCTION,
        args=ast.arguments(
            posonlyargs=[], args=[], vararg=None, kwonlyargs=[], kw_defaults=[], kwarg=None, defaults=[]
        ),
        body=body,
        decorator_list=[],
        returns=None,
        type_comment=None,
        **_FUNCTION_DEF_EXTRA,
    )
    call = ast.Assign(
        targets=[ast.Name(id=OUTPUT_KEY, ctx=ast.Store())],
        value=ast.Call(func=ast.Name(id=_USER_FUNCTION, ctx=ast.Load()), args=[], keywords=[]),
        type_comment=None,
    )
    # The wrapper's own nodes sit on line 1. The user's nodes keep their
    # locations, and are not walked: fix_missing_locations over the whole
    # module costs about 0.6 us per node, 1.5 ms for a 60-line script.
    func.lineno = func.end_lineno = 1
    func.col_offset = func.end_col_offset = 0
    ast.fix_missing_locations(call)
    return ast.Module(body=[func, call], type_ignores=[])


def _run_all_items(compiled, user_builtins, print_fn, items, query):
    # _items is the very list n8n sent: user code reads and returns it as is (docs/code-node.md §4).
    env = {"__builtins__": user_builtins, "print": print_fn, "_items": items, "_query": query}
    exec(compiled, env)
    return env[OUTPUT_KEY]


def _run_each_item(compiled, user_builtins, print_fn, items):
    out = []
    for index, item in enumerate(items):
        # Fresh globals per item: nothing one item's code sets is seen by the next.
        env = {"__builtins__": user_builtins, "print": print_fn, "_item": item}
        exec(compiled, env)
        value = env[OUTPUT_KEY]
        if value is None:
            continue  # filtered out; the other items keep their input index
        out.append(_per_item_output(value, index))
    return out


def _per_item_output(value, index: int) -> dict:
    """The emitted item for one per-item return value (docs/code-node.md §5's table)."""
    if not isinstance(value, dict):
        return {"json": value, "pairedItem": {"item": index}}
    if "json" in value:
        emitted = {"json": value["json"]}
    elif "binary" in value:
        emitted = {"json": {k: v for k, v in value.items() if k != "binary"}}
    else:
        emitted = {"json": value}
    emitted["pairedItem"] = {"item": index}  # never the user's own pairedItem
    # After pairedItem: the key order n8n's own runner gives its per-item results.
    if "binary" in value:
        emitted["binary"] = value["binary"]
    return emitted


def _user_error(exc: BaseException, stderr_text: str, code: str, print_args, memory_mb: int) -> dict:
    if isinstance(exc, SystemExit):
        message = "Process exited with code %s" % (exc.code,)
    elif isinstance(exc, MemoryError) and memory_mb:
        # With N8N_PYTHON_MAX_MEMORY_MB set, a MemoryError is that limit being hit.
        message = "Task exceeded the memory limit of %d MB" % memory_mb
    else:
        message = _safe_str(exc)  # "boom", not "ValueError: boom"
    try:
        description = getattr(exc, "description", None)
    except Exception:
        description = None
    # As n8n does (`description or stderr`): an empty description falls back too.
    if not isinstance(description, str) or not description:
        description = stderr_text
    return _error("user", message, description, _format_stack(exc, code), print_args)


def _static_error(exc: SyntaxError) -> dict:
    """A syntax error: str(exc) with the user's line number, and no description key (docs/errors.md §2)."""
    try:
        stack = "".join(traceback.format_exception_only(type(exc), exc))
    except Exception:
        stack = ""
    return _error("static", _safe_str(exc), None, stack[:MAX_STACK_CHARS], [])


def _settings_error(message: str) -> dict:
    return _error("static", message, "", "", [])


def _error(kind: str, message: str, description, stack: str, print_args) -> dict:
    if description is None:
        error = {"message": message, "stack": stack}
    else:
        error = {"message": message, "description": description, "stack": stack}
    return {"op": "error", "kind": kind, "error": error, "print_args": print_args}


def _format_stack(exc: BaseException, code: str) -> str:
    """The traceback through the user's frames only, with their source lines."""
    try:
        lines = code.splitlines()
        frames = []
        for frame, lineno in traceback.walk_tb(exc.__traceback__):
            co = frame.f_code
            # Skip the wrapper's call on line 1; keep every frame of the user's code.
            if co.co_filename not in _USER_FILENAMES or co.co_name == "<module>":
                continue
            line = lines[lineno - 1].strip() if 0 < lineno <= len(lines) else ""
            frames.append(traceback.FrameSummary(co.co_filename, lineno, co.co_name, lookup_line=False, line=line))
        # StackSummary folds repeated frames ("[Previous line repeated 996 more times]").
        text = "".join(traceback.StackSummary.from_list(frames).format())
        text = "Traceback (most recent call last):\n" + text if text else ""
        text += "".join(traceback.format_exception_only(type(exc), exc))
    except Exception:
        return ""
    return text[:MAX_STACK_CHARS]


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:
        return "<exception str() failed>"
