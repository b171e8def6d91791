"""Encoding the task process's reply (docs/code-node.md §11)."""

import datetime
import json
import timeit
import unittest

from pyrunner_runtime.config import Config
from pyrunner_runtime.encoding import encode_message, encode_or_error
from pyrunner_runtime.execute import run_task


def decoded(data: bytes):
    return json.loads(data.decode("utf-8"))


class EncodeMessageTest(unittest.TestCase):
    def test_round_trip(self):
        msg = {"op": "result", "result": [{"json": {"a": 1, "b": [True, None, 1.5, "s"]}}], "print_args": [["'x'"]]}
        self.assertEqual(decoded(encode_message(msg)), msg)

    def test_utf8_not_ascii_escaped(self):
        data = encode_message({"op": "result", "result": "日本語 🎉 é", "print_args": []})
        self.assertIn("日本語 🎉 é".encode("utf-8"), data)

    def test_non_finite_floats_become_null(self):
        nan, inf = float("nan"), float("inf")
        msg = {"op": "result", "result": [nan, inf, -inf, 1.5, {"x": nan, "y": (inf, [-inf])}], "print_args": []}
        data = encode_message(msg)
        self.assertNotIn(b"NaN", data)
        self.assertNotIn(b"Infinity", data)
        self.assertEqual(decoded(data)["result"], [None, None, None, 1.5, {"x": None, "y": [None, [None]]}])

    def test_non_finite_float_keys_become_their_javascript_names(self):
        msg = {"op": "result", "result": {float("nan"): 1, float("inf"): 2, float("-inf"): 3, 1.5: 4}, "print_args": []}
        self.assertEqual(decoded(encode_message(msg))["result"], {"NaN": 1, "Infinity": 2, "-Infinity": 3, "1.5": 4})

    def test_shared_references_are_not_cycles(self):
        shared = [1.0, float("nan")]
        msg = {"op": "result", "result": {"a": shared, "b": shared, "c": [shared, shared]}, "print_args": []}
        self.assertEqual(decoded(encode_message(msg))["result"], {"a": [1.0, None], "b": [1.0, None], "c": [[1.0, None]] * 2})

    def test_default_str(self):
        when = datetime.datetime(2024, 1, 2, 3, 4, 5)
        msg = {"op": "result", "result": {"when": when, "set": {1}, "bytes": b"ab"}, "print_args": []}
        self.assertEqual(decoded(encode_message(msg))["result"], {"when": "2024-01-02 03:04:05", "set": "{1}", "bytes": "b'ab'"})

    def test_lone_surrogate_falls_back_to_ascii_escapes(self):
        msg = {"op": "result", "result": ["\ud800", "日本"], "print_args": [["'\udfff'"]]}
        data = encode_message(msg)
        data.decode("ascii")
        self.assertEqual(decoded(data), msg)

    def test_lone_surrogate_and_nan_together(self):
        data = encode_message({"op": "result", "result": ["\ud800", float("nan")], "print_args": []})
        self.assertEqual(decoded(data)["result"], ["\ud800", None])

    def test_circular_raises(self):
        cycle = []
        cycle.append(cycle)
        for result in [cycle, [float("nan"), cycle]]:
            with self.subTest(result=result):
                with self.assertRaises(ValueError):
                    encode_message({"op": "result", "result": result, "print_args": []})


class EncodeOrErrorTest(unittest.TestCase):
    def test_success_is_the_plain_encoding(self):
        msg = {"op": "result", "result": [1], "print_args": []}
        self.assertEqual(encode_or_error(msg), encode_message(msg))

    def test_circular_result_becomes_an_error_message(self):
        d = {}
        d["self"] = d
        out = decoded(encode_or_error({"op": "result", "result": d, "print_args": [["'kept'"]]}))
        self.assertEqual(out["op"], "error")
        self.assertEqual(out["kind"], "user")
        self.assertEqual(out["error"]["message"], "Circular reference detected")
        self.assertEqual(out["error"]["description"], "")
        self.assertEqual(out["print_args"], [["'kept'"]])

    def test_unsupported_key_becomes_an_error_message(self):
        out = decoded(encode_or_error({"op": "result", "result": {(1, 2): 3}, "print_args": []}))
        self.assertEqual(out["op"], "error")
        self.assertIn("keys must be", out["error"]["message"])

    def test_absurd_nesting_becomes_an_error_message(self):
        deep = []
        for _ in range(100000):
            deep = [deep]
        out = decoded(encode_or_error({"op": "result", "result": deep, "print_args": []}))
        self.assertEqual(out["op"], "error")
        self.assertIn("recursion", out["error"]["message"])

    def test_run_task_result_with_nan_end_to_end(self):
        msg = run_task({"code": "return [{'json': {'v': float('nan')}}]", "nodeMode": "runOnceForAllItems", "items": []}, Config())
        self.assertEqual(decoded(encode_or_error(msg)), {"op": "result", "result": [{"json": {"v": None}}], "print_args": [], "analysis": "passed"})

    def test_benchmark_1000_item_result(self):
        # Printed, not asserted: timings depend on the machine.
        result = [{"json": {"a": i, "sq": i * i, "name": "item %d" % i}, "pairedItem": {"item": i}} for i in range(1000)]
        msg = {"op": "result", "result": result, "print_args": []}
        n = 50
        per_call = min(timeit.repeat(lambda: encode_or_error(msg), number=n, repeat=3)) / n
        print("\nencode_or_error, 1000-item result (%d bytes): %.0f us" % (len(encode_or_error(msg)), per_call * 1e6))


if __name__ == "__main__":
    unittest.main()
