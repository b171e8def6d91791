package pool

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"
)

// KillGrace is how long a task process has between SIGTERM and SIGKILL, as
// in n8n's runner.
const KillGrace = time.Second

// ErrKillNow, as the cause of a task's context cancellation, skips the
// SIGTERM grace: the task is killed at once (used on runner shutdown, when
// the task has already had the graceful-shutdown timeout).
var ErrKillNow = errors.New("kill without grace")

// exitWait bounds how long we wait for a parent's exit report after a task
// process closed its channel or was SIGKILLed.
const exitWait = 5 * time.Second

// taskProcess is one Python process serving tasks on its own channel. The
// process itself is someone else's child (a zygote's, or exec.Cmd's); this
// holds what the pool needs to talk to it and to stop it.
type taskProcess struct {
	pid  int
	conn net.Conn
	// signal sends sig to the process's whole process group.
	signal func(sig syscall.Signal) error
	// exit is announced when the process has ended.
	exit *processExit
	// cpuSeconds is its CPU time limit, to name it when it is hit.
	cpuSeconds int
}

type frameOrErr struct {
	frame []byte
	err   error
}

// run sends t to the process and returns its result. alive reports whether
// the process is still serving (reuse mode after a clean task); when it is
// false the process has ended or been killed.
func (p *taskProcess) run(ctx context.Context, t Task, opts Options) (res Result, alive bool) {
	maxFrame, setting := opts.replyLimit()
	var timeout <-chan time.Time
	if t.Timeout > 0 {
		timer := time.NewTimer(t.Timeout)
		defer timer.Stop()
		timeout = timer.C
	}
	replies := make(chan frameOrErr, 1)
	go func() {
		frame, err := readFrame(p.conn, maxFrame)
		replies <- frameOrErr{frame, err}
	}()
	// Settings can be megabytes: the write, too, must yield to the timeout
	// and to cancellation (stopping the process closes the channel, which
	// ends the write). The reply is used once the write is over, so that a
	// process still serving never has a write left behind on its channel.
	written := make(chan error, 1)
	go func() { written <- writeFrame(p.conn, taskFrame(t)) }()

	var got *frameOrErr
	var writeErr error
	for {
		switch {
		case written == nil && got != nil:
			res, alive := p.reply(*got, setting)
			return res, alive && writeErr == nil
		case written == nil && writeErr != nil:
			// The process is gone or broken: its exit status says why.
			return Result{Err: p.ended()}, false
		}
		select {
		case writeErr = <-written:
			written = nil
		case r := <-replies:
			got, replies = &r, nil
		case <-timeout:
			p.stop()
			return Result{Err: TimeoutError(t.Timeout)}, false
		case <-ctx.Done():
			if errors.Is(context.Cause(ctx), ErrKillNow) {
				p.kill()
			} else {
				p.stop()
			}
			return Result{Err: CancelledError()}, false
		}
	}
}

// reply turns what the reader got into the task's result; setting names
// the limit a frame too large went over.
func (p *taskProcess) reply(r frameOrErr, setting string) (Result, bool) {
	if errors.Is(r.err, errFrameTooLarge) {
		p.stop()
		return Result{Err: &TaskError{
			Message:     fmt.Sprintf("Task result is too large: %v (%s)", r.err, setting),
			Description: strPtr(""), Kind: KindCrashed,
		}}, false
	}
	if r.err != nil {
		return Result{Err: p.ended()}, false
	}
	res, err := decodeReply(r.frame)
	if err != nil {
		p.stop()
		return Result{Err: internalError("Task process sent an invalid reply: %v", err)}, false
	}
	return res, true
}

// ended waits for the exit status of a process whose channel broke and
// turns it into the error n8n's runner would report.
func (p *taskProcess) ended() *TaskError {
	p.conn.Close()
	select {
	case <-p.exit.done:
		return crashError(p.exit.status, p.cpuSeconds)
	case <-time.After(exitWait):
		// Still running with a broken channel: it cannot deliver anything.
		p.stop()
		return &TaskError{Message: "Failed to read result from child process", Description: strPtr(""), Kind: KindCrashed}
	}
}

// stop ends the process the way n8n's runner does: SIGTERM to its group,
// KillGrace to go, then SIGKILL. It returns once the parent reported the
// exit (or gave up waiting).
func (p *taskProcess) stop() {
	p.conn.Close()
	_ = p.signal(syscall.SIGTERM)
	select {
	case <-p.exit.done:
		return
	case <-time.After(KillGrace):
	}
	p.kill()
}

// finish ends a process that is done serving: isolated after its task,
// worn out, or broken. The process would exit by itself on the closed
// channel, but what its code left in its process group would not: a
// child that answered for it (a fork returns twice; the first process of
// a fork bomb to hit the process limit does), while the task process and
// the rest of the group go on, holding the user's processes and the CPU.
// So the group is killed, without waiting: the task's result is in.
func (p *taskProcess) finish() {
	p.conn.Close()
	_ = p.signal(syscall.SIGKILL)
}

// kill SIGKILLs the process group and waits for the exit report.
func (p *taskProcess) kill() {
	p.conn.Close()
	_ = p.signal(syscall.SIGKILL)
	select {
	case <-p.exit.done:
	case <-time.After(exitWait):
	}
}
