"""Operating-system fences around a task process, applied after fork and before any user code.

These, not the Python-level checks, are what keep the runner's secrets and other tasks out of a
task's reach: its own session, an unprivileged uid when pyrunner runs as root, no new privileges,
and a Landlock domain of its own (where the kernel has Landlock), which stops it from ptracing,
reading /proc/<pid>/environ or memory of, or signalling any process outside that domain.
"""

import ctypes
import os

_libc = ctypes.CDLL(None, use_errno=True)
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
_libc.syscall.restype = ctypes.c_long

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_NO_NEW_PRIVS = 38

# Landlock system calls have the same numbers on every Linux architecture.
_SYS_LANDLOCK_CREATE_RULESET = 444
_SYS_LANDLOCK_RESTRICT_SELF = 446
_LANDLOCK_CREATE_RULESET_VERSION = 1
# Creating device nodes: an access no task needs, handled so that a ruleset exists on kernels
# without scopes; handling any access puts the process in a domain, which brings the ptrace fence.
_ACCESS_FS_MAKE_CHAR = 1 << 7
_ACCESS_FS_MAKE_BLOCK = 1 << 11
_SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0
_SCOPE_SIGNAL = 1 << 1


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class HardeningError(Exception):
    """A fence could not be put up; the task process must not run user code."""


def _check(ret: int, what: str) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise HardeningError(f"{what}: {os.strerror(err)}")
    return ret


def prctl(option: int, arg: int) -> None:
    _check(_libc.prctl(option, arg, 0, 0, 0), f"prctl({option})")


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, or 0 when Landlock is unavailable."""
    ret = _libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0),
                        ctypes.c_uint32(_LANDLOCK_CREATE_RULESET_VERSION))
    return max(int(ret), 0)


def enter_landlock_domain(abi: int) -> bool:
    """Puts the calling process in a new Landlock domain. Returns False when the kernel has none.

    Requires no_new_privs (or CAP_SYS_ADMIN). With ABI 6 or newer, signals and abstract unix
    sockets are scoped to the domain as well.
    """
    if abi <= 0:
        return False
    attr = _RulesetAttr(handled_access_fs=_ACCESS_FS_MAKE_CHAR | _ACCESS_FS_MAKE_BLOCK)
    size = 8  # ABI 1-3 know only handled_access_fs
    if abi >= 4:
        size = 16
    if abi >= 6:
        attr.scoped = _SCOPE_SIGNAL | _SCOPE_ABSTRACT_UNIX_SOCKET
        size = 24
    fd = _check(_libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size),
                              ctypes.c_uint32(0)), "landlock_create_ruleset")
    try:
        _check(_libc.syscall(_SYS_LANDLOCK_RESTRICT_SELF, ctypes.c_int(fd), ctypes.c_uint32(0)),
               "landlock_restrict_self")
    finally:
        os.close(fd)
    return True


def drop_privileges(uid: int, gid: int) -> None:
    """Switches to uid/gid for good (real, effective and saved), with no supplementary groups."""
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if os.getuid() != uid or os.geteuid() != uid:
        raise HardeningError(f"still running as uid {os.geteuid()} after dropping to {uid}")


def fence_task_process(uid: int, gid: int, landlock: int) -> None:
    """Everything a task process does to itself before it may run user code.

    uid < 0 keeps the current user (pyrunner is not root, or the operator chose so).
    """
    os.setsid()  # own session and process group: the whole tree is killed with one killpg
    if uid >= 0 and os.geteuid() != uid:
        drop_privileges(uid, gid)
    # After the credential change, which clears it: die with the zygote.
    prctl(PR_SET_PDEATHSIG, 9)
    prctl(PR_SET_DUMPABLE, 0)
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    enter_landlock_domain(landlock)
