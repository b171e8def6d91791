"""A task process: serves tasks on its own channel; in isolated mode one task, then it exits.

Started either by the zygote (a fork, see zygote.py) or, in the spawn baseline, as a fresh
interpreter running main() with its channel on fd 3 and the configuration as the first frame.
"""

import json
import os
import socket
import sys

from . import hardening
from .channel import ChannelClosed, read_frame, write_frame
from .config import Config
from .encoding import encode_or_error
from .execute import run_task

# Exit status of a task process whose fences could not be put up (EX_SOFTWARE).
EXIT_FENCE_FAILED = 70


def _quiet_standard_streams() -> None:
    """Points fds 0-2 at /dev/null: user code writing there reaches nobody's log."""
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    if devnull > 2:
        os.close(devnull)


def prepare(cfg: Config) -> None:
    """Fences the process and silences its standard streams; exits if a fence fails."""
    try:
        hardening.fence_task_process(cfg.task_uid, cfg.task_gid, cfg.landlock_abi)
    except Exception as exc:  # noqa: BLE001 - any failure means no user code may run
        print(f"pyrunner task process: {exc}", file=sys.stderr, flush=True)
        os._exit(EXIT_FENCE_FAILED)
    _quiet_standard_streams()
    if cfg.block_env_access:
        # N8N_BLOCK_RUNNER_ENV_ACCESS: the task sees an empty os.environ (reference §12.4).
        os.environ.clear()


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
        write_frame(sock, encode_or_error(reply))
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
    prepare(cfg)
    serve(sock, cfg, max_tasks=1)
