"""Marking the zygote's objects immortal (immortal.py). Each marking runs in a forked child,
which leaves through os._exit: what it marks must never be freed."""

import gc
import json
import os
import sys
import unittest

from pyrunner_runtime import immortal
from .forking import in_child

# The builds immortal.py knows: release CPython 3.12 and 3.13, 64-bit, with the GIL (a
# free-threaded or reference-tracing build has a longer object header).
_KNOWN = (sys.implementation.name == "cpython" and (3, 12) <= sys.version_info[:2] <= (3, 13)
          and sys.maxsize > 2**32 and not hasattr(sys, "gettotalrefcount")
          and sys.getsizeof(object()) == 16)


class Supported(unittest.TestCase):
    def test_only_on_the_builds_it_knows(self):
        self.assertEqual(immortal.supported(), _KNOWN)

    def test_the_probe_tells_an_interpreter_without_them(self):
        # On 3.11 a reference count of 2**32-1 is a count like any other: the probe sees it
        # grow and says no, whatever the version check would say.
        self.assertEqual(immortal._marking_holds(), sys.version_info >= (3, 12))


@unittest.skipUnless(_KNOWN, "immortal objects are 3.12 and 3.13's, on the builds immortal.py knows")
class Immortalize(unittest.TestCase):
    def test_marks_what_the_process_holds(self):
        held = {"nested": ["a list", 12345678901234567890, 1.5, (object(), "x" * 100)]}

        def only_code_holds():
            return 2.71828 * len(held)

        def check():
            marked = immortal.immortalize()
            reachable = [held, held["nested"], held["nested"][1], held["nested"][2],
                         held["nested"][3], held["nested"][3][0], held["nested"][3][1], json,
                         json.dumps, json.dumps.__code__, json.dumps.__code__.co_linetable,
                         # A float constant: only code objects refer to it.
                         next(c for c in only_code_holds.__code__.co_consts if c == 2.71828)]
            counts = [sys.getrefcount(o) for o in reachable]
            more = [reachable] * 3  # references taken now are not counted
            return (marked > 1000 and gc.get_freeze_count() > 0 and counts == [0xFFFFFFFF] * len(counts)
                    and [sys.getrefcount(o) for o in reachable] == counts and more)

        self.assertEqual(in_child(check), 0)

    def test_new_objects_stay_mortal(self):
        def check():
            immortal.immortalize()
            fresh = ["made after"]
            before = sys.getrefcount(fresh)
            also = fresh
            return sys.getrefcount(fresh) == before + 1 and also is fresh

        self.assertEqual(in_child(check), 0)

    def test_the_process_still_runs_and_collects(self):
        def check():
            immortal.immortalize()
            cycle = []
            cycle.append(cycle)
            del cycle
            return gc.collect() >= 1 and json.loads(json.dumps({"k": [1, 2]})) == {"k": [1, 2]}

        self.assertEqual(in_child(check), 0)


if __name__ == "__main__":
    unittest.main()
