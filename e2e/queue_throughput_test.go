package e2e

// The queue-mode test's measurements: executions per second with two
// workers and with one, the CPU an execution costs in each process, and
// the Python task's share of an execution's time. They print numbers and
// decide nothing: the machine they run on is shared and small.

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pyrunner/pyrunner/internal/faults"
)

// throughputRounds is the order of the measurements, by number of
// workers: A B B A, so that load from other work on the machine that
// rises or falls steadily weighs on both counts alike.
var throughputRounds = []int{2, 1, 1, 2}

// testQueueThroughput measures through the plain (not race-checked)
// pyrunner build, one round at a time (throughputRounds), stopping and
// starting the second worker between them.
func testQueueThroughput(t *testing.T, c *queueCluster) {
	for _, wk := range c.workers {
		if err := wk.stopRunner(); err != nil {
			t.Fatal(err)
		}
		if err := c.startRunner(wk, plainBinary); err != nil {
			t.Fatal(err)
		}
		if err := wk.waitRunnerReady(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	var rounds []throughputRound
	for _, workers := range throughputRounds {
		c.useWorkers(t, workers)
		r := measureRound(t, c, workers)
		t.Log(r)
		rounds = append(rounds, r)
	}
	for _, line := range summarize(rounds) {
		t.Log(line)
	}
}

// useWorkers stops or starts the second worker so that n run.
func (c *queueCluster) useWorkers(t *testing.T, n int) {
	t.Helper()
	w := c.workers[1]
	switch {
	case n == 1 && w.n8n != nil:
		if err := c.stopWorker(w); err != nil {
			t.Error(err)
		}
	case n == 2 && w.n8n == nil:
		if err := c.startWorker(w); err != nil {
			t.Fatal(err)
		}
		if err := c.waitWorker(t.Context(), w); err != nil {
			t.Fatal(err)
		}
	}
}

// throughputRound is one measurement: 100 executions, 20 at a time.
type throughputRound struct {
	workers    int
	executions int // the calls n8n took (not refused)
	perSecond  float64
	tripP50    time.Duration
	trips      time.Duration            // the webhook round trips, summed
	cpu        map[string]time.Duration // by kind of process, during the round
	wall       time.Duration
	busy       float64 // cores busy machine-wide, everyone's work
	load       [2]string
	taskSum    float64 // pyrunner's task duration histogram: seconds
	taskCount  float64
	span, code []time.Duration // each execution's, as n8n stored them
}

// cpuKinds are the kinds of process whose CPU a round reports.
var cpuKinds = []string{"main", "workers", "pyrunner", "python", "postgres", "redis"}

// measureRound runs 100 executions, 20 at a time, on the first workers of
// c (after 20 to warm up), checks every answer, and records how fast they
// went, what they cost in CPU and where their time went.
func measureRound(t *testing.T, c *queueCluster, workers int) throughputRound {
	t.Helper()
	warm := c.api.deployPythonNode(t, queueCode(0), "runOnceForAllItems", nil)
	onlyRefused(t, startBurst(t.Context(), warm, 20, 20, callLimit).wait().check(t, false))
	w := c.api.deployPythonNode(t, queueCode(0), "runOnceForAllItems", nil)
	r := throughputRound{workers: workers, cpu: map[string]time.Duration{}}
	before := make([]map[string]float64, workers)
	for i, wk := range c.workers[:workers] {
		before[i] = runnerMetrics(t, wk)
	}
	r.load[0] = loadAverage()
	cpuBefore, busyBefore, begin := c.cpuTimes(), machineBusy(), time.Now()
	b := startBurst(t.Context(), w, 100, 20, callLimit).wait()
	cpuAfter, busyAfter := c.cpuTimes(), machineBusy()
	r.wall = time.Since(begin)
	r.load[1] = loadAverage()
	r.busy = (busyAfter - busyBefore).Seconds() / r.wall.Seconds()
	for _, k := range cpuKinds {
		r.cpu[k] = cpuAfter[k] - cpuBefore[k]
	}
	r.perSecond, r.tripP50 = b.result.PerSecond, time.Duration(b.result.P50ms*float64(time.Millisecond))
	r.executions = len(b.calls) - len(onlyRefused(t, b.check(t, false)))
	for _, call := range b.calls {
		if !call.refused() {
			r.trips += call.took
		}
	}
	logSeen(t, checkExecutions(t, w, b))
	for i, wk := range c.workers[:workers] {
		after := runnerMetrics(t, wk)
		r.taskSum += after[metricTaskSum] - before[i][metricTaskSum]
		r.taskCount += after[metricTaskCount] - before[i][metricTaskCount]
	}
	for _, e := range executions(t, w, patience) {
		e.detail(t, c.api)
		if e.codeTime > 0 && !e.StoppedAt.IsZero() {
			r.span = append(r.span, e.StoppedAt.Sub(e.StartedAt))
			r.code = append(r.code, e.codeTime)
		}
	}
	return r
}

// cpuTotal is the CPU of every process of the cluster during the round.
func (r throughputRound) cpuTotal() time.Duration {
	var sum time.Duration
	for _, d := range r.cpu {
		sum += d
	}
	return sum
}

// perExecution is d shared out over the round's executions, in ms.
func (r throughputRound) perExecution(d time.Duration) float64 {
	return float64(d.Microseconds()) / 1000 / float64(max(r.executions, 1))
}

func (r throughputRound) String() string {
	var kinds []string
	for _, k := range cpuKinds {
		kinds = append(kinds, fmt.Sprintf("%s %.1f", k, r.perExecution(r.cpu[k])))
	}
	return fmt.Sprintf("%d worker(s): %.2f executions/s (%d executions, 20 at a time, in %s), webhook round trip p50 %s; "+
		"CPU per execution %.0f ms (%s); the cluster used %.2f cores, the machine %.2f of %d; load average %s before, %s after",
		r.workers, r.perSecond, r.executions, r.wall.Round(time.Millisecond), r.tripP50.Round(time.Millisecond),
		r.perExecution(r.cpuTotal()), strings.Join(kinds, ", "), r.cpuTotal().Seconds()/r.wall.Seconds(), r.busy,
		runtime.NumCPU(), r.load[0], r.load[1])
}

// summarize compares the rounds with two workers to those with one, and
// says what share of an execution's time and CPU is the Python task's.
func summarize(rounds []throughputRound) []string {
	type side struct {
		rates     []string
		rateSum   float64
		cpu       time.Duration
		execs     int
		wall, own time.Duration // the rounds' wall time and the cluster's CPU
	}
	by := map[int]*side{1: {}, 2: {}}
	var span, code []time.Duration
	var trips, pyCPU, allCPU time.Duration
	var taskSum, taskCount float64
	for _, r := range rounds {
		s := by[r.workers]
		s.rates = append(s.rates, fmt.Sprintf("%.2f", r.perSecond))
		s.rateSum += r.perSecond
		s.cpu += r.cpuTotal()
		s.execs += r.executions
		s.wall += r.wall
		span, code = append(span, r.span...), append(code, r.code...)
		trips += r.trips
		pyCPU += r.cpu["pyrunner"] + r.cpu["python"]
		allCPU += r.cpuTotal()
		taskSum += r.taskSum
		taskCount += r.taskCount
	}
	mean := func(s *side) float64 { return s.rateSum / float64(max(len(s.rates), 1)) }
	cpuPer := func(s *side) float64 { return float64(s.cpu.Microseconds()) / 1000 / float64(max(s.execs, 1)) }
	ceiling := func(s *side) float64 { return float64(runtime.NumCPU()) * 1000 / max(cpuPer(s), 1) }
	two, one := by[2], by[1]
	lines := []string{fmt.Sprintf("throughput, 2 workers vs 1: %s vs %s executions/s, mean ratio %.2f; "+
		"CPU per execution %.0f vs %.0f ms, so at most %.1f vs %.1f executions/s if the cluster had all %d cores; "+
		"it used %.2f vs %.2f cores",
		strings.Join(two.rates, ", "), strings.Join(one.rates, ", "), mean(two)/max(mean(one), 1e-9),
		cpuPer(two), cpuPer(one), ceiling(two), ceiling(one), runtime.NumCPU(),
		two.cpu.Seconds()/two.wall.Seconds(), one.cpu.Seconds()/one.wall.Seconds())}
	if len(span) == 0 || taskCount == 0 {
		return append(lines, "no timings of the Python task")
	}
	execs := one.execs + two.execs
	task := time.Duration(taskSum / taskCount * float64(time.Second))
	trip := trips / time.Duration(max(execs, 1))
	return append(lines, fmt.Sprintf("the Python task's share (%d executions): pyrunner's task (settings to result) mean %s is %.1f%% of the webhook round trip (mean %s) "+
		"and %.1f%% of n8n's execution span (median %s); the Code node as n8n stores it: median %s; "+
		"pyrunner and its Python processes took %.0f%% of the cluster's CPU",
		len(span), task.Round(100*time.Microsecond), 100*task.Seconds()/trip.Seconds(), trip.Round(time.Millisecond),
		100*task.Seconds()/median(span).Seconds(), median(span).Round(time.Millisecond), median(code).Round(time.Millisecond),
		100*pyCPU.Seconds()/allCPU.Seconds()))
}

// cpuTimes is the CPU time used so far by each kind of process: main,
// the n8n workers, the pyrunners themselves, their Python processes
// (zygotes and tasks), Postgres and Redis.
func (c *queueCluster) cpuTimes() map[string]time.Duration {
	out := map[string]time.Duration{
		"main":     cpuTime(c.main.cmd.Process.Pid),
		"postgres": cpuTime(c.pg.cmd.Process.Pid),
		"redis":    cpuTime(c.redis.cmd.Process.Pid),
	}
	for _, w := range c.workers {
		if w.n8n != nil {
			out["workers"] += cpuTime(w.n8n.cmd.Process.Pid)
		}
		pid := w.runner.cmd.Process.Pid
		own, _ := procCPU(pid)
		out["pyrunner"] += own
		out["python"] += cpuTime(pid) - own
	}
	return out
}

// cpuTime is the CPU time pid and its processes have used: its own, its
// children's that it has reaped, and its live descendants'.
func cpuTime(pid int) time.Duration {
	var sum time.Duration
	for _, p := range append([]int{pid}, faults.Descendants(pid)...) {
		own, reaped := procCPU(p)
		sum += own + reaped
	}
	return sum
}

// userHZ is the unit of /proc's CPU times on Linux.
const userHZ = 100

// procCPU is the CPU time pid has used itself and that of the children it
// has reaped: /proc/<pid>/stat's utime + stime and cutime + cstime.
func procCPU(pid int) (own, reaped time.Duration) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0
	}
	// The fields after the command name, which ends at the last ')': utime,
	// stime, cutime and cstime are the 12th to 15th of them.
	var ticks [4]int64
	for i, s := range strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))[11:15] {
		ticks[i], _ = strconv.ParseInt(s, 10, 64)
	}
	const tick = time.Second / userHZ
	return time.Duration(ticks[0]+ticks[1]) * tick, time.Duration(ticks[2]+ticks[3]) * tick
}

// machineBusy is the CPU time every process on the machine has used so
// far: /proc/stat's first line less idle and iowait.
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	var busy int64
	// user nice system idle iowait irq softirq steal; guest time is in user.
	for i, f := range strings.Fields(line)[1:] {
		n, _ := strconv.ParseInt(f, 10, 64)
		if i != 3 && i != 4 && i < 8 {
			busy += n
		}
	}
	return time.Duration(busy) * (time.Second / userHZ)
}

// loadAverage is the machine's load average over the last minute.
func loadAverage() string {
	b, _ := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return "?"
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
