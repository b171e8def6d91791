package e2e

import (
	"encoding/json"
	"net/http"
	"reflect"
	"testing"
)

// The tests below run pyrunner under a real n8n 2.41.1 (see
// n8n_harness_test.go): a webhook feeds items through Split Out into a
// Python Code node, and the webhook answers with the Code node's output
// items' json objects (reference §10.13).

func TestN8NAllItems(t *testing.T) {
	env := useN8N(t)
	w := env.deployPython(t,
		"return [{'json': {'a': item['json']['a'], 'sq': item['json']['a'] ** 2}} for item in _items]",
		"runOnceForAllItems")
	status, body := w.post(t, []any{map[string]any{"a": 1}, map[string]any{"a": 2}, map[string]any{"a": 3}})
	assertWebhookAnswer(t, status, body, `[{"a":1,"sq":1},{"a":2,"sq":4},{"a":3,"sq":9}]`)
}

func TestN8NPerItem(t *testing.T) {
	env := useN8N(t)
	w := env.deployPython(t, "return {'upper': _item['json']['s'].upper()}", "runOnceForEachItem")
	status, body := w.post(t, []any{map[string]any{"s": "ab"}, map[string]any{"s": "cd"}})
	assertWebhookAnswer(t, status, body, `[{"upper":"AB"},{"upper":"CD"}]`)
}

// TestN8NUserError: the webhook only says the workflow failed; the
// stored execution carries the runner's error message.
func TestN8NUserError(t *testing.T) {
	env := useN8N(t)
	w := env.deployPython(t, "raise ValueError('boom')", "runOnceForAllItems")
	status, body := w.post(t, []any{map[string]any{"a": 1}})
	if status != http.StatusInternalServerError {
		t.Fatalf("webhook answered %d %s, want 500", status, body)
	}
	assertJSONEqual(t, body, `{"message":"Error in workflow"}`)

	execStatus, data := w.lastExecution(t)
	if execStatus != "error" {
		t.Errorf("execution status %q, want error", execStatus)
	}
	result := field[map[string]any](t, data, "resultData")
	if msg := field[string](t, result, "error", "message"); msg != "boom" {
		t.Errorf("resultData.error.message = %q, want boom", msg)
	}
	if node := field[string](t, result, "lastNodeExecuted"); node != "Code" {
		t.Errorf("lastNodeExecuted = %q, want Code", node)
	}
	runs := field[[]any](t, result, "runData", "Code")
	if len(runs) == 0 {
		t.Fatal("no run of the Code node")
	}
	if msg := field[string](t, runs[len(runs)-1], "error", "message"); msg != "boom" {
		t.Errorf("the Code node's error message = %q, want boom", msg)
	}
}

// TestN8NFlattedDecode checks the flatted decoder on what flatted 3.4.2
// (n8n 2.41.1's) writes for an object with shared strings, a nested
// object referenced twice, a string of digits and a cycle. It needs no n8n.
func TestN8NFlattedDecode(t *testing.T) {
	const text = `[{"name":"1","n":1.5,"list":"2","again":"1","digits":"3","nested":"4","empty":"5","self":"0"},"x",[1,"6",null,true,"1","4"],"7",{"deep":"7"},"","y",{"s":"8"},"z"]`
	v, err := parseFlatted(text)
	if err != nil {
		t.Fatal(err)
	}
	root, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("root is %T, not an object", v)
	}
	nested := map[string]any{"deep": map[string]any{"s": "z"}}
	for key, want := range map[string]any{
		"name": "x", "n": 1.5, "again": "x", "digits": "7", "empty": "", "nested": nested,
		"list": []any{1.0, "y", nil, true, "x", nested},
	} {
		if !reflect.DeepEqual(root[key], want) {
			t.Errorf("%s = %#v, want %#v", key, root[key], want)
		}
	}
	if self, ok := root["self"].(map[string]any); !ok || reflect.ValueOf(self).UnsafePointer() != reflect.ValueOf(root).UnsafePointer() {
		t.Error("self does not refer back to the root")
	}
	for text, want := range map[string]any{`["top"]`: "top", `[[]]`: []any{}} {
		if v, err := parseFlatted(text); err != nil || !reflect.DeepEqual(v, want) {
			t.Errorf("parseFlatted(%s) = %#v, %v; want %#v", text, v, err, want)
		}
	}
	for _, bad := range []string{`[]`, `[{"a":"9"}]`, `{}`} {
		if _, err := parseFlatted(bad); err == nil {
			t.Errorf("parseFlatted(%s): no error", bad)
		}
	}
}

func assertWebhookAnswer(t *testing.T, status int, body []byte, want string) {
	t.Helper()
	if status != http.StatusOK {
		t.Fatalf("webhook answered %d %s, want 200", status, body)
	}
	assertJSONEqual(t, body, want)
}

// assertJSONEqual compares JSON values, not their spelling.
func assertJSONEqual(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("answer is not JSON: %s", got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad expectation %s: %v", want, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("answer %s, want %s", got, want)
	}
}

// field follows keys through nested objects to a value of type T, failing
// the test where a key is missing or the value has another type.
func field[T any](t *testing.T, v any, keys ...string) T {
	t.Helper()
	for i, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%v is %T, not an object", keys[:i], v)
		}
		if v, ok = m[k]; !ok {
			t.Fatalf("%v has no %q", keys[:i], k)
		}
	}
	out, ok := v.(T)
	if !ok {
		t.Fatalf("%v is %T, not %T", keys, v, out)
	}
	return out
}
