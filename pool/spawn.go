package pool

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/pyrunner/pyrunner/python"
)

// SpawnExecutor starts a new interpreter for every task, as n8n's runner
// did before its forkserver. It is the baseline the benchmarks compare
// against, not what pyrunner uses to serve n8n.
type SpawnExecutor struct {
	opts Options
	// wg counts the goroutines that reap the processes; mu guards live,
	// the processes not reaped yet, which Close ends.
	wg   sync.WaitGroup
	mu   sync.Mutex
	live map[*spawnedProcess]struct{}
}

var _ Executor = (*SpawnExecutor)(nil)

// NewSpawnExecutor returns a baseline executor.
func NewSpawnExecutor(opts Options) *SpawnExecutor {
	return &SpawnExecutor{opts: opts.withDefaults(), live: map[*spawnedProcess]struct{}{}}
}

func (e *SpawnExecutor) Start(context.Context) error { return nil }
func (e *SpawnExecutor) Capacity() int               { return e.opts.MaxWorkers }

// Close lets every process still there go (a process that has sent its
// result exits by itself), kills what is left after KillGrace, and waits
// until all are reaped. Safe to call twice.
func (e *SpawnExecutor) Close() error {
	e.mu.Lock()
	live := make([]*spawnedProcess, 0, len(e.live))
	for p := range e.live {
		live = append(live, p)
	}
	e.mu.Unlock()
	for _, p := range live {
		p.conn.Close()
	}
	grace := time.NewTimer(KillGrace)
	defer grace.Stop()
	for _, p := range live {
		select {
		case <-p.exit.done:
		case <-grace.C:
			_ = p.Signal(syscall.SIGKILL)
		}
	}
	e.wg.Wait()
	return nil
}

// Run starts an interpreter, sends it the configuration and t, and returns
// its result. The process is gone when Run returns.
func (e *SpawnExecutor) Run(ctx context.Context, t Task) Result {
	proc, err := e.start()
	if err != nil {
		return Result{Err: internalError("Could not start a task process: %v", err)}
	}
	run := e.opts.taskRun(proc, t)
	defer func() {
		// Done: what its code left in its process group goes with it
		// (scheduler.gone says why).
		proc.conn.Close()
		_ = proc.Signal(syscall.SIGKILL)
	}()
	if err := python.WriteFrame(proc.conn, python.ConfigFrame(e.opts.Spec.Config)); err != nil {
		return Result{Err: run.ended()}
	}
	if err := awaitReady(proc, readyTimeout); err != nil {
		return Result{Err: run.ended()}
	}
	res, _ := run.run(ctx)
	return res
}

func (e *SpawnExecutor) start() (*spawnedProcess, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("task channel: %w", err)
	}
	ours := os.NewFile(uintptr(fds[0]), "task-channel")
	theirs := os.NewFile(uintptr(fds[1]), "task-channel-child")
	defer ours.Close()
	defer theirs.Close()

	cmd := e.opts.Spec.command("child")
	cmd.ExtraFiles = []*os.File{theirs}
	// The child makes itself a session leader (setsid) before user code
	// runs; it must not be one already or setsid fails.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	conn, err := net.FileConn(ours)
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, err
	}
	p := &spawnedProcess{cmd: cmd, conn: conn, exit: newProcessExit()}
	e.mu.Lock()
	e.live[p] = struct{}{}
	e.mu.Unlock()
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		p.reap()
		e.mu.Lock()
		delete(e.live, p)
		e.mu.Unlock()
	}()
	return p, nil
}

// spawnedProcess is a task process started as an interpreter of its own;
// exec.Cmd is its parent's side.
type spawnedProcess struct {
	cmd  *exec.Cmd
	conn net.Conn
	exit *processExit
}

var _ taskProcess = (*spawnedProcess)(nil)

func (p *spawnedProcess) Pid() int                { return p.cmd.Process.Pid }
func (p *spawnedProcess) Channel() net.Conn       { return p.conn }
func (p *spawnedProcess) Exited() <-chan struct{} { return p.exit.done }
func (p *spawnedProcess) ExitStatus() exitStatus  { return p.exit.status }

// Signal signals the process group the child makes with setsid, or the
// child alone while it has not reached setsid yet. One that has ended is
// not an error.
func (p *spawnedProcess) Signal(sig syscall.Signal) error {
	err := syscall.Kill(-p.cmd.Process.Pid, sig)
	if err == nil {
		return nil
	}
	err = p.cmd.Process.Signal(sig)
	if errors.Is(err, os.ErrProcessDone) || errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

// reap waits for the process and records how it ended.
func (p *spawnedProcess) reap() {
	err := p.cmd.Wait()
	var st exitStatus
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			st.signal = ws.Signal()
		} else {
			st.code = exitErr.ExitCode()
		}
	}
	p.exit.set(st)
}
