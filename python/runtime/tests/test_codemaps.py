"""Task processes inheriting the zygote's mappings of code (codemaps.py). share() runs in a
forked child each time: the test process's own mappings stay as they were."""

import json
import os
import resource
import unittest
from unittest import mock

from pyrunner_runtime import codemaps, hardening
from .forking import in_child

PAGE_KB = resource.getpagesize() // 1024
NOBODY = 65534


def become_unprivileged() -> None:
    """As the zygote of a pyrunner that is not root (its image): nobody, when the test is root."""
    if os.geteuid() == 0:
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
        # The change of credentials made it non-dumpable; a process started as nobody is not.
        hardening.prctl(hardening.PR_SET_DUMPABLE, 1)


def code_mappings():
    """(start, Anonymous kB) of each private, read-only mapping of a file, from smaps."""
    found, current = [], None
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            fields = line.split()
            if fields[0].endswith(":"):
                if fields[0] == "Anonymous:" and current is not None:
                    found.append((current, int(fields[1])))
                    current = None
                continue
            perms = fields[1]
            eligible = len(fields) >= 6 and fields[5].startswith("/") and perms[0] == "r" and perms[1] != "w" and perms[3] == "p"
            current = int(fields[0].split("-")[0], 16) if eligible else None
    return found


def workload() -> None:
    """Code a task process might run: the encoder, the compiler, some string work."""
    json.loads(json.dumps({"items": [{"i": i, "s": str(i) * 3} for i in range(50)]}))
    compile("def f(x):\n    return [y * 2 for y in x]\n", "<task>", "exec")
    "-".join(sorted(str(i) for i in range(100))).encode().decode()


def faults_of_a_fork() -> int:
    """Minor faults of a forked child that runs the workload and leaves."""
    pid = os.fork()
    if pid == 0:
        try:
            workload()
        finally:
            os._exit(0)
    _, _, usage = os.wait4(pid, 0)
    return usage.ru_minflt


class Share(unittest.TestCase):
    def test_each_code_mapping_gets_a_private_page(self):
        def check():
            # Some have private pages already: the loader relocated them before making them
            # read-only (RELRO). The code has none.
            before = dict(code_mappings())
            if all(before.values()):
                return False
            shared = codemaps.share(codemaps.open_mem())
            after = dict(code_mappings())
            return (shared == len(after) == len(before)
                    and all(after[start] == (anon or PAGE_KB) for start, anon in before.items()))
        self.assertEqual(in_child(check), 0)

    def test_no_byte_changes(self):
        def check():
            mem = os.open("/proc/self/mem", os.O_RDONLY)
            try:
                before = {start: os.pread(mem, 4096, start) for start, _ in code_mappings()}
                codemaps.share(codemaps.open_mem())
                return all(os.pread(mem, 4096, start) == page for start, page in before.items())
            finally:
                os.close(mem)
        self.assertEqual(in_child(check), 0)

    def test_forked_children_find_the_code_mapped(self):
        # What the change is for: a child forked after share() faults in fewer pages for the
        # same work, since the code the parent ran comes mapped with the fork.
        def check():
            workload()
            before = min(faults_of_a_fork() for _ in range(3))
            codemaps.share(codemaps.open_mem())
            after = max(faults_of_a_fork() for _ in range(3))
            print("faults of a forked child: %d before, %d after" % (before, after))
            return after < before - 10
        self.assertEqual(in_child(check), 0)

    def test_a_kernel_that_refuses_changes_nothing(self):
        def check():
            before = dict(code_mappings())
            with mock.patch.object(codemaps.os, "open", side_effect=PermissionError("no")):
                mem = codemaps.open_mem()
            refuse_writes = mock.patch.object(codemaps.os, "pwrite", side_effect=OSError(5, "EIO"))
            with refuse_writes:
                refused = codemaps.share(codemaps.open_mem())
            return mem == -1 and codemaps.share(mem) == 0 and refused == 0 and dict(code_mappings()) == before
        self.assertEqual(in_child(check), 0)

    def test_unprivileged_and_non_dumpable_once_opened(self):
        # The zygote's order: its mem file opened, then non-dumpable, then shared, as a user
        # that is not root. Opened after, it is root's, and nothing could be shared.
        def check():
            become_unprivileged()
            mem = codemaps.open_mem()
            hardening.prctl(hardening.PR_SET_DUMPABLE, 0)
            return mem >= 0 and codemaps.share(mem) > 0 and codemaps.open_mem() == -1
        self.assertEqual(in_child(check), 0)


if __name__ == "__main__":
    unittest.main()
