"""The capturing print() and the stderr buffer (docs/code-node.md §9, docs/conformance.md §6)."""

import datetime
import io
import sys
import unittest

from pyrunner_runtime import printing
from pyrunner_runtime.config import Config
from pyrunner_runtime.execute import run_task
from pyrunner_runtime.printing import (
    MAX_PRINT_CHARS,
    PRINT_TRUNCATED_MARKER,
    PrintCapture,
    StderrCapture,
    format_print_arg,
)

# Semantics, not security: every module and builtin allowed (the sandbox has its own tests).
OPEN = dict(stdlib_allow=("*",), external_allow=("*",), builtins_deny=())


def printed(code, cfg=Config(**OPEN)):
    """The print_args of running code in all-items mode; the code must succeed."""
    msg = run_task({"code": code, "nodeMode": "runOnceForAllItems", "items": []}, cfg)
    assert msg["op"] == "result", msg
    return msg["print_args"]


class Node:
    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return "Node(%s)" % self.name


class NodeDict(dict):
    pass


class FormatTest(unittest.TestCase):
    def test_table_examples(self):
        for arg, want in [
            ("Hello, World!", "'Hello, World!'"),
            (42, "42"),
            (3.14, "3.14"),
            (True, "True"),
            (False, "False"),
            (None, "None"),
            ({"name": "John", "age": 30, "active": True}, '{"name": "John", "age": 30, "active": true}'),
            ([1, 2, "three", {"four": 4}], '[1, 2, "three", {"four": 4}]'),
            ([], "[]"),
            ({}, "{}"),
            ("", "''"),
            ("it's", "'it's'"),  # no escaping
            ("line\nbreak", "'line\nbreak'"),
            (float("nan"), "nan"),
            ((1, 2), "[1, 2]"),
        ]:
            with self.subTest(arg=arg):
                self.assertEqual(format_print_arg(arg), want)

    def test_json_without_spaces_matches_the_conformance_text(self):
        self.assertEqual(format_print_arg({"name": "John", "age": 30, "active": True}).replace(" ", ""),
                         '{"name":"John","age":30,"active":true}')
        self.assertEqual(format_print_arg([1, 2, "three", {"four": 4}]).replace(" ", ""), '[1,2,"three",{"four":4}]')

    def test_unicode_emoji_cjk_pass_through(self):
        for text in ["héllo wörld", "🎉🚀", "日本語テキスト", "Привет"]:
            with self.subTest(text=text):
                self.assertEqual(format_print_arg(text), "'" + text + "'")
                self.assertEqual(format_print_arg({"t": text}), '{"t": "%s"}' % text)

    def test_long_string(self):
        self.assertEqual(format_print_arg("x" * 1000), "'" + "x" * 1000 + "'")

    def test_circular(self):
        d = {"a": 1}
        d["self"] = d
        lst = [1]
        lst.append(lst)
        nd = NodeDict()
        nd["me"] = nd
        self.assertEqual(format_print_arg(d), "[Circular dict]")
        self.assertEqual(format_print_arg(lst), "[Circular list]")
        self.assertEqual(format_print_arg(nd), "[Circular NodeDict]")

    def test_other_values_print_via_str(self):
        self.assertEqual(format_print_arg(Node("a")), '"Node(a)"')
        self.assertEqual(format_print_arg(datetime.datetime(2024, 1, 2, 3, 4, 5)), '"2024-01-02 03:04:05"')
        self.assertEqual(format_print_arg({1}), '"{1}"')
        self.assertTrue(format_print_arg(lambda: 1).startswith('"<function '), format_print_arg(lambda: 1))

    def test_unsupported_keys_are_labelled_circular_like_n8n(self):
        self.assertEqual(format_print_arg({(1, 2): "x"}), "[Circular dict]")


class PrintInUserCodeTest(unittest.TestCase):
    def test_conformance_calls(self):
        code = (
            "print('Hello, World!')\nprint(42)\nprint(3.14)\nprint(True)\nprint(None)\n"
            "print('Multiple', 'args', 123, False)\nreturn [{'json': {'ok': 1}}]"
        )
        msg = run_task({"code": code, "nodeMode": "runOnceForAllItems", "items": []}, Config(**OPEN))
        self.assertEqual(msg["result"], [{"json": {"ok": 1}}])
        self.assertEqual(
            msg["print_args"],
            [["'Hello, World!'"], ["42"], ["3.14"], ["True"], ["None"], ["'Multiple'", "'args'", "123", "False"]],
        )

    def test_empty_print_records_an_empty_list(self):
        self.assertEqual(printed("print()"), [[]])

    def test_structures_and_text(self):
        code = "print({'name': 'John', 'age': 30, 'active': True})\nprint([])\nprint({})\nprint('')\nprint('🎉', '日本')"
        self.assertEqual(
            printed(code),
            [['{"name": "John", "age": 30, "active": true}'], ["[]"], ["{}"], ["''"], ["'🎉'", "'日本'"]],
        )

    def test_circular_and_user_objects(self):
        code = """
d = {}
d['d'] = d
class Thing:
    def __repr__(self):
        return 'Thing!'
import datetime
print(d)
print(Thing())
print(datetime.date(2024, 5, 6))
print(lambda: 1)
"""
        out = printed(code)
        self.assertEqual(out[:3], [["[Circular dict]"], ['"Thing!"'], ['"2024-05-06"']])
        self.assertTrue(out[3][0].startswith('"<function ') and "<lambda>" in out[3][0], out[3])

    def test_per_item_prints_accumulate_in_order(self):
        msg = run_task({"code": "print(_item['json']['i'])", "nodeMode": "runOnceForEachItem",
                        "items": [{"json": {"i": 1}}, {"json": {"i": 2}}]}, Config(**OPEN))
        self.assertEqual(msg["print_args"], [["1"], ["2"]])

    def test_hundred_call_limit_and_truncation_entry(self):
        out = printed("for i in range(150):\n    print(i)")
        self.assertEqual(len(out), 101)
        self.assertEqual(out[99], ["99"])
        self.assertEqual(out[100], ["[Output truncated - 50 more print statements]"])

    def test_exactly_the_limit_has_no_truncation_entry(self):
        out = printed("for i in range(100):\n    print(i)")
        self.assertEqual(len(out), 100)
        self.assertEqual(out[-1], ["99"])

    def test_limit_comes_from_config(self):
        out = printed("for i in range(5):\n    print(i)", Config(max_prints=2, **OPEN))
        self.assertEqual(out, [["0"], ["1"], ["[Output truncated - 3 more print statements]"]])

    def test_print_to_stderr_is_not_captured(self):
        msg = run_task({"code": "import sys\nprint('to stderr', file=sys.stderr)\nprint('to stdout', file=sys.stdout)\n"
                                "raise ValueError('x')", "nodeMode": "runOnceForAllItems", "items": []}, Config(**OPEN))
        self.assertEqual(msg["print_args"], [["'to stdout'"]])
        self.assertEqual(msg["error"]["description"], "to stderr\n")

    def test_sep_and_end_are_honoured(self):
        # A deliberate deviation: n8n's runner fails the task on these keywords.
        self.assertEqual(printed("print('a', 'b', sep='-', end='', flush=True)"), [["'a'-'b'"]])
        self.assertEqual(printed("print(1, 2, sep='')"), [["12"]])
        self.assertEqual(printed("print('x', end='!\\n')"), [["'x'!"]])
        self.assertEqual(printed("print('x', end=' ...')"), [["'x' ..."]])
        # The defaults, spelled out or None, keep n8n's one string per argument.
        self.assertEqual(printed("print(1, 2, sep=' ', end='\\n')"), [["1", "2"]])
        self.assertEqual(printed("print(1, 2, sep=None, end=None)"), [["1", "2"]])

    def test_sep_and_end_must_be_strings_as_in_print(self):
        msg = run_task({"code": "print(1, sep=3)", "nodeMode": "runOnceForAllItems", "items": []}, Config(**OPEN))
        self.assertEqual(msg["error"]["message"], "sep must be None or a string, not int")


class PrintCaptureTest(unittest.TestCase):
    def test_calls_beyond_the_limit_are_not_formatted(self):
        formatted = []

        class Counted:
            def __str__(self):
                formatted.append(1)
                return "c"

        capture = PrintCapture(100)
        obj = Counted()
        for _ in range(1000):
            capture.print(obj)
        self.assertEqual(len(formatted), 100)
        self.assertEqual(capture.print_args()[-1], ["[Output truncated - 900 more print statements]"])

    def test_explicit_file_gets_ordinary_output(self):
        capture = PrintCapture(100)
        buf = io.StringIO()
        capture.print("a", 1, {"k": 1}, sep="|", file=buf)
        self.assertEqual(buf.getvalue(), "a|1|{'k': 1}\n")
        self.assertEqual(capture.print_args(), [])

    def test_none_and_stdout_files_are_captured(self):
        capture = PrintCapture(100)
        capture.print(1, file=None)
        capture.print(2, file=sys.stdout)
        self.assertEqual(capture.print_args(), [["1"], ["2"]])

    def test_unknown_keyword_is_a_type_error_like_print(self):
        with self.assertRaises(TypeError):
            PrintCapture(100).print(1, colour="red")

    def test_total_size_is_bounded(self):
        capture = PrintCapture(100)
        capture.print("x" * (MAX_PRINT_CHARS + 10), "never formatted")
        capture.print("dropped")
        out = capture.print_args()
        self.assertEqual(len(out), 2)
        self.assertEqual(len(out[0]), 1)
        self.assertTrue(out[0][0].endswith(PRINT_TRUNCATED_MARKER))
        self.assertEqual(len(out[0][0]), MAX_PRINT_CHARS + len(PRINT_TRUNCATED_MARKER))
        self.assertEqual(out[1], ["[Output truncated - 1 more print statements]"])

    def test_the_argument_that_crosses_the_bound_is_cut(self):
        capture = PrintCapture(100)
        capture.print("a" * (MAX_PRINT_CHARS - 12), "bcdefghijklmnop", "c")
        first, second = capture.print_args()[0]
        self.assertEqual(len(first), MAX_PRINT_CHARS - 10)
        self.assertEqual(second, "'bcdefghij" + PRINT_TRUNCATED_MARKER)

    def test_print_args_without_drops_is_the_recorded_list(self):
        capture = PrintCapture(100)
        capture.print("x")
        self.assertEqual(capture.print_args(), [["'x'"]])


class StderrCaptureTest(unittest.TestCase):
    def test_keeps_the_first_chars_and_marks_the_cut(self):
        buf = StderrCapture(limit=10)
        self.assertEqual(buf.write("12345678"), 8)
        self.assertEqual(buf.write("abcdef"), 6)
        self.assertEqual(buf.write("more"), 4)
        self.assertEqual(buf.getvalue(), "12345678ab" + printing.STDERR_TRUNCATED_MARKER)

    def test_under_the_limit_is_verbatim(self):
        buf = StderrCapture()
        print("hello", file=buf)
        buf.writelines(["a", "b"])
        self.assertEqual(buf.getvalue(), "hello\nab")

    def test_rejects_bytes_like_stringio(self):
        with self.assertRaises(TypeError):
            StderrCapture().write(b"x")


if __name__ == "__main__":
    unittest.main()
