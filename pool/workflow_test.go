package pool_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pyrunner/pyrunner/pool"
)

// markTask reads the value a module-level attribute holds in the process
// it runs in (json.pyrunner_mark, "" when unset), then sets it to its own
// workflow's name: module state a later task of the same process sees.
const markTask = "import json, os, time\n" +
	"try:\n    seen = json.pyrunner_mark\nexcept AttributeError:\n    seen = ''\n" +
	"json.pyrunner_mark = _items[0]['json']['wf']\n" +
	"time.sleep(_items[0]['json'].get('sleep', 0))\n" +
	"return [{'json': {'pid': os.getpid(), 'seen': seen}}]"

type markRun struct {
	pid  int
	seen string
}

func runMark(t *testing.T, exec pool.Executor, workflow string, sleep float64) markRun {
	t.Helper()
	items := []any{map[string]any{"json": map[string]any{"wf": workflow, "sleep": sleep}}}
	res := exec.Run(context.Background(), pool.Task{ID: "w", Workflow: workflow,
		Settings: settings(t, markTask, "runOnceForAllItems", items)})
	var out []struct {
		JSON struct {
			Pid  int
			Seen string
		} `json:"json"`
	}
	if res.Err != nil || json.Unmarshal(res.Result, &out) != nil || len(out) != 1 {
		t.Fatalf("task of workflow %q: %s %q", workflow, res.Result, errText(res.Err))
	}
	return markRun{out[0].JSON.Pid, out[0].JSON.Seen}
}

// TestWorkflowModeKeepsWorkflowsApart: a module-level value set by one
// workflow's task is seen by later tasks of that workflow on the same
// worker (so the test can see state cross), never by another workflow's
// nor by a task without a workflow, with workers reused, recycled after
// MaxExecutions, and retired to make room.
func TestWorkflowModeKeepsWorkflowsApart(t *testing.T) {
	for _, maxWorkers := range []int{1, 3} {
		t.Run(fmt.Sprintf("max workers %d", maxWorkers), func(t *testing.T) {
			exec := startExecutor(t, pool.Options{MaxWorkers: maxWorkers, MinWorkers: 1, PerWorkflow: true, MaxExecutions: 3})
			owner := map[int]string{} // pid -> the one workflow ("" for none) that ran in it
			pidsOf := map[string]map[int]bool{}
			sawOwnState := false
			for i := range 12 {
				wf := []string{"A", "B", "A", "A", "B", ""}[i%6]
				r := runMark(t, exec, wf, 0)
				if prev, ok := owner[r.pid]; ok && prev != wf {
					t.Fatalf("task %d of workflow %q ran in process %d, which ran workflow %q", i, wf, r.pid, prev)
				}
				owner[r.pid] = wf
				if r.seen != "" && r.seen != wf {
					t.Fatalf("task %d of workflow %q saw the value %q set by another workflow", i, wf, r.seen)
				}
				if wf == "" && r.seen != "" {
					t.Fatalf("task %d without a workflow saw %q", i, r.seen)
				}
				sawOwnState = sawOwnState || r.seen == wf && wf != ""
				if pidsOf[wf] == nil {
					pidsOf[wf] = map[int]bool{}
				}
				pidsOf[wf][r.pid] = true
			}
			if maxWorkers > 1 && !sawOwnState {
				t.Errorf("no task saw its own workflow's earlier value: workers were not reused")
			}
			if len(pidsOf[""]) != 2 {
				t.Errorf("2 tasks without a workflow ran in %d processes, want 2 of their own", len(pidsOf[""]))
			}
			if len(pidsOf["A"]) < 2 {
				t.Errorf("6 tasks of A (3 executions per worker) ran in %d process(es): no recycling", len(pidsOf["A"]))
			}
		})
	}
}

// TestWorkflowModeSharesAFullPool: with every worker busy with workflow A,
// which always has another task waiting, a task of workflow B still runs:
// A cannot keep the pool to itself.
func TestWorkflowModeSharesAFullPool(t *testing.T) {
	exec := startExecutor(t, pool.Options{MaxWorkers: 2, MinWorkers: 1, PerWorkflow: true, MaxExecutions: 1000})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 3 { // three loops on two workers: an A task always waits
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				runMark(t, exec, "A", 0.05)
			}
		}()
	}
	t.Cleanup(func() { close(stop); wg.Wait() })
	waitFor(t, testWait, "A to hold both workers", func() bool {
		s := exec.Stats()
		return s.Busy == 2 && s.Waiting >= 1
	})
	done := make(chan markRun, 1)
	go func() { done <- runMark(t, exec, "B", 0) }()
	select {
	case r := <-done:
		if r.seen != "" {
			t.Fatalf("B saw %q", r.seen)
		}
	case <-time.After(testWait):
		t.Fatal("B's task did not run while A kept the pool busy")
	}
}
