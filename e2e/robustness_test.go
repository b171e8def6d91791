package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pyrunner/pyrunner/broker/fakebroker"
	"github.com/pyrunner/pyrunner/internal/faults"
)

// children lists the pids whose parent is pid (any of its threads: a Go
// program forks from whichever thread runs the goroutine).
func children(pid int) []int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var out []int
	for _, path := range tasks {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

// zygoteOf is the runner's Python zygote.
func zygoteOf(t *testing.T, runner int) int {
	t.Helper()
	for deadline := time.Now().Add(patience); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, c := range children(runner) {
			if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", c)); strings.TrimSpace(string(comm)) == "python3" {
				return c
			}
		}
	}
	t.Fatal("no zygote")
	return 0
}

// busyTask marks its working directory, then waits to be killed.
const busyTask = "import os, time\nos.close(os.open('busy-marker', os.O_CREAT | os.O_WRONLY))\ntime.sleep(30)\nreturn []"

// processWithMarker finds the task process whose working directory holds
// the busy marker.
func processWithMarker(t *testing.T, zygote int) int {
	t.Helper()
	for deadline := time.Now().Add(patience); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, c := range children(zygote) {
			if cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", c)); err == nil {
				if _, err := os.Stat(filepath.Join(cwd, "busy-marker")); err == nil {
					return c
				}
			}
		}
	}
	t.Fatal("no busy task process")
	return 0
}

// TestKillNineMidTask: SIGKILL a task process, the zygote, or a reuse
// worker while it runs a task: only that task fails, with a clear message,
// and the next task is served.
func TestKillNineMidTask(t *testing.T) {
	cases := []struct {
		name, isolation, victim, want string
	}{
		{"task process", "isolated", "task", `{"message":"Process was forcefully killed (SIGKILL)","description":""}`},
		{"zygote", "isolated", "zygote", `{"message":"Task process was lost: its zygote exited","description":""}`},
		{"reuse worker", "reuse", "task", `{"message":"Process was forcefully killed (SIGKILL)","description":""}`},
		{"zygote in reuse mode", "reuse", "zygote", `{"message":"Task process was lost: its zygote exited","description":""}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := startBroker(t, fakebroker.Options{})
			p := startRegistered(t, b, map[string]string{"N8N_PYTHON_ISOLATION": tc.isolation})
			// Warm up, so that a reuse worker has run tasks before.
			for range 3 {
				if out := run(t, b, allItems("return [{'json': {'ok': 1}}]", nil)); !out.Done {
					t.Fatalf("warm-up: %s", out.Error)
				}
			}
			zygote := zygoteOf(t, p.cmd.Process.Pid)
			ctx, cancel := context.WithTimeout(context.Background(), patience)
			defer cancel()
			req := b.Request(allItems(busyTask, nil), fakebroker.RequestOptions{})
			victim := processWithMarker(t, zygote)
			if tc.victim == "zygote" {
				victim = zygote
			}
			if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			out, err := req.Wait(ctx)
			if err != nil || compact(t, out.Error) != tc.want {
				t.Fatalf("killed task: %v %s, want %s", err, out.Error, tc.want)
			}
			for range 3 {
				if out := run(t, b, allItems("return [{'json': {'after': 1}}]", nil)); !out.Done || compact(t, out.Result) != `[{"json":{"after":1}}]` {
					t.Fatalf("after the kill: %s %s", out.Result, out.Error)
				}
			}
		})
	}
}

// TestTenThousandTasks: 10,000 tasks in a row (five at a time), none lost
// or answered twice; no process or goroutine leaked; the runner's memory
// flat.
func TestTenThousandTasks(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	b := startBroker(t, fakebroker.Options{})
	// The plain build: the race detector's own memory would hide the runner's.
	p := startRunnerBinary(t, b, plainBinary, map[string]string{
		"N8N_RUNNERS_HEALTH_CHECK_SERVER_ENABLED": "true",
		"N8N_RUNNERS_HEALTH_CHECK_SERVER_PORT":    "0",
	})
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	if err := b.WaitRegistered(ctx, 1); err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`Health check server listening on .+, port (\d+)`).FindStringSubmatch(p.out.String())
	if m == nil {
		t.Fatal("no health server")
	}
	metric := func(name string) float64 {
		resp, err := http.Get("http://127.0.0.1:" + m[1] + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		mm := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(string(body))
		if mm == nil {
			t.Fatalf("no %s in metrics", name)
		}
		v, _ := strconv.ParseFloat(mm[1], 64)
		return v
	}
	pid := p.cmd.Process.Pid
	runBatch := func(from, to int) {
		var wg sync.WaitGroup
		next := make(chan int)
		errs := make(chan error, to-from)
		for range 5 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					ctx, cancel := context.WithTimeout(context.Background(), patience)
					out, err := b.RunTask(ctx, allItems(fmt.Sprintf("return [{'json': {'i': %d}}]", i), nil))
					cancel()
					if want := fmt.Sprintf(`[{"json":{"i":%d}}]`, i); err != nil || string(out.Result) != want {
						errs <- fmt.Errorf("task %d: %v %s %s", i, err, out.Result, out.Error)
					}
				}
			}()
		}
		for i := from; i < to; i++ {
			next <- i
		}
		close(next)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	// settled measures once the last tasks' processes have exited and been
	// reaped and their goroutines ended (ok), which on a loaded machine
	// takes its time; after patience it measures anyway, for the checks
	// below to report.
	settled := func(ok func(goroutines float64, procs int) bool) (rss int, goroutines float64, procs int) {
		for deadline := time.Now().Add(patience); ; time.Sleep(100 * time.Millisecond) {
			goroutines, procs = metric("go_goroutines"), len(faults.Descendants(pid))
			if ok(goroutines, procs) || time.Now().After(deadline) {
				return rssKB(t, pid), goroutines, procs
			}
		}
	}
	runBatch(0, 1000) // warm: pools, caches, the Go heap
	rss0, goroutines0, procs0 := settled(func(_ float64, procs int) bool { return procs <= 1+8 })
	runBatch(1000, 10000)
	rss1, goroutines1, procs1 := settled(func(goroutines float64, procs int) bool { return goroutines <= goroutines0+5 && procs <= 1+8 })
	t.Logf("after 1000 tasks: RSS %d kB, %v goroutines, %d processes; after 10000: RSS %d kB, %v goroutines, %d processes",
		rss0, goroutines0, procs0, rss1, goroutines1, procs1)

	answers := map[string]int{}
	for _, f := range b.Transcript() {
		s := string(f.Msg)
		if f.Dir == fakebroker.DirRunnerToBroker && (strings.Contains(s, `"runner:taskdone"`) || strings.Contains(s, `"runner:taskerror"`)) {
			id := regexp.MustCompile(`"taskId":"([^"]+)"`).FindStringSubmatch(s)[1]
			answers[id]++
		}
	}
	if len(answers) != 10000 {
		t.Fatalf("%d tasks answered, want 10000", len(answers))
	}
	for id, n := range answers {
		if n != 1 {
			t.Fatalf("task %s answered %d times", id, n)
		}
	}
	if goroutines1 > goroutines0+5 {
		t.Errorf("goroutines grew from %v to %v", goroutines0, goroutines1)
	}
	// The zygote and at most N8N_PYTHON_POOL_MAX_WORKERS (8) ready ones:
	// how many are ready follows the recent arrival rate.
	if procs1 > 1+8 {
		t.Errorf("%d processes below the runner after the tasks, want at most 9", procs1)
	}
	// Flat: 9000 more tasks may not cost more than a few MB (the Go heap
	// settling at its steady size).
	if rss1 > rss0+8*1024 {
		t.Errorf("RSS grew from %d kB to %d kB over 9000 tasks", rss0, rss1)
	}
}

func rssKB(t *testing.T, pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`VmRSS:\s+(\d+) kB`).FindStringSubmatch(string(b))
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestLauncherDeathStopsRunner: a launcher that starts pyrunner with a
// parent-death signal (PR_SET_PDEATHSIG, here through setpriv) and is then
// killed takes pyrunner and its Python processes with it, although
// pyrunner re-executes itself at start to hide its token (the re-exec must
// keep the signal).
func TestLauncherDeathStopsRunner(t *testing.T) {
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (util-linux) is not installed")
	}
	b := startBroker(t, fakebroker.Options{AuthToken: "test-token"})
	launcher := exec.Command("/bin/sh", "-c", `"$0" --pdeathsig TERM -- "$1" run & wait`, setpriv, binary)
	launcher.Env = runnerEnv(b, nil)
	// A file, not a pipe: a pyrunner that outlived the launcher would hold a
	// pipe open, and Wait would hang instead of the test failing.
	out, err := os.CreateTemp(t.TempDir(), "launcher-log-")
	if err != nil {
		t.Fatal(err)
	}
	log := func() string { b, _ := os.ReadFile(out.Name()); return string(b) }
	launcher.Stdout, launcher.Stderr = out, out
	if err := launcher.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = launcher.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = launcher.Process.Kill()
		<-exited
	})
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	if err := b.WaitRegistered(ctx, 1); err != nil {
		t.Fatalf("pyrunner did not register: %v\n%s", err, log())
	}
	if res := run(t, b, allItems("return [{'json': {'ok': 1}}]", nil)); !res.Done {
		t.Fatalf("task: %s\n%s", res.Error, log())
	}
	started := faults.Descendants(launcher.Process.Pid)
	if len(started) < 2 {
		t.Fatalf("the launcher's descendants %v: want pyrunner and its Python processes", started)
	}
	if err := launcher.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-exited
	t.Cleanup(func() {
		for _, pid := range started {
			_ = syscall.Kill(pid, syscall.SIGKILL) // survivors of a failure
		}
	})
	eventually(t, patience, fmt.Sprintf("pyrunner and its processes %v to end after the launcher was killed", started), func() bool {
		for _, pid := range started {
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && !strings.Contains(string(b[strings.LastIndexByte(string(b), ')'):]), ") Z") {
				return false
			}
		}
		return true
	})
}
