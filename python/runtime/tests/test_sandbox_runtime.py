"""The task process's run-time guards, end to end (docs/sandbox.md §4, §6; docs/conformance.md §4.5, §8.3).

prepare_process changes the whole interpreter (sys.modules, importlib), so every test here
runs it and its tasks in a forked child and reads the run_task replies back over a pipe.
"""

import json
import os
import shutil
import sys
import tempfile
import textwrap
import unittest

from pyrunner_runtime import sandbox, sandbox_imports
from pyrunner_runtime.config import Config
from pyrunner_runtime.execute import run_task

IMPORT_VIOLATION = "Security violation detected"
FORMAT_VIOLATION = "Security violations detected"
STDLIB = "Import of standard library module '{}' is disallowed. Allowed stdlib modules: {}"
PATTERN = "String pattern accessing '{}' is disallowed, because it can be used to bypass security restrictions."
SPOOFED = "'builtin_function_or_method' object has no attribute '{}'"


def task(code, mode="all", items=None):
    return {
        "code": textwrap.dedent(code),
        "nodeMode": "runOnceForAllItems" if mode == "all" else "runOnceForEachItem",
        "items": [] if items is None else items,
    }


def in_task_process(cfg, *settings, path=None):
    """Replies of run_task for each settings, run in turn in one forked, prepared process."""
    def replies():
        if path:
            sys.path.insert(0, path)
        sandbox.prepare_process(cfg)
        return [run_task(s, cfg) for s in settings]

    out = in_forked(replies, default=repr)
    return [{"op": "crash", "error": out["crash"]}] if isinstance(out, dict) else out


def in_forked(fn, default=None):
    """fn()'s value, computed in a forked child and sent back as JSON, or {"crash": ...}."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns to the test runner
        try:
            os.close(read_end)
            data = json.dumps(fn(), default=default).encode()
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            data = json.dumps({"crash": repr(exc)}).encode()
        with os.fdopen(write_end, "wb") as out:
            out.write(data)
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as inp:
        data = inp.read()
    os.waitpid(pid, 0)
    return json.loads(data)


def run_one(cfg, code, path=None, mode="all", items=None):
    return in_task_process(cfg, task(code, mode, items), path=path)[0]


class Assertions(unittest.TestCase):
    def result(self, reply):
        self.assertEqual(reply["op"], "result", reply)
        return reply["result"]

    def user_error(self, reply):
        self.assertEqual(reply["op"], "error", reply)
        self.assertEqual(reply["kind"], "user", reply)
        return reply["error"]

    def import_violation(self, reply, description):
        error = self.user_error(reply)
        self.assertEqual(error["message"], IMPORT_VIOLATION)
        self.assertEqual(error["description"], description)

    def format_violation(self, reply, attr):
        error = self.user_error(reply)
        self.assertEqual(error["message"], FORMAT_VIOLATION)
        self.assertEqual(error["description"], PATTERN.format(attr))


class ImportGuardTest(Assertions):
    def test_importlib_entry_points_are_guarded(self):  # conformance.md §8.3
        cfg = Config(stdlib_allow=("importlib", "operator"))
        self.import_violation(run_one(cfg, "import importlib\nreturn importlib.import_module('os')"),
                              STDLIB.format("os", "importlib, operator"))
        # importlib.__import__ is guarded too (RelativeImportTest calls it from a package);
        # user code does not reach it: a module view gives no private name.

    def test_importlib_still_imports_allowed_modules(self):
        cfg = Config(stdlib_allow=("importlib", "json"))
        self.assertEqual(self.result(run_one(cfg, "import importlib\nreturn importlib.import_module('json').dumps([1])")),
                         "[1]")

    def test_the_builtins_import_is_guarded_however_it_is_reached(self):
        self.import_violation(run_one(Config(), "f = __import__\nreturn f('os')"), STDLIB.format("os", "none"))
        code = """
        b = globals()[''.join(['__bui', 'ltins__'])]
        return b[''.join(['__imp', 'ort__'])]('subprocess')
        """
        self.import_violation(run_one(Config(builtins_deny=()), code), STDLIB.format("subprocess", "none"))

    def test_a_str_subclass_cannot_disguise_a_module_name(self):
        code = """
        class S(str):
            def partition(self, sep):
                return ('json', '', '')
            def startswith(self, prefix, *args):
                return False
            def __hash__(self):
                return hash('json')
            def __eq__(self, other):
                return other == 'json'
        f = __import__
        return f(S('os')).getcwd()
        """
        self.import_violation(run_one(Config(stdlib_allow=("json",), builtins_deny=()), code),
                              STDLIB.format("os", "json"))

    def test_objects_posing_as_module_names_are_refused(self):
        code = """
        import importlib
        class Name:
            def startswith(self, prefix):
                return False
            def __getitem__(self, index):
                return 'os'
        class Pretender(Name):
            @property
            def __class__(self):
                return str
        for name in (Name(), Pretender()):
            for entry in (importlib.import_module, __import__):
                try:
                    entry(name)
                except TypeError:
                    continue
                return 'imported'
        try:
            __import__('json', None, None, [Pretender()])
        except TypeError:
            return 'refused'
        """
        self.assertEqual(self.result(run_one(Config(stdlib_allow=("importlib", "json"), builtins_deny=()), code)), "refused")

    def test_import_statements_at_run_time(self):
        cfg = Config(stdlib_allow=("json", "datetime", "collections", "os"))
        code = """
        import json as j, collections.abc
        import os.path as p
        from datetime import datetime, timedelta as td
        def inner():
            import json
            from collections import OrderedDict as OD
            return json.dumps(list(OD(a=1)))
        return [j.dumps(1), p.sep, datetime(2020, 1, 2).isoformat(), td(days=1).days,
                collections.abc.Iterable.__name__, inner()]
        """
        self.assertEqual(self.result(run_one(cfg, code)), ["1", "/", "2020-01-02T00:00:00", 1, "Iterable", '["a"]'])

    def test_import_errors_read_as_cpython_writes_them(self):
        import json as real_json

        reply = run_one(Config(stdlib_allow=("json",)), "from json import nosuch")
        self.assertEqual(self.user_error(reply)["message"],
                         f"cannot import name 'nosuch' from 'json' ({real_json.__file__})")
        reply = run_one(Config(stdlib_allow=("json",)), "import json.nosuch")
        self.assertEqual(self.user_error(reply)["message"], "No module named 'json.nosuch'")

    def test_an_import_that_fails_the_allowlist_inside_a_function(self):
        self.import_violation(run_one(Config(stdlib_allow=("*",), external_allow=("*",)), "from . import x"),
                              "Relative imports are disallowed.")

    def test_internal_modules_are_never_importable(self):
        every = Config(stdlib_allow=("*",), external_allow=("*",))
        for module in ["pyrunner_runtime", "pyrunner_runtime.sandbox", "__main__"]:
            with self.subTest(module=module):
                reply = run_one(every, f"import {module}")
                self.assertEqual(self.user_error(reply)["message"], IMPORT_VIOLATION)

    def test_guarded_callables_refuse_introspection(self):  # conformance.md §8.3
        # Both allowlists "*": the modules themselves (a view gives no private name) and the
        # real operator.attrgetter, so that the callables' own refusal is what is tested.
        cfg = Config(stdlib_allow=("*",), external_allow=("*",))
        targets = {
            "__import__": "__import__",
            "importlib.import_module": "importlib.import_module",
            "importlib.__import__": "operator.attrgetter(u + 'import' + u)(importlib)",
        }
        for name, expression in targets.items():
            code = f"""
            import importlib, operator
            u = '_' * 2
            target = {expression}
            return operator.attrgetter('.'.join([u + 'call' + u, u + 'globals' + u]))(target)
            """
            with self.subTest(target=name):
                reply = run_one(cfg, code)
                self.assertEqual(self.user_error(reply)["message"], SPOOFED.format("__call__"))
                self.assertIn("AttributeError", reply["error"]["stack"])


class RelativeImportTest(Assertions):
    def setUp(self):
        self.root = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.root)
        self.package("synthpkg", "def load():\n    import importlib\n"
                     "    return importlib.__import__('sub', globals(), None, ('VALUE',), 1).VALUE\n",
                     sub="VALUE = 42\n")

    def package(self, name, init, **modules):
        os.mkdir(os.path.join(self.root, name))
        with open(os.path.join(self.root, name, "__init__.py"), "w") as f:
            f.write(init)
        for module, text in modules.items():
            with open(os.path.join(self.root, name, module + ".py"), "w") as f:
                f.write(text)

    def test_resolved_against_an_allowed_anchor(self):
        cfg = Config(stdlib_allow=("importlib",), external_allow=("synthpkg",))
        cases = [
            "import importlib\nreturn importlib.import_module('.sub', 'synthpkg').VALUE",
            "import importlib\nreturn importlib.import_module('.sub', package='synthpkg').VALUE",
            "import synthpkg\nreturn synthpkg.load()",  # the package's own level-1 importlib.__import__
        ]
        for code in cases:
            with self.subTest(code=code):
                self.assertEqual(self.result(run_one(cfg, code, path=self.root)), 42)

    def test_blocked_anchor_or_no_anchor(self):
        cfg = Config(stdlib_allow=("importlib",), external_allow=("synthpkg",))
        self.import_violation(run_one(cfg, "import importlib\nimportlib.import_module('.sub', 'requests')", path=self.root),
                              "Import of external package 'requests.sub' is disallowed. Allowed external packages: synthpkg")
        self.import_violation(run_one(cfg, "import importlib\nimportlib.import_module('.x', package=123)"),
                              "Relative imports are disallowed.")
        self.import_violation(run_one(cfg, "import importlib\nimportlib.import_module('..x', 'synthpkg')"),
                              "Relative imports are disallowed.")


class TransitiveImportTest(Assertions):
    def setUp(self):
        self.root = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.root)
        os.mkdir(os.path.join(self.root, "transpkg"))
        with open(os.path.join(self.root, "transpkg", "__init__.py"), "w") as f:
            # What pandas does for its optional dependencies: importlib, from package code.
            f.write("import importlib\ncsv = importlib.import_module('csv')\nVALUE = csv.QUOTE_ALL\n")

    def cfg(self, transitive):
        return Config(stdlib_allow=("importlib",), external_allow=("transpkg",), allow_transitive_imports=transitive)

    def test_off_checks_package_imports(self):
        self.import_violation(run_one(self.cfg(False), "import transpkg\nreturn transpkg.VALUE", path=self.root),
                              STDLIB.format("csv", "importlib"))

    def test_on_trusts_package_imports_only(self):
        import csv

        self.assertEqual(self.result(run_one(self.cfg(True), "import transpkg\nreturn transpkg.VALUE", path=self.root)),
                         csv.QUOTE_ALL)
        self.import_violation(run_one(self.cfg(True), "import importlib\nimportlib.import_module('csv')", path=self.root),
                              STDLIB.format("csv", "importlib"))
        reply = run_one(self.cfg(True), "import csv", path=self.root)
        self.assertEqual(reply["error"]["description"], "Line 1: " + STDLIB.format("csv", "importlib"))


class ProcessStateTest(Assertions):
    def test_lazy_stdlib_imports_after_pruning(self):  # conformance.md §4.5
        code = """
        from datetime import datetime
        import time, warnings
        from collections.abc import Iterable
        warnings.warn('careful')
        parsed = datetime.strptime('2026-04-23T16:04:28+00:00', '%Y-%m-%dT%H:%M:%S%z')
        return [parsed.isoformat(), parsed.strftime('%Y/%m/%d'), time.strptime('2024', '%Y').tm_year,
                isinstance([], Iterable)]
        """
        reply = run_one(Config(stdlib_allow=("*",)), code)
        self.assertEqual(self.result(reply), ["2026-04-23T16:04:28+00:00", "2026/04/23", 2024, True])

    def test_sys_modules_is_pruned_to_the_allowlists(self):
        code = "import sys\nreturn sorted(sys.modules)"
        names = self.result(run_one(Config(stdlib_allow=("sys", "json")), code))
        allowed = {"builtins", "__main__", "sys", "traceback", "linecache", "importlib", "json"} | sandbox_imports._INTERPRETER
        self.assertEqual({n for n in names if n.partition(".")[0] not in allowed}, set())
        self.assertNotIn("collections", names)  # loaded at start, not the interpreter's: dropped
        self.assertIn("importlib.machinery", names)
        everything = self.result(run_one(Config(stdlib_allow=("*",), external_allow=("*",)), code))
        self.assertIn("os", everything)
        self.assertEqual([n for n in everything if n.startswith("pyrunner_runtime")], [])

    def test_transitive_imports_keep_what_was_preloaded(self):
        # A preloaded package's dependency stays the module it imported: dropped from
        # sys.modules, the package's next import of it would load a second copy.
        tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, tmp)
        for name, body in {"prepkg": "import depkg\n_first = depkg\n"
                                     "def same():\n    import importlib\n"
                                     "    return importlib.import_module('depkg') is _first\n",
                           "depkg": "VALUE = 1\n"}.items():
            os.mkdir(os.path.join(tmp, name))
            with open(os.path.join(tmp, name, "__init__.py"), "w") as f:
                f.write(body)
        sys.path.insert(0, tmp)
        self.addCleanup(sys.path.remove, tmp)
        import prepkg  # noqa: F401 - preloaded, as the zygote does
        self.addCleanup(lambda: [sys.modules.pop(n, None) for n in ("prepkg", "depkg")])
        code = "import prepkg\nreturn prepkg.same()"
        self.assertIs(self.result(run_one(Config(external_allow=("prepkg",), allow_transitive_imports=True), code)), True)
        # Without transitive imports the dependency is pruned, and not importable.
        reply = run_one(Config(external_allow=("prepkg",)), code)
        self.assertEqual(reply["op"], "error", reply)

    def test_a_task_process_prepared_again_prunes_what_was_imported_since(self):
        # The zygote prepares, then forks: the task process prepares again, and must drop
        # what was imported in between, while skipping all work when nothing was.
        cfg = Config(stdlib_allow=("json",))

        def zygote_then_task():
            sandbox.prepare_process(cfg)
            pruned_once = "collections" not in sys.modules
            import csv  # noqa: F401 - not allowed, imported after the zygote's prune
            sandbox.prepare_process(cfg)
            return [pruned_once, "csv" in sys.modules]

        self.assertEqual(in_forked(zygote_then_task), [True, False])

        def nothing_imported_since():
            sandbox.prepare_process(cfg)
            sandbox_imports._kept = None  # a second prune would call it
            sandbox.prepare_process(cfg)
            sandbox_imports.prune_modules(sandbox.policy_for(cfg))
            return "skipped"

        self.assertEqual(in_forked(nothing_imported_since), "skipped")

    def test_prepare_process_leaves_the_environment_to_child_prepare(self):
        code = "import os\nreturn 'PATH' in os.environ"
        self.assertTrue(self.result(run_one(Config(stdlib_allow=("os",)), code)))

    def test_many_tasks_in_one_process(self):
        cfg = Config(stdlib_allow=("json",))
        replies = in_task_process(cfg, task("import json\nreturn json.dumps(1)"), task("import os"),
                                  task("return [len(_item['json'])]", "each", [{"json": {"a": 1}}] * 2),
                                  task("import json\nreturn json.dumps(2)"))
        self.assertEqual(self.result(replies[0]), "1")
        self.assertEqual(replies[1]["kind"], "static")
        self.assertEqual(self.result(replies[2]), [{"json": [1], "pairedItem": {"item": 0}},
                                                   {"json": [1], "pairedItem": {"item": 1}}])
        self.assertEqual(self.result(replies[3]), "2")


class FormatGuardTest(Assertions):
    CFG = Config(stdlib_allow=("string", "collections"), builtins_deny=())

    def test_templates_built_at_run_time(self):
        cases = [
            "t = '{0.' + chr(95) * 2 + 'globals' + chr(95) * 2 + '}'\nreturn t.format(len)",
            "t = ''.join(['{0.', '_' * 2, 'glob', 'als', '_' * 2, '}'])\nreturn t.format(len)",
            "u = '_' * 2\nreturn ('{0.' + u + 'globals' + u + '}').format(len)",
            "u = '_' * 2\nreturn ('{0:{1.' + u + 'globals' + u + '}}').format(1, len)",
            "u = '_' * 2\nreturn str.format('{0.' + u + 'globals' + u + '}', len)",
            "u = '_' * 2\nreturn ('{x.' + u + 'globals' + u + '}').format_map({'x': len})",
            "import string\nu = '_' * 2\nreturn string.Formatter().vformat('{0.' + u + 'globals' + u + '}', (len,), {})",
            "import string\nu = '_' * 2\nreturn string.Formatter().format('{0.' + u + 'globals' + u + '}', len)",
            "import string\nu = '_' * 2\nreturn string.Formatter().get_field('0.' + u + 'globals' + u, (len,), {})",
            "import string\nu = '_' * 2\nf = string.Formatter()\nreturn string.Formatter.get_field(f, '0.' + u + 'globals' + u, (len,), {})",
            "import string\nu = '_' * 2\nf = string.Formatter()\nreturn string.Formatter.vformat(f, '{0.' + u + 'globals' + u + '}', (len,), {})",
            "import collections\nu = '_' * 2\nreturn collections.UserString('{0.' + u + 'globals' + u + '}').format(len)",
            "import collections\nu = '_' * 2\nreturn collections.UserString.format(collections.UserString('{0.' + u + 'globals' + u + '}'), len)",
        ]
        for code in cases:
            with self.subTest(code=code):
                self.format_violation(run_one(self.CFG, code), "__globals__")

    def test_str_subclasses_cannot_disguise_a_template(self):
        sly = """
        u = '_' * 2
        class S(str):
            def __contains__(self, item):
                return False
            def __radd__(self, other):
                return '{0}'
            def __hash__(self):
                return hash('{}')
            def __eq__(self, other):
                return True
        """
        cases = [
            "'{}'.format(1)\nreturn S('{0.' + u + 'globals' + u + '}').format(len)",
            "import string\nreturn string.Formatter().get_field(S('0.' + u + 'globals' + u), (len,), {})",
            "return str.format(S('{0.' + u + 'globals' + u + '}'), len)",
        ]
        for case in cases:
            with self.subTest(case=case):
                self.format_violation(run_one(self.CFG, textwrap.dedent(sly) + case), "__globals__")

    def test_a_user_string_cannot_change_its_template_after_the_check(self):
        code = """
        import collections
        u = '_' * 2
        class Sly(collections.UserString):
            calls = []
            @property
            def data(self):
                Sly.calls.append(1)
                return '{0}' if len(Sly.calls) == 1 else '{0.' + u + 'globals' + u + '}'
            @data.setter
            def data(self, value):
                pass
        return Sly('x').format(len) == str(len)
        """
        self.assertTrue(self.result(run_one(self.CFG, code)))

    def test_safe_templates_and_other_receivers_pass(self):  # conformance.md §8.4
        code = """
        import string, collections
        class Doc:
            def format(self, *args):
                return 'own format ' + repr(args)
        return ['{:.2f}'.format(3.14159), '{a}-{0}'.format(1, a=2), '{{0.x}}'.format(), '{k}'.format_map({'k': 'v'}),
                string.Formatter().format('{0}!', 'hi'), collections.UserString('<{0}>').format(1),
                Doc().format('{0.real}'), Doc().format(7)]
        """
        self.assertEqual(self.result(run_one(self.CFG, code)), [
            "3.14", "2-1", "{0.x}", "v", "hi!", "<1>", "own format ('{0.real}',)", "own format (7,)"])


if __name__ == "__main__":
    unittest.main()
