"""Operating-system fences around a task process, applied after fork and before any user code.

These, not the Python-level checks, are what keep the runner's secrets and other tasks out of a
task's reach, even with both allowlists set to "*":
- its own session and process group, and a private working directory;
- an unprivileged uid of its own when pyrunner runs as root; no new privileges; not dumpable;
- resource limits (memory, CPU time, processes and threads);
- a Landlock domain of its own (Linux 5.13+): no ptrace of, no /proc/<pid>/environ or mem of any
  process outside it; files readable only under the interpreter and system directories, writable
  only in its working directory; on 6.12+ no signals to, and no abstract unix sockets of, processes
  outside it; with the network switched off, no TCP connect or bind (6.7+);
- a seccomp filter: no io_uring (it would bypass the filter), and, with the network switched off,
  no internet sockets at all; where Landlock cannot scope signals and tasks share the runner's
  user, signals only to the task's own process group.
"""

import ctypes
import os
import platform
import resource
import struct

_libc = ctypes.CDLL(None, use_errno=True)
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
_libc.syscall.restype = ctypes.c_long

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_SECCOMP = 22
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38


class HardeningError(Exception):
    """A fence could not be put up; the task process must not run user code."""


def _check(ret: int, what: str) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise HardeningError(f"{what}: {os.strerror(err)}")
    return ret


def prctl(option: int, arg: int) -> None:
    _check(_libc.prctl(option, arg, 0, 0, 0), f"prctl({option})")


# --- the allocator (not a fence: how the zygote's processes use memory) ------------------------

# glibc's mallopt parameters, and what the zygote sets them to for itself and every process it
# forks. By default glibc hands a freed block above its dynamic threshold (a few hundred KB, once
# a task has freed one that big) back to the kernel, and gives back the free top of the heap past
# twice that: a worker that decodes and frees a task's items every task faulted the same pages in
# again on the next one (about 130 faults per 1,000-item task in reuse mode, 50 with these). Now
# the free top is given back only past _HEAP_KEPT (freed holes below live blocks stay, as they
# always did), so a reuse worker may hold up to about 8 MB more than it uses, which counts against
# N8N_PYTHON_MAX_MEMORY_MB; blocks from _OWN_MAPPING_FROM up still get a mapping of their own,
# returned when freed.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_HEAP_KEPT = 8 << 20
_OWN_MAPPING_FROM = 4 << 20


def keep_freed_heap() -> None:
    """Sets the thresholds above. Without glibc's mallopt, or if it refuses, the allocator keeps
    its defaults: slower for large tasks, no less safe."""
    mallopt = getattr(_libc, "mallopt", None)
    if mallopt is None:
        return
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt(_M_MMAP_THRESHOLD, _OWN_MAPPING_FROM)
    mallopt(_M_TRIM_THRESHOLD, _HEAP_KEPT)


# --- Landlock ---------------------------------------------------------------------------------

# System call numbers are the same on every Linux architecture.
_SYS_LANDLOCK_CREATE_RULESET = 444
_SYS_LANDLOCK_ADD_RULE = 445
_SYS_LANDLOCK_RESTRICT_SELF = 446
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1

# Filesystem rights by the ABI that introduced them.
_FS_EXECUTE = 1 << 0
_FS_WRITE_FILE = 1 << 1
_FS_READ_FILE = 1 << 2
_FS_READ_DIR = 1 << 3
_FS_ALL_V1 = (1 << 13) - 1
_FS_REFER = 1 << 13  # ABI 2
_FS_TRUNCATE = 1 << 14  # ABI 3
_FS_IOCTL_DEV = 1 << 15  # ABI 5
_NET_BIND_TCP = 1 << 0  # ABI 4
_NET_CONNECT_TCP = 1 << 1
_SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
_SCOPE_SIGNAL = 1 << 1

_READ = _FS_EXECUTE | _FS_READ_FILE | _FS_READ_DIR


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, or 0 when Landlock is unavailable."""
    ret = _libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0),
                        ctypes.c_uint32(_CREATE_RULESET_VERSION))
    return max(int(ret), 0)


def _fs_rights(abi: int) -> int:
    rights = _FS_ALL_V1
    if abi >= 2:
        rights |= _FS_REFER
    if abi >= 3:
        rights |= _FS_TRUNCATE
    if abi >= 5:
        rights |= _FS_IOCTL_DEV
    return rights


class LandlockPlan:
    """What every task process's Landlock domain holds, prepared once in the zygote.

    Opening the readable paths and building the rules is done here, once: a task process only
    creates its ruleset from the prepared rules, adds its own working directory, and, once it
    has no_new_privs, restricts itself.
    """

    def __init__(self, abi: int, readable=(), network: bool = True):
        self.abi = abi
        if abi <= 0:
            return
        self.handled = _fs_rights(abi)
        self.attr = _RulesetAttr(handled_access_fs=self.handled)
        self.size = 8  # ABI 1-3 know only handled_access_fs
        if abi >= 4:
            self.size = 16
            if not network:
                self.attr.handled_access_net = _NET_BIND_TCP | _NET_CONNECT_TCP
        if abi >= 6:
            self.attr.scoped = _SCOPE_SIGNAL | _SCOPE_ABSTRACT_UNIX_SOCKET
            self.size = 24
        # O_PATH descriptors stay open in the zygote; forks inherit them.
        self.rules = [r for r in (_path_rule(p, _READ) for p in readable) if r is not None]

    def ruleset(self, writable=()) -> int:
        """A new ruleset descriptor with the prepared rules plus writable paths; -1 without Landlock."""
        if self.abi <= 0:
            return -1
        fd = _check(_libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(self.attr), ctypes.c_size_t(self.size),
                                  ctypes.c_uint32(0)), "landlock_create_ruleset")
        try:
            for rule in self.rules:
                _add_rule(fd, rule)
            for path in writable:
                rule = _path_rule(path, self.handled)
                if rule is not None:
                    _add_rule(fd, rule)
                    os.close(rule.parent_fd)
        except BaseException:
            os.close(fd)
            raise
        return fd


def restrict_self(ruleset_fd: int) -> bool:
    """Enters the Landlock domain of a ruleset from LandlockPlan.ruleset and closes it.

    Requires no_new_privs. From then on the process reaches only what the rules allow: no
    ptrace, environ or mem of processes outside the domain, and with ABI 6 no signals to them.
    """
    if ruleset_fd < 0:
        return False
    try:
        _check(_libc.syscall(_SYS_LANDLOCK_RESTRICT_SELF, ctypes.c_int(ruleset_fd), ctypes.c_uint32(0)),
               "landlock_restrict_self")
    finally:
        os.close(ruleset_fd)
    return True


def _path_rule(path: str, rights: int):
    """A rule for path (a file gets file rights only), or None when the path is absent."""
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return None
    if not os.path.isdir(path):
        rights &= _FS_EXECUTE | _FS_WRITE_FILE | _FS_READ_FILE | _FS_TRUNCATE | _FS_IOCTL_DEV
    return _PathBeneathAttr(allowed_access=rights, parent_fd=fd)


def _add_rule(ruleset: int, rule) -> None:
    _check(_libc.syscall(_SYS_LANDLOCK_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(_RULE_PATH_BENEATH),
                         ctypes.byref(rule), ctypes.c_uint32(0)), "landlock_add_rule")


# --- seccomp ----------------------------------------------------------------------------------

_SECCOMP_MODE_FILTER = 2
_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000
_RET_KILL_PROCESS = 0x80000000
_BPF_LD_W_ABS = 0x20
_BPF_JEQ_K = 0x15
_BPF_JGE_K = 0x35
_BPF_RET_K = 0x06
_BPF_JA = 0x05
_EPERM, _EACCES = 1, 13
# x32 system calls carry this bit on x86_64; the filter refuses them outright.
_X32_SYSCALL_BIT = 0x40000000
# fcntl and ioctl commands that make the kernel signal a chosen process or group
# (asynchronous I/O notification), a route around the kill family.
_F_SETOWN, _F_SETSIG, _F_SETOWN_EX = 8, 10, 15
_FIOSETOWN, _SIOCSPGRP = 0x8901, 0x8902
_AF_INET, _AF_INET6, _AF_PACKET = 2, 10, 17

# (audit arch, syscall numbers) per machine.
_ARCH = {
    "x86_64": (0xC000003E, {"socket": 41, "ioctl": 16, "fcntl": 72, "kill": 62, "tkill": 200, "tgkill": 234, "rt_sigqueueinfo": 129,
                            "rt_tgsigqueueinfo": 297, "pidfd_send_signal": 424, "io_uring_setup": 425,
                            "io_uring_enter": 426, "io_uring_register": 427}),
    "aarch64": (0xC00000B7, {"socket": 198, "ioctl": 29, "fcntl": 25, "kill": 129, "tkill": 130, "tgkill": 131, "rt_sigqueueinfo": 138,
                             "rt_tgsigqueueinfo": 240, "pidfd_send_signal": 424, "io_uring_setup": 425,
                             "io_uring_enter": 426, "io_uring_register": 427}),
}


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_SockFilter))]


def _stmt(code, k):
    return (code, 0, 0, k & 0xFFFFFFFF)


def _jeq(k, jt, jf=0):
    return (_BPF_JEQ_K, jt, jf, k & 0xFFFFFFFF)


class SeccompPlan:
    """The task process's seccomp filter, compiled once in the zygote.

    Always: io_uring is refused (its operations would bypass the filter), and so are x32
    system calls (they would bypass the numbers below). network=False: no AF_INET, AF_INET6 or
    AF_PACKET sockets. own_group_signals_only: the kill family may only target 0, the process
    itself or its own process group (-pid), and no descriptor may be set to signal another
    process (fcntl F_SETOWN, F_SETOWN_EX, F_SETSIG; ioctl FIOSETOWN, SIOCSPGRP); the pid is
    filled in by install, in the task process.
    """

    def __init__(self, network: bool, own_group_signals_only: bool):
        arch = _ARCH.get(platform.machine())
        self.filters = None
        if arch is None:
            return
        audit_arch, nr = arch
        errno = lambda e: _stmt(_BPF_RET_K, _RET_ERRNO | e)  # noqa: E731
        prog = [
            _stmt(_BPF_LD_W_ABS, 4),  # seccomp_data.arch
            _jeq(audit_arch, 1),
            _stmt(_BPF_RET_K, _RET_KILL_PROCESS),
            _stmt(_BPF_LD_W_ABS, 0),  # seccomp_data.nr
        ]
        if platform.machine() == "x86_64":
            prog += [
                _jeq(0xFFFFFFFF, 2),  # syscall(-1): not x32, the kernel answers ENOSYS
                (_BPF_JGE_K, 0, 1, _X32_SYSCALL_BIT),
                _stmt(_BPF_RET_K, _RET_KILL_PROCESS),
            ]
        for name in ("io_uring_setup", "io_uring_enter", "io_uring_register"):
            prog += [_jeq(nr[name], 0, 1), errno(_EPERM)]
        if not network:
            # socket(domain, ...): args[0], low word, at offset 16.
            prog += [
                _jeq(nr["socket"], 0, 6),
                _stmt(_BPF_LD_W_ABS, 16),
                _jeq(_AF_INET, 2), _jeq(_AF_INET6, 1), _jeq(_AF_PACKET, 0, 1),
                errno(_EACCES),
                _stmt(_BPF_LD_W_ABS, 0),
            ]
        self.pid_slots = []  # (index, sign) of the instructions that compare with the pid
        if own_group_signals_only:
            for name in ("kill", "tkill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo"):
                base = len(prog)
                prog += [
                    _jeq(nr[name], 0, 6),
                    _stmt(_BPF_LD_W_ABS, 16),
                    _jeq(0, 2), _jeq(0, 1), _jeq(0, 0, 1),
                    _stmt(_BPF_RET_K, _RET_ALLOW),
                    errno(_EPERM),
                ]
                self.pid_slots += [(base + 3, 1), (base + 4, -1)]
            prog += [_jeq(nr["pidfd_send_signal"], 0, 1), errno(_EPERM)]
            # fcntl(fd, cmd, …) and ioctl(fd, cmd, …): cmd is args[1], low word at offset 24.
            for name, cmds in (("fcntl", (_F_SETOWN, _F_SETSIG, _F_SETOWN_EX)), ("ioctl", (_FIOSETOWN, _SIOCSPGRP))):
                k = len(cmds)
                prog += [_jeq(nr[name], 0, k + 4), _stmt(_BPF_LD_W_ABS, 24)]
                prog += [_jeq(cmd, k - i + 1, 0) for i, cmd in enumerate(cmds)]
                prog += [
                    _stmt(_BPF_LD_W_ABS, 0),  # allowed: the number back for the next rules
                    _stmt(_BPF_JA, 1),
                    errno(_EPERM),
                ]
        prog.append(_stmt(_BPF_RET_K, _RET_ALLOW))
        self.filters = (_SockFilter * len(prog))(*[_SockFilter(*ins) for ins in prog])

    def install(self, pid: int) -> bool:
        """Installs the filter for process pid; False on an architecture it does not know."""
        if self.filters is None:
            return False
        for index, sign in self.pid_slots:
            self.filters[index].k = (sign * pid) & 0xFFFFFFFF
        fprog = _SockFprog(len(self.filters), self.filters)
        _check(_libc.prctl(PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.addressof(fprog), 0, 0), "seccomp")
        return True


# --- limits and identity ------------------------------------------------------------------------

def processes_of(uid: int) -> int:
    """How many processes and threads uid has now: the base RLIMIT_NPROC counts from."""
    count = 0
    needle = ("Uid:\t%d\t" % uid).encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/status" % entry, "rb") as f:
                status = f.read(1024)
        except OSError:
            continue
        if needle in status:
            start = status.find(b"Threads:\t")
            count += int(status[start + 9:status.find(b"\n", start)]) if start >= 0 else 1
    return count


def set_limits(memory_mb: int, cpu_seconds: int, nproc: int) -> None:
    """Memory (data segment: heap and private writable mappings), CPU seconds (SIGXCPU, then
    SIGKILL a second later) and processes+threads of the user. 0 leaves a limit alone."""
    if memory_mb > 0:
        limit = memory_mb << 20
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    if cpu_seconds > 0:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    if nproc > 0:
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))


def drop_privileges(uid: int, gid: int) -> None:
    """Switches to uid/gid for good (real, effective and saved), with no supplementary groups."""
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if os.getuid() != uid or os.geteuid() != uid:
        raise HardeningError(f"still running as uid {os.geteuid()} after dropping to {uid}")


def kill_all_of(uid: int) -> None:
    """SIGKILLs every process of uid, from a throwaway child that becomes uid: kill(-1) as a
    plain user reaches exactly that user's processes. Only for the per-task uids of a root
    pyrunner, which nothing else uses."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setresuid(uid, uid, uid)
            os.kill(-1, 9)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def own_children() -> list:
    """This process's child pids, from /proc (orphans adopted as a subreaper included)."""
    pid = os.getpid()
    # os.open rather than open(): the zygote calls this after every task, and a text file
    # object touched many more of its pages (each a copy-on-write fault after a fork).
    try:
        fd = os.open("/proc/%d/task/%d/children" % (pid, pid), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return []
    try:
        data = b""
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            data += chunk
    except OSError:
        return []
    finally:
        os.close(fd)
    return [int(p) for p in data.split()]
