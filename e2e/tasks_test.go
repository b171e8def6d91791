package e2e

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/pyrunner/pyrunner/broker/fakebroker"
)

// TestCodeNodeSemantics runs Code-node tasks through the built binary and
// checks exactly what the broker receives.
func TestCodeNodeSemantics(t *testing.T) {
	b := startBroker(t, fakebroker.Options{})
	startRegistered(t, b, nil)
	items := []map[string]any{
		{"json": map[string]any{"a": 1}, "pairedItem": map[string]any{"item": 0}},
		{"json": map[string]any{"a": 2}, "pairedItem": map[string]any{"item": 1}},
		{"json": map[string]any{"a": 3}, "pairedItem": map[string]any{"item": 2}},
	}
	cases := []struct {
		name     string
		settings json.RawMessage
		result   string // taskdone's result, compacted
		error    string // taskerror's error, compacted
		rpcs     []string
	}{
		{name: "all items, as recorded from n8n",
			settings: allItems("return [{'json': {'a': item['json']['a'], 'sq': item['json']['a'] ** 2}} for item in _items]", items),
			result:   `[{"json":{"a":1,"sq":1}},{"json":{"a":2,"sq":4}},{"json":{"a":3,"sq":9}}]`},
		{name: "all items returned verbatim",
			settings: allItems("return _items", items),
			result:   `[{"json":{"a":1},"pairedItem":{"item":0}},{"json":{"a":2},"pairedItem":{"item":1}},{"json":{"a":3},"pairedItem":{"item":2}}]`},
		{name: "all items returning a dict", settings: allItems("return {'x': 1}", nil), result: `{"x":1}`},
		{name: "all items returning None", settings: allItems("x = 1", nil), result: `null`},
		{name: "per item with pairedItem and None dropped",
			settings: task("return None if _item['json']['a'] == 2 else {'json': {'b': _item['json']['a']}, 'pairedItem': {'item': 99}}", "runOnceForEachItem", items, false),
			result:   `[{"json":{"b":1},"pairedItem":{"item":0}},{"json":{"b":3},"pairedItem":{"item":2}}]`},
		{name: "per item binary",
			settings: task("return {'binary': {'f': {'data': 'eA=='}}, 'k': 1}", "runOnceForEachItem", items[:1], false),
			result:   `[{"json":{"k":1},"pairedItem":{"item":0},"binary":{"f":{"data":"eA=="}}}]`},
		{name: "query", settings: task("return [{'json': {'q': _query}}]", "runOnceForAllItems", nil, false), result: `[{"json":{"q":null}}]`},
		{name: "print before done",
			settings: allItems("print('Hello, World!')\nprint(42, 3.14, True, None)\nprint({'name': 'John', 'age': 30})\nprint()\nreturn []", nil),
			result:   `[]`,
			rpcs:     []string{`["'Hello, World!'"]`, `["42","3.14","True","None"]`, `["{\"name\": \"John\", \"age\": 30}"]`, `[]`}},
		{name: "unicode", settings: allItems("print('日本語 🎉')\nreturn [{'json': {'s': 'Ünïcödé ✓ 日本語 🎉'}}]", nil),
			result: `[{"json":{"s":"Ünïcödé ✓ 日本語 🎉"}}]`, rpcs: []string{`["'日本語 🎉'"]`}},
		{name: "NaN and Infinity", settings: allItems("return [{'json': {'n': float('nan'), 'i': float('-inf')}}]", nil),
			result: `[{"json":{"n":null,"i":null}}]`},
		{name: "user exception, prints dropped", settings: allItems("print('lost')\nraise ValueError('boom')", nil),
			error: `{"message":"boom","description":"","stack":"Traceback (most recent call last):\n  File \"<all_items_task_execution>\", line 2, in _user_function\n    raise ValueError('boom')\nValueError: boom\n"}`},
		{name: "exception description from stderr",
			settings: allItems("import sys\nsys.stderr.write('details here')\nraise KeyError('k')", nil),
			error:    `{"message":"'k'","description":"details here","stack":"Traceback (most recent call last):\n  File \"<all_items_task_execution>\", line 3, in _user_function\n    raise KeyError('k')\nKeyError: 'k'\n"}`},
		{name: "SystemExit", settings: allItems("import sys\nsys.exit(2)", nil),
			error: `{"message":"Process exited with code 2","description":"","stack":"Traceback (most recent call last):\n  File \"<all_items_task_execution>\", line 2, in _user_function\n    sys.exit(2)\nSystemExit: 2\n"}`},
		{name: "syntax error has the user's line and no description", settings: allItems("x = 1\nreturn (", nil),
			error: `{"message":"'(' was never closed (<unknown>, line 2)","stack":"  File \"<unknown>\", line 2\n    return (\n           ^\nSyntaxError: '(' was never closed\n"}`},
		{name: "continueOnFail gives one error item, even per item",
			settings: task("return {'r': 1 / (_item['json']['a'] - 2)}", "runOnceForEachItem", items, true),
			result:   `[{"json":{"error":"division by zero"}}]`},
		{name: "continueOnFail does not hide a syntax error",
			settings: task("return (", "runOnceForAllItems", nil, true),
			error:    `{"message":"'(' was never closed (<unknown>, line 1)","stack":"  File \"<unknown>\", line 1\n    return (\n           ^\nSyntaxError: '(' was never closed\n"}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := run(t, b, tc.settings)
			switch {
			case tc.result != "":
				if !out.Done {
					t.Fatalf("want taskdone, got error %s", out.Error)
				}
				if got := compact(t, out.Result); got != tc.result {
					t.Fatalf("result\n got %s\nwant %s", got, tc.result)
				}
			default:
				if out.Done || out.Error == nil {
					t.Fatalf("want taskerror, got result %s", out.Result)
				}
				if got := compact(t, out.Error); got != tc.error {
					t.Fatalf("error\n got %s\nwant %s", got, tc.error)
				}
			}
			var rpcs []string
			for _, r := range out.RPCs {
				if r.Name != "logNodeOutput" {
					t.Errorf("rpc %q, want logNodeOutput", r.Name)
				}
				rpcs = append(rpcs, compact(t, r.Params))
			}
			if strings.Join(rpcs, "\n") != strings.Join(tc.rpcs, "\n") {
				t.Fatalf("logNodeOutput params\n got %q\nwant %q", rpcs, tc.rpcs)
			}
		})
	}
}

func TestPrintLimit(t *testing.T) {
	b := startBroker(t, fakebroker.Options{})
	startRegistered(t, b, nil)
	out := run(t, b, allItems("for i in range(150):\n    print(i)\nreturn []", nil))
	if !out.Done || len(out.RPCs) != 101 {
		t.Fatalf("done=%v rpcs=%d, want 101", out.Done, len(out.RPCs))
	}
	if got := compact(t, out.RPCs[99].Params); got != `["99"]` {
		t.Fatalf("100th print = %s", got)
	}
	if got := compact(t, out.RPCs[100].Params); got != `["[Output truncated - 50 more print statements]"]` {
		t.Fatalf("truncation entry = %s", got)
	}
}

// TestLargePayload sends 10 MB of items and gets them back.
func TestLargePayload(t *testing.T) {
	b := startBroker(t, fakebroker.Options{})
	startRegistered(t, b, nil)
	items := make([]map[string]any, 0, 10000)
	blob := strings.Repeat("x", 1100)
	for i := range 10000 {
		items = append(items, map[string]any{"json": map[string]any{"i": i, "blob": blob, "u": "é🎉"}})
	}
	settings := allItems("return [{'json': {'i': it['json']['i'], 'n': len(it['json']['blob']), 'u': it['json']['u']}} for it in _items]", items)
	if len(settings) < 10<<20 {
		t.Fatalf("payload is only %d bytes", len(settings))
	}
	out := run(t, b, settings)
	if !out.Done {
		t.Fatalf("error %s", out.Error)
	}
	var res []struct {
		JSON struct {
			I int    `json:"i"`
			N int    `json:"n"`
			U string `json:"u"`
		} `json:"json"`
	}
	if err := json.Unmarshal(out.Result, &res); err != nil {
		t.Fatal(err)
	}
	if len(res) != 10000 || res[9999].JSON.I != 9999 || res[5].JSON.N != 1100 || res[7].JSON.U != "é🎉" {
		t.Fatalf("unexpected result: %d items, last %+v", len(res), res[len(res)-1])
	}
}
