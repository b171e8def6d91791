package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/pyrunner/pyrunner/broker/fakebroker"
)

// daemon is a long-running process the tests start for pyrunner to work
// with (n8n, Redis, Postgres), in a process group of its own so that
// stopping it also stops whatever it started.
type daemon struct {
	name   string
	cmd    *exec.Cmd
	out    *fakebroker.SyncBuffer // stdout and stderr, interleaved
	exited chan struct{}
}

// startDaemon starts cmd, collecting its output.
func startDaemon(name string, cmd *exec.Cmd) (*daemon, error) {
	d := &daemon{name: name, cmd: cmd, out: &fakebroker.SyncBuffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = d.out, d.out
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	go func() {
		_ = cmd.Wait()
		close(d.exited)
	}()
	return d, nil
}

// stop sends sig and waits up to grace for the process to exit, then
// SIGKILLs its process group, which also ends anything it left behind. It
// is an error to need the SIGKILL; stopping a stopped daemon is not.
func (d *daemon) stop(sig syscall.Signal, grace time.Duration) error {
	var err error
	if sigErr := d.cmd.Process.Signal(sig); sigErr != nil && !errors.Is(sigErr, syscall.ESRCH) && !errors.Is(sigErr, os.ErrProcessDone) {
		err = fmt.Errorf("%s to %s: %w", sig, d.name, sigErr)
	}
	select {
	case <-d.exited:
	case <-time.After(grace):
		err = errors.Join(err, fmt.Errorf("%s still running %s after %s; killed it", d.name, grace, sig))
	}
	// "No such process" means the group is already gone.
	if killErr := syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL); killErr != nil && !errors.Is(killErr, syscall.ESRCH) {
		err = errors.Join(err, fmt.Errorf("killing %s's process group: %w", d.name, killErr))
	}
	<-d.exited
	return err
}

// running reports whether the process has not exited yet.
func (d *daemon) running() bool {
	select {
	case <-d.exited:
		return false
	default:
		return true
	}
}
