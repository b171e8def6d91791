"""The seccomp filter, installed for real in a forked child: what it refuses and what it lets by."""

import array
import ctypes
import errno
import fcntl
import json
import os
import platform
import signal
import socket
import time
import unittest

from pyrunner_runtime import hardening

_F_SETSIG = 10
_FIOSETOWN = 0x8901
_FIONREAD = 0x541B


def _errno_of(call):
    try:
        call()
    except OSError as exc:
        return exc.errno
    return 0


def _in_filtered_child(probe, network=False, own_group_signals_only=True):
    """Runs probe() in a forked child under the filter; returns (its JSON answer, its wait status)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(r)
        try:
            os.setsid()
            hardening.prctl(hardening.PR_SET_NO_NEW_PRIVS, 1)
            hardening.SeccompPlan(network, own_group_signals_only).install(os.getpid())
            os.write(w, json.dumps(probe()).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        out = f.read()
    _, status = os.waitpid(pid, 0)
    return (json.loads(out) if out else None), status


@unittest.skipUnless(platform.system() == "Linux" and platform.machine() in ("x86_64", "aarch64"),
                     "the filter is built for Linux on x86_64 and aarch64")
class SeccompTest(unittest.TestCase):
    def setUp(self):
        self.victim = os.fork()
        if self.victim == 0:  # pragma: no cover - the child
            time.sleep(30)
            os._exit(0)

    def tearDown(self):
        os.kill(self.victim, signal.SIGKILL)
        os.waitpid(self.victim, 0)

    def test_signals_only_to_own_group(self):
        victim = self.victim

        def probe():
            r, _ = os.pipe()
            return {
                "kill other": _errno_of(lambda: os.kill(victim, 0)),
                "kill self": _errno_of(lambda: os.kill(os.getpid(), 0)),
                "kill own group": _errno_of(lambda: os.kill(-os.getpid(), 0)),
                "F_SETOWN": _errno_of(lambda: fcntl.fcntl(r, fcntl.F_SETOWN, victim)),
                "F_SETSIG": _errno_of(lambda: fcntl.fcntl(r, _F_SETSIG, signal.SIGKILL)),
                "F_GETFL": _errno_of(lambda: fcntl.fcntl(r, fcntl.F_GETFL)),
                "FIOSETOWN": _errno_of(lambda: fcntl.ioctl(r, _FIOSETOWN, array.array("i", [victim]))),
                "FIONREAD": _errno_of(lambda: fcntl.ioctl(r, _FIONREAD, array.array("i", [0]))),
            }

        got, status = _in_filtered_child(probe)
        self.assertEqual(status, 0)
        self.assertEqual(got, {
            "kill other": errno.EPERM, "kill self": 0, "kill own group": 0,
            "F_SETOWN": errno.EPERM, "F_SETSIG": errno.EPERM, "F_GETFL": 0, "FIOSETOWN": errno.EPERM, "FIONREAD": 0,
        })

    def test_without_signal_rule_fcntl_is_free(self):
        victim = self.victim

        def probe():
            r, _ = os.pipe()
            return {"F_SETOWN": _errno_of(lambda: fcntl.fcntl(r, fcntl.F_SETOWN, victim))}

        got, _ = _in_filtered_child(probe, own_group_signals_only=False)
        self.assertEqual(got, {"F_SETOWN": 0})

    def test_network_refused_unix_allowed(self):
        def probe():
            return {
                "inet": _errno_of(lambda: socket.socket(socket.AF_INET).close()),
                "inet6": _errno_of(lambda: socket.socket(socket.AF_INET6).close()),
                "unix": _errno_of(lambda: socket.socket(socket.AF_UNIX).close()),
            }

        got, _ = _in_filtered_child(probe)
        self.assertEqual(got, {"inet": errno.EACCES, "inet6": errno.EACCES, "unix": 0})

    @unittest.skipUnless(platform.machine() == "x86_64", "x32 exists only on x86_64")
    def test_x32_syscall_kills(self):
        libc = ctypes.CDLL(None, use_errno=True)

        def probe():
            libc.syscall(39 | 0x40000000)  # getpid through the x32 table
            return {"survived": True}

        got, status = _in_filtered_child(probe)
        self.assertIsNone(got)
        self.assertTrue(os.WIFSIGNALED(status))
        self.assertEqual(os.WTERMSIG(status), signal.SIGSYS)

    @unittest.skipUnless(platform.machine() == "x86_64", "x32 exists only on x86_64")
    def test_syscall_minus_one_is_not_x32(self):
        libc = ctypes.CDLL(None, use_errno=True)

        def probe():
            return {"ret": libc.syscall(-1), "errno": ctypes.get_errno()}

        got, status = _in_filtered_child(probe)
        self.assertEqual(status, 0)
        self.assertEqual(got, {"ret": -1, "errno": errno.ENOSYS})


class ProcessLimitTest(unittest.TestCase):
    """RLIMIT_NPROC for task processes (child.Fences): with a shared uid it counts the uid's
    processes, which a zygote does at most once a second rather than in every task process."""

    def setUp(self):
        from pyrunner_runtime import child
        from pyrunner_runtime.config import Config
        self.child = child
        self.counts = []
        real = hardening.processes_of
        hardening.processes_of = lambda uid: self.counts.append(uid) or 40
        self.addCleanup(setattr, hardening, "processes_of", real)
        self.fences = lambda own_uid, limit=5: child.Fences(Config(max_processes=limit, task_uid=1234, landlock_abi=0), own_uid)

    def test_own_uid_counts_from_zero(self):
        self.assertEqual(self.fences(True).process_limit(), 5)
        self.assertEqual(self.counts, [])

    def test_no_limit(self):
        fences = self.fences(False, limit=0)
        fences.count_processes()
        self.assertEqual(fences.process_limit(), 0)
        self.assertEqual(self.counts, [])

    def test_shared_uid_without_a_count_counts_now(self):
        self.assertEqual(self.fences(False).process_limit(), 45)
        self.assertEqual(self.counts, [1234])

    def test_zygote_counts_once_a_second(self):
        fences = self.fences(False)
        fences.count_processes()
        fences.count_processes()
        # The count, this process (forked after it) and the limit; no count of its own.
        self.assertEqual([fences.process_limit(), fences.process_limit()], [46, 46])
        self.assertEqual(self.counts, [1234])
        fences.counted_at -= 1.5
        fences.count_processes()
        self.assertEqual(self.counts, [1234, 1234])

    def test_a_failed_count_is_left_to_the_task_process(self):
        def unreadable(uid):
            raise FileNotFoundError("/proc")
        hardening.processes_of = unreadable
        fences = self.fences(False)
        fences.count_processes()  # the zygote goes on
        with self.assertRaises(OSError):  # the task process fails its fence, saying why
            fences.process_limit()


if __name__ == "__main__":
    unittest.main()
