"""A task process: serves tasks on its own channel; in isolated mode one task, then it exits.

Started either by the zygote (a fork, see zygote.py) or, in the spawn baseline, as a fresh
interpreter running main() with its channel on fd 3 and the configuration as the first frame.
Before it reads a task it fences itself in (hardening.py): nothing below runs user code until
every fence is up.
"""

import json
import os
import socket
import sys
import tempfile

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


def _fence(cfg: Config, uid: int, gid: int, readable, own_uid: bool) -> None:
    os.setsid()  # own session and process group: the whole group dies with one killpg
    pid = os.getpid()
    workdir = None
    if cfg.tasks_dir:
        workdir = os.path.join(cfg.tasks_dir, str(pid))
        os.mkdir(workdir, 0o700)
        if uid >= 0 and os.geteuid() == 0:
            os.chown(workdir, uid, gid)
        os.chdir(workdir)
        tempfile.tempdir = workdir
    nproc = 0
    if cfg.max_processes > 0:
        # RLIMIT_NPROC counts every process of the user: a uid of its own starts from zero.
        nproc = cfg.max_processes + (0 if own_uid else hardening.processes_of(uid if uid >= 0 else os.geteuid()))
    hardening.set_limits(cfg.memory_mb, cfg.cpu_seconds, nproc)
    if uid >= 0 and os.geteuid() != uid:
        hardening.drop_privileges(uid, gid)
    # After the credential change, which clears it: die with the zygote.
    hardening.prctl(hardening.PR_SET_PDEATHSIG, 9)
    hardening.prctl(hardening.PR_SET_DUMPABLE, 0)
    hardening.prctl(hardening.PR_SET_NO_NEW_PRIVS, 1)
    writable = list(SYSTEM_WRITABLE) + ([workdir] if workdir else [])
    hardening.enter_landlock_domain(cfg.landlock_abi, readable, writable, network=cfg.network)
    # Signals: a uid of its own, or Landlock's signal scope (ABI 6), keeps them in; otherwise the
    # filter does, at the price of signalling only its own process group.
    shared_uid = not own_uid
    hardening.install_seccomp(cfg.network, own_group_signals_only=shared_uid and cfg.landlock_abi < 6, own_pid=pid)


def _network_guard(event: str, args) -> None:
    if event == "socket.__new__" and len(args) > 1 and args[1] in (socket.AF_INET, socket.AF_INET6):
        raise PermissionError(NETWORK_DISABLED)
    if event in ("socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyname_ex", "socket.gethostbyaddr"):
        raise PermissionError(NETWORK_DISABLED)


def prepare(cfg: Config, uid: int, gid: int, readable, own_uid: bool = False) -> None:
    """Fences the process in and prepares it for user code; exits if a fence fails."""
    try:
        _fence(cfg, uid, gid, readable, own_uid)
    except Exception as exc:  # noqa: BLE001 - any failure means no user code may run
        print(f"pyrunner task process: {exc}", file=sys.stderr, flush=True)
        os._exit(EXIT_FENCE_FAILED)
    _quiet_standard_streams()
    if cfg.block_env_access:
        # N8N_BLOCK_RUNNER_ENV_ACCESS: the task sees an empty os.environ (reference §12.4).
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
            "error": {"message": "Task result of %.1f MB exceeds the limit of %d MB (N8N_PYTHON_MAX_RESULT_MB)"
                      % (len(payload) / (1 << 20), cfg.max_result_bytes >> 20), "description": "", "stack": ""},
        })
    return payload


def serve(sock: socket.socket, cfg: Config, max_tasks: int) -> None:
    """Runs tasks from sock until max_tasks are done (0: no limit) or Go closes it; never returns."""
    done = 0
    while True:
        try:
            msg = json.loads(read_frame(sock))
        except ChannelClosed:
            os._exit(0)
        if msg.get("op") != "task":
            os._exit(EXIT_FENCE_FAILED)
        reply = run_task(msg.get("settings"), cfg)
        payload = _reply(reply, cfg)
        del reply, msg
        write_frame(sock, payload)
        done += 1
        if max_tasks and done >= max_tasks:
            # os._exit: no interpreter teardown, and threads the user left running die now.
            os._exit(0)


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
    prepare(cfg, cfg.task_uid, cfg.task_gid, readable_paths(cfg))
    serve(sock, cfg, max_tasks=1)
