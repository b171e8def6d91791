package e2e

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pyrunner/pyrunner/internal/faults"
)

// TestQueue runs pyrunner in n8n's queue mode as deploy/kubernetes sets it
// up (queue_harness_test.go): two workers, each with its pyrunner, behind
// one main that takes the webhooks. Each part deploys its own Webhook →
// Split Out → Code (Python) workflow; the faults restore what they broke
// before the next part starts.
func TestQueue(t *testing.T) {
	c := useQueueCluster(t, 2)
	t.Run("ScaleOut", func(t *testing.T) { testQueueScaleOut(t, c) })
	t.Run("RunnerKilled", func(t *testing.T) { testQueueRunnerKilled(t, c) })
	t.Run("WorkerRestart", func(t *testing.T) { testQueueWorkerRestart(t, c) })
	t.Run("RedisRestart", func(t *testing.T) { testQueueRedisRestart(t, c) })
	t.Run("Throughput", func(t *testing.T) { testQueueThroughput(t, c) })
}

// callLimit is how long a webhook call may wait for n8n's answer before
// the test gives up on it: far beyond N8N_RUNNERS_TASK_REQUEST_TIMEOUT
// (60 s, the longest a task waits for a runner) on a loaded machine.
const callLimit = 3 * time.Minute

// testQueueScaleOut: 100 executions, 20 at a time, every answer its own
// input's, and both workers' pyrunners ran tasks: together exactly one
// per execution.
func testQueueScaleOut(t *testing.T, c *queueCluster) {
	if strings.Contains(c.main.out.String(), "Task Broker ready") {
		t.Error("main started a task broker; with OFFLOAD_MANUAL_EXECUTIONS_TO_WORKERS it should need no runner")
	}
	w := c.api.deployPythonNode(t, queueCode(0), "runOnceForAllItems", nil)
	before := c.succeeded(t)
	b := startBurst(t.Context(), w, 100, 20, callLimit).wait()
	t.Log(b.summary())
	ran := len(b.calls) - len(onlyRefused(t, b.check(t, false)))
	logSeen(t, checkExecutions(t, w, b))
	after, total := c.succeeded(t), 0.0
	for i, wk := range c.workers {
		served := after[i] - before[i]
		t.Logf("%s's pyrunner ran %.0f tasks", wk.name, served)
		if served == 0 {
			t.Errorf("%s's pyrunner ran no task: the executions did not spread over the workers", wk.name)
		}
		total += served
	}
	if total != float64(ran) {
		t.Errorf("the pyrunners ran %.0f tasks for %d executions", total, ran)
	}
}

// testQueueRunnerKilled: one worker's pyrunner is killed with SIGKILL
// while it runs tasks, and started again, as the kubelet restarts a
// sidecar. Its processes must go with it, and every call must be
// answered: 200 with its own answer, or n8n's failure.
func testQueueRunnerKilled(t *testing.T, c *queueCluster) {
	w := c.api.deployPythonNode(t, queueCode(0.5), "runOnceForAllItems", nil)
	victim := c.workers[0]
	b := startBurst(t.Context(), w, 60, 20, callLimit)
	b.waitAnswered(t, 10)
	c.waitRunning(t, victim)
	pid := victim.runner.cmd.Process.Pid
	left := faults.Descendants(pid)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-victim.runner.exited
	killed := time.Now()
	if err := c.startRunner(victim, binary); err != nil {
		t.Fatal(err)
	}
	if err := victim.waitRunnerReady(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Logf("pyrunner killed with %d processes below it; the new one ready after %s", len(left), time.Since(killed).Round(time.Millisecond))
	for deadline := time.Now().Add(patience); ; time.Sleep(50 * time.Millisecond) {
		alive := slices.DeleteFunc(slices.Clone(left), func(p int) bool {
			state := procStatus(p, "State")
			return state == "" || strings.HasPrefix(state, "Z")
		})
		if len(alive) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("processes %v of the killed pyrunner still alive %s later", alive, patience)
			break
		}
	}
	b.wait()
	t.Log(b.summary())
	b.check(t, false)
	seen := checkExecutions(t, w, b)
	logSeen(t, seen)
	for _, s := range seen {
		if !strings.Contains(s, `"Node execution failed"`) && !strings.Contains(s, answerDBNotReady) {
			t.Errorf("a failure other than n8n's for a runner that went away: %s", s)
		}
	}
	if got := runnerMetrics(t, victim)[metricSucceeded]; got == 0 {
		t.Error("the restarted pyrunner ran no task")
	}
}

// testQueueWorkerRestart: one worker is stopped (SIGTERM) while it runs
// executions and started again; its pyrunner stays up and reconnects to
// the new worker's broker by itself.
func testQueueWorkerRestart(t *testing.T, c *queueCluster) {
	w := c.api.deployPythonNode(t, queueCode(0.5), "runOnceForAllItems", nil)
	victim := c.workers[1]
	connects := runnerMetrics(t, victim)[metricConnects]
	b := startBurst(t.Context(), w, 60, 20, callLimit)
	b.waitAnswered(t, 10)
	c.waitRunning(t, victim)
	begin := time.Now()
	if err := c.stopWorker(victim); err != nil {
		t.Error(err)
	}
	stopped := time.Since(begin)
	if err := c.startWorker(victim); err != nil {
		t.Fatal(err)
	}
	if err := c.waitWorker(t.Context(), victim); err != nil {
		t.Fatal(err)
	}
	t.Logf("worker stopped in %s, back with its pyrunner registered after %s", stopped.Round(time.Millisecond), (time.Since(begin) - stopped).Round(time.Millisecond))
	b.wait()
	t.Log(b.summary())
	b.check(t, false)
	logSeen(t, checkExecutions(t, w, b))
	if got := runnerMetrics(t, victim)[metricConnects]; got <= connects {
		t.Errorf("pyrunner's broker connections went from %.0f to %.0f: it did not reconnect", connects, got)
	}
	// The restarted worker and its pyrunner take work again.
	c.checkBothServe(t)
}

// testQueueRedisRestart: Redis restarts under a burst (SIGTERM, then a
// new redis-server with the manifest's arguments on the same port), with
// jobs running on the workers and jobs waiting in the queue: 30 calls at
// a time against 2 × 10 worker slots, tasks of 3 s that the pyrunners run
// 2 × 5 at a time. No execution may be lost: each one runs and is stored.
// Some calls may never be answered, though: main learns that an execution
// finished from a Redis publish, and one sent while main is reconnecting
// is gone; n8n then keeps the call open until the client gives up, after
// redisCallLimit here.
func testQueueRedisRestart(t *testing.T, c *queueCluster) {
	w := c.api.deployPythonNode(t, queueCode(3), "runOnceForAllItems", nil)
	b := startBurst(t.Context(), w, 60, 30, redisCallLimit)
	b.waitAnswered(t, 5)
	waiting, active := c.waitQueued(t)
	begin := time.Now()
	if err := c.restartRedis(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Logf("redis restarted in %s, with %d jobs waiting and %d running", time.Since(begin).Round(time.Millisecond), waiting, active)
	b.wait()
	t.Log(b.summary())
	b.check(t, true)
	logSeen(t, checkExecutions(t, w, b))
	c.checkBothServe(t)
}

// redisCallLimit is how long a call may wait for its answer in the Redis
// restart: longer than N8N_RUNNERS_TASK_REQUEST_TIMEOUT (60 s), the
// longest a task waits for a runner.
const redisCallLimit = 90 * time.Second

// waitQueued waits until Redis holds both jobs waiting for a worker and
// jobs the workers run (Bull's lists under n8n's default prefix and queue
// name), and returns how many.
func (c *queueCluster) waitQueued(t *testing.T) (waiting, active int) {
	t.Helper()
	for deadline := time.Now().Add(patience); ; time.Sleep(20 * time.Millisecond) {
		w, err1 := c.redis.command("LLEN", "bull:jobs:wait")
		a, err2 := c.redis.command("LLEN", "bull:jobs:active")
		if err := errors.Join(err1, err2); err != nil {
			t.Fatal(err)
		}
		waiting, _ = strconv.Atoi(w)
		active, _ = strconv.Atoi(a)
		if waiting > 0 && active > 0 {
			return waiting, active
		}
		if time.Now().After(deadline) {
			t.Fatalf("no moment in %s with jobs both waiting and running (last: %d, %d)", patience, waiting, active)
		}
	}
}

// waitRunning waits until w's pyrunner is running a task.
func (c *queueCluster) waitRunning(t *testing.T, w *queueWorker) {
	t.Helper()
	for deadline := time.Now().Add(patience); runnerMetrics(t, w)[metricRunning] < 1; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s's pyrunner ran no task for %s", w.name, patience)
		}
	}
}

// succeeded is each worker's pyrunner's count of succeeded tasks.
func (c *queueCluster) succeeded(t *testing.T) []float64 {
	t.Helper()
	var out []float64
	for _, w := range c.workers {
		out = append(out, runnerMetrics(t, w)[metricSucceeded])
	}
	return out
}

// checkBothServe runs 40 executions and expects them all answered, by
// both workers' pyrunners.
func (c *queueCluster) checkBothServe(t *testing.T) {
	t.Helper()
	w := c.api.deployPythonNode(t, queueCode(0.1), "runOnceForAllItems", nil)
	before := c.succeeded(t)
	b := startBurst(t.Context(), w, 40, 20, callLimit).wait()
	if len(onlyRefused(t, b.check(t, false))) > 0 {
		logSeen(t, checkExecutions(t, w, b))
	}
	for i, n := range c.succeeded(t) {
		if n == before[i] {
			t.Errorf("after the fault, %s's pyrunner ran none of %d tasks", c.workers[i].name, len(b.calls))
		}
	}
}

// onlyRefused fails the test for a call in notOK that n8n did not refuse
// (which happens only on an overloaded machine: main's database check
// times out); with nothing broken, every call must succeed.
func onlyRefused(t *testing.T, notOK []queueCall) []queueCall {
	t.Helper()
	for _, c := range notOK {
		if !c.refused() {
			t.Errorf("call %s failed with nothing broken: %d %s %v", c.id, c.status, c.body, c.err)
		}
	}
	return notOK
}

// logSeen logs what the user saw for the calls not answered 200.
func logSeen(t *testing.T, seen []string) {
	t.Helper()
	if len(seen) == 0 {
		t.Log("every call answered 200 with its own answer")
	}
	for _, s := range seen {
		t.Log("not 200: " + s)
	}
}
