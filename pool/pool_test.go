package pool_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shirou/gopsutil/v4/process"

	"github.com/pyrunner/pyrunner/pool"
	"github.com/pyrunner/pyrunner/pool/pooltest"
)

func settings(t testing.TB, code, mode string, items any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(map[string]any{"code": code, "nodeMode": mode, "items": items, "continueOnFail": false})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func executors(t *testing.T) map[string]pool.Executor {
	return map[string]pool.Executor{
		"zygote": pooltest.Executor(t, 4),
		"spawn":  pool.NewSpawnExecutor(pool.Options{Spec: pooltest.Spec(t), MaxWorkers: 4}),
	}
}

// testWait bounds every wait in these tests for something bound to
// happen: long enough for a loaded 2-core machine, free when things go
// well. Reaching it is a failure, not a measurement.
const testWait = 30 * time.Second

func errText(e *pool.TaskError) string {
	if e == nil {
		return "<nil>"
	}
	d := "<absent>"
	if e.Description != nil {
		d = *e.Description
	}
	return string(e.Kind) + "|" + e.Message + "|" + d
}

func TestExecutorsRunTasks(t *testing.T) {
	items := []map[string]any{{"json": map[string]any{"a": 1}}, {"json": map[string]any{"a": 2}}}
	cases := []struct {
		name      string
		code      string
		mode      string
		timeout   time.Duration
		result    string // JSON, when the task succeeds
		prints    []string
		err       string // errText, when it fails
		errPrefix bool
	}{
		{name: "all items", code: "return [{'json': {'b': i['json']['a'] * 10}} for i in _items]", mode: "runOnceForAllItems",
			result: `[{"json":{"b":10}},{"json":{"b":20}}]`},
		{name: "per item", code: "return {'double': _item['json']['a'] * 2}", mode: "runOnceForEachItem",
			result: `[{"json":{"double":2},"pairedItem":{"item":0}},{"json":{"double":4},"pairedItem":{"item":1}}]`},
		{name: "print", code: "print('hi', 42, {'k': [1]})\nreturn []", mode: "runOnceForAllItems",
			result: `[]`, prints: []string{`["'hi'","42","{\"k\": [1]}"]`}},
		{name: "unicode", code: "return [{'json': {'s': 'héllo 世界 🎉'}}]", mode: "runOnceForAllItems",
			result: `[{"json":{"s":"héllo 世界 🎉"}}]`},
		{name: "nan becomes null", code: "return [{'json': {'x': float('nan'), 'y': float('inf')}}]", mode: "runOnceForAllItems",
			result: `[{"json":{"x":null,"y":null}}]`},
		{name: "user error", code: "raise ValueError('boom')", mode: "runOnceForAllItems", err: "user|boom|"},
		{name: "syntax error", code: "return (", mode: "runOnceForAllItems", err: "static|'(' was never closed (<unknown>, line 1)|<absent>"},
		{name: "system exit", code: "import sys\nsys.exit(3)", mode: "runOnceForAllItems", err: "user|Process exited with code 3|"},
		{name: "hard exit", code: "import os\nos._exit(3)", mode: "runOnceForAllItems", err: "crashed|Task subprocess exited with code 3|"},
		{name: "killed", code: "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", mode: "runOnceForAllItems",
			err: "crashed|Process was forcefully killed (SIGKILL)|"},
		{name: "timeout", code: "while True:\n    pass", mode: "runOnceForAllItems", timeout: time.Second,
			err: "timeout|Task execution timed out after 1 second|"},
		{name: "environment is empty", code: "import os\nreturn [{'json': {'env': dict(os.environ)}}]", mode: "runOnceForAllItems",
			result: `[{"json":{"env":{}}}]`},
	}
	for name, exec := range executors(t) {
		for _, tc := range cases {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				res := exec.Run(context.Background(), pool.Task{ID: "t1", Settings: settings(t, tc.code, tc.mode, items), Timeout: tc.timeout})
				if tc.err != "" {
					if got := errText(res.Err); got != tc.err {
						t.Fatalf("error = %q, want %q", got, tc.err)
					}
					return
				}
				if res.Err != nil {
					t.Fatalf("unexpected error %q (stack %s)", errText(res.Err), res.Err.Stack)
				}
				if string(res.Result) != tc.result {
					t.Fatalf("result = %s, want %s", res.Result, tc.result)
				}
				var prints []string
				for _, p := range res.Prints {
					prints = append(prints, string(p))
				}
				if strings.Join(prints, "\n") != strings.Join(tc.prints, "\n") {
					t.Fatalf("prints = %q, want %q", prints, tc.prints)
				}
			})
		}
	}
}

func TestCancelStopsTask(t *testing.T) {
	for name, exec := range executors(t) {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(300*time.Millisecond, cancel)
			res := exec.Run(ctx, pool.Task{ID: "c", Settings: settings(t, "import time\ntime.sleep(30)", "runOnceForAllItems", []any{})})
			if got := errText(res.Err); got != "cancelled|Task was cancelled|<absent>" {
				t.Fatalf("error = %q", got)
			}
		})
	}
}

func TestZygoteDeathFailsOnlyItsTasksAndIsReplaced(t *testing.T) {
	exec := pooltest.Executor(t, 2)

	var wg sync.WaitGroup
	var res pool.Result
	wg.Add(1)
	go func() {
		defer wg.Done()
		res = exec.Run(context.Background(), pool.Task{ID: "long", Settings: settings(t, "import time\ntime.sleep(30)", "runOnceForAllItems", []any{})})
	}()
	// Its process, forked ahead by the zygote, has the task.
	waitFor(t, testWait, "the task to take a process", func() bool { return exec.Stats().Busy == 1 })
	if err := syscall.Kill(exec.ZygotePID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if res.Err == nil || res.Err.Kind != pool.KindCrashed {
		t.Fatalf("task on the dead zygote: %q, want a crash", errText(res.Err))
	}
	next := exec.Run(context.Background(), pool.Task{ID: "next", Settings: settings(t, "return [{'ok': True}]", "runOnceForAllItems", []any{})})
	if next.Err != nil || string(next.Result) != `[{"ok":true}]` {
		t.Fatalf("task after restart: %s %q", next.Result, errText(next.Err))
	}
}

// TestRefusedCodeIsRefusedAgainWithoutAProcess: the executor remembers the
// analysis's verdict by the code's hash, as n8n's runner does.
func TestRefusedCodeIsRefusedAgainWithoutAProcess(t *testing.T) {
	spec := pooltest.Spec(t)
	spec.Config.StdlibAllow, spec.Config.ExternalAllow = nil, nil // n8n's defaults: no imports
	exec := pool.NewZygoteExecutor(pool.Options{Spec: spec, MaxWorkers: 1, MinWorkers: 1})
	if err := exec.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { exec.Close() })
	code := "import os\nreturn []"
	task := pool.Task{ID: "v", Settings: settings(t, code, "runOnceForAllItems", []any{}), Code: code}
	want := "static|Security violations detected|Line 1: Import of standard library module 'os' is disallowed. Allowed stdlib modules: none"
	if got := errText(exec.Run(context.Background(), task).Err); got != want {
		t.Fatalf("first run: %q", got)
	}
	waitFor(t, testWait, "a ready process", func() bool { return exec.Stats().Ready == 1 })
	if got := errText(exec.Run(context.Background(), task).Err); got != want {
		t.Fatalf("second run: %q", got)
	}
	if st := exec.Stats(); st.Ready != 1 || st.Starting != 0 {
		t.Fatalf("the second run used a process: %+v", st)
	}
}

func startExecutor(t *testing.T, opts pool.Options) *pool.ZygoteExecutor {
	t.Helper()
	if opts.Spec.Executable == "" {
		opts.Spec = pooltest.Spec(t)
	}
	exec := pool.NewZygoteExecutor(opts)
	if err := exec.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { exec.Close() })
	return exec
}

func pidOf(t *testing.T, res pool.Result) int {
	t.Helper()
	return oneItem[struct{ Pid int }](t, res).Pid
}

// oneItem is the json of a task's one result item, decoded into T; a task
// that failed or returned anything else fails the test.
func oneItem[T any](t *testing.T, res pool.Result) T {
	t.Helper()
	var out []struct {
		JSON T `json:"json"`
	}
	if res.Err != nil || json.Unmarshal(res.Result, &out) != nil || len(out) != 1 {
		t.Fatalf("task: %s %q", res.Result, errText(res.Err))
	}
	return out[0].JSON
}

const pidTask = "import os\nreturn [{'json': {'pid': os.getpid()}}]"

// TestIsolationModes: isolated runs every task in a process of its own;
// reuse runs MaxExecutions tasks per worker, then replaces it.
func TestIsolationModes(t *testing.T) {
	task := pool.Task{ID: "p", Settings: settings(t, pidTask, "runOnceForAllItems", []any{})}
	iso := startExecutor(t, pool.Options{MaxWorkers: 1, MinWorkers: 1})
	seen := map[int]bool{}
	for range 5 {
		pid := pidOf(t, iso.Run(context.Background(), task))
		if seen[pid] {
			t.Fatalf("isolated mode ran two tasks in process %d", pid)
		}
		seen[pid] = true
	}
	reuse := startExecutor(t, pool.Options{MaxWorkers: 1, MinWorkers: 1, Reuse: true, MaxExecutions: 3})
	var pids []int
	for range 7 {
		pids = append(pids, pidOf(t, reuse.Run(context.Background(), task)))
	}
	if pids[0] != pids[1] || pids[1] != pids[2] || pids[3] == pids[2] || pids[3] != pids[5] || pids[6] == pids[5] {
		t.Fatalf("reuse with 3 executions per worker ran tasks in %v", pids)
	}
}

// TestQueueIsByPriority: with every process busy, waiting tasks get the
// next one by priority, then first come. The one process is held by a task
// that ends when the test cancels it, once all four are queued.
func TestQueueIsByPriority(t *testing.T) {
	exec := startExecutor(t, pool.Options{MaxWorkers: 1, MinWorkers: 1})
	block := settings(t, "import time\ntime.sleep(600)\nreturn []", "runOnceForAllItems", []any{})
	quick := settings(t, "return []", "runOnceForAllItems", []any{})
	ctx, unblock := context.WithCancel(context.Background())
	defer unblock()
	go exec.Run(ctx, pool.Task{ID: "block", Settings: block})
	waitFor(t, testWait, "the blocking task to start", func() bool { return exec.Stats().Busy == 1 })
	var mu sync.Mutex
	var order []string
	var wg sync.WaitGroup
	for i, q := range []struct {
		name string
		prio pool.Priority
	}{{"low", pool.Low}, {"normal-1", pool.Normal}, {"high", pool.High}, {"normal-2", pool.Normal}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if res := exec.Run(context.Background(), pool.Task{ID: q.name, Settings: quick, Priority: q.prio}); res.Err != nil {
				t.Error(res.Err)
			}
			mu.Lock()
			order = append(order, q.name)
			mu.Unlock()
		}()
		// Queue them in this order.
		waitFor(t, testWait, "task "+q.name+" to queue", func() bool { return exec.Stats().Waiting == i+1 })
	}
	unblock()
	wg.Wait()
	if got := strings.Join(order, ","); got != "high,normal-1,normal-2,low" {
		t.Fatalf("served in order %s, want high,normal-1,normal-2,low", got)
	}
}

// TestReadyProcessesFollowTheLoad: a burst raises how many processes are
// kept ready; once quiet for MaxIdleTime, the pool shrinks back to
// MinWorkers.
func TestReadyProcessesFollowTheLoad(t *testing.T) {
	exec := startExecutor(t, pool.Options{MaxWorkers: 8, MinWorkers: 1, MaxIdleTime: 300 * time.Millisecond})
	task := pool.Task{ID: "q", Settings: settings(t, "return []", "runOnceForAllItems", []any{})}
	var wg sync.WaitGroup
	stop, stopped := make(chan struct{}), make(chan struct{})
	peak := 0
	go func() {
		defer close(stopped)
		for {
			select {
			case <-stop:
				return
			default:
			}
			st := exec.Stats()
			peak = max(peak, st.Ready+st.Starting)
			time.Sleep(2 * time.Millisecond)
		}
	}()
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 60 {
				if res := exec.Run(context.Background(), task); res.Err != nil {
					t.Error(res.Err)
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-stopped
	if peak < 2 {
		t.Fatalf("at most %d processes ready or starting during the burst, want more than MinWorkers", peak)
	}
	waitFor(t, testWait, "the pool to shrink back to MinWorkers", func() bool { return exec.Stats().Ready+exec.Stats().Starting == 1 })
	t.Logf("peak of %d ready or starting during the burst, back to 1 after", peak)
}

// TestStuckZygoteIsReplaced: a zygote that stops answering (here: stopped
// with SIGSTOP) is killed and replaced; the pool serves again.
func TestStuckZygoteIsReplaced(t *testing.T) {
	spec := pooltest.Spec(t)
	// Long enough for a healthy zygote to start on a loaded machine (a
	// slower one is replaced too); the stuck one is found after it.
	spec.StartupTimeout = 10 * time.Second
	exec := startExecutor(t, pool.Options{Spec: spec, MaxWorkers: 2, MinWorkers: 0, Zygotes: 1, WaitTimeout: 60 * time.Second})
	task := pool.Task{ID: "s", Settings: settings(t, pidTask, "runOnceForAllItems", []any{})}
	pidOf(t, exec.Run(context.Background(), task))
	stuck := exec.ZygotePID()
	if err := syscall.Kill(stuck, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(stuck, syscall.SIGKILL) })
	// Soon a task needs a fork from the stopped zygote (a process or two
	// may have been ready ahead); every task is still served.
	for range 4 {
		pidOf(t, exec.Run(context.Background(), task))
	}
	if now := exec.ZygotePID(); now == stuck || now == 0 {
		t.Fatalf("zygote %d still in place (now %d)", stuck, now)
	}
}

// TestFailingStartsTakeTheCapacityAway: when task processes keep dying
// before they are ready (here: their working directories cannot be made),
// the pool reports no capacity, keeps trying, and comes back by itself.
func TestFailingStartsTakeTheCapacityAway(t *testing.T) {
	spec := pooltest.Spec(t)
	tasks := filepath.Join(t.TempDir(), "tasks")
	if err := os.Mkdir(tasks, 0o755); err != nil {
		t.Fatal(err)
	}
	spec.Config.TasksDir = tasks
	exec := startExecutor(t, pool.Options{Spec: spec, MaxWorkers: 2, MinWorkers: 1, Zygotes: 1, WaitTimeout: 2 * testWait})
	task := pool.Task{ID: "f", Settings: settings(t, pidTask, "runOnceForAllItems", []any{})}
	pidOf(t, exec.Run(context.Background(), task))
	if got := exec.Capacity(); got != 2 {
		t.Fatalf("capacity %d while healthy", got)
	}

	// A process ready ahead (its working directory made) before the
	// directory goes away.
	waitFor(t, testWait, "a ready process", func() bool { return exec.Stats().Ready == 1 })
	moved := tasks + ".away"
	if err := os.Rename(tasks, moved); err != nil {
		t.Fatal(err)
	}
	// The process made ready ahead still serves; its replacements fail.
	pidOf(t, exec.Run(context.Background(), task))
	waitFor(t, testWait, "capacity 0 after failed starts", func() bool { return exec.Capacity() == 0 })

	if err := os.Rename(moved, tasks); err != nil {
		t.Fatal(err)
	}
	waitFor(t, testWait, "capacity back", func() bool { return exec.Capacity() == 2 })
	pidOf(t, exec.Run(context.Background(), task))
}

func waitFor(t *testing.T, limit time.Duration, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(limit); !ok(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestTimeoutCoversSendingTheTask: a process that does not read its
// channel (here: stopped) cannot hold a task past its timeout, however
// large the settings it is being sent.
func TestTimeoutCoversSendingTheTask(t *testing.T) {
	exec, pid, big := stoppedWorker(t)
	task := pool.Task{ID: "b", Settings: big, Timeout: time.Second}
	sendToStopped(t, pid, "timeout|Task execution timed out after 1 second|", func() pool.Result {
		return exec.Run(context.Background(), task)
	})
	pidOf(t, exec.Run(context.Background(), pool.Task{ID: "c", Settings: settings(t, pidTask, "runOnceForAllItems", []any{}), Timeout: testWait}))
}

// TestCancelCoversSendingTheTask: cancelling a task ends it while its
// settings are still being written to a process that does not read them,
// and the process is stopped (the next task gets another one).
func TestCancelCoversSendingTheTask(t *testing.T) {
	exec, pid, big := stoppedWorker(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	time.AfterFunc(300*time.Millisecond, cancel)
	sendToStopped(t, pid, "cancelled|Task was cancelled|<absent>", func() pool.Result {
		return exec.Run(ctx, pool.Task{ID: "b", Settings: big})
	})
	// With a timeout: a stopped process handed out again fails the test
	// rather than hanging it.
	res := exec.Run(context.Background(), pool.Task{ID: "c", Settings: settings(t, pidTask, "runOnceForAllItems", []any{}), Timeout: testWait})
	if next := pidOf(t, res); next == pid {
		t.Fatalf("the next task ran in the stopped process %d", pid)
	}
}

// stoppedWorker is a reuse executor whose one worker has run a task and
// is then stopped (SIGSTOP), with settings of 16 MB, more than its
// channel holds.
func stoppedWorker(t *testing.T) (*pool.ZygoteExecutor, int, json.RawMessage) {
	t.Helper()
	exec := startExecutor(t, pool.Options{MaxWorkers: 1, MinWorkers: 1, Reuse: true, MaxExecutions: 10})
	pid := pidOf(t, exec.Run(context.Background(), pool.Task{ID: "a", Settings: settings(t, pidTask, "runOnceForAllItems", []any{})}))
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	big := []any{map[string]any{"json": map[string]any{"s": strings.Repeat("x", 16<<20)}}}
	return exec, pid, settings(t, pidTask, "runOnceForAllItems", big)
}

// sendToStopped runs a task on the stopped worker and wants it to end
// with the error want, not to hang in the write.
func sendToStopped(t *testing.T, pid int, want string, run func() pool.Result) {
	t.Helper()
	done := make(chan pool.Result, 1)
	go func() { done <- run() }()
	select {
	case res := <-done:
		if got := errText(res.Err); got != want {
			t.Fatalf("result %s, error %q, want %q", res.Result, got, want)
		}
	case <-time.After(testWait):
		syscall.Kill(pid, syscall.SIGKILL)
		t.Fatal("the task went on: the write to the stopped process blocked")
	}
}

// detachTask starts a grandchild that leaves the task's process group
// (sleep with a marker argument), then keeps the task running.
func detachTask(marker string) string {
	return "import os, time\nif os.fork() == 0:\n    os.setsid()\n    os.execv('/bin/sleep', ['sleep', '" + marker + "'])\ntime.sleep(60)\nreturn []"
}

// detachMarker names a detached sleep by this test binary alone: a test
// run beside this one (a second `make test`) starts its own.
func detachMarker(prefix int) string { return strconv.Itoa(prefix) + strconv.Itoa(os.Getpid()) }

// running reports whether a live (not zombie) process has argv[1] == marker.
func running(t *testing.T, marker string) bool {
	t.Helper()
	procs, err := process.Processes()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range procs {
		args, err := p.CmdlineSlice()
		if err != nil || len(args) != 2 || args[1] != marker {
			continue
		}
		if st, _ := p.Status(); len(st) > 0 && st[0] == process.Zombie {
			continue
		}
		return true
	}
	return false
}

// TestTaskEndsWithItsResult: what a task's code started in its process
// group ends once its result is in, even when the task process itself
// goes on. Here a child answers for it (a fork returns twice) while the
// task process turns into a long sleep; in a fork bomb, the child that
// first hits the process limit answers the same way, and the rest of the
// bomb used to go on forking after the task had failed, holding the
// user's processes (RLIMIT_NPROC) and the CPU from the tasks after it.
func TestTaskEndsWithItsResult(t *testing.T) {
	for i, name := range []string{"zygote", "spawn"} {
		t.Run(name, func(t *testing.T) {
			exec := executors(t)[name]
			marker := detachMarker(90 + i)
			code := "import os, time\nparent = os.getpid()\nif os.fork():\n    os.execv('/bin/sleep', ['sleep', '" + marker + "'])\n" +
				"while b'" + marker + "' not in open('/proc/%d/cmdline' % parent, 'rb').read():\n    time.sleep(0.01)\n" +
				"return [{'json': {'answered by': 'the child'}}]"
			res := exec.Run(context.Background(), pool.Task{ID: "e", Settings: settings(t, code, "runOnceForAllItems", []any{})})
			if res.Err != nil || string(res.Result) != `[{"json":{"answered by":"the child"}}]` {
				t.Fatalf("task: %s %q", res.Result, errText(res.Err))
			}
			waitFor(t, testWait, "the task process, now a sleep, to be gone", func() bool { return !running(t, marker) })
		})
	}
}

// TestKillReachesOnlySpawnItNames: a kill request names the spawn its
// process was forked for. Go asks the zygote to kill each task process
// that is done, as the process exits by itself; by the time the request
// is read the zygote may have reaped it and forked another that got the
// same pid, and that one, ready for the next task, must not be hit. Here
// the pid is the same process and the id another spawn's: the kill for
// the other spawn (SIGKILL) is ignored, the right one (SIGTERM) ends it.
func TestKillReachesOnlySpawnItNames(t *testing.T) {
	z := pool.StartTestZygote(t, pooltest.Spec(t))
	pid, id := z.Spawn(t)
	if err := z.Signal(id+1, pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := z.Signal(id, pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if sig := z.ExitSignal(t, pid, testWait); sig != syscall.SIGTERM {
		t.Fatalf("the task process ended by %v, want SIGTERM: the kill for another spawn reached it", sig)
	}
}

// TestZygoteForksQueuedSpawnsTogether: spawn requests queued at the zygote
// together (it is stopped while they are written) are forked in one round;
// each reported pid is the process on the channel that request handed over.
func TestZygoteForksQueuedSpawnsTogether(t *testing.T) {
	z := pool.StartTestZygote(t, pooltest.Spec(t))
	const n = 4
	pids, results := z.SpawnAtOnce(t, n, settings(t, "import os\nreturn [{'json': {'pid': os.getpid()}}]", "runOnceForAllItems", []any{}))
	seen := map[int]bool{}
	for i, pid := range pids {
		if want := fmt.Sprintf(`[{"json":{"pid":%d}}]`, pid); results[i] != want {
			t.Errorf("spawn %d reported pid %d, but the process on its channel answered %s", i, pid, results[i])
		}
		if seen[pid] {
			t.Errorf("pid %d reported twice", pid)
		}
		seen[pid] = true
	}
}

// TestCloseLeavesNothingBehind: closing the executor kills the running
// tasks and what they detached from their process groups.
func TestCloseLeavesNothingBehind(t *testing.T) {
	exec := startExecutor(t, pool.Options{MaxWorkers: 1, MinWorkers: 1, Zygotes: 1})
	marker := detachMarker(7)
	go exec.Run(context.Background(), pool.Task{ID: "d", Settings: settings(t, detachTask(marker), "runOnceForAllItems", []any{})})
	waitFor(t, testWait, "the detached sleep", func() bool { return running(t, marker) })
	exec.Close()
	waitFor(t, testWait, "the detached sleep to be gone", func() bool { return !running(t, marker) })
}

// TestKilledZygoteLeavesNothingBehind: a zygote killed outright cannot
// clean up; with a uid of their own per task (root), the runner kills
// whatever still runs as its uids.
func TestKilledZygoteLeavesNothingBehind(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("tasks get uids of their own only under a root pyrunner")
	}
	spec := pooltest.Spec(t)
	// uids no other test run uses: the runner kills whatever runs as them.
	uid := pooltest.UIDBlock(t, 16)
	spec.Config.TaskUID, spec.Config.TaskGID, spec.Config.TaskUIDCount, spec.Config.UIDPerTask = uid, uid, 16, true
	exec := startExecutor(t, pool.Options{Spec: spec, MaxWorkers: 1, MinWorkers: 1, Zygotes: 1})
	marker := detachMarker(8)
	go exec.Run(context.Background(), pool.Task{ID: "k", Settings: settings(t, detachTask(marker), "runOnceForAllItems", []any{})})
	waitFor(t, testWait, "the detached sleep", func() bool { return running(t, marker) })
	if err := syscall.Kill(exec.ZygotePID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, testWait, "the detached sleep to be gone", func() bool { return !running(t, marker) })
}

// TestZygoteBugLeavesNothingBehind: a control message the zygote chokes on
// (which only a bug would send) ends it through its own shutdown, never
// through the interpreter's finalization (immortal.py): what its task
// processes started is killed, a detached grandchild included, and it
// exits with status 1.
func TestZygoteBugLeavesNothingBehind(t *testing.T) {
	z := pool.StartTestZygote(t, pooltest.Spec(t))
	marker := detachMarker(9)
	_, id := z.Start(t, settings(t, detachTask(marker), "runOnceForAllItems", []any{}))
	waitFor(t, testWait, "the detached sleep", func() bool { return running(t, marker) })
	z.SendRaw(t, []byte(`{"op":"kill","id":`+strconv.Itoa(id)+`,"pid":"not a pid"}`))
	if code := z.ExitCode(t, testWait); code != 1 {
		t.Fatalf("zygote exited with %d, want 1", code)
	}
	waitFor(t, testWait, "the detached sleep to be gone", func() bool { return !running(t, marker) })
}

// TestSharedUIDProcessLimitCountsTheUID: with a uid shared by all tasks,
// RLIMIT_NPROC counts every process of that uid, so a task process may
// start N8N_PYTHON_MAX_PROCESSES besides itself and what the uid already
// runs, as its zygote counted before forking it: here three sleeps.
func TestSharedUIDProcessLimitCountsTheUID(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("starting processes as another uid needs root")
	}
	uid := pooltest.UIDBlock(t, 1)
	for range 3 {
		sleep := exec.Command("sleep", "60")
		sleep.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
		if err := sleep.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sleep.Process.Kill(); _ = sleep.Wait() })
	}
	spec := pooltest.Spec(t)
	spec.Config.TaskUID, spec.Config.TaskGID, spec.Config.TaskUIDCount, spec.Config.UIDPerTask = uid, uid, 1, false
	spec.Config.MaxProcesses = 8
	ex := startExecutor(t, pool.Options{Spec: spec, MaxWorkers: 1, MinWorkers: 1, Zygotes: 1})
	res := ex.Run(context.Background(), pool.Task{ID: "n", Settings: settings(t, "import resource\nreturn [{'json': {'nproc': resource.getrlimit(resource.RLIMIT_NPROC)[0]}}]", "runOnceForAllItems", []any{})})
	if got, want := oneItem[struct{ Nproc int }](t, res).Nproc, 8+3+1; got != want {
		t.Fatalf("RLIMIT_NPROC %d, want %d: 8 besides the task process and the uid's 3 sleeps", got, want)
	}
}

// TestZygotesHandOutDisjointUIDs: with several zygotes, each gives its
// task processes uids from a share of its own, from the first start on.
func TestZygotesHandOutDisjointUIDs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("tasks get uids of their own only under a root pyrunner")
	}
	const count = 40
	base := pooltest.UIDBlock(t, count)
	spec := pooltest.Spec(t)
	spec.Config.TaskUID, spec.Config.TaskGID, spec.Config.TaskUIDCount, spec.Config.UIDPerTask = base, base, count, true
	exec := startExecutor(t, pool.Options{Spec: spec, MaxWorkers: 4, MinWorkers: 4, Zygotes: 2})
	waitFor(t, testWait, "4 ready processes", func() bool { return exec.Stats().Ready == 4 })
	// The four run at once, each in a process made ready ahead: the
	// sleep gives the last of them ample time to start before the first
	// ends, on a loaded machine too.
	code := "import os, time\ntime.sleep(2)\nreturn [{'json': {'uid': os.getuid(), 'ppid': os.getppid()}}]"
	type seen struct{ Uid, Ppid int }
	results := make(chan seen, 4)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := exec.Run(context.Background(), pool.Task{ID: strconv.Itoa(i), Settings: settings(t, code, "runOnceForAllItems", []any{})})
			var out []struct{ JSON seen }
			if res.Err != nil || json.Unmarshal(res.Result, &out) != nil || len(out) != 1 {
				t.Errorf("task: %s %q", res.Result, errText(res.Err))
				return
			}
			results <- out[0].JSON
		}()
	}
	wg.Wait()
	close(results)
	half := map[int]int{} // zygote pid -> which half of the range its tasks' uids are in
	uids := map[int]bool{}
	for r := range results {
		if r.Uid < base || r.Uid >= base+count || uids[r.Uid] {
			t.Fatalf("uid %d: outside the range or given twice", r.Uid)
		}
		uids[r.Uid] = true
		h := (r.Uid - base) / (count / 2)
		if prev, ok := half[r.Ppid]; ok && prev != h {
			t.Fatalf("zygote %d handed out uids from both shares", r.Ppid)
		}
		half[r.Ppid] = h
	}
	if len(half) != 2 {
		t.Fatalf("tasks came from %d zygotes, want both: %v", len(half), half)
	}
	var halves []int
	for _, h := range half {
		halves = append(halves, h)
	}
	if halves[0] == halves[1] {
		t.Fatalf("both zygotes handed out uids from the same share: %v", half)
	}
}
