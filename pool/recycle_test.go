package pool_test

import (
	"context"
	"testing"
	"time"

	"github.com/pyrunner/pyrunner/pool"
)

// busyPID waits until the pool has a busy process of role and returns it.
func busyPID(t *testing.T, exec *pool.ZygoteExecutor, role pool.ProcessRole) int {
	t.Helper()
	var pid int
	waitFor(t, 30*time.Second, "a busy "+string(role), func() bool {
		for _, p := range exec.Processes() {
			if p.Role == role && p.Busy {
				pid = p.PID
				return true
			}
		}
		return false
	})
	return pid
}

// TestRecycleReplacesAWorkerNeverMidTask: a reuse worker asked to go while
// it runs a task finishes that task, then is replaced; an idle one goes at
// once. No task fails.
func TestRecycleReplacesAWorkerNeverMidTask(t *testing.T) {
	exec := startExecutor(t, pool.Options{MaxWorkers: 1, MinWorkers: 1, Reuse: true, MaxExecutions: 1000})
	slow := pool.Task{ID: "slow", Settings: settings(t, "import os, time\ntime.sleep(2)\n"+pidTask[len("import os\n"):], "runOnceForAllItems", []any{})}
	quick := pool.Task{ID: "quick", Settings: settings(t, pidTask, "runOnceForAllItems", []any{})}

	done := make(chan pool.Result, 1)
	go func() { done <- exec.Run(context.Background(), slow) }()
	pid := busyPID(t, exec, pool.RoleWorker)
	if !exec.Recycle(pid, "test") || !exec.Recycle(pid, "test again") {
		t.Fatalf("Recycle(%d) did not find the busy worker", pid)
	}
	if got := pidOf(t, <-done); got != pid {
		t.Fatalf("the slow task ran in %d, not in the worker %d it was given", got, pid)
	}
	next := pidOf(t, exec.Run(context.Background(), quick))
	if next == pid {
		t.Fatalf("worker %d still serves after Recycle", pid)
	}
	waitFor(t, 30*time.Second, "the new worker idle", func() bool { return exec.Stats().Ready == 1 })
	if !exec.Recycle(next, "test") {
		t.Fatalf("Recycle(%d) did not find the idle worker", next)
	}
	if third := pidOf(t, exec.Run(context.Background(), quick)); third == next {
		t.Fatalf("idle worker %d still serves after Recycle", next)
	}
	if st := exec.Stats(); st.Recycled != 2 || st.WornOut != 0 || st.Started < 3 {
		t.Fatalf("stats %+v, want 2 recycled and at least 3 started", st)
	}
	if exec.Recycle(999999999, "test") {
		t.Fatal("Recycle found a process that is not the pool's")
	}
}

// TestRecycleReplacesAZygoteOnceItsTasksEnd: the zygote goes only once no
// task process of its own runs a task (they die with it).
func TestRecycleReplacesAZygoteOnceItsTasksEnd(t *testing.T) {
	exec := startExecutor(t, pool.Options{MaxWorkers: 2, MinWorkers: 2, Zygotes: 1})
	slow := pool.Task{ID: "slow", Settings: settings(t, "import time\ntime.sleep(2)\nreturn [{'json': {'ok': True}}]", "runOnceForAllItems", []any{})}
	done := make(chan pool.Result, 1)
	go func() { done <- exec.Run(context.Background(), slow) }()
	busyPID(t, exec, pool.RoleTask)
	zygote := exec.ZygotePID()
	if !exec.Recycle(zygote, "test") {
		t.Fatalf("Recycle(%d) did not find the zygote", zygote)
	}
	if res := <-done; res.Err != nil {
		t.Fatalf("the task running on the zygote asked to go failed: %s", errText(res.Err))
	}
	waitFor(t, 30*time.Second, "a new zygote", func() bool { p := exec.ZygotePID(); return p != 0 && p != zygote })
	if res := exec.Run(context.Background(), pool.Task{ID: "next", Settings: settings(t, pidTask, "runOnceForAllItems", []any{})}); res.Err != nil {
		t.Fatalf("task on the new zygote: %s", errText(res.Err))
	}
	if st := exec.Stats(); st.ZygotesReplaced != 1 || st.ZygoteRestarts != 0 || st.Zygotes != 1 {
		t.Fatalf("stats %+v, want one zygote replaced, none restarted", st)
	}
}

// TestStatsCountCacheAndWaits: the verdict cache's hits and misses, and the
// time a task waited for a process.
func TestStatsCountCacheAndWaits(t *testing.T) {
	exec := startExecutor(t, pool.Options{MaxWorkers: 1, MinWorkers: 1, Reuse: true})
	code := "return [{'json': {'ok': True}}]"
	task := pool.Task{ID: "c", Settings: settings(t, code, "runOnceForAllItems", []any{}), Code: code, Mode: "runOnceForAllItems"}
	for range 3 {
		if res := exec.Run(context.Background(), task); res.Err != nil || res.Waited < 0 {
			t.Fatalf("task: %s, waited %s", errText(res.Err), res.Waited)
		}
	}
	st := exec.Stats()
	if len(st.Caches) != 2 || st.Caches[0] != (pool.CacheStats{Name: "verdicts", CacheCounts: pool.CacheCounts{Hits: 2, Misses: 1, Entries: 1}}) {
		t.Fatalf("caches %+v", st.Caches)
	}
	if code := st.Caches[1]; code.Name != "code" || code.Hits != 2 || code.Misses != 1 || code.Entries != 1 || code.Bytes == 0 {
		t.Fatalf("code cache %+v", code)
	}
}

func TestTaskErrorLimit(t *testing.T) {
	cases := []struct {
		err  *pool.TaskError
		want string
	}{
		{pool.TimeoutError(time.Second), pool.LimitTimeout},
		{&pool.TaskError{Message: "Task exceeded the memory limit of 64 MB", Kind: pool.KindUser}, pool.LimitMemory},
		{&pool.TaskError{Message: "Task exceeded the CPU time limit of 1 second (N8N_PYTHON_MAX_CPU_TIME)", Kind: pool.KindCrashed}, pool.LimitCPU},
		{&pool.TaskError{Message: "Task result of 500.0 MB exceeds the limit of 128 MB (N8N_PYTHON_MAX_RESULT_MB)", Kind: pool.KindUser}, pool.LimitResult},
		{&pool.TaskError{Message: "boom", Kind: pool.KindUser}, ""},
		{nil, ""},
	}
	for _, c := range cases {
		if got := c.err.Limit(); got != c.want {
			t.Errorf("Limit of %+v = %q, want %q", c.err, got, c.want)
		}
	}
}
