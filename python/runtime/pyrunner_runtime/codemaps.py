"""Lets the zygote's task processes inherit its mappings of the interpreter's code.

fork() copies the page-table entries of a mapping only when the mapping holds private pages of
its own; a read-only mapping of a file, as the interpreter's and its libraries' code and
constants are, holds none, so every task process faulted in, one page at a time, all the code it
ran, though the zygote had it mapped (70 to 105 of an isolated task's faults). share() gives each
such mapping of the zygote one private page, by writing one of its bytes back with the same
value through the process's own mem file, as a debugger sets a breakpoint: from then on each fork
copies the mapping's entries, and the task process finds mapped what the zygote had. No byte
changes; each mapping costs the zygote one page, shared with its task processes. Where the
kernel or a security profile refuses such a write, nothing changes.

The mem file is /proc/<pid>/mem, not /proc/self/mem (the default AppArmor profiles of Docker and
containerd refuse writes under /proc/self), opened by open_mem() before the zygote makes itself
non-dumpable: from then on only root could open it, while an open descriptor goes on working.
"""

import os


def open_mem() -> int:
    """This process's mem file, open for writing, or -1 where it cannot be."""
    try:
        if os.readlink("/proc/self") != str(os.getpid()):
            return -1  # a /proc of another pid namespace: its <pid> is another process
        return os.open("/proc/%d/mem" % os.getpid(), os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return -1


def share(mem: int) -> int:
    """Gives each private, read-only mapping of a file one private page through mem (from
    open_mem; closed here, -1 does nothing); returns how many got one."""
    if mem < 0:
        return 0
    shared = 0
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                # address perms offset device inode path
                fields = line.split(None, 5)
                if len(fields) < 6 or not fields[5].startswith("/"):
                    continue  # anonymous, the stack, [vdso] and the like
                perms = fields[1]
                if perms[0] != "r" or perms[1] == "w" or perms[3] != "p":
                    continue  # writable ones hold private pages already; shared ones are not copied
                start = int(fields[0].split("-", 1)[0], 16)
                try:
                    os.pwrite(mem, os.pread(mem, 1, start), start)
                except OSError:
                    continue
                shared += 1
    except OSError:
        pass  # what was shared stays shared
    finally:
        os.close(mem)
    return shared
