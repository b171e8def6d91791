"""The zygote: imports the runtime once, then forks task processes on Go's request.

It never runs user code; it runs pyrunner's own warm-up task once (child.warm_up), so that its
task processes inherit what that builds. Its control socket (fd 3, SOCK_SEQPACKET) carries one
JSON object per packet; a spawn request carries the new task process's channel as an
SCM_RIGHTS descriptor.
See python/doc.go for the messages.
"""

import array
import collections
import json
import os
import platform
import select
import shutil
import signal
import _signal
import socket
import sys
import time
import traceback

from . import child, codemaps, hardening, immortal, sandbox
from .config import Config

_MAX_PACKET = 1 << 16
# How long shutdown keeps killing what task processes left behind (a fork bomb included).
_SHUTDOWN_SWEEP_SECONDS = 0.5


class GoHungUp(Exception):
    """The Go side closed the control socket: the zygote takes its children down and exits."""


def _send(ctl: socket.socket, msg) -> None:
    """Sends msg, a dict, or bytes already encoded (the two messages of every task, below)."""
    try:
        ctl.send(msg if isinstance(msg, bytes) else json.dumps(msg).encode())
    except (BrokenPipeError, ConnectionResetError) as exc:
        raise GoHungUp() from exc


def _recv(ctl: socket.socket, flags: int = 0):
    """One packet and the descriptors that came with it; (None, []) when Go hung up. With
    MSG_DONTWAIT, BlockingIOError when none is queued."""
    fds = array.array("i")
    try:
        data, ancdata, _flags, _addr = ctl.recvmsg(_MAX_PACKET, socket.CMSG_SPACE(4 * fds.itemsize), flags)
    except ConnectionResetError:
        return None, []
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
    if not data:
        return None, list(fds)
    return json.loads(data), list(fds)


# The zygote writes to every page it touches after a fork, and each first write costs a
# copy-on-write fault: json.dumps alone touched about 60 pages per message. The two messages
# sent for every task are formatted by hand.
def _exit_report(pid: int, status: int) -> bytes:
    if os.WIFSIGNALED(status):
        return b'{"op":"exited","pid":%d,"signal":%d}' % (pid, os.WTERMSIG(status))
    return b'{"op":"exited","pid":%d,"code":%d}' % (pid, os.waitstatus_to_exitcode(status))


def _spawned(spawn_id, pid: int):
    if type(spawn_id) is not int:  # Go always sends one; anything else goes back as it came
        return {"op": "spawned", "id": spawn_id, "pid": pid}
    return b'{"op":"spawned","id":%d,"pid":%d}' % (spawn_id, pid)


class Zygote:
    def __init__(self, ctl: socket.socket, cfg: Config):
        self.ctl = ctl
        self.cfg = cfg
        self.children = {}  # live task process pid -> its uid (or -1)
        self.spawn_ids = {}  # live task process pid -> the id of the spawn request it was forked for
        # A uid of its own per live task process (the Go side decides: a root pyrunner with a
        # range of uids), handed out least recently used first.
        self.own_uids = cfg.uid_per_task
        self.free_uids = collections.deque(range(cfg.task_uid, cfg.task_uid + cfg.task_uid_count)) if self.own_uids else None
        self.fences = child.Fences(cfg, self.own_uids)
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        os.set_blocking(self.wake_r, False)
        # Orphans of task processes (a grandchild whose parent exited) come to us, not to init,
        # so that we can kill them.
        hardening.prctl(hardening.PR_SET_CHILD_SUBREAPER, 1)

    def spawn_all(self, requests: list) -> None:
        """Forks a task process for each (spawn message, descriptors) and answers each.

        The forks come back to back, with the checks before and the answers after them: after
        a fork every page the zygote writes is a copy-on-write fault, and between two of these
        forks it writes only the few this loop touches, not the hundred and more of a round of
        its main loop."""
        ready = []
        for msg, fds in requests:
            max_tasks = msg.get("maxTasks", 1)
            problem = None
            if len(fds) != 1:
                problem = "expected one descriptor"
            elif type(max_tasks) is not int or max_tasks < 0:
                problem = "maxTasks is not a count"
            elif self.own_uids and not self.free_uids:
                problem = "no free task uid"
            if problem:
                for fd in fds:
                    os.close(fd)
                _send(self.ctl, {"op": "spawnfailed", "id": msg.get("id"), "error": problem})
                continue
            uid = self.free_uids.popleft() if self.own_uids else self.cfg.task_uid
            ready.append((msg.get("id"), fds[0], max_tasks, uid))
        if ready:
            self.fences.count_processes()
        forked = []  # (pid, None), or (None, why the fork failed)
        for spawn_id, chan, max_tasks, uid in ready:
            try:
                pid = os.fork()
            except OSError as exc:
                forked.append((None, str(exc)))
                continue
            if pid == 0:
                self._become_task_process(chan, max_tasks, uid)
            forked.append((pid, None))
        answers = []
        for (spawn_id, chan, _max_tasks, uid), (pid, error) in zip(ready, forked):
            os.close(chan)  # only that child may hold it
            if error is not None:
                if self.own_uids:
                    self.free_uids.append(uid)
                answers.append({"op": "spawnfailed", "id": spawn_id, "error": error})
                continue
            self.children[pid] = uid if self.own_uids else -1
            self.spawn_ids[pid] = spawn_id
            answers.append(_spawned(spawn_id, pid))
        for answer in answers:  # every child known before Go can hang up on one
            _send(self.ctl, answer)

    def _become_task_process(self, chan: int, max_tasks: int, uid: int) -> None:
        try:
            signal.set_wakeup_fd(-1)
            # _signal's, not signal.signal: that wraps the old handler (_wake) in the Handlers
            # enum, which fails with a formatted ValueError: about 25 page faults per task.
            _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)
            gid = uid if self.own_uids else self.cfg.task_gid
            # While fd 3 is still the control socket, so that the ruleset lands above it.
            ruleset = child.begin_fencing(self.fences, uid, gid)
            self.ctl.close()
            # Keep 0-2, the channel (3) and the ruleset (4) only: no other task's channel, no
            # control socket, none of the zygote's prepared descriptors.
            os.dup2(chan, 3)
            if ruleset >= 0:
                os.dup2(ruleset, 4)
                ruleset = 4
            os.closerange(5 if ruleset == 4 else 4, os.sysconf("SC_OPEN_MAX"))
            sock = socket.socket(fileno=3)
        except BaseException as exc:  # noqa: BLE001
            child.fence_failed(exc)
        try:
            child.prepare(self.fences, uid, gid, ruleset)
            child.serve(sock, self.cfg, max_tasks, warmed=True)
        finally:
            os._exit(child.EXIT_FENCE_FAILED)

    def kill(self, msg: dict) -> None:
        pid = int(msg.get("pid", 0))
        # Unreaped, so the pid cannot have been reused by another process; and forked for the
        # spawn the message names, not a child forked since under a reused pid (Go asks to kill a
        # task process that is done as it exits; this zygote may have reaped it and forked again).
        if pid in self.children and self.spawn_ids.get(pid) == msg.get("id"):
            try:
                os.killpg(pid, int(msg.get("signal", signal.SIGKILL)))
            except ProcessLookupError:
                pass  # already gone
            except PermissionError:
                os.kill(pid, int(msg.get("signal", signal.SIGKILL)))

    def reap(self) -> None:
        try:
            while os.read(self.wake_r, 512):
                pass
        except BlockingIOError:
            pass
        orphan_died = False
        for pid, status in _reaped():
            if pid in self.children:
                uid = self.children.pop(pid)
                self.spawn_ids.pop(pid, None)
                _send(self.ctl, _exit_report(pid, status))
                self.clean_up_after(pid, uid)
            else:
                orphan_died = True
        if orphan_died:
            # Its own children, if any, have just been adopted by us.
            self.sweep_orphans()

    def clean_up_after(self, pid: int, uid: int) -> None:
        """Everything a finished task started dies, however it was forked; its files go."""
        try:
            os.killpg(pid, signal.SIGKILL)  # its process group
        except (ProcessLookupError, PermissionError):
            pass
        # Its surviving children were adopted by us (we are a subreaper) the moment it died, and
        # their descendants will be as their parents die: none left means nothing left.
        orphans = self.sweep_orphans()
        if uid >= 0:
            if orphans:
                hardening.kill_all_of(uid)  # every process of its own uid, whatever its group
            self.free_uids.append(uid)
        if self.cfg.tasks_dir:
            workdir = os.path.join(self.cfg.tasks_dir, str(pid))
            try:
                os.rmdir(workdir)  # mostly empty: no rmtree, which touches far more pages
            except FileNotFoundError:
                pass
            except OSError:
                shutil.rmtree(workdir, ignore_errors=True)

    def sweep_orphans(self) -> int:
        """SIGKILLs our children that are not live task processes: descendants of finished tasks
        that left their process group. Returns how many there were."""
        orphans = [pid for pid in hardening.own_children() if pid not in self.children]
        for pid in orphans:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return len(orphans)

    def shutdown(self, status: int = 0) -> None:
        """Kills every task process and all they started, then exits with status (through
        os._exit: never interpreter finalization, see immortal.py). What a task detached from
        its group is adopted by us as its parents die, so the sweep repeats until no child is
        left; with uids of their own, whatever still runs as those uids goes too."""
        uids = [uid for uid in self.children.values() if uid >= 0]
        for pid in list(self.children):
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + _SHUTDOWN_SWEEP_SECONDS
        while time.monotonic() < deadline:
            for _ in _reaped():
                pass
            left = hardening.own_children()
            if not left:
                break
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.005)
        for uid in uids:
            hardening.kill_all_of(uid)
        os._exit(status)

    def loop(self) -> None:
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, _wake)
        while True:
            try:
                readable, _, _ = select.select([self.ctl, self.wake_r], [], [])
            except InterruptedError:
                continue
            if self.wake_r in readable:
                self.reap()
            if self.ctl in readable:
                # Everything queued, the spawns gathered to be forked together.
                spawns = []
                flags = 0
                while True:
                    try:
                        msg, fds = _recv(self.ctl, flags)
                    except BlockingIOError:
                        break
                    flags = socket.MSG_DONTWAIT
                    if msg is None:
                        self.shutdown()
                    op = msg.get("op")
                    if op == "spawn":
                        spawns.append((msg, fds))
                        continue
                    for fd in fds:
                        os.close(fd)
                    if op == "kill":
                        self.kill(msg)
                if spawns:
                    self.spawn_all(spawns)


def _wake(_signum, _frame) -> None:
    """SIGCHLD's handler; set_wakeup_fd does the waking. A module-level function rather than a
    lambda: a task process resetting SIGCHLD then drops a reference instead of freeing a
    function object, which wrote to dozens of pages shared with the zygote."""


def _reaped():
    """Reaps the children that have exited, yielding (pid, wait status) for each."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        yield pid, status


def main() -> None:
    hardening.keep_freed_heap()
    ctl = socket.socket(fileno=3)
    msg, _ = _recv(ctl)
    if msg is None:
        return
    cfg = Config.from_message(msg)
    if cfg.landlock_abi < 0:
        cfg = cfg.with_landlock_abi(hardening.landlock_abi())
    # Whether the task user can read this Python is checked by the Go side
    # before any zygote starts (envcache.Interpreter.ReadableBy).
    problem = None
    if cfg.tasks_dir and not os.path.isdir(cfg.tasks_dir):
        problem = "the task directory %s does not exist" % cfg.tasks_dir
    if problem:
        _send(ctl, {"op": "failed", "error": problem})
        return
    for name in cfg.preload:
        __import__(name)
    # Before the zygote turns non-dumpable, which leaves its mem file to root (codemaps.py).
    mem = codemaps.open_mem() if cfg.inherit_code_mappings else -1
    # Non-dumpable: other processes of this uid cannot ptrace it or read its memory, and the
    # task processes it forks inherit that until they change credentials.
    hardening.prctl(hardening.PR_SET_DUMPABLE, 0)
    _send(ctl, {"op": "ready", "pid": os.getpid(), "version": platform.python_version(),
                "landlock": cfg.landlock_abi})
    sys.stdout.flush()
    zygote = Zygote(ctl, cfg)
    # The sandbox's once-per-process work (pruning sys.modules, guarding importlib, building the
    # builtins), done here once so that every fork inherits it; the zygote imports nothing more.
    sandbox.prepare_process(cfg)
    child.warm_up(cfg)
    if cfg.block_env_access:
        # Once here, inherited, rather than in every task process (child.prepare).
        os.environ.clear()
    if cfg.immortal_objects and immortal.supported():
        # Last, once everything a task process inherits is built: every process forked from
        # here on shares it without writing to it.
        immortal.immortalize()
    if cfg.inherit_code_mappings and codemaps.share(mem) == 0:
        # Last before the forks, after everything that maps code (the warm-up's imports).
        print("pyrunner zygote: task processes cannot inherit its code mappings here "
              "(its /proc/<pid>/mem refused); they fault them in", file=sys.stderr, flush=True)
    try:
        zygote.loop()
    except GoHungUp:
        zygote.shutdown()
    except BaseException:  # noqa: BLE001 - a bug of ours: said, and nothing left behind
        traceback.print_exc()
        sys.stderr.flush()
        zygote.shutdown(1)
