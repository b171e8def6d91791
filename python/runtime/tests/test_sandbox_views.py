"""Module views and the run-time name guards, at the three allowlist levels.

Every test runs its code in a forked task process prepared for its configuration
(test_sandbox_runtime.in_task_process): views, guarded helpers and the pruned sys.modules are
process-wide.
"""

import json
import textwrap
import unittest

from pyrunner_runtime.config import Config
from tests.test_sandbox_runtime import Assertions, in_task_process, run_one, task

TYPICAL_MODULES = ("json", "re", "datetime", "math", "collections", "itertools", "functools", "base64", "hashlib",
                   "random", "string", "time", "traceback", "operator")
EXTENDED_MODULES = TYPICAL_MODULES + ("importlib", "gc", "pickle", "inspect", "linecache", "threading")
DEFAULT = Config()
TYPICAL = Config(stdlib_allow=TYPICAL_MODULES)
EXTENDED = Config(stdlib_allow=EXTENDED_MODULES)
# The deny list emptied: getattr, vars, exec and classes are there to attack with.
TYPICAL_OPEN = Config(stdlib_allow=TYPICAL_MODULES, builtins_deny=())
EVERYTHING = Config(stdlib_allow=("*",), external_allow=("*",), builtins_deny=())

ACCESS = "Security violation detected"
FORMAT = "Security violations detected"
PRIVATE = "Access to private attribute '{}' is disallowed, because it can be used to bypass security restrictions."
ATTR = "Access to attribute '{}' is disallowed, because it can be used to bypass security restrictions."
PATTERN = "String pattern accessing '{}' is disallowed, because it can be used to bypass security restrictions."
BOUND = "Extracting '{}' as a bound method is disallowed; call it directly on its receiver instead."
INTROSPECTION = ("Access to '{}' is disallowed unless module '{}' is allowed, because it can be used to bypass "
                 "security restrictions.")
CLASS_VARS = "vars() of a class is disallowed, because it can be used to bypass security restrictions."


def module_error(module, path, allowed):
    return f"Access to module '{module}' through '{path}' is disallowed. Allowed stdlib modules: {', '.join(sorted(allowed))}"


class Base(Assertions):
    def refused(self, reply, message, description):
        error = self.user_error(reply)
        self.assertEqual((error["message"], error["description"]), (message, description))

    def each(self, cfg, cases):
        """{label: code} -> {label: reply}, all run in one task process."""
        replies = in_task_process(cfg, *[task(code) for code in cases.values()])
        return dict(zip(cases, replies))


class ModulesThroughModulesTest(Base):
    def test_modules_that_are_not_allowed_are_refused(self):
        cases = {
            "re.enum": ("import re\nreturn str(re.enum)", "enum", "re.enum"),
            "re.enum.sys": ("import re\nreturn str(re.enum.sys)", "enum", "re.enum"),
            "from re import enum": ("from re import enum\nreturn str(enum)", "enum", "re.enum"),
            "re.copyreg": ("import re\nreturn str(re.copyreg)", "copyreg", "re.copyreg"),
            "traceback.linecache": ("import traceback\nreturn traceback.linecache.getline('/etc/passwd', 1)",
                                    "linecache", "traceback.linecache"),
            "traceback.sys": ("import traceback\nreturn traceback.sys.modules", "sys", "traceback.sys"),
        }
        replies = self.each(TYPICAL, {label: case[0] for label, case in cases.items()})
        for label, (_, module, path) in cases.items():
            with self.subTest(label):
                self.refused(replies[label], ACCESS, module_error(module, path, TYPICAL_MODULES))

    def test_allowed_modules_and_submodules_are_given(self):
        code = """
        import re, os, json.decoder
        import xml.etree.ElementTree as ET
        from xml.etree import ElementTree
        from collections import abc
        import collections.abc
        return [str(re.enum.Enum), os.path.join('a', 'b'), json.decoder.JSONDecodeError.__name__,
                ET is ElementTree, ET.fromstring('<a>x</a>').text, abc is collections.abc]
        """
        cfg = Config(stdlib_allow=("re", "enum", "os", "json", "xml", "collections"))
        self.assertEqual(self.result(run_one(cfg, code)), ["<enum 'Enum'>", "a/b", "JSONDecodeError", True, "x", True])

    def test_private_names_are_refused_at_run_time(self):
        cases = {
            "getattr": ("import random\nreturn getattr(random, '_' + 'os')", "_os"),
            "getattr with a default": ("import random\nreturn getattr(random, '_' + 'os', None)", "_os"),
            "attrgetter": ("import operator, random\nreturn operator.attrgetter('_' + 'os')(random)", "_os"),
            "dotted attrgetter": ("import operator, collections\nreturn operator.attrgetter('abc._' + 'sys')(collections)",
                                  "_sys"),
            "methodcaller": ("import operator, random\nreturn operator.methodcaller('_' + 'randbelow', 3)(random.Random())",
                             "_randbelow"),
            "import_module": ("import importlib\nreturn importlib.import_module('json.' + '_x')", "_x"),
            "fromlist": ("return __import__('json', fromlist=['_' + 'x'])", "_x"),
            "setattr": ("import random\nsetattr(random, '_' + 'x', 1)", "_x"),
            "hasattr on a view": ("import random\nreturn hasattr(random, '_' + 'os')", "_os"),
        }
        cfg = Config(stdlib_allow=TYPICAL_MODULES + ("importlib",), builtins_deny=())
        replies = self.each(cfg, {label: case[0] for label, case in cases.items()})
        for label, (_, name) in cases.items():
            with self.subTest(label):
                self.refused(replies[label], ACCESS, PRIVATE.format(name))

    def test_views_are_modules_shared_by_every_import(self):
        code = """
        import json, importlib
        import json as again
        from json import dumps
        return [json is again, importlib.import_module('json') is json, dumps is json.dumps, repr(json)[:15],
                type(json).__name__, json.__name__, callable(json.loads), len(json.__doc__) > 10]
        """
        cfg = Config(stdlib_allow=("json", "importlib"), builtins_deny=())
        self.assertEqual(self.result(run_one(cfg, code)), [True, True, True, "<module 'json' ", "module", "json", True, True])

    def test_dir_and_vars_show_what_the_view_gives(self):
        code = """
        import random, re
        names = dir(random)
        return [[n for n in names if n.startswith('_') or n == 'os'], 'choice' in names,
                sorted(set(vars(random)) - set(names)), 'enum' in dir(re), 'compile' in vars(re)]
        """
        self.assertEqual(self.result(run_one(TYPICAL_OPEN, code)), [[], True, [], False, True])

    def test_writes_change_the_view_not_the_module(self):
        code = """
        import json, string
        import json as again
        json.dumps = lambda value: 'mine'
        json.extra = 1
        return [again.dumps(1), json.extra, string.Template('$a').substitute(a=json.JSONEncoder().encode([1]))]
        """
        self.assertEqual(self.result(run_one(TYPICAL, code)), ["mine", 1, "[1]"])

    def test_values_modules_rebind_are_read_live(self):
        code = """
        import time
        before = time.timezone
        return [before == time.timezone, isinstance(time.tzname, tuple)]
        """
        self.assertEqual(self.result(run_one(TYPICAL, code)), [True, True])

    def test_introspection_helpers_need_their_module(self):
        code = "import traceback\nreturn len(list(traceback.walk_stack(None))) > 0"
        self.refused(run_one(TYPICAL, code), ACCESS, INTROSPECTION.format("traceback.walk_stack", "sys"))
        self.assertTrue(self.result(run_one(Config(stdlib_allow=("traceback", "sys")), code)))
        self.refused(run_one(EXTENDED, "import threading\nthreading.settrace(print)"), ACCESS,
                     INTROSPECTION.format("threading.settrace", "sys"))

    def test_the_builtins_module_keeps_the_deny_list(self):
        code = """
        import builtins
        try:
            builtins.open
        except AttributeError as exc:
            missing = str(exc)
        return [builtins.len([1, 2]), missing, builtins.print is print]
        """
        self.assertEqual(self.result(run_one(Config(stdlib_allow=("builtins",)), code)),
                         [2, "module 'builtins' has no attribute 'open'", True])

    def test_package_code_gets_the_modules_themselves(self):
        # importlib called by package code (pandas' way to its optional dependencies).
        import os
        import shutil
        import tempfile

        root = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, root)
        os.mkdir(os.path.join(root, "viewpkg"))
        with open(os.path.join(root, "viewpkg", "__init__.py"), "w") as f:
            f.write("import importlib\nrandom = importlib.import_module('random')\nHAS_OS = hasattr(random, '_os')\n")
        cfg = Config(stdlib_allow=("importlib", "random"), external_allow=("viewpkg",))
        self.assertTrue(self.result(run_one(cfg, "import viewpkg\nreturn viewpkg.HAS_OS", path=root)))

    def test_both_wildcards_hand_out_the_modules(self):  # as n8n: no Python-level check at all
        code = "import random, operator\nreturn [str(random._os)[:12], str(operator.attrgetter('_os')(random))[:12]]"
        self.assertEqual(self.result(run_one(EVERYTHING, code)), ["<module 'os'", "<module 'os'"])


class RunTimeNamesTest(Base):
    def test_the_getattr_family(self):
        cases = {
            "getattr blocked": ("return getattr(print, '_' * 2 + 'globals' + '_' * 2)", ATTR.format("__globals__")),
            "getattr format": ("return getattr('{}', 'for' + 'mat')", BOUND.format("format")),
            "getattr mro": ("return getattr(int, 'mr' + 'o')()", ATTR.format("mro")),
            "setattr private": ("import json\nsetattr(json, '_' + 'x', 1)", PRIVATE.format("_x")),
            "delattr private": ("import json\ndelattr(json, '_' + 'x')", PRIVATE.format("_x")),
            "vars of a class": ("return vars(str)['format']", CLASS_VARS),
        }
        replies = self.each(TYPICAL_OPEN, {label: case[0] for label, case in cases.items()})
        for label, (_, description) in cases.items():
            with self.subTest(label):
                self.refused(replies[label], ACCESS, description)

    def test_the_getattr_family_still_works(self):
        code = """
        import json
        class Box:
            pass
        b = Box()
        setattr(b, 'size', 3)
        n = 7
        seen = vars()
        out = [getattr(b, 'size'), getattr(b, 'missing', 'default'), hasattr(b, 'size'), dict(vars(b)), 'n' in seen,
               getattr(json, 'dumps')([1]), sorted(vars(json))[:2]]
        delattr(b, 'size')
        return out + [hasattr(b, 'size')]
        """
        self.assertEqual(self.result(run_one(TYPICAL_OPEN, code)),
                         [3, "default", True, {"size": 3}, True, "[1]", ["JSONDecodeError", "JSONDecoder"], False])

    def test_vars_refuses_private_state(self):
        code = "import string\nf = string.Formatter()\nf.public = 1\nreturn vars(f)"
        self.assertEqual(self.result(run_one(TYPICAL_OPEN, code)), {"public": 1})
        code = "import functools\np = functools.partial(len)\nsetattr(p, 'x', 1)\nreturn vars(p)"
        self.assertEqual(self.result(run_one(TYPICAL_OPEN, code)), {"x": 1})

    def test_operator_getters(self):
        cases = {
            "attrgetter blocked": ("import operator\nu = '_' * 2\nreturn operator.attrgetter(u + 'globals' + u)(len)",
                                   ATTR.format("__globals__")),
            "attrgetter dunder": ("import operator\nu = '_' * 2\nreturn operator.attrgetter(u + 'call' + u)(print)",
                                  PRIVATE.format("__call__")),
            "attrgetter format": ("import operator\nreturn operator.attrgetter('format')('{}')", BOUND.format("format")),
            "attrgetter mro": ("import operator\nreturn operator.attrgetter('mro')(int)", ATTR.format("mro")),
            "methodcaller private": ("import operator\nreturn operator.methodcaller('_' * 2 + 'reduce_ex' + '_' * 2, 2)(1)",
                                     ATTR.format("__reduce_ex__")),
        }
        replies = self.each(TYPICAL, {label: case[0] for label, case in cases.items()})
        for label, (_, description) in cases.items():
            with self.subTest(label):
                self.refused(replies[label], ACCESS, description)

    def test_operator_getters_still_work(self):
        code = """
        import operator, collections
        P = collections.namedtuple('P', 'x y')
        points = [P(2, 'b'), P(1, 'a')]
        by_x = operator.attrgetter('x')
        return [sorted(points, key=by_x)[0].y, operator.attrgetter('x', 'y')(points[0]), operator.methodcaller('upper')('a'),
                operator.methodcaller('split', ',', maxsplit=1)('a,b,c'), operator.attrgetter('real.imag')(3),
                operator.methodcaller('format', 2)('<{}>'), operator.itemgetter('_id')({'_id': 5}), repr(by_x)]
        """
        self.assertEqual(self.result(run_one(TYPICAL, code)),
                         ["a", [2, "b"], "A", ["a", "b,c"], 0, "<2>", 5, "operator.attrgetter('x')"])

    def test_functools_wrappers(self):
        # update_wrapper reads and writes attributes by name: merging a library function's
        # globals into the task's own would hand out random's os as the name _os.
        attack = """
        import functools, random
        u = '_' * 2
        def h():
            pass
        p = functools.partial(len)
        functools.update_wrapper(p, h, assigned=[u + 'globals' + u], updated=[])
        functools.update_wrapper(p, random.shuffle, assigned=[], updated=[u + 'globals' + u])
        return str(_os)
        """
        self.refused(run_one(TYPICAL, attack), ACCESS, ATTR.format("__globals__"))
        cases = {
            "wraps": "import functools\ndef h(): pass\nfunctools.wraps(h, assigned=['_' * 2 + 'globals' + '_' * 2])",
            "the partial wraps returns": "import functools\ndef h(): pass\n"
                                         "functools.wraps(h).func(h, h, assigned=['_' * 2 + 'globals' + '_' * 2])",
        }
        for label, reply in self.each(TYPICAL, cases).items():
            with self.subTest(label):
                self.refused(reply, ACCESS, ATTR.format("__globals__"))
        self.refused(run_one(TYPICAL, "import functools\nfunctools.update_wrapper(len, '{}', assigned=['format'])"),
                     ACCESS, BOUND.format("format"))

    def test_functools_wrappers_still_work(self):
        code = """
        import functools
        def logged(f):
            @functools.wraps(f)
            def inner(*args):
                return ('logged', f(*args))
            return inner
        @logged
        def double(x):
            'Twice x.'
            return 2 * x
        plain = functools.update_wrapper(functools.partial(double), double)
        return [double(2), double.__name__, double.__doc__, plain.__name__]
        """
        self.assertEqual(self.result(run_one(TYPICAL, code)), [["logged", 4], "double", "Twice x.", "double"])

    def test_exec_eval_and_compile_check_their_source(self):
        cases = {
            "eval": ("return eval('().' + '_' * 2 + 'class' + '_' * 2)", "Line 1: " + ATTR.format("__class__")),
            "exec": ("import random\nexec('x = random.' + '_os')", "Line 1: " + PRIVATE.format("_os")),
            "compile": ("compile('a = 1\\nb = a._x', 'file', 'exec')", "Line 2: " + PRIVATE.format("_x")),
            "imports": ("exec('import os', {})", "Line 1: Import of standard library module 'os' is disallowed. "
                                                 "Allowed stdlib modules: " + ", ".join(sorted(TYPICAL_MODULES))),
        }
        replies = self.each(TYPICAL_OPEN, {label: case[0] for label, case in cases.items()})
        for label, (_, description) in cases.items():
            with self.subTest(label):
                self.refused(replies[label], FORMAT, description)
        # Templates built at run time in such source meet the format guard.
        code = "u = '_' * 2\nreturn eval(\"('{0.' + u + 'class' + u + '}').format(1)\")"
        self.refused(run_one(TYPICAL_OPEN, code), FORMAT, PATTERN.format("__class__"))

    def test_exec_eval_and_compile_still_work(self):
        code = """
        ns = {}
        exec("import json\\ny = json.dumps([1])\\ndef f(a):\\n    return a * 2", ns)
        x = 5
        code = compile('x + 1', 'expr', 'eval')
        tree = compile('a = 1', 'f', 'exec', 0x400)  # ast.PyCF_ONLY_AST
        return [ns['y'], ns['f'](3), eval('x + 1'), eval(code), eval(' 2'), type(tree).__name__,
                eval('len(_items)', {'_items': [1, 2]})]
        """
        self.assertEqual(self.result(run_one(TYPICAL_OPEN, code)), ["[1]", 6, 6, 6, 2, "Module", 2])


class FormatterPathsTest(Base):
    def test_every_way_to_a_formatter_is_guarded(self):
        u = "u = '_' * 2\n"
        cases = {
            "parse replaced on an instance": u + "import string\nf = string.Formatter()\n"
                                                 "f.parse = lambda s: [('', '0.' + u + 'class' + u, '', None)]\n"
                                                 "return f.format('{0}', 1)",
            "get_field at run time": u + "import string\nreturn string.Formatter().get_field('0.' + u + 'class' + u, [1], {})",
            "methodcaller": u + "import operator\nreturn operator.methodcaller('format', 1)('{0.' + u + 'class' + u + '}')",
            "format_map": u + "return ('{x.' + u + 'class' + u + '}').format_map({'x': 1})",
            "vformat": u + "import string\nreturn string.Formatter().vformat('{0.' + u + 'class' + u + '}', [1], {})",
        }
        for label, reply in self.each(TYPICAL, cases).items():
            with self.subTest(label):
                self.refused(reply, FORMAT, PATTERN.format("__class__"))
        private = {
            "str.format": "import random\nreturn ('{0.' + chr(95) + 'os}').format(random)",
            "Formatter": "import random, string\nreturn string.Formatter().format('{0.' + chr(95) + 'os}', random)",
        }
        for label, reply in self.each(TYPICAL, private).items():
            with self.subTest(label):
                self.refused(reply, FORMAT, PATTERN.format("_os"))

    def test_a_formatter_subclass_with_its_own_parse(self):
        code = """
        import string
        u = '_' * 2
        class Sly(string.Formatter):
            def parse(self, s):
                return [('', '0.' + u + 'class' + u, '', None)]
        return Sly().format('{0}', 1)
        """
        self.refused(run_one(TYPICAL_OPEN, code), FORMAT, PATTERN.format("__class__"))

    def test_formatters_still_work(self):
        code = """
        import string
        class Upper(string.Formatter):
            def format_field(self, value, spec):
                return str(value).upper()
        return [Upper().format('{0}-{x.real}', 'a', x=2), string.Formatter().format('{0[_id]}', {'_id': 7}),
                '{0[_id]} {1.imag}'.format({'_id': 1}, 2), '{:>4}'.format('x')]
        """
        self.assertEqual(self.result(run_one(TYPICAL_OPEN, code)), ["A-2", "7", "1 0", "   x"])


class SourceLinesTest(Base):
    def test_traceback_reads_python_source_only(self):
        code = """
        import traceback, json
        listed = traceback.format_list([('/etc/passwd', 1, 'x', None)])
        try:
            json.loads('{')
        except ValueError:
            text = traceback.format_exc()
        return [listed, 'obj, end = self.scan_once(s, idx)' in text]
        """
        self.assertEqual(self.result(run_one(TYPICAL, code)), [['  File "/etc/passwd", line 1, in x\n'], True])
        reply = run_one(EXTENDED, "import linecache\nreturn linecache.getline('/etc/passwd', 1)")
        self.assertEqual(self.result(reply), "")


# Code-node snippets a typical allowlist must keep running unchanged.
SNIPPETS = {
    "dates": """
        from datetime import datetime, timedelta, timezone
        import datetime as dt, time
        d = datetime.strptime('2024-03-05 10:11:12', '%Y-%m-%d %H:%M:%S')
        return [d.isoformat(), (d + timedelta(days=3)).strftime('%a %d %b'), dt.date(2024, 1, 31).isoformat(),
                datetime.fromisoformat('2024-01-02T03:04:05+00:00').astimezone(timezone.utc).hour,
                time.strftime('%Y', time.gmtime(0)), time.strptime('2024', '%Y').tm_year]
    """,
    "regexes": """
        import re
        m = re.compile(r'(?P<user>\\w+)@(?P<host>[\\w.]+)', re.IGNORECASE).search('Mail: Bob@Example.com')
        return [m.group('user'), m.groupdict()['host'], re.sub(r'\\d+', lambda g: str(int(g.group()) * 2), 'a1b22'),
                re.findall('[A-Z]', 'aBcD'), re.split(r',\\s*', 'a, b,c'), bool(re.match('^x', 'X', re.I | re.M))]
    """,
    "json": """
        import json
        return [json.dumps({'b': 1, 'a': [1, 2]}, sort_keys=True), json.loads('{"x": [1, 2.5, null]}'),
                json.dumps({'k': {1, 2}}, default=sorted)]
    """,
    "collections": """
        from collections import Counter, defaultdict, OrderedDict, deque, namedtuple, ChainMap
        P = namedtuple('P', 'x y', defaults=[0])
        groups = defaultdict(list)
        for item in _items:
            groups[item['json']['kind']].append(item['json']['_id'])
        p = P(1)
        return [Counter('abracadabra').most_common(2), dict(groups), list(OrderedDict(b=1, a=2)),
                list(deque([1, 2, 3], maxlen=2)), p._replace(y=5)._asdict(), list(P._fields), list(P._make([3, 4])),
                P._field_defaults, dict(ChainMap({'a': 1}, {'b': 2}))]
    """,
    "itertools and functools": """
        import itertools, functools, operator
        @functools.lru_cache(maxsize=None)
        def fib(n):
            return n if n < 2 else fib(n - 1) + fib(n - 2)
        return [list(itertools.chain([1], [2])), [(k, len(list(g))) for k, g in itertools.groupby('aabbb')],
                functools.reduce(operator.add, [1, 2, 3]), functools.partial(int, base=2)('101'), fib(30),
                sorted(_items, key=lambda i: i['json']['n'])[0]['json']['n']]
    """,
    "random sampling": """
        import random
        random.seed(42)
        rng = random.Random(7)
        picked = random.sample([i['json']['n'] for i in _items], 2)
        deck = list(range(5))
        random.shuffle(deck)
        return [len(picked), random.choice('abc') in 'abc', 1 <= rng.randint(1, 6) <= 6, sorted(deck),
                len(random.choices([1, 2], k=4))]
    """,
    "hashing and base64": """
        import hashlib, base64
        return [hashlib.sha256(b'abc').hexdigest()[:16], hashlib.md5('x'.encode()).hexdigest()[:8],
                hashlib.new('sha1', b'a').hexdigest()[:8], base64.b64encode(b'hello').decode(),
                base64.b64decode('aGVsbG8=').decode(), base64.urlsafe_b64encode(b'\\xff\\xfe').decode()]
    """,
    "math and strings": """
        import math, string
        return [math.sqrt(16), math.floor(2.7), math.isclose(0.1 + 0.2, 0.3), round(math.pi, 4), math.gcd(12, 18),
                string.Template('$who likes $what').substitute(who='tim', what='py'), string.capwords('hi there'),
                string.Formatter().format('{0}-{x}', 1, x=2), '{:>5}|{:.2f}'.format('a', math.e), '%s=%d' % ('a', 1)]
    """,
    "errors and tracebacks": """
        import traceback
        try:
            1 / 0
        except ZeroDivisionError:
            last = traceback.format_exc().splitlines()[-1]
        return [last]
    """,
}

SNIPPET_ITEMS = [{"json": {"kind": "a", "_id": "x1", "n": 3}}, {"json": {"kind": "b", "_id": "x2", "n": 1}},
                 {"json": {"kind": "a", "_id": "x3", "n": 2}}]


class RealisticSnippetsTest(Base):
    def run_all(self, cfg):
        settings = [task(code, items=SNIPPET_ITEMS) for code in SNIPPETS.values()]
        return dict(zip(SNIPPETS, in_task_process(cfg, *settings)))

    def test_typical_and_extended_allowlists_run_them(self):
        expected = None
        for cfg in (TYPICAL, EXTENDED, TYPICAL_OPEN):
            replies = self.run_all(cfg)
            for label, reply in replies.items():
                with self.subTest(label, cfg=cfg.stdlib_allow[-1], deny=bool(cfg.builtins_deny)):
                    self.result(reply)
            results = {label: reply["result"] for label, reply in replies.items()}
            expected = expected or results
            self.assertEqual(results, expected)  # the same answers at every level
        self.assertEqual(expected["dates"], ["2024-03-05T10:11:12", "Fri 08 Mar", "2024-01-31", 3, "1970", 2024])
        self.assertEqual(expected["collections"][1], {"a": ["x1", "x3"], "b": ["x2"]})
        self.assertEqual(expected["collections"][4:8], [{"x": 1, "y": 5}, ["x", "y"], [3, 4], {"y": 0}])
        self.assertEqual(expected["hashing and base64"], ["ba7816bf8f01cfea", "9dd4e461", "86f7e437", "aGVsbG8=",
                                                          "hello", "__4="])
        self.assertEqual(expected["errors and tracebacks"], ["ZeroDivisionError: division by zero"])

    def test_default_allowlist_refuses_the_imports_only(self):
        code = """
        rows = [i['json'] for i in _items]
        by_kind = {}
        for r in rows:
            by_kind.setdefault(r['kind'], []).append(r['_id'])
        match rows[0]:
            case {'kind': kind, 'n': n}:
                first = f'{kind}:{n:03d}'
        return [by_kind, first, '{:.1f}'.format(sum(r['n'] for r in rows) / len(rows)), sorted(rows, key=len)[0]['n']]
        """
        reply = in_task_process(DEFAULT, task(code, items=SNIPPET_ITEMS))[0]
        self.assertEqual(self.result(reply), [{"a": ["x1", "x3"], "b": ["x2"]}, "a:003", "2.0", 3])
        reply = in_task_process(DEFAULT, task(SNIPPETS["json"]))[0]
        self.assertEqual(reply["kind"], "static")


class ExtendedAllowlistTest(Base):
    """What allowing importlib, gc, pickle or inspect gives code: README's Security section."""

    def test_what_the_extended_modules_give(self):
        cases = {
            "gc": "import gc, random\nreturn len(gc.get_referents(random.choice)) > 0",
            "inspect": "import inspect, random\nreturn inspect.getattr_static(random.Random, 'seed').__name__",
            "importlib machinery": "import importlib.util as u\ns = u.find_spec('os')\nm = u.module_from_spec(s)\n"
                                   "s.loader.exec_module(m)\nreturn callable(m.getcwd)",
            "pickle reads private names": "import pickle\nreturn str(pickle.loads(b'crandom\\n_inst\\n.'))[:21]",
        }
        replies = self.each(EXTENDED, cases)
        self.assertEqual({label: self.result(reply) for label, reply in replies.items()},
                         {"gc": True, "inspect": "seed", "importlib machinery": True,
                          "pickle reads private names": "<random.Random object"})

    def test_what_they_still_do_not_give(self):
        cases = {
            "pickle._loads": ("import pickle\nf = pickle._loads", "Security violations detected",
                              "Line 2: " + PRIVATE.format("_loads")),
            "pickle outside the allowlist": ("import pickle\nreturn pickle.loads(b'cbuiltins\\neval\\n.')", ACCESS,
                                             "Import of standard library module 'builtins' is disallowed. Allowed stdlib "
                                             "modules: " + ", ".join(sorted(EXTENDED_MODULES))),
            "importlib._bootstrap": ("import importlib\nb = importlib._bootstrap", "Security violations detected",
                                     "Line 2: " + PRIVATE.format("_bootstrap")),
            "linecache reads source only": ("import linecache\nreturn linecache.getline('/etc/passwd', 1) or 'nothing'",
                                            None, "nothing"),
        }
        replies = self.each(EXTENDED, {label: case[0] for label, case in cases.items()})
        for label, (_, message, description) in cases.items():
            with self.subTest(label):
                if message is None:
                    self.assertEqual(self.result(replies[label]), description)
                else:
                    error = replies[label]["error"]
                    self.assertEqual((error["message"], error["description"]), (message, description))


if __name__ == "__main__":
    unittest.main()
