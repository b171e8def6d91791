package pool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pyrunner/pyrunner/python"
)

// TestZygote is a zygote on its own, for tests of its control protocol.
type TestZygote struct{ z *zygote }

// StartTestZygote starts a zygote for spec, closed when t ends.
func StartTestZygote(t testing.TB, spec ProcessSpec) TestZygote {
	t.Helper()
	z, err := startZygote(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = z.close() })
	return TestZygote{z}
}

// Spawn forks a task process, waits until it is ready (its own process
// group, fenced in) as the pool does, and returns its pid and the spawn's
// id.
func (tz TestZygote) Spawn(t testing.TB) (pid, id int) {
	t.Helper()
	p := tz.spawnReady(t)
	return p.pid, p.spawnID
}

// Start forks a task process, waits until it is ready and sends it
// settings without waiting for the result.
func (tz TestZygote) Start(t testing.TB, settings json.RawMessage) (pid, id int) {
	t.Helper()
	p := tz.spawnReady(t)
	if err := python.WriteFrame(p.conn, python.TaskFrame("started", settings, python.TaskFlags{})); err != nil {
		t.Fatal(err)
	}
	return p.pid, p.spawnID
}

func (tz TestZygote) spawnReady(t testing.TB) *forkedProcess {
	t.Helper()
	p, err := tz.z.spawn(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.conn.Close() })
	if err := awaitReady(p, readyTimeout); err != nil {
		t.Fatal(err)
	}
	return p
}

// SendRaw writes packet to the zygote's control socket as one message, as
// only a bug on the Go side would write it.
func (tz TestZygote) SendRaw(t testing.TB, packet []byte) {
	t.Helper()
	if err := tz.z.write(packet, nil); err != nil {
		t.Fatal(err)
	}
}

// ExitCode waits (at most wait) for the zygote to exit and returns its
// exit status (-1 for a signal).
func (tz TestZygote) ExitCode(t testing.TB, wait time.Duration) int {
	t.Helper()
	select {
	case <-tz.z.waitDone:
	case <-time.After(wait):
		t.Fatalf("zygote still running after %s", wait)
	}
	return tz.z.cmd.ProcessState.ExitCode()
}

// Signal sends the zygote a kill request for pid as forked for spawn id.
func (tz TestZygote) Signal(id, pid int, sig syscall.Signal) error { return tz.z.signal(id, pid, sig) }

// ExitSignal waits (at most wait) for the exit report of pid and returns
// the signal that ended it (0 for an exit).
func (tz TestZygote) ExitSignal(t testing.TB, pid int, wait time.Duration) syscall.Signal {
	t.Helper()
	tz.z.mu.Lock()
	exit := tz.z.exits[pid]
	tz.z.mu.Unlock()
	if exit == nil {
		t.Fatalf("no task process %d", pid)
	}
	select {
	case <-exit.done:
	case <-time.After(wait):
		t.Fatalf("task process %d still running after %s", pid, wait)
	}
	return exit.status.signal
}

// SpawnAtOnce asks for n task processes at once, as the maintainer may:
// the zygote is stopped until all n requests are written, so that it finds
// them queued together. It runs settings in each process on the channel
// its spawn handed over, and returns the pid each spawn reported with the
// result that process sent.
func (tz TestZygote) SpawnAtOnce(t testing.TB, n int, settings json.RawMessage) (pids []int, results []string) {
	t.Helper()
	zygote := tz.z.cmd.Process
	if err := zygote.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	pids, results = make([]int, n), make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pids[i], results[i], errs[i] = tz.spawnAndRun(i, settings)
			if errs[i] != nil {
				errs[i] = fmt.Errorf("spawn %d: %w", i, errs[i])
			}
		}()
	}
	queued := func() int {
		tz.z.mu.Lock()
		defer tz.z.mu.Unlock()
		return len(tz.z.spawns)
	}
	for deadline := time.Now().Add(30 * time.Second); queued() < n && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	wrote := queued()
	if err := zygote.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if wrote < n {
		t.Fatalf("only %d of %d spawn requests were written while the zygote was stopped", wrote, n)
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return pids, results
}

// spawnAndRun forks one task process, runs settings in it and returns its
// pid and result.
func (tz TestZygote) spawnAndRun(i int, settings json.RawMessage) (pid int, result string, err error) {
	p, err := tz.z.spawn(context.Background(), 1)
	if err != nil {
		return 0, "", err
	}
	defer p.conn.Close()
	if err := awaitReady(p, readyTimeout); err != nil {
		return p.pid, "", err
	}
	if err := python.WriteFrame(p.conn, python.TaskFrame(fmt.Sprint(i), settings, python.TaskFlags{})); err != nil {
		return p.pid, "", err
	}
	frame, err := python.ReadFrame(p.conn, 1<<20)
	if err != nil {
		return p.pid, "", err
	}
	reply, err := python.DecodeReply(frame, 0)
	if err != nil {
		return p.pid, "", err
	}
	return p.pid, string(reply.Result), nil
}
