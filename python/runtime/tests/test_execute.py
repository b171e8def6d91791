"""run_task: the Code-node semantics of docs/code-node.md §3–§10."""

import sys
import textwrap
import unittest
from unittest import mock

from pyrunner_runtime import execute, sandbox
from pyrunner_runtime.config import Config
from pyrunner_runtime.execute import MAX_STACK_CHARS, run_task

# Semantics, not security: every module and builtin allowed (the sandbox has its own tests).
CFG = Config(stdlib_allow=("*",), external_allow=("*",), builtins_deny=())


def run(code, mode="all", items=None, cfg=CFG, **extra):
    settings = {
        "code": textwrap.dedent(code),
        "nodeMode": "runOnceForAllItems" if mode == "all" else "runOnceForEachItem",
        "items": [] if items is None else items,
        "continueOnFail": False,
    }
    settings.update(extra)
    return run_task(settings, cfg)


def result_of(testcase, msg):
    testcase.assertEqual(msg["op"], "result", msg)
    return msg["result"]


def error_of(testcase, msg, kind="user"):
    testcase.assertEqual(msg["op"], "error", msg)
    testcase.assertEqual(msg["kind"], kind, msg)
    return msg["error"]


def items_of(*jsons):
    return [{"json": j, "pairedItem": {"item": i}} for i, j in enumerate(jsons)]


class AllItemsTest(unittest.TestCase):
    def test_items_are_passed_and_returned_verbatim(self):
        items = [{"json": {"a": 1}, "binary": {"f": {"data": "x"}}, "pairedItem": {"item": 0}}, {"json": {"a": 2}}]
        msg = run("return _items", items=items)
        self.assertIs(result_of(self, msg), items)
        self.assertEqual(msg["print_args"], [])

    def test_items_identity_inside_user_code(self):
        items = items_of({"a": 1})
        result = result_of(self, run("return _items[0] is _items[0] and type(_items).__name__", items=items))
        self.assertEqual(result, "list")

    def test_transform_example(self):
        items = items_of({"a": 1}, {"a": 2}, {"a": 3})
        code = "return [{'json': {'a': item['json']['a'], 'sq': item['json']['a'] ** 2}} for item in _items]"
        self.assertEqual(
            result_of(self, run(code, items=items)),
            [{"json": {"a": 1, "sq": 1}}, {"json": {"a": 2, "sq": 4}}, {"json": {"a": 3, "sq": 9}}],
        )

    def test_result_is_unchanged_whatever_its_type(self):
        for code, want in [("return {'a': 1}", {"a": 1}), ("return 5", 5), ("return 'x'", "x"), ("return [1, 'a']", [1, "a"])]:
            with self.subTest(code=code):
                self.assertEqual(result_of(self, run(code)), want)

    def test_query(self):
        for query in ["what is n8n?", {"q": 1}, None]:
            with self.subTest(query=query):
                self.assertEqual(result_of(self, run("return _query", query=query)), query)

    def test_query_absent_is_none(self):
        self.assertIsNone(result_of(self, run("return _query")))

    def test_top_level_return_stops_the_code(self):
        self.assertEqual(result_of(self, run("return 1\nraise ValueError('not reached')")), 1)

    def test_falling_off_the_end_returns_none(self):
        self.assertIsNone(result_of(self, run("x = 1")))

    def test_empty_and_comment_only_code(self):
        for code in ["", "# nothing here\n", "\n\n"]:
            with self.subTest(code=code):
                self.assertIsNone(result_of(self, run(code)))

    def test_top_level_names_are_seen_by_nested_functions(self):
        code = """
        def helper():
            return x * 2
        x = 21
        return helper()
        """
        self.assertEqual(result_of(self, run(code)), 42)

    def test_multi_line_string_literal_is_preserved(self):
        code = 's = """first\n  second\nthird"""\nreturn s\n'
        self.assertEqual(result_of(self, run(code)), "first\n  second\nthird")

    def test_multi_line_string_literal_is_preserved_per_item(self):
        code = 'return {"s": """a\n    b"""}'
        self.assertEqual(result_of(self, run(code, "each", items_of({}))), [{"json": {"s": "a\n    b"}, "pairedItem": {"item": 0}}])

    def test_docstring_first_statement(self):
        self.assertEqual(result_of(self, run('"""doc"""\nreturn 1')), 1)

    def test_item_is_absent_from_all_items(self):
        self.assertEqual(error_of(self, run("return _item", items=items_of({})))["message"], "name '_item' is not defined")


class PerItemTest(unittest.TestCase):
    def each(self, code, items):
        return result_of(self, run(code, "each", items))

    def test_plain_dict_becomes_json(self):
        out = self.each("return {'doubled': _item['json']['x'] * 2}", items_of({"x": 10}))
        self.assertEqual(out, [{"json": {"doubled": 20}, "pairedItem": {"item": 0}}])

    def test_json_key_keeps_json_and_drops_other_keys(self):
        out = self.each("return {'json': {'a': 1}, 'other': 2, 'pairedItem': {'item': 7}}", items_of({}))
        self.assertEqual(out, [{"json": {"a": 1}, "pairedItem": {"item": 0}}])

    def test_json_and_binary(self):
        out = self.each("return {'json': {'custom': 'data'}, 'binary': {'file': 'data'}}", items_of({}))
        self.assertEqual(out, [{"json": {"custom": "data"}, "binary": {"file": "data"}, "pairedItem": {"item": 0}}])
        # n8n's runner's key order (deviation table: the order is pinned here).
        self.assertEqual(list(out[0]), ["json", "pairedItem", "binary"])

    def test_binary_without_json(self):
        out = self.each("return {'binary': {'file': {'data': 'QQ=='}}}", items_of({}))
        self.assertEqual(out, [{"json": {}, "binary": {"file": {"data": "QQ=="}}, "pairedItem": {"item": 0}}])
        self.assertEqual(list(out[0]), ["json", "pairedItem", "binary"])

    def test_binary_without_json_keeps_the_other_keys_as_json(self):
        out = self.each("return {'binary': {'f': 1}, 'a': 1, 'pairedItem': 5}", items_of({}))
        self.assertEqual(out, [{"json": {"a": 1, "pairedItem": 5}, "binary": {"f": 1}, "pairedItem": {"item": 0}}])

    def test_non_dict_values_become_json(self):
        for value in ["5", "'text'", "[1, 2]", "True", "3.5"]:
            with self.subTest(value=value):
                out = self.each("return " + value, items_of({}))
                self.assertEqual(out, [{"json": eval(value), "pairedItem": {"item": 0}}])

    def test_json_key_with_a_non_dict_value(self):
        self.assertEqual(self.each("return {'json': 5}", items_of({})), [{"json": 5, "pairedItem": {"item": 0}}])

    def test_user_paired_item_is_replaced_by_the_input_index(self):
        out = self.each("return {'json': {'a': 1}, 'pairedItem': {'item': 99}}", items_of({}, {}))
        self.assertEqual([o["pairedItem"] for o in out], [{"item": 0}, {"item": 1}])

    def test_none_filters_the_item_and_keeps_the_other_indices(self):
        items = items_of({"i": 0}, {"i": 1}, {"i": 2}, {"i": 3})
        out = self.each("return None if _item['json']['i'] in (0, 3) else {'i': _item['json']['i']}", items)
        self.assertEqual(out, [{"json": {"i": 1}, "pairedItem": {"item": 1}}, {"json": {"i": 2}, "pairedItem": {"item": 2}}])

    def test_falling_off_the_end_filters_the_item(self):
        self.assertEqual(self.each("x = 1", items_of({}, {})), [])

    def test_no_items_runs_nothing(self):
        self.assertEqual(self.each("raise ValueError('never')", []), [])

    def test_globals_are_fresh_per_item(self):
        code = """
        global counter
        try:
            counter += 1
        except NameError:
            counter = 1
        return {'counter': counter}
        """
        out = self.each(code, items_of({}, {}, {}))
        self.assertEqual([o["json"]["counter"] for o in out], [1, 1, 1])

    def test_item_is_the_input_object(self):
        items = items_of({"a": 1})
        out = self.each("return _item", items)
        self.assertIs(out[0]["json"], items[0]["json"])

    def test_items_and_query_are_absent(self):
        for name in ["_items", "_query"]:
            with self.subTest(name=name):
                err = error_of(self, run("return " + name, "each", items_of({}), query="q"))
                self.assertEqual(err["message"], "name '%s' is not defined" % name)

    def test_error_on_second_item(self):
        err = error_of(self, run("return 1 / _item['json']['d']", "each", items_of({"d": 1}, {"d": 0}, {"d": 2})))
        self.assertEqual(err["message"], "division by zero")


class UserErrorTest(unittest.TestCase):
    def test_message_has_no_class_name(self):
        for code, want in [
            ("raise ValueError('boom')", "boom"),
            ("raise ValueError('Intentional error')", "Intentional error"),
            ("return 1 / 0", "division by zero"),
            ("return {}['missing']", "'missing'"),
            ("raise RuntimeError()", ""),
        ]:
            with self.subTest(code=code):
                err = error_of(self, run(code))
                self.assertEqual(err["message"], want)
                self.assertEqual(err["description"], "")

    def test_description_from_the_exception(self):
        code = """
        e = ValueError('bad input')
        e.description = 'the field x must be set'
        raise e
        """
        err = error_of(self, run(code))
        self.assertEqual((err["message"], err["description"]), ("bad input", "the field x must be set"))

    def test_description_from_a_class_attribute(self):
        code = """
        class MyError(Exception):
            description = 'from the class'
        raise MyError('m')
        """
        self.assertEqual(error_of(self, run(code))["description"], "from the class")

    def test_description_from_stderr(self):
        code = """
        import sys
        sys.stderr.write('written to stderr\\n')
        print('printed to stderr', file=sys.stderr)
        raise ValueError('x')
        """
        err = error_of(self, run(code))
        self.assertEqual(err["description"], "written to stderr\nprinted to stderr\n")

    def test_description_that_is_not_a_string_falls_back_to_stderr(self):
        code = """
        import sys
        sys.stderr.write('err text')
        e = ValueError('x')
        e.description = 42
        raise e
        """
        self.assertEqual(error_of(self, run(code))["description"], "err text")

    def test_stderr_is_restored(self):
        before = sys.stderr
        run("import sys\nsys.stderr = None\nraise ValueError('x')")
        self.assertIs(sys.stderr, before)
        run("import sys\nsys.stderr.write('x')\nreturn 1")
        self.assertIs(sys.stderr, before)

    def test_stderr_is_bounded(self):
        code = "import sys\nfor _ in range(1000):\n    sys.stderr.write('x' * 1000)\nraise ValueError('x')"
        description = error_of(self, run(code))["description"]
        self.assertLess(len(description), 70 * 1024)
        self.assertIn("[stderr truncated", description)

    def test_system_exit(self):
        for code, want in [
            ("raise SystemExit(3)", "Process exited with code 3"),
            ("raise SystemExit", "Process exited with code None"),
            ("import sys\nsys.exit(0)", "Process exited with code 0"),
            ("import sys\nsys.exit('bye')", "Process exited with code bye"),
        ]:
            with self.subTest(code=code):
                err = error_of(self, run(code))
                self.assertEqual((err["message"], err["description"]), (want, ""))

    def test_system_exit_description_from_stderr(self):
        err = error_of(self, run("import sys\nsys.stderr.write('why')\nsys.exit(2)"))
        self.assertEqual((err["message"], err["description"]), ("Process exited with code 2", "why"))

    def test_keyboard_interrupt_is_an_ordinary_error(self):
        err = error_of(self, run("raise KeyboardInterrupt('stop')"))
        self.assertEqual(err["message"], "stop")

    def test_recursion_error(self):
        err = error_of(self, run("def f(n):\n    return f(n + 1)\nreturn f(0)"))
        self.assertIn("maximum recursion depth exceeded", err["message"])
        self.assertLessEqual(len(err["stack"]), MAX_STACK_CHARS)
        self.assertIn('line 2, in f', err["stack"])
        # The interpreter still works afterwards.
        self.assertEqual(result_of(self, run("return 1")), 1)

    def test_memory_error(self):
        self.assertEqual(error_of(self, run("raise MemoryError('out of memory')"))["message"], "out of memory")

    def test_exception_whose_str_fails(self):
        code = """
        class Bad(Exception):
            def __str__(self):
                raise RuntimeError('no str')
        raise Bad()
        """
        self.assertEqual(error_of(self, run(code))["message"], "<exception str() failed>")

    def test_traceback_line_numbers_are_the_users(self):
        code = "x = 1\ny = 2\n\ndef f():\n    return 1 / 0\nreturn f()\n"
        stack = error_of(self, run(code))["stack"]
        self.assertIn('File "<all_items_task_execution>", line 6, in _user_function\n    return f()', stack)
        self.assertIn('File "<all_items_task_execution>", line 5, in f\n    return 1 / 0', stack)
        self.assertTrue(stack.startswith("Traceback (most recent call last):\n"), stack)
        self.assertTrue(stack.endswith("ZeroDivisionError: division by zero\n"), stack)
        self.assertNotIn("<module>", stack)

    def test_traceback_per_item_file_name(self):
        stack = error_of(self, run("\nraise ValueError('v')", "each", items_of({})))["stack"]
        self.assertIn('File "<per_item_task_execution>", line 2, in _user_function', stack)

    def test_traceback_keeps_only_user_frames(self):
        stack = error_of(self, run("import json\nreturn json.loads('{')"))["stack"]
        self.assertIn("line 2, in _user_function", stack)
        self.assertNotIn("decoder.py", stack)

    def test_print_args_are_returned_on_error(self):
        msg = run("print('before')\nraise ValueError('x')")
        self.assertEqual(msg["print_args"], [["'before'"]])


class StaticErrorTest(unittest.TestCase):
    def test_syntax_error(self):
        err = error_of(self, run("return +"), "static")
        self.assertEqual(err["message"], "invalid syntax (<unknown>, line 1)")
        self.assertNotIn("description", err)

    def test_syntax_error_has_the_users_line_number(self):
        err = error_of(self, run("a = 1\nb = 2\nc = = 3"), "static")
        self.assertEqual(err["message"], "invalid syntax (<unknown>, line 3)")
        self.assertNotIn("description", err)

    def test_compile_time_syntax_error(self):
        err = error_of(self, run("a = 1\nnonlocal a"), "static")
        self.assertIn("nonlocal", err["message"])
        self.assertIn("(<all_items_task_execution>, line 2)", err["message"])
        self.assertNotIn("description", err)

    def test_null_byte_and_deep_nesting(self):
        for code in ["a\x00b", "(" * 300 + ")" * 300]:
            with self.subTest(code=code[:10]):
                err = error_of(self, run(code), "static")
                self.assertTrue(err["message"])

    def test_nothing_runs_on_a_syntax_error(self):
        msg = run("print('x')\nreturn +")
        self.assertEqual(msg["print_args"], [])


class SettingsTest(unittest.TestCase):
    def test_bad_settings_give_an_error_not_an_exception(self):
        good = {"code": "return 1", "nodeMode": "runOnceForAllItems", "items": []}
        for bad in [None, [], {**good, "code": None}, {**good, "nodeMode": "sometimes"}, {**good, "nodeMode": 1},
                    {**good, "items": None}, {**good, "items": {}}]:
            with self.subTest(settings=bad):
                err = error_of(self, run_task(bad, CFG), "static")
                self.assertTrue(err["message"])

    def test_unknown_node_mode_message(self):
        err = error_of(self, run_task({"code": "", "nodeMode": "x", "items": []}, CFG), "static")
        self.assertEqual(err["message"], "Unknown nodeMode: x")

    def test_only_the_required_fields(self):
        self.assertEqual(result_of(self, run_task({"code": "return 1", "nodeMode": "runOnceForEachItem", "items": [{}]}, CFG)),
                         [{"json": 1, "pairedItem": {"item": 0}}])


class SandboxSeamTest(unittest.TestCase):
    def test_violations_are_a_static_error(self):
        with mock.patch.object(sandbox, "check", return_value=["Line 1: first", "Line 2: second"]) as check:
            msg = run("import os\nprint('never')")
        check.assert_called_once()
        self.assertEqual(check.call_args[0][1], "import os\nprint('never')")
        err = error_of(self, msg, "static")
        self.assertEqual(err["message"], "Security violations detected")
        self.assertEqual(err["description"], "Line 1: first\nLine 2: second")
        self.assertEqual(msg["print_args"], [])

    def test_failed_analysis_does_not_run_the_code(self):
        for seam in ("check", "rewrite"):
            with self.subTest(seam=seam), mock.patch.object(sandbox, seam, side_effect=MemoryError("out of memory")):
                msg = run("print('ran')\nreturn 1")
                err = error_of(self, msg, "static")
                self.assertEqual(err["message"], execute.ANALYSIS_FAILED)
                self.assertEqual(err["description"], "out of memory")
                self.assertEqual(msg["print_args"], [])
                self.assertNotIn("analysis", msg)

    def test_the_reply_says_the_analysis_passed(self):
        self.assertEqual(run("return 1")["analysis"], "passed")
        self.assertEqual(run("raise ValueError('x')")["analysis"], "passed")
        self.assertNotIn("analysis", run("return ("))  # a syntax error: no verdict

    def test_rewrite_runs_before_compile(self):
        import ast

        def rewrite(tree, cfg):
            tree.body = [ast.copy_location(ast.Return(value=ast.Constant(value="rewritten")), tree.body[0])]
            ast.fix_missing_locations(tree)
            return tree

        with mock.patch.object(sandbox, "rewrite", side_effect=rewrite):
            self.assertEqual(result_of(self, run("return 'original'")), "rewritten")

    def test_make_builtins_provides_the_builtins(self):
        real = sandbox.make_builtins

        def make_builtins(cfg, print_fn):
            # The sandbox's mapping is read-only: extend a copy.
            return {**dict(real(cfg, print_fn)), "extra_builtin": 7}

        with mock.patch.object(sandbox, "make_builtins", side_effect=make_builtins):
            self.assertEqual(result_of(self, run("return extra_builtin")), 7)

    def test_print_is_the_capturing_one_in_builtins_and_globals(self):
        msg = run("print(1)\nreturn print is __builtins__['print']")
        self.assertEqual(msg["print_args"], [["1"]])
        self.assertIs(result_of(self, msg), True)


if __name__ == "__main__":
    unittest.main()
