package e2e

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pyrunner/pyrunner/broker/fakebroker"
	"github.com/pyrunner/pyrunner/internal/loadgen"
)

// ownCPU is the CPU time a process has used itself (procCPU).
func ownCPU(pid int) time.Duration {
	own, _ := procCPU(pid)
	return own
}

// TestSamplingCost measures what resource sampling costs pyrunner: its own
// CPU time over a fixed run (idle for PYRUNNER_SAMPLING_COST_IDLE, 30 s by
// default, then 3000 trivial tasks in reuse mode, 4 at a time) with
// sampling off, at the default 5 s and at 100 ms, the plain build, and
// prints a table. `make sampling-cost` runs it.
func TestSamplingCost(t *testing.T) {
	if os.Getenv("PYRUNNER_SAMPLING_COST") == "" {
		t.Skip("set PYRUNNER_SAMPLING_COST=1 (make sampling-cost) to measure")
	}
	idle := 30 * time.Second
	if d, err := time.ParseDuration(os.Getenv("PYRUNNER_SAMPLING_COST_IDLE")); err == nil {
		idle = d
	}
	const tasks = 3000
	settings := task(loadgen.TrivialCode, "runOnceForAllItems", []any{}, false)
	var rows []string
	var idleOff time.Duration
	for _, interval := range []int{0, 5000, 100} {
		b, err := fakebroker.Start(context.Background(), fakebroker.Options{TranscriptLimit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		p, err := startBenchRunner(b, "reuse", "N8N_PYTHON_METRICS_SAMPLE_INTERVAL="+strconv.Itoa(interval))
		if err != nil {
			b.Close()
			t.Fatal(err)
		}
		pid := p.cmd.Process.Pid
		start := ownCPU(pid)
		time.Sleep(idle)
		idleCPU := ownCPU(pid) - start
		before := ownCPU(pid)
		res := loadgen.ClosedLoop(tasks, 4, func(int) (time.Duration, bool) {
			ctx, cancel := context.WithTimeout(context.Background(), patience)
			defer cancel()
			out, err := b.RunTask(ctx, settings)
			return out.Completed.Sub(out.SettingsSent), err == nil && out.Done
		})
		loadCPU := ownCPU(pid) - before
		stopBenchRunner(p)
		b.Close()
		if res.Failed > 0 {
			t.Fatalf("%d tasks failed", res.Failed)
		}
		name, perSample := "off", "–"
		if interval == 0 {
			idleOff = idleCPU
		} else {
			name = fmt.Sprintf("%d ms", interval)
			samples := float64(idle) / float64(time.Duration(interval)*time.Millisecond)
			perSample = fmt.Sprintf("%.0f µs", float64(idleCPU-idleOff)/samples/1e3)
		}
		rows = append(rows, fmt.Sprintf("| %s | %d ms (%.2f%% of a core) | %s | %d ms (%.0f µs/task) | %.0f |",
			name, idleCPU.Milliseconds(), 100*idleCPU.Seconds()/idle.Seconds(), perSample,
			loadCPU.Milliseconds(), float64(loadCPU.Microseconds())/tasks, res.PerSecond))
	}
	fmt.Printf("\npyrunner's own CPU (utime+stime), idle %s then %d tasks (reuse, 4 at a time):\n\n", idle, tasks)
	fmt.Println("| sampling | idle CPU | per sample (vs off) | CPU for the tasks | tasks/s |\n|---|---|---|---|---|")
	fmt.Println(strings.Join(rows, "\n"))
}
