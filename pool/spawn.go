package pool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"syscall"
)

// SpawnExecutor starts a new interpreter for every task, as n8n's runner
// did before its forkserver. It is the baseline the benchmarks compare
// against, not what pyrunner uses to serve n8n.
type SpawnExecutor struct {
	opts Options
}

var _ Executor = (*SpawnExecutor)(nil)

// NewSpawnExecutor returns a baseline executor.
func NewSpawnExecutor(opts Options) *SpawnExecutor {
	return &SpawnExecutor{opts: opts.withDefaults()}
}

func (e *SpawnExecutor) Start(context.Context) error { return nil }
func (e *SpawnExecutor) Capacity() int               { return e.opts.MaxWorkers }
func (e *SpawnExecutor) Close() error                { return nil }

// Run starts an interpreter, sends it the configuration and t, and returns
// its result.
func (e *SpawnExecutor) Run(ctx context.Context, t Task) Result {
	proc, err := e.start()
	if err != nil {
		return Result{Err: internalError("Could not start a task process: %v", err)}
	}
	defer proc.finish()
	cfg := e.opts.Spec.Config
	cfg.Op = "config"
	b, _ := json.Marshal(cfg)
	if err := writeFrame(proc.conn, b); err != nil {
		return Result{Err: proc.ended()}
	}
	if err := awaitReadyFrame(proc, readyTimeout); err != nil {
		return Result{Err: proc.ended()}
	}
	res, _ := proc.run(ctx, t, e.opts)
	return res
}

func (e *SpawnExecutor) start() (*taskProcess, error) {
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
	exit := newProcessExit()
	go func() {
		err := cmd.Wait()
		var st exitStatus
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				st.signal = ws.Signal()
			} else {
				st.code = exitErr.ExitCode()
			}
		}
		exit.set(st)
	}()
	pid := cmd.Process.Pid
	return &taskProcess{
		pid: pid, conn: conn, exit: exit, cpuSeconds: e.opts.Spec.Config.CPUSeconds,
		signal: func(sig syscall.Signal) error {
			if err := syscall.Kill(-pid, sig); err == nil {
				return nil
			}
			// Not a group leader yet: it has not reached setsid.
			return cmd.Process.Signal(sig)
		},
	}, nil
}
