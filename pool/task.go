package pool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/pyrunner/pyrunner/python"
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

// taskRun is one task on one process: what runTask needs besides them.
type taskRun struct {
	proc taskProcess
	task Task
	// frameMax bounds the reply frame; setting names what sets it.
	frameMax int
	setting  string
	// maxPrints is the most print() calls a reply carries (python.Config).
	maxPrints int
	// cpuSeconds is the task's CPU time limit, to name it when it is hit.
	cpuSeconds int
	log        *slog.Logger
	// compiled is the code's compiled form from the code cache; with
	// wantCompiled (a process that has run no user code) the process sends
	// its own first, and onCompiled gets it.
	compiled     []byte
	wantCompiled bool
	onCompiled   func([]byte)
}

// run sends the task to the process and returns its result. alive reports
// whether the process still serves (reuse mode after a clean task); when
// it is false the process has ended or been stopped.
func (r taskRun) run(ctx context.Context) (res Result, alive bool) {
	// The write, then the read, on this goroutine: a process reads its whole
	// task before it answers, and a reply used only once the write is over
	// leaves no write behind on the channel of a process still serving.
	// Settings can be megabytes, so both yield to the timeout and to
	// cancellation, through the channel's deadline: no goroutine of its own
	// and no hand-off between threads per task (a cancellation runs one).
	conn := r.proc.Channel()
	var deadline time.Time
	if r.task.Timeout > 0 {
		deadline = time.Now().Add(r.task.Timeout)
	}
	release := deadlineOrDone(ctx, conn, deadline)
	writeErr := python.WriteFrame(conn, python.TaskFrame(r.task.ID, r.task.Settings,
		python.TaskFlags{Analyzed: r.task.analyzed, Compiled: r.compiled, WantCompiled: r.wantCompiled}))
	var frame []byte
	var readErr error
	if writeErr == nil {
		frame, readErr = r.readReply(conn)
	}
	// A reply read in full before the cancellation took hold is the task's
	// result.
	if release() && (writeErr != nil || readErr != nil) {
		if errors.Is(context.Cause(ctx), ErrKillNow) {
			r.kill("the runner is shutting down")
		} else {
			r.stop("the task was cancelled")
		}
		return Result{Err: CancelledError()}, false
	}
	if errors.Is(writeErr, os.ErrDeadlineExceeded) || errors.Is(readErr, os.ErrDeadlineExceeded) {
		r.stop("the task timed out")
		return Result{Err: TimeoutError(r.task.Timeout)}, false
	}
	if writeErr != nil {
		// The process is gone or broken: its exit status says why.
		return Result{Err: r.ended()}, false
	}
	return r.reply(frame, readErr)
}

// readReply reads the process's reply; when the compiled code was asked
// for, the process may send it first, and only there is it taken.
func (r taskRun) readReply(conn net.Conn) ([]byte, error) {
	frame, err := python.ReadFrame(conn, r.frameMax)
	if err != nil || !r.wantCompiled {
		return frame, err
	}
	code, ok, err := python.DecodeCompiled(frame)
	switch {
	case !ok:
		return frame, nil // no code: it did not compile
	case err != nil:
		return nil, fmt.Errorf("%w: %v", errInvalidReply, err)
	}
	if r.onCompiled != nil {
		r.onCompiled(code)
	}
	return python.ReadFrame(conn, r.frameMax)
}

// errInvalidReply: the process sent something no honest one sends.
var errInvalidReply = errors.New("invalid reply")

// reply turns the reply read (or the error reading it) into the task's
// result.
func (r taskRun) reply(frame []byte, err error) (Result, bool) {
	if errors.Is(err, python.ErrFrameTooLarge) {
		r.stop("its reply was too large")
		return Result{Err: &TaskError{
			Message:     fmt.Sprintf("Task result is too large: %v (%s)", err, r.setting),
			Description: strPtr(""), Kind: KindCrashed,
		}}, false
	}
	if errors.Is(err, errInvalidReply) {
		r.stop("its reply was invalid")
		return Result{Err: internalError("Task process sent an invalid reply: %v", err)}, false
	}
	if err != nil {
		return Result{Err: r.ended()}, false
	}
	reply, err := python.DecodeReply(frame, r.maxPrints)
	if err != nil {
		r.stop("its reply was invalid")
		return Result{Err: internalError("Task process sent an invalid reply: %v", err)}, false
	}
	return resultOf(reply), true
}

// resultOf is a decoded reply as the pool's Result.
func resultOf(reply python.Reply) Result {
	res := Result{Result: reply.Result, Prints: reply.Prints, AnalysisPassed: reply.AnalysisPassed, ownCompiled: reply.OwnCompiled}
	if e := reply.Error; e != nil {
		kind := KindUser
		if ErrorKind(reply.Kind) == KindStatic {
			kind = KindStatic
		}
		res.Result = nil
		res.Err = &TaskError{Message: e.Message, Description: e.Description, Stack: e.Stack, Kind: kind}
	}
	return res
}

// ended waits for the exit status of a process whose channel broke and
// turns it into the error n8n's runner would report.
func (r taskRun) ended() *TaskError {
	r.proc.Channel().Close()
	wait := time.NewTimer(exitWait)
	defer wait.Stop()
	select {
	case <-r.proc.Exited():
		return crashError(r.proc.ExitStatus(), r.cpuSeconds)
	case <-wait.C:
		// Still running with a broken channel: it cannot deliver anything.
		r.stop("its channel broke")
		return &TaskError{Message: "Failed to read result from child process", Description: strPtr(""), Kind: KindCrashed}
	}
}

func (r taskRun) stop(why string) { stopProcess(r.proc, r.task.ID, why, r.log) }
func (r taskRun) kill(why string) { killProcess(r.proc, r.task.ID, why, r.log) }

// stopProcess ends p the way n8n's runner does: SIGTERM to its group,
// KillGrace to go, then SIGKILL. It returns once the parent reported the
// exit (or exitWait passed). Each step is logged with the task's id.
func stopProcess(p taskProcess, taskID, why string, log *slog.Logger) {
	p.Channel().Close()
	log.Debug("stopping a task process: SIGTERM to its process group", "task", taskID, "pid", p.Pid(), "because", why)
	if err := p.Signal(syscall.SIGTERM); err != nil {
		log.Warn("could not send SIGTERM to a task process", "task", taskID, "pid", p.Pid(), "error", err)
	}
	grace := time.NewTimer(KillGrace)
	defer grace.Stop()
	select {
	case <-p.Exited():
		return
	case <-grace.C:
	}
	log.Debug("task process still running after SIGTERM and the grace", "task", taskID, "pid", p.Pid(), "grace", KillGrace)
	killProcess(p, taskID, why, log)
}

// killProcess SIGKILLs p's process group and waits for the exit report.
func killProcess(p taskProcess, taskID, why string, log *slog.Logger) {
	p.Channel().Close()
	log.Debug("killing a task process: SIGKILL to its process group", "task", taskID, "pid", p.Pid(), "because", why)
	if err := p.Signal(syscall.SIGKILL); err != nil {
		log.Warn("could not send SIGKILL to a task process", "task", taskID, "pid", p.Pid(), "error", err)
	}
	wait := time.NewTimer(exitWait)
	defer wait.Stop()
	select {
	case <-p.Exited():
	case <-wait.C:
		log.Warn("a killed task process did not report its exit", "task", taskID, "pid", p.Pid(), "waited", exitWait)
	}
}
