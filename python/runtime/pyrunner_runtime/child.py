"""A task process: serves tasks on its own channel; in isolated mode one task, then it exits.

Started either by the zygote (a fork, see zygote.py) or, in the spawn baseline, as a fresh
interpreter running main() with its channel on fd 3 and the configuration as the first frame.
Before it reads a task it fences itself in (hardening.py): nothing below runs user code until
every fence is up.
"""

import base64
import collections
import json
import marshal
import os
import socket
import sys
import tempfile
import time

from . import hardening, sandbox
from .channel import ChannelClosed, read_frame, write_frame
from .config import Config
from .encoding import encode_message, encode_or_error
from .execute import run_task

# Exit status of a task process whose fences could not be put up (EX_SOFTWARE).
EXIT_FENCE_FAILED = 70

# Always readable by tasks besides the interpreter's own directories; always writable besides the
# task's working directory.
SYSTEM_READABLE = ("/usr", "/lib", "/lib32", "/lib64", "/libx32", "/bin", "/sbin", "/etc", "/proc", "/sys",
                   "/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")
SYSTEM_WRITABLE = ("/dev/null", "/dev/full")

NETWORK_DISABLED = "Network access is disabled for Code nodes (N8N_PYTHON_NETWORK_ACCESS=false)"


def readable_paths(cfg: Config) -> list:
    """What tasks may read: the interpreter, its sys.path, the system directories, the operator's."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    paths.update(p for p in sys.path if p and os.path.isabs(p))
    paths.update(SYSTEM_READABLE)
    paths.update(cfg.readable_paths)
    return sorted(p for p in paths if os.path.exists(p))


def _quiet_standard_streams() -> None:
    """Points fds 0-2 at /dev/null: user code writing there reaches nobody's log."""
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    if devnull > 2:
        os.close(devnull)


# How old a zygote's count of a shared uid's processes may be (Fences.count_processes).
_RECOUNT_SECONDS = 1.0


class Fences:
    """Everything task processes need to fence themselves in, prepared once per zygote (or per
    spawned interpreter) so that each fork does only what is its own."""

    def __init__(self, cfg: Config, own_uid: bool):
        self.cfg = cfg
        # A uid of its own per task process (root): the kernel keeps tasks apart, and
        # RLIMIT_NPROC counts from zero. Otherwise tasks share a uid.
        self.own_uid = own_uid
        self.landlock = hardening.LandlockPlan(cfg.landlock_abi, readable_paths(cfg), cfg.network)
        # Signals: a uid of its own, or Landlock's signal scope (ABI 6), keeps them in; otherwise
        # the filter does, at the price of signalling only its own process group.
        self.seccomp = hardening.SeccompPlan(cfg.network, own_group_signals_only=not own_uid and cfg.landlock_abi < 6)
        # With a shared uid: its processes when a zygote last counted them, and when.
        self.counted = None
        self.counted_at = 0.0

    def _shared_uid(self) -> int:
        """The uid all tasks share (without a uid of their own): task_uid, or -1 for this
        process's own, which a task process keeps."""
        return self.cfg.task_uid if self.cfg.task_uid >= 0 else os.geteuid()

    def count_processes(self) -> None:
        """A zygote about to fork counts the shared uid's processes, at most once a second, for
        its task processes' RLIMIT_NPROC: counting reads every process's status under /proc
        (about 2 ms with 90 processes), too much to do in every task process."""
        if self.own_uid or self.cfg.max_processes <= 0:
            return
        now = time.monotonic()
        if self.counted is None or now - self.counted_at >= _RECOUNT_SECONDS:
            try:
                self.counted, self.counted_at = hardening.processes_of(self._shared_uid()), now
            except OSError:
                # No /proc to read: each task process tries for itself and, failing, says why.
                self.counted = None

    def process_limit(self) -> int:
        """RLIMIT_NPROC for a task process (0: none), which counts every process of the user:
        N8N_PYTHON_MAX_PROCESSES more than the uid has. With a uid of its own that is none; with
        the shared one, what the zygote counted (and this process, forked since), or a count
        taken now."""
        if self.cfg.max_processes <= 0:
            return 0
        if self.own_uid:
            return self.cfg.max_processes
        have = self.counted + 1 if self.counted is not None else hardening.processes_of(self._shared_uid())
        return self.cfg.max_processes + have


def begin_fencing(fences: Fences, uid: int, gid: int) -> int:
    """First steps in a new task process, while it still holds the zygote's descriptors: its own
    session, its working directory, its Landlock ruleset (returned; -1 without Landlock)."""
    os.setsid()  # own session and process group: the whole group dies with one killpg
    writable = list(SYSTEM_WRITABLE)
    cfg = fences.cfg
    if cfg.tasks_dir:
        workdir = os.path.join(cfg.tasks_dir, str(os.getpid()))
        os.mkdir(workdir, 0o700)
        if uid >= 0 and os.geteuid() == 0:
            os.chown(workdir, uid, gid)
        os.chdir(workdir)
        tempfile.tempdir = workdir
        writable.append(workdir)
    return fences.landlock.ruleset(writable)


def finish_fencing(fences: Fences, uid: int, gid: int, ruleset: int) -> None:
    """The rest, once only the task's own descriptors are left: limits, identity, Landlock, seccomp."""
    cfg = fences.cfg
    hardening.set_limits(cfg.memory_mb, cfg.cpu_seconds, fences.process_limit())
    if uid >= 0 and os.geteuid() != uid:
        hardening.drop_privileges(uid, gid)
    # After the credential change, which clears it: die with the zygote.
    hardening.prctl(hardening.PR_SET_PDEATHSIG, 9)
    hardening.prctl(hardening.PR_SET_DUMPABLE, 0)
    hardening.prctl(hardening.PR_SET_NO_NEW_PRIVS, 1)
    hardening.restrict_self(ruleset)
    fences.seccomp.install(os.getpid())


def _network_guard(event: str, args) -> None:
    if event == "socket.__new__" and len(args) > 1 and args[1] in (socket.AF_INET, socket.AF_INET6):
        raise PermissionError(NETWORK_DISABLED)
    if event in ("socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyname_ex", "socket.gethostbyaddr"):
        raise PermissionError(NETWORK_DISABLED)


def fence_failed(exc: BaseException) -> None:
    """No user code may run in a process whose fences are not all up."""
    print(f"pyrunner task process: {exc}", file=sys.stderr, flush=True)
    os._exit(EXIT_FENCE_FAILED)


def prepare(fences: Fences, uid: int, gid: int, ruleset: int) -> None:
    """Fences the process in and readies it for user code; exits if a fence fails."""
    try:
        finish_fencing(fences, uid, gid, ruleset)
    except Exception as exc:  # noqa: BLE001 - any failure means no user code may run
        fence_failed(exc)
    cfg = fences.cfg
    _quiet_standard_streams()
    if cfg.block_env_access and os.environ:
        # N8N_BLOCK_RUNNER_ENV_ACCESS: the task sees an empty os.environ (docs/sandbox.md §4.1).
        # A zygote's task process finds it cleared already: clearing an empty one still walks
        # the mapping's methods, about 20 copy-on-write faults.
        os.environ.clear()
    if not cfg.network:
        # The seccomp filter and Landlock refuse the sockets anyway; this says why.
        sys.addaudithook(_network_guard)
    sandbox.prepare_process(cfg)


def _reply(reply: dict, cfg: Config) -> bytes:
    payload = encode_or_error(reply)
    if cfg.max_result_bytes and len(payload) > cfg.max_result_bytes:
        return encode_message({
            "op": "error", "kind": "user", "print_args": [],
            "error": {"message": "Task result of %.1f MB exceeds the limit of %s (%s)"
                      % (len(payload) / (1 << 20), _size(cfg.max_result_bytes), cfg.max_result_setting),
                      "description": "", "stack": ""},
        })
    return payload


def _size(n: int) -> str:
    """A limit as its setting gives it: whole MB, else bytes."""
    return "%d MB" % (n >> 20) if n % (1 << 20) == 0 else "%d bytes" % n


_READY = encode_message({"op": "ready"})

# Run once per interpreter before its first task, so that the first task does not pay for what
# Python builds on first use (the analysis's and the compiler's tables, the encoder). The zygote
# runs it before it forks: run in each forked process, it cost about 250 copy-on-write page
# faults there, while the task that follows the zygote's warm-up pays about 50.
_WARM_UP = json.dumps({
    "code": "x = [{'json': {'i': i, 's': str(i)}} for i in range(3)]\nprint('warm', 1, {'a': [1.5]})\nreturn x",
    "nodeMode": "runOnceForAllItems", "items": [{"json": {"a": 1}, "pairedItem": {"item": 0}}],
})


# How many compiled Code nodes a reuse worker keeps for its later tasks.
_OWN_CODE_CACHE = 64


def warm_up(cfg: Config) -> None:
    """Runs pyrunner's own warm-up task (never user code) and drops its reply."""
    encode_or_error(run_task(json.loads(_WARM_UP), cfg))


def serve(sock: socket.socket, cfg: Config, max_tasks: int, warmed: bool = False) -> None:
    """Says it is ready, then runs tasks from sock until max_tasks are done (0: no limit) or Go
    closes it; never returns. warmed: warm_up ran in this interpreter already (the zygote's)."""
    if not warmed:
        warm_up(cfg)
    write_frame(sock, _READY)
    done = 0
    # A reuse worker's own compiled code, by mode and code: its later runs of a node skip the
    # compiling (python/doc.go, "compiled code").
    own = collections.OrderedDict() if max_tasks != 1 else None
    while True:
        try:
            msg = json.loads(read_frame(sock))
        except ChannelClosed:
            os._exit(0)
        if msg.get("op") != "task":
            os._exit(EXIT_FENCE_FAILED)
        settings = msg.get("settings")
        key = _code_key(settings) if own is not None else None
        compiled = own.get(key) if key is not None else None
        from_own = compiled is not None
        if from_own:
            own.move_to_end(key)
        elif isinstance(msg.get("compiled"), str):
            compiled = marshal.loads(base64.b64decode(msg["compiled"]))
            if key is not None:
                _keep(own, key, compiled)
        on_compiled = None
        if compiled is None:
            def on_compiled(code, want=msg.get("wantCompiled") is True):
                # Sent before any user code of this process runs: the only moment the runner
                # takes compiled code from a process (its code cache).
                if want:
                    write_frame(sock, encode_message({"op": "compiled", "code": base64.b64encode(marshal.dumps(code)).decode()}))
                if key is not None:
                    _keep(own, key, code)
        reply = run_task(settings, cfg, analyzed=msg.get("analyzed") is True or compiled is not None,
                         compiled=compiled, on_compiled=on_compiled)
        if from_own:
            # For the code cache's counts: this run compiled nothing.
            reply["ownCompiled"] = True
        payload = _reply(reply, cfg)
        del reply, msg, settings, compiled, on_compiled
        write_frame(sock, payload)
        done += 1
        if max_tasks and done >= max_tasks:
            # os._exit: no interpreter teardown, and threads the user left running die now.
            os._exit(0)


def _keep(own, key, code) -> None:
    own[key] = code
    if len(own) > _OWN_CODE_CACHE:
        own.popitem(last=False)


def _code_key(settings):
    if not isinstance(settings, dict) or not isinstance(settings.get("code"), str):
        return None
    return (settings.get("nodeMode"), settings["code"])


def main() -> None:
    """Spawn baseline: a fresh interpreter per task, channel on fd 3."""
    sock = socket.socket(fileno=3)
    try:
        first = json.loads(read_frame(sock))
    except ChannelClosed:
        os._exit(0)
    cfg = Config.from_message(first)
    if cfg.landlock_abi < 0:
        cfg = cfg.with_landlock_abi(hardening.landlock_abi())
    fences = Fences(cfg, own_uid=False)
    try:
        ruleset = begin_fencing(fences, cfg.task_uid, cfg.task_gid)
    except Exception as exc:  # noqa: BLE001
        fence_failed(exc)
    prepare(fences, cfg.task_uid, cfg.task_gid, ruleset)
    serve(sock, cfg, max_tasks=1)
