package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pyrunner/pyrunner/internal/excerpt"
)

// The tests below run pyrunner under a real n8n 2.41.1 (see
// n8n_harness_test.go): a webhook feeds items through Split Out into a
// Python Code node, and the webhook answers with the Code node's output
// items' json objects (docs/code-node.md §12).

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

// codeOutput is the Code node's output items in a stored execution.
func codeOutput(t *testing.T, data map[string]any) []any {
	t.Helper()
	runs := field[[]any](t, data, "resultData", "runData", "Code")
	if len(runs) == 0 {
		t.Fatal("no run of the Code node")
	}
	main := field[[]any](t, runs[len(runs)-1], "data", "main")
	if len(main) == 0 {
		t.Fatal("the Code node has no output")
	}
	items, _ := main[0].([]any)
	return items
}

// TestN8NPerItemPairedItems: per item, each output item is paired with its
// input item, as n8n stores it; an item the code drops (None) keeps the
// others' indices.
func TestN8NPerItemPairedItems(t *testing.T) {
	env := useN8N(t)
	w := env.deployPython(t, "return None if _item['json']['n'] == 2 else {'n2': _item['json']['n'] * 2}", "runOnceForEachItem")
	status, body := w.post(t, []any{map[string]any{"n": 1}, map[string]any{"n": 2}, map[string]any{"n": 3}})
	assertWebhookAnswer(t, status, body, `[{"n2":2},{"n2":6}]`)
	_, data := w.lastExecution(t)
	items := codeOutput(t, data)
	if len(items) != 2 {
		t.Fatalf("%d output items, want 2", len(items))
	}
	for i, want := range []float64{0, 2} {
		if got := field[float64](t, items[i], "pairedItem", "item"); got != want {
			t.Errorf("output item %d is paired with input %v, want %v", i, got, want)
		}
	}
}

// TestN8NPrintOutput: print() reaches n8n as logNodeOutput; with
// CODE_ENABLE_STDOUT n8n writes it to its own output.
func TestN8NPrintOutput(t *testing.T) {
	env := useN8N(t)
	marker := "pyrunner-print-" + randomHex(6)
	w := env.deployPython(t, "print('"+marker+"', 42)\nreturn [{'json': {'printed': True}}]", "runOnceForAllItems")
	status, body := w.post(t, []any{map[string]any{"a": 1}})
	assertWebhookAnswer(t, status, body, `[{"printed":true}]`)
	// n8n 2.41.1 writes `[Workflow "<id>"][Node "Code"] 'text' 42`: the
	// arguments as pyrunner formatted them, as n8n's runner would.
	want := `[Node "Code"] '` + marker + `' 42`
	deadline := time.Now().Add(patience)
	for !strings.Contains(env.server.out.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("n8n's output does not show the print:\n%s", excerpt.Of(env.server.out.String()))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestN8NContinueOnFail: with the node's "continue (regular output)" on
// error setting, a failing task gives one item with the error, which the
// workflow returns.
func TestN8NContinueOnFail(t *testing.T) {
	env := useN8N(t)
	w := env.deployPythonNode(t, "return {'r': 1 / (_item['json']['n'] - 2)}", "runOnceForEachItem",
		map[string]any{"onError": "continueRegularOutput"})
	status, body := w.post(t, []any{map[string]any{"n": 1}, map[string]any{"n": 2}, map[string]any{"n": 3}})
	assertWebhookAnswer(t, status, body, `[{"error":"division by zero"}]`)
}

// TestN8NTimeout: a task past pyrunner's N8N_RUNNERS_TASK_TIMEOUT (3 s for
// these tests) fails the workflow with n8n's runner's message.
func TestN8NTimeout(t *testing.T) {
	env := useN8N(t)
	w := env.deployPython(t, "while True:\n    pass", "runOnceForAllItems")
	status, body := w.post(t, []any{map[string]any{"a": 1}})
	if status != http.StatusInternalServerError {
		t.Fatalf("webhook answered %d %s, want 500", status, body)
	}
	_, data := w.lastExecution(t)
	if msg := field[string](t, data, "resultData", "error", "message"); msg != "Task execution timed out after 3 seconds" {
		t.Errorf("error message %q", msg)
	}
}

// TestN8NPackageFromPEP723 needs per-task virtual environments, which have
// their own issue.
func TestN8NPackageFromPEP723(t *testing.T) {
	t.Skip("PEP 723 dependency blocks need pyrunner's virtual-environment support, which has not landed yet")
}

// TestN8NFiftyInARow: 50 executions of one workflow, one after another,
// none lost.
func TestN8NFiftyInARow(t *testing.T) {
	env := useN8N(t)
	w := env.deployPython(t, "return [{'json': {'n': it['json']['n'], 'sq': it['json']['n'] ** 2}} for it in _items]", "runOnceForAllItems")
	for i := range 50 {
		status, body := w.post(t, []any{map[string]any{"n": i}})
		assertWebhookAnswer(t, status, body, fmt.Sprintf(`[{"n":%d,"sq":%d}]`, i, i*i))
	}
}
