package pool_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pyrunner/pyrunner/pool"
)

// TestCompiledCodeIsCompiledOnce: the second run of a node gets the code
// object the first run's fresh process compiled, and gives the same
// result; a reuse worker that has run user code never feeds the cache
// but counts a hit when it runs its own copy, and a "compiled" message
// nobody asked for is an invalid reply.
func TestCompiledCodeIsCompiledOnce(t *testing.T) {
	code := "import json\nreturn [{'json': {'n': len(_items), 's': json.dumps({'a': 1})}}]"
	items := []any{map[string]any{"json": map[string]any{"a": 1}}}
	task := pool.Task{ID: "c", Settings: settings(t, code, "runOnceForAllItems", items), Code: code, Mode: "runOnceForAllItems", Timeout: time.Minute}

	iso := startExecutor(t, pool.Options{MaxWorkers: 1, MinWorkers: 1})
	var results []string
	for range 3 {
		res := iso.Run(context.Background(), task)
		if res.Err != nil {
			t.Fatalf("isolated: %s", errText(res.Err))
		}
		results = append(results, string(res.Result))
	}
	if results[0] != `[{"json":{"n":1,"s":"{\"a\": 1}"}}]` || results[1] != results[0] || results[2] != results[0] {
		t.Fatalf("results %v", results)
	}
	if c := iso.CodeCacheCounts(); c.Entries != 1 || c.Misses != 1 || c.Hits != 2 {
		t.Fatalf("isolated cache %+v, want one entry, one miss, two hits", c)
	}

	// Reuse: the first task of a worker feeds the cache; its second task,
	// with other code, does not (the worker has run user code by then).
	reuse := startExecutor(t, pool.Options{MaxWorkers: 1, MinWorkers: 1, Reuse: true, MaxExecutions: 10})
	if res := reuse.Run(context.Background(), task); res.Err != nil {
		t.Fatal(errText(res.Err))
	}
	other := "return [{'json': {'other': True}}]"
	otherTask := pool.Task{ID: "o", Settings: settings(t, other, "runOnceForAllItems", []any{}), Code: other, Mode: "runOnceForAllItems", Timeout: time.Minute}
	for range 2 {
		if res := reuse.Run(context.Background(), otherTask); res.Err != nil {
			t.Fatal(errText(res.Err))
		}
	}
	// The second run of the other code used the worker's own copy: a hit,
	// though the runner's cache does not hold it.
	if c := reuse.CodeCacheCounts(); c.Entries != 1 || c.Misses != 2 || c.Hits != 1 {
		t.Fatalf("reuse cache %+v: want one entry (only the worker's first task may feed it), two misses, one hit (the worker's own copy)", c)
	}
	// Workers that wear out after two tasks: the next worker gets the code
	// from the cache, and keeps it for its own second run.
	short := startExecutor(t, pool.Options{MaxWorkers: 1, MinWorkers: 1, Reuse: true, MaxExecutions: 2})
	for i := range 5 {
		if res := short.Run(context.Background(), task); res.Err != nil || string(res.Result) != results[0] {
			t.Fatalf("reuse run %d: %s %s", i, res.Result, errText(res.Err))
		}
	}
	if c := short.CodeCacheCounts(); c.Entries != 1 || c.Hits < 2 {
		t.Fatalf("reuse workers that wear out: cache %+v, want later workers to hit it", c)
	}

	// A forged "compiled" message, written by user code in a reuse worker
	// that nobody asked: the reply is refused, the cache unchanged.
	forge := "import socket, json, struct\ns = socket.socket(fileno=3)\n" +
		"b = json.dumps({'op': 'compiled', 'code': 'AAAA'}).encode()\ns.sendall(struct.pack('>I', len(b)) + b)\nreturn []"
	forged := reuse.Run(context.Background(), pool.Task{ID: "f", Settings: settings(t, forge, "runOnceForAllItems", []any{}),
		Code: forge, Mode: "runOnceForAllItems", Timeout: time.Minute})
	if forged.Err == nil || !strings.Contains(forged.Err.Message, "invalid reply") {
		t.Fatalf("forged compiled message: %s %s", forged.Result, errText(forged.Err))
	}
	if c := reuse.CodeCacheCounts(); c.Entries != 1 {
		t.Fatalf("reuse cache after a forgery %+v", c)
	}
}
