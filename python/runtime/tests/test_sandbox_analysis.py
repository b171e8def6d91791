"""Static analysis of user code (docs/sandbox.md §2, §3; docs/conformance.md §8.1, §8.2, §8.4, §8.5)."""

import ast
import sys
import textwrap
import time
import unittest

from pyrunner_runtime import sandbox, sandbox_analysis
from pyrunner_runtime.config import Config
from pyrunner_runtime.execute import run_task

# The lists of docs/sandbox.md §3, written out again so that a change to the code shows here.
BLOCKED_NAMES = ["__loader__", "__builtins__", "__globals__", "__spec__", "__name__", "__n8n_internal_safe_format__"]
BLOCKED_ATTRIBUTES = [
    "__subclasses__", "__globals__", "__builtins__", "__traceback__", "tb_frame", "tb_next", "f_back",
    "f_globals", "f_locals", "f_code", "f_builtins", "__getattribute__", "__qualname__", "__module__",
    "gi_frame", "gi_code", "gi_yieldfrom", "cr_frame", "cr_code", "ag_frame", "ag_code", "obj",
    "__thisclass__", "__self_class__", "__objclass__",
    "__reduce__", "__reduce_ex__", "__prepare__", "__instancecheck__", "__subclasscheck__", "__match_args__",
    "__base__", "__class__", "__bases__", "__code__", "__closure__", "__loader__", "__cached__", "__dict__",
    "__import__", "__mro__", "__init_subclass__", "__getattr__", "__setattr__", "__delattr__", "__self__",
    "__func__", "__wrapped__", "__annotations__", "__spec__",
]

NAME = "Access to name '{}' is disallowed, because it can be used to bypass security restrictions."
ATTR = "Access to attribute '{}' is disallowed, because it can be used to bypass security restrictions."
PATTERN = "String pattern accessing '{}' is disallowed, because it can be used to bypass security restrictions."
STDLIB = "Import of standard library module '{}' is disallowed. Allowed stdlib modules: {}"
EXTERNAL = "Import of external package '{}' is disallowed. Allowed external packages: {}"
RELATIVE = "Relative imports are disallowed."
DYNAMIC = "Dynamic __import__() calls are not allowed for security reasons."
MANGLED = "Access to name-mangled attributes (pattern: _ClassName__attr) is disallowed for security reasons."
POSITIONAL = "Positional match patterns are disallowed for security reasons."
MATCH_ATTR = "Match pattern extracting attribute '{}' is disallowed, because it can be used to bypass security restrictions."
PRIVATE = "Access to private attribute '{}' is disallowed, because it can be used to bypass security restrictions."
BOUND = "Extracting '{}' as a bound method is disallowed; call it directly on its receiver instead."

DEFAULT = Config()
A81_STDLIB = ("json", "math", "re", "datetime", "random", "string", "collections", "itertools", "functools", "operator")
ALL = Config(stdlib_allow=("*",), external_allow=("*",))


def violations(code, cfg=DEFAULT):
    code = textwrap.dedent(code)
    return sandbox.check(ast.parse(code), code, cfg)


def static_error(testcase, code, cfg=DEFAULT):
    """The description of the static error run_task gives for code."""
    msg = run_task({"code": textwrap.dedent(code), "nodeMode": "runOnceForAllItems", "items": []}, cfg)
    testcase.assertEqual(msg["op"], "error", msg)
    testcase.assertEqual(msg["kind"], "static", msg)
    testcase.assertEqual(msg["error"]["message"], "Security violations detected")
    return msg["error"]["description"]


class ImportRulesTest(unittest.TestCase):
    def test_default_configuration_rejects_imports(self):  # conformance.md §8.1, §5.3
        cases = {
            "import os": "Line 1: " + STDLIB.format("os", "none"),
            "import sys": "Line 1: " + STDLIB.format("sys", "none"),
            "import subprocess": "Line 1: " + STDLIB.format("subprocess", "none"),
            "import socket": "Line 1: " + STDLIB.format("socket", "none"),
            "from os import path": "Line 1: " + STDLIB.format("os", "none"),
            "import json": "Line 1: " + STDLIB.format("json", "none"),
            "from . import x": "Line 1: " + RELATIVE,
            "from .mod import x": "Line 1: " + RELATIVE,
            "import requests": "Line 1: " + EXTERNAL.format("requests", "none"),
        }
        for code, want in cases.items():
            with self.subTest(code=code):
                self.assertEqual(static_error(self, code), want)

    def test_a81_allowlist_accepts_every_import_form(self):
        cfg = Config(stdlib_allow=A81_STDLIB)
        for module in A81_STDLIB:
            for code in [f"import {module}", f"import {module} as m", f"from {module} import *"]:
                with self.subTest(code=code):
                    self.assertEqual(violations(code, cfg), [])
        self.assertEqual(violations("from datetime import datetime, timedelta as td\nimport collections.abc", cfg), [])
        self.assertEqual(violations("import os", cfg), ["Line 1: " + STDLIB.format("os", ", ".join(sorted(A81_STDLIB)))])

    def test_messages_name_the_path_and_the_sorted_allowlist(self):
        cfg = Config(stdlib_allow=("re", "json", "json"), external_allow=("pandas", "numpy"))
        self.assertEqual(violations("import os.path", cfg), ["Line 1: " + STDLIB.format("os.path", "json, re")])
        self.assertEqual(violations("import requests.adapters", cfg),
                         ["Line 1: " + EXTERNAL.format("requests.adapters", "numpy, pandas")])

    def test_only_the_top_level_package_is_compared(self):
        # A dotted allowlist entry is kept verbatim and so never matches (docs/sandbox.md §2).
        self.assertEqual(violations("import os.path", Config(stdlib_allow=("os",))), [])
        self.assertEqual(violations("import os.path", Config(stdlib_allow=("os.path",))),
                         ["Line 1: " + STDLIB.format("os.path", "os.path")])

    def test_stdlib_or_external_is_decided_by_stdlib_module_names(self):
        self.assertIn("_strptime", sys.stdlib_module_names)
        self.assertEqual(violations("import _strptime", Config(external_allow=("*",))),
                         ["Line 1: " + STDLIB.format("_strptime", "none")])
        self.assertEqual(violations("import numpy", Config(stdlib_allow=("*",))),
                         ["Line 1: " + EXTERNAL.format("numpy", "none")])

    def test_wildcard_alone_allows_its_kind(self):
        self.assertEqual(violations("import os, subprocess", Config(stdlib_allow=("*",))), [])
        self.assertEqual(violations("import numpy, pandas", Config(external_allow=("*",))), [])

    def test_each_top_level_package_is_reported_once(self):
        code = "import os.path\nimport os\nfrom os import sep\n__import__('os')\nimport sys"
        self.assertEqual(violations(code), ["Line 1: " + STDLIB.format("os.path", "none"),
                                            "Line 5: " + STDLIB.format("sys", "none")])

    def test_dunder_import_calls(self):
        self.assertEqual(violations("__import__('os')"), ["Line 1: " + STDLIB.format("os", "none")])
        self.assertEqual(violations("__import__('json')", Config(stdlib_allow=("json",))), [])
        self.assertEqual(violations("name = 'os'\n__import__(name)"), ["Line 2: " + DYNAMIC])
        self.assertEqual(violations("__import__()"), ["Line 1: " + DYNAMIC])
        self.assertEqual(violations("__import__('.x')"), ["Line 1: " + RELATIVE])
        self.assertEqual(violations("import builtins\nbuiltins.__import__('os')", Config(stdlib_allow=("builtins",))),
                         ["Line 2: " + STDLIB.format("os", "builtins"), "Line 2: " + ATTR.format("__import__")])
        self.assertEqual(violations("__builtins__.__import__('os')"), [
            "Line 1: " + STDLIB.format("os", "none"),
            "Line 1: " + ATTR.format("__import__"),
            "Line 1: " + NAME.format("__builtins__"),
        ])


class BlockedNamesTest(unittest.TestCase):
    def test_every_blocked_name_everywhere_a_name_can_appear(self):  # conformance.md §8.2
        function = "Function named '{}' is disallowed, because it can be used to bypass security restrictions."
        klass = "Class named '{}' is disallowed, because it can be used to bypass security restrictions."
        param = "Parameter named '{}' is disallowed, because it can be used to bypass security restrictions."
        global_ = "Global declaration of '{}' is disallowed, because it can be used to bypass security restrictions."
        for name in BLOCKED_NAMES:
            cases = {
                f"x = {name}": NAME,
                f"{name} = 1": NAME,
                f"del {name}": NAME,
                f"import json as {name}": NAME,
                f"from json import {name}": NAME,
                f"from json import dumps as {name}": NAME,
                f"global {name}": global_,
                f"def {name}(): pass": function,
                f"async def {name}(): pass": function,
                f"class {name}: pass": klass,
                f"def f({name}): pass": param,
                f"def f({name}, /): pass": param,
                f"def f(*, {name}): pass": param,
                f"def f(*{name}): pass": param,
                f"def f(**{name}): pass": param,
                f"f = lambda {name}: 0": param,
                f"try: pass\nexcept Exception as {name}: pass": NAME,
                f"[{name} for {name} in []]": NAME,
            }
            for code, template in cases.items():
                with self.subTest(code=code):
                    found = violations(code, Config(stdlib_allow=("json",)))
                    line = 2 if code.startswith("try") else 1
                    self.assertIn(f"Line {line}: " + template.format(name), found)

    def test_string_literals_and_concatenations_equal_to_a_blocked_name(self):
        for name in BLOCKED_NAMES:
            with self.subTest(name=name):
                self.assertEqual(violations(f"x = {name!r}"), ["Line 1: " + NAME.format(name)])
                half = len(name) // 2
                self.assertEqual(violations(f"x = {name[:half]!r} + {name[half:]!r}"), ["Line 1: " + NAME.format(name)])


class BlockedAttributesTest(unittest.TestCase):
    def test_every_blocked_attribute(self):  # conformance.md §8.2
        for attr in BLOCKED_ATTRIBUTES:
            with self.subTest(attr=attr):
                self.assertEqual(violations(f"x = _items.{attr}"), ["Line 1: " + ATTR.format(attr)])
                self.assertEqual(violations(f"_items.{attr} = 1"), ["Line 1: " + ATTR.format(attr)])
                literal = NAME if attr in BLOCKED_NAMES else ATTR
                self.assertEqual(violations(f"x = {attr!r}"), ["Line 1: " + literal.format(attr)])
                self.assertEqual(violations(f"x = {attr[:2]!r} + {attr[2:]!r}"), ["Line 1: " + literal.format(attr)])
                self.assertEqual(violations(f"x = '{{0.{attr}}}'"), ["Line 1: " + PATTERN.format(attr)])
                self.assertEqual(violations(f"x = '{{0[{attr}]}}'"), ["Line 1: " + PATTERN.format(attr)])
                self.assertIn("Line 2: " + MATCH_ATTR.format(attr),
                              violations(f"match _items:\n    case list({attr}=x):\n        pass"))

    def test_subscript_of_the_builtins_with_a_blocked_key(self):
        self.assertEqual(violations("__builtins__['__import__']('os')"), [  # conformance.md §8.3
            "Line 1: " + ATTR.format("__import__"),
            "Line 1: " + NAME.format("__builtins__"),
            "Line 1: " + ATTR.format("__import__"),
        ])
        self.assertEqual(violations("import builtins\nbuiltins['__spec__']", Config(stdlib_allow=("builtins",))),
                         ["Line 2: " + ATTR.format("__spec__"), "Line 2: " + NAME.format("__spec__")])

    def test_a83_escape_attempts(self):
        self.assertEqual(static_error(self, "m = __spec__.loader.load_module('os')"), "Line 1: " + NAME.format("__spec__"))
        self.assertEqual(static_error(self, "return __loader__.load_module('posix')"), "Line 1: " + NAME.format("__loader__"))
        for code in ["g = globals()['__builtins__']", "g = locals()['__builtins__']"]:
            with self.subTest(code=code):
                self.assertEqual(static_error(self, code), "Line 1: " + NAME.format("__builtins__"))
        for name in ["globals", "locals"]:
            with self.subTest(name=name):
                msg = run_task({"code": f"return {name}()", "nodeMode": "runOnceForAllItems", "items": []}, DEFAULT)
                self.assertEqual(msg["error"]["message"], f"name '{name}' is not defined")

    def test_name_mangled_attributes(self):
        for code in ["x._Foo__secret", "x._a__", "x._Foo__bar = 1"]:
            with self.subTest(code=code):
                self.assertEqual(violations(code), ["Line 1: " + MANGLED])
        self.assertEqual(violations("x.a__b"), [])
        # n8n accepts these; pyrunner refuses every private name (see PrivateAttributesTest).
        for attr in ["__eq__", "_private", "___x"]:
            with self.subTest(attr=attr):
                self.assertEqual(violations("x." + attr), ["Line 1: " + PRIVATE.format(attr)])
        self.assertIn("name-mangled", static_error(self, "return _items._Node__value"))

    def test_format_methods_taken_as_values(self):
        for method in ["format", "format_map", "vformat", "get_field"]:
            with self.subTest(method=method):
                self.assertEqual(violations(f"f = 'x'.{method}"), ["Line 1: " + BOUND.format(method)])
                self.assertIn("bound method", static_error(self, f"return str.{method}"))
                self.assertEqual(violations(f"'x'.{method}()"), [])
        self.assertEqual(violations("return '{}'.format(1).format(2)"), [])  # chained calls are fine
        self.assertEqual(violations("x = ''\nf = x.parse"), [])

    def test_match_positional_class_patterns(self):
        code = "match _items:\n    case list(x):\n        pass"
        self.assertEqual(violations(code), ["Line 2: " + POSITIONAL])
        self.assertIn("positional", static_error(self, code).lower())
        allowed = """
        match _items:
            case [1, 2]: pass
            case {"a": 1}: pass
            case 'literal': pass
            case dict(real=1): pass
        """
        self.assertEqual(violations(allowed), [])


class PrivateAttributesTest(unittest.TestCase):
    """pyrunner refuses every private attribute name in the code, beyond n8n's lists."""

    TYPICAL = Config(stdlib_allow=("random", "collections", "string", "json"))

    def test_private_attributes_of_anything(self):
        for code, attr in [("import random\nx = random._os", "_os"), ("import collections\nx = collections._sys", "_sys"),
                           ("import string\nstring.Formatter()._vformat('{}', [], {}, set(), 1)", "_vformat"),
                           ("x = type(print)._impl", "_impl"), ("x = _items.__eq__", "__eq__"),
                           ("_items._cache = 1", "_cache"), ("del _items._x", "_x"), ("x = f'{_items._x}'", "_x")]:
            with self.subTest(code=code):
                line = code.count("\n") + 1
                self.assertEqual(violations(code, self.TYPICAL), ["Line %d: " % line + PRIVATE.format(attr)])

    def test_the_public_exceptions(self):
        code = """
        from collections import namedtuple
        P = namedtuple('P', 'x y', defaults=[0])
        p = P(1)._replace(y=2)
        return [p._asdict(), P._fields, P._make([1, 2]), P._field_defaults, len.__name__, len.__doc__,
                super().__init__]
        """
        self.assertEqual(violations(code, self.TYPICAL), [])

    def test_blocked_and_mangled_names_keep_their_own_text(self):
        self.assertEqual(violations("x._A__b"), ["Line 1: " + MANGLED])
        self.assertEqual(violations("x.__class__"), ["Line 1: " + ATTR.format("__class__")])

    def test_mro_hands_out_object(self):
        self.assertEqual(violations("o = int.mro()[-1]"), ["Line 1: " + ATTR.format("mro")])

    def test_private_names_in_imports(self):
        cases = {
            "from random import _os": "_os",
            "from json import dumps, _default_encoder as e": "_default_encoder",
            "import json._private": "_private",
            "from json._x import y": "_x",
            "import concurrent.futures._base as b": "_base",
        }
        cfg = Config(stdlib_allow=("random", "json", "concurrent"))
        for code, name in cases.items():
            with self.subTest(code=code):
                self.assertEqual(violations(code, cfg), ["Line 1: " + PRIVATE.format(name)])
        # A top-level module is the allowlists' business alone.
        self.assertEqual(violations("import _strptime", Config(stdlib_allow=("_strptime",))), [])

    def test_match_keyword_patterns(self):
        for attr in ["format", "format_map", "vformat", "get_field", "_os", "__eq__", "mro"]:
            with self.subTest(attr=attr):
                code = f"match _items:\n    case str({attr}=f):\n        pass"
                self.assertEqual(violations(code), ["Line 2: " + MATCH_ATTR.format(attr)])
        self.assertEqual(violations("match _items:\n    case dict(real=1, _fields=f):\n        pass"), [])


class AnnotationStringsTest(unittest.TestCase):
    """typing.get_type_hints evaluates string annotations (functools.singledispatch calls it)."""

    def test_string_annotations_are_checked_as_code(self):
        cases = {
            "def f(x: '().__class__.__base__'): pass": [ATTR.format("__base__"), ATTR.format("__class__")],
            "def f(x) -> 'random._os': pass": [PRIVATE.format("_os")],
            "def f(*a: 'x.__dict__', **k: 'y'): pass": [ATTR.format("__dict__")],
            "x: 'a._b' = 1": [PRIVATE.format("_b")],
            "def f(x: 'List[\"y._z\"]'): pass": [PRIVATE.format("_z")],  # typing evaluates nested strings too
            "def f(x: '__import__(\"os\")'): pass": [STDLIB.format("os", "none")],
        }
        for code, texts in cases.items():
            with self.subTest(code=code):
                self.assertEqual(violations(code), ["Line 1: " + t for t in texts])

    def test_format_calls_in_annotations_cannot_be_rewritten(self):
        self.assertEqual(violations("def f(x: \"('{' + '}').format(1)\"): pass"), ["Line 1: " + BOUND.format("format")])

    def test_ordinary_annotations_pass(self):
        code = """
        def f(a: 'int', b: "Optional['Item']" = None, *c: 'str') -> 'dict[str, int]':
            n: 'int' = 1
            return {}
        def g(x: int, y: 'not an expression !') -> None:
            pass
        """
        self.assertEqual(violations(code), [])

    def test_the_singledispatch_attack_is_refused_before_it_runs(self):
        code = """
        import functools
        @functools.singledispatch
        def f(x):
            return 0
        def g(x: '[c.__name__ for c in ().__class__.__base__.__subclasses__()]'):
            return 1
        f.register(g)
        """
        found = violations(code, Config(stdlib_allow=("functools",)))
        self.assertEqual(found, ["Line 6: " + ATTR.format(a) for a in ("__subclasses__", "__base__", "__class__")])


class FormatTemplatesTest(unittest.TestCase):
    def test_templates_reaching_blocked_names(self):
        cases = {
            "'{0.__class__}'": ["__class__"],
            "'{.__builtins__[__import__]}'": ["__builtins__", "__import__"],  # conformance.md §8.3
            "'{x:{y.__class__}}'": ["__class__"],
            "'{a.__globals__}{b:{c.__dict__}}{d.__mro__}'": ["__globals__", "__dict__", "__mro__"],
            "'{0[\"__spec__\"]}'": ["__spec__"],
            "'{0.f_globals!r}'": ["f_globals"],
        }
        for literal, tokens in cases.items():
            with self.subTest(literal=literal):
                self.assertEqual(violations("x = " + literal), ["Line 1: " + PATTERN.format(t) for t in tokens])

    def test_fstring_attribute_access(self):
        self.assertEqual(violations("x = f'{_items.__class__}'"), ["Line 1: " + ATTR.format("__class__")])

    def test_the_a83_format_escape_mentions_builtins(self):
        self.assertIn("__builtins__", static_error(self, '"{.__builtins__[__import__]}".format(print)'))

    def test_no_false_positives(self):  # conformance.md §8.4
        cases = [
            "n = 3\nreturn f'Found {n} objects'",
            "return 'user_' + 'objects'",
            "return 'load module name'",
            "x = 5\nreturn f'__glob{x}als__'",
            "return '{:.2f}'.format(3.14159)",
            "return '{{0.__class__}}'.format()",
            "return '{name} {0}'.format(1, name='n')",
            "return 'hello world ' + str(1 + 2)",
            "return '{' + '0.__cl' + 'ass}'",  # assembles to no blocked token
            "class C:\n    def format(self):\n        return 'ok'\nreturn C().format()",
            "x = {'a': 1}\nreturn x['a']",
            "return [i for i in range(3)]",
        ]
        for code in cases:
            with self.subTest(code=code):
                self.assertEqual(violations(code), [])


class ReportingTest(unittest.TestCase):
    def test_all_violations_in_order_with_raw_line_numbers(self):
        code = """\
        import os
        x = 1

        y = _items.__class__.__mro__
        def f(__builtins__):
            return __import__(f)
        import os, sys
        """
        self.assertEqual(violations(code), [
            "Line 1: " + STDLIB.format("os", "none"),
            "Line 4: " + ATTR.format("__mro__"),
            "Line 4: " + ATTR.format("__class__"),
            "Line 5: Parameter named '__builtins__' is disallowed, because it can be used to bypass security restrictions.",
            "Line 6: " + DYNAMIC,
            "Line 7: " + STDLIB.format("sys", "none"),
        ])

    def test_description_joins_the_lines(self):
        self.assertEqual(static_error(self, "import os\nimport sys"),
                         "Line 1: " + STDLIB.format("os", "none") + "\nLine 2: " + STDLIB.format("sys", "none"))

    def test_both_wildcards_skip_the_analysis(self):  # conformance.md §8.5
        code = "import os\nx = _items.__subclasses__\nfrom . import y\n__builtins__"
        self.assertEqual(violations(code, ALL), [])
        self.assertNotEqual(violations(code, Config(stdlib_allow=("*",), external_allow=("x",))), [])


class RewriteTest(unittest.TestCase):
    CODE = "import json\nx = '{}'.format('{}'.format(1))\nfrom json import dumps as d\ny = x.get_field(*a, **k)"

    def rewritten(self, code, with_check=True):
        tree = ast.parse(code)
        if with_check:
            self.assertEqual(sandbox.check(tree, code, ALL), [])
        return sandbox.rewrite(tree, ALL)

    def test_format_calls_go_through_the_guard(self):
        tree = self.rewritten(self.CODE)
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
        guarded = [n for n in calls if n.func.id == "__n8n_internal_safe_format__"]
        self.assertEqual(len(guarded), 3)
        self.assertFalse([n for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr in ("format", "get_field")])
        outer = tree.body[1].value
        self.assertEqual(outer.args[0].value, "format")
        self.assertEqual(outer.args[2].func.id, "__n8n_internal_safe_format__")  # the inner call, rewritten too
        compile(tree, "<test>", "exec")  # every new node has a location
        self.assertEqual((outer.lineno, outer.col_offset), (2, 4))

    def test_import_statements_before_313_only(self):
        tree = self.rewritten(self.CODE)
        kinds = [type(stmt).__name__ for stmt in tree.body]
        if sys.version_info < (3, 13):
            self.assertEqual(kinds, ["Assign", "Assign", "Assign", "Assign"])
            stmt = tree.body[2]  # (d,) = __n8n_internal_safe_import__('json', ('dumps',), 0)
            self.assertEqual([name.id for name in stmt.targets[0].elts], ["d"])
            self.assertEqual(stmt.value.func.id, "__n8n_internal_safe_import__")
            self.assertEqual([arg.value for arg in stmt.value.args], ["json", ("dumps",), 0])
        else:
            self.assertEqual(kinds, ["Import", "Assign", "ImportFrom", "Assign"])
        for code in ["from json import *", "from __future__ import annotations"]:
            self.assertEqual(type(self.rewritten(code).body[0]), ast.ImportFrom)

    def test_same_result_from_the_cache_and_without_check(self):
        first = ast.dump(self.rewritten(self.CODE), include_attributes=True)
        self.assertEqual(ast.dump(self.rewritten(self.CODE), include_attributes=True), first)
        self.assertEqual(ast.dump(self.rewritten(self.CODE, with_check=False), include_attributes=True), first)

    def test_nothing_to_rewrite(self):
        tree = ast.parse("return 1")
        before = ast.dump(tree)
        sandbox.check(tree, "return 1", DEFAULT)
        self.assertEqual(ast.dump(sandbox.rewrite(tree, DEFAULT)), before)


class CacheTest(unittest.TestCase):
    def setUp(self):
        sandbox_analysis._cache.clear()

    def test_verdicts_are_cached_per_code_and_allowlists(self):
        code = "import json"
        self.assertEqual(len(violations(code)), 1)
        self.assertEqual(violations(code, Config(stdlib_allow=("json",))), [])
        self.assertEqual(len(violations(code)), 1)
        self.assertEqual(len(sandbox_analysis._cache), 2)
        # Other fields of the configuration share the entry.
        violations(code, Config(builtins_deny=()))
        self.assertEqual(len(sandbox_analysis._cache), 2)

    def test_a_cache_hit_does_not_walk_the_tree(self):
        code = "import os"
        violations(code)
        tree = ast.parse("x = 1")  # a different tree: only the cache can give this answer
        self.assertEqual(sandbox.check(tree, code, DEFAULT), ["Line 1: " + STDLIB.format("os", "none")])

    def test_least_recently_used_entry_is_evicted_at_500(self):
        for i in range(500):
            violations(f"x = {i}")
        violations("x = 0")  # refresh the oldest
        violations("x = 500")
        self.assertEqual(len(sandbox_analysis._cache), 500)
        keys = [sandbox_analysis.cache_key(f"x = {i}", sandbox.policy_for(DEFAULT)) for i in (0, 1)]
        self.assertIn(keys[0], sandbox_analysis._cache)
        self.assertNotIn(keys[1], sandbox_analysis._cache)

    def test_the_key_of_code_with_lone_surrogates(self):
        # ast.parse refuses such code first (execute.py reports it); the key must not raise.
        self.assertEqual(sandbox.check(ast.parse("x = 1"), "x = '\ud800'", DEFAULT), [])


class BoundedAnalysisTest(unittest.TestCase):
    """Huge inputs finish quickly; times are printed, never asserted."""

    def analyse(self, label, code):
        start = time.perf_counter()
        try:
            tree = ast.parse(code)
        except (RecursionError, MemoryError) as exc:  # execute.py reports these as static errors
            print(f"\n  {label}: {len(code) / 1e6:.1f} MB, ast.parse raised {type(exc).__name__}", end="")
            return None
        parsed = time.perf_counter()
        found = sandbox.check(tree, code, DEFAULT)
        done = time.perf_counter()
        print(f"\n  {label}: {len(code) / 1e6:.1f} MB, parse {parsed - start:.3f}s, check {done - parsed:.3f}s, "
              f"{len(found)} violations", end="")
        return found

    def test_six_megabytes_of_concatenated_literals(self):
        self.assertEqual(self.analyse("2000 x 3000-char literals", "x = " + " + ".join(["'" + "a" * 2998 + "'"] * 2000)), [])
        self.assertEqual(self.analyse("2000 x '{aaa...}' literals", "x = " + " + ".join(["'{" + "a" * 2996 + "}'"] * 2000)), [])
        found = self.analyse("2000 x '{0.__class__}...'", "x = " + " + ".join(["'{0.__class__}" + "a" * 2985 + "'"] * 2000))
        self.assertTrue(found)
        self.assertEqual(set(found), {"Line 1: " + PATTERN.format("__class__")})
        deep = 100_000 if sys.version_info < (3, 11) else 2_900  # deeper fails in ast.parse itself on 3.11+
        self.assertEqual(self.analyse(f"{deep} x 'a'", "x = " + " + ".join(["'a'"] * deep)), [])
        found = self.analyse(f"'__glob' + 'als__' + {deep} more", "x = '__glob' + 'als__' + " + " + ".join(["'a'"] * deep))
        self.assertEqual(found, ["Line 1: " + NAME.format("__globals__")])

    @unittest.skipIf(sys.version_info < (3, 11), "ast.parse crashes the 3.10 interpreter on this input (C stack)")
    def test_six_megabytes_of_one_char_literals_through_run_task(self):
        code = "x = " + " + ".join(["'a'"] * 1_000_000)
        start = time.perf_counter()
        msg = run_task({"code": code, "nodeMode": "runOnceForAllItems", "items": []}, DEFAULT)
        print(f"\n  1000000 x 'a' through run_task: {time.perf_counter() - start:.3f}s -> {msg['error']['message']}", end="")
        self.assertEqual(msg["op"], "error")
        self.assertEqual(msg["kind"], "static")

    def test_deeply_nested_format_spec(self):
        found = self.analyse("nested spec literal", "x = '" + "{a:" * 300_000 + "}" * 300_000 + "'")
        self.assertIsNotNone(found)
        found = self.analyse("nested spec with a token", "x = '" + "{a:" * 3000 + "{b.__class__}" + "}" * 3000 + "'")
        self.assertIn("Line 1: " + PATTERN.format("__class__"), found)

    def test_deep_statement_nesting_does_not_recurse(self):
        depth = 90 if sys.version_info < (3, 11) else 95  # the parser's own limit is 100 blocks
        code = "".join("    " * i + "if x:\n" for i in range(depth)) + "    " * depth + "y = _items.__class__\n"
        self.assertEqual(self.analyse("nested blocks", code), [f"Line {depth + 1}: " + ATTR.format("__class__")])


if __name__ == "__main__":
    unittest.main()
