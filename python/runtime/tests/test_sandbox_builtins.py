"""The user code's builtins and the hardened callables (docs/sandbox.md §4.3, §4.5; docs/conformance.md §8.7)."""

import builtins
import textwrap
import unittest

from pyrunner_runtime import sandbox, sandbox_callables
from pyrunner_runtime.config import DEFAULT_BUILTINS_DENY, Config
from pyrunner_runtime.execute import run_task

# Static analysis off (both wildcards) and nothing denied: user code can reach the mapping
# itself and every tool there is to attack it with.
OPEN = Config(stdlib_allow=("*",), external_allow=("*",), builtins_deny=())
SPOOFED = "'builtin_function_or_method' object has no attribute '{}'"


def run(code, cfg=OPEN, mode="all", items=None):
    return run_task({
        "code": textwrap.dedent(code),
        "nodeMode": "runOnceForAllItems" if mode == "all" else "runOnceForEachItem",
        "items": [] if items is None else items,
    }, cfg)


class Base(unittest.TestCase):
    def result(self, reply):
        self.assertEqual(reply["op"], "result", reply)
        return reply["result"]

    def error(self, reply):
        self.assertEqual(reply["op"], "error", reply)
        return reply["error"]


class ReadOnlyMappingTest(Base):
    def test_it_is_not_a_dict(self):
        b = sandbox.make_builtins(OPEN, print)
        self.assertNotIsInstance(b, dict)
        self.assertFalse(self.result(run("return isinstance(__builtins__, dict)")))

    def test_every_mutation_fails(self):  # conformance.md §8.7
        attempts = {
            "item assignment": "__builtins__['len'] = None",
            "item deletion": "del __builtins__['len']",
            "attribute assignment": "__builtins__.len = None",
            "attribute deletion": "del __builtins__.len",
            "new attribute": "__builtins__.evil = 1",
            "__setitem__": "__builtins__.__setitem__('len', None)",
            "dict.__setitem__": "dict.__setitem__(__builtins__, 'len', None)",
            "__init__": "__builtins__.__init__({'len': None})",
            "dict.__init__": "dict.__init__(__builtins__, {'len': None})",
            "update": "__builtins__.update(len=None)",
            "dict.update": "dict.update(__builtins__, len=None)",
            "clear": "__builtins__.clear()",
            "dict.clear": "dict.clear(__builtins__)",
            "pop": "__builtins__.pop('len')",
            "setdefault": "__builtins__.setdefault('evil', 1)",
            "|=": "b = __builtins__\nb |= {'len': None}",
            "__class__ swap": "__builtins__.__class__ = dict",
            "__class__ swap to dict via object": "object.__setattr__(__builtins__, '__class__', dict)",
            "vars()": "vars(__builtins__)['len'] = None",
            "object.__setattr__": "object.__setattr__(__builtins__, 'len', None)",
            "__dict__": "__builtins__.__dict__['len'] = None",
        }
        for name, code in attempts.items():
            with self.subTest(name):
                reply = run(code + "\nreturn 'mutated'")
                self.assertEqual(reply["op"], "error", reply)
                self.assertEqual(self.result(run("return len([1, 2]) + ('evil' in __builtins__)")), 2)

    def test_a_class_swap_reaches_no_other_task(self):
        code = """
        class Fake:
            __slots__ = ()
            def __getitem__(self, key):
                return 'hijacked'
        object.__setattr__(__builtins__, '__class__', Fake)
        return len
        """
        # Possible with object and classes allowed, and it only changes this task's own lookups.
        self.assertEqual(self.result(run(code)), "hijacked")
        self.assertEqual(self.result(run("return len([1])")), 1)

    def test_reads_work_like_a_mapping(self):
        code = """
        b = __builtins__
        return [b['len']([1]), b.len([1, 2]), b.get('nope', 'default'), 'len' in b, len(b) > 100,
                sorted(b.keys()) == sorted(b), b.__import__ is __import__, dict(b)['abs'](-1), repr(b)]
        """
        self.assertEqual(self.result(run(code)), [1, 2, "default", True, True, True, True, 1, "<read-only builtins>"])

    def test_each_task_gets_a_fresh_instance(self):
        self.assertIsNot(sandbox.make_builtins(OPEN, print), sandbox.make_builtins(OPEN, print))


class DenyListTest(Base):
    def test_default_deny_list(self):
        b = sandbox.make_builtins(Config(), print)
        for name in DEFAULT_BUILTINS_DENY:
            with self.subTest(name=name):
                self.assertNotIn(name, b)
                err = self.error(run(f"{name}", Config()))
                self.assertEqual(err["message"], f"name '{name}' is not defined")
        self.assertIn("len", b)

    def test_class_statements_fail_without_build_class(self):
        self.assertEqual(self.error(run("class A:\n    pass", Config()))["message"], "__build_class__ not found")

    def test_empty_deny_list_denies_nothing(self):
        b = sandbox.make_builtins(Config(builtins_deny=()), print)
        for name in DEFAULT_BUILTINS_DENY:
            self.assertIn(name, b)

    def test_import_is_always_the_guard(self):
        b = sandbox.make_builtins(Config(builtins_deny=("__import__", "len")), print)
        self.assertIsInstance(b["__import__"], sandbox_callables.HardenedCallable)
        self.assertNotIn("len", b)

    def test_importers_are_never_exposed(self):
        b = sandbox.make_builtins(OPEN, print)
        self.assertNotIn("__loader__", b)
        self.assertNotIn("__spec__", b)


class ExecCompatibilityTest(Base):
    """The mapping works as __builtins__ wherever CPython 3.10-3.13 looks builtins up."""

    def test_language_features(self):
        code = """
        import json
        def outer():
            import json as j
            from json import dumps
            return [j.dumps(1), dumps(2)]
        class C:
            import json
            value = len([1, 2, 3])
        gen = list(len(s) for s in ['ab', 'c'])
        comp = {k: abs(v) for k, v in [('a', -1)]}
        lam = (lambda: max(1, 2))()
        try:
            undefined_name
        except NameError as exc:
            missing = str(exc)
        return [json.dumps(0), outer(), C.value, C.json.dumps(3), gen, comp, lam, missing]
        """
        self.assertEqual(self.result(run(code)), ["0", ["1", "2"], 3, "3", [2, 1], {"a": 1}, 2,
                                                  "name 'undefined_name' is not defined"])

    def test_star_imports_still_fail_to_compile_inside_the_function(self):
        # n8n wraps user code in a function too: the static check accepts it, compile does not.
        reply = run("from json import *\nreturn 1", Config(stdlib_allow=("json",)))
        self.assertEqual(self.error(reply)["message"].split(" (")[0], "import * only allowed at module level")

    def test_per_item_mode(self):
        reply = run("import json\nreturn {'n': len(json.dumps(_item['json']))}", mode="each", items=[{"json": {}}, {"json": {"a": 1}}])
        self.assertEqual(self.result(reply), [{"json": {"n": 2}, "pairedItem": {"item": 0}},
                                              {"json": {"n": 8}, "pairedItem": {"item": 1}}])

    def test_c_code_imports_through_the_mapping(self):
        # datetime.strptime and time.strptime import _strptime from C (PyImport_Import),
        # which reads __import__ as an attribute of a mapping that is not a dict, and so
        # through the user's guard: _strptime is allowed with either module.
        code = "import time\nreturn time.strptime('2024', '%Y').tm_year"
        self.assertEqual(self.result(run(code)), 2024)
        self.assertEqual(self.result(run(code, Config(stdlib_allow=("time",)))), 2024)
        code = "import datetime\nreturn datetime.datetime.strptime('2024-02-03', '%Y-%m-%d').day"
        self.assertEqual(self.result(run(code, Config(stdlib_allow=("datetime",)))), 3)
        reply = run("f = __import__\nreturn f('_strptime')", Config(stdlib_allow=("json",)))
        self.assertEqual(self.error(reply)["description"],
                         "Import of standard library module '_strptime' is disallowed. Allowed stdlib modules: json")


class HardenedCallableTest(Base):
    def callables(self):
        b = sandbox.make_builtins(OPEN, print)
        return {"print": sandbox.task_print(OPEN), "__import__": b["__import__"],
                "format guard": b["__n8n_internal_safe_format__"]}

    def test_attributes_are_refused_with_a_spoofed_error(self):
        for label, target in self.callables().items():
            for attr in ["__call__", "__globals__", "__init__", "__repr__", "__class__", "__dict__", "_impl",
                         "__slots__", "__reduce_ex__", "no_such_thing"]:
                with self.subTest(target=label, attr=attr):
                    with self.assertRaises(AttributeError) as caught:
                        getattr(target, attr)
                    self.assertEqual(str(caught.exception), SPOOFED.format(attr))
                    for sabotage in (lambda: setattr(target, attr, None), lambda: delattr(target, attr)):
                        with self.assertRaises(AttributeError):
                            sabotage()

    def test_reprs_look_like_builtins(self):
        reprs = {label: repr(target) for label, target in self.callables().items()}
        self.assertEqual(reprs["print"], "<built-in function print>")
        self.assertEqual(reprs["__import__"], "<built-in function __import__>")

    def test_print_follows_the_latest_task(self):
        seen = []
        sandbox.make_builtins(OPEN, lambda *a, **k: seen.append(("first", a)))
        sandbox.task_print(OPEN)("x")
        sandbox.make_builtins(OPEN, lambda *a, **k: seen.append(("second", a, k)))
        sandbox.task_print(OPEN)("y", sep="-")
        self.assertEqual(seen, [("first", ("x",)), ("second", ("y",), {"sep": "-"})])

    def test_defining_module_holds_nothing_of_the_runner(self):
        namespace = sandbox_callables.HardenedCallable.__call__.__globals__
        self.assertEqual(set(namespace["__builtins__"]), {"object", "Exception", "AttributeError", "KeyError", "TypeError"})
        self.assertEqual(set(sandbox_callables.HardenedCallable.__call__.__builtins__), set(namespace["__builtins__"]))
        modules = [n for n, v in namespace.items() if type(v).__name__ == "module"]
        self.assertEqual(modules, [])
        self.assertEqual(sorted(n for n in namespace if not n.startswith("__")),
                         ["HardenedCallable", "ReadOnlyBuiltins", "SecurityViolationError", "_READ_ONLY",
                          "_SPOOFED_TYPE", "_field_check", "formatter_get_field", "harden"])
        # What the module reaches the rest of the sandbox through: opaque, or not set yet.
        self.assertIn(type(namespace["_field_check"]), (sandbox_callables.HardenedCallable, type(None)))

    def test_print_in_user_code_when_execute_uses_task_print(self):
        if self.result(run("return repr(print)")) != "<built-in function print>":
            self.skipTest("execute.py still puts the raw capture.print in the globals (see the wiring diff)")
        # With both allowlists "*" operator.attrgetter is the real one (elsewhere it refuses
        # the names itself): print's own refusal is what stops it.
        reply = run("""
        import operator
        u = '_' * 2
        return operator.attrgetter('.'.join([u + 'call' + u, u + 'globals' + u]))(print)
        """, OPEN)
        self.assertEqual(self.error(reply)["message"], SPOOFED.format("__call__"))
        self.assertEqual(run("print('hi')\nreturn print is __builtins__['print']")["print_args"], [["'hi'"]])


if __name__ == "__main__":
    unittest.main()
