package pool

import (
	"net"
	"syscall"
)

// taskProcess is one Python process that serves tasks on its own channel,
// as the pool drives it. There are two kinds: forked by a zygote
// (forkedProcess, zygote.go) and started as an interpreter of its own
// (spawnedProcess, spawn.go). The process is someone else's child (the
// zygote's, or exec.Cmd's); this is what the pool needs to talk to it and
// to stop it.
type taskProcess interface {
	// Pid is the process id, for logs.
	Pid() int
	// Channel is the process's task channel. Closing it (safe to do more
	// than once) tells a process that serves tasks to exit.
	Channel() net.Conn
	// Signal sends sig to the process's whole process group. A process
	// that has already ended is not an error: Signal returns nil. Safe to
	// call from any goroutine, before and after the process ended.
	Signal(sig syscall.Signal) error
	// Exited is closed once the process has ended and its parent has
	// reported how (ExitStatus).
	Exited() <-chan struct{}
	// ExitStatus is how the process ended; valid once Exited is closed.
	ExitStatus() exitStatus
}

// processExit is a task process's end, announced once to any number of
// watchers: done is closed after status is set.
type processExit struct {
	done   chan struct{}
	status exitStatus
}

func newProcessExit() *processExit { return &processExit{done: make(chan struct{})} }

// set records the end; only the first call counts. Callers serialise it
// (the zygote's lock, or the one goroutine that waits for a spawned
// process).
func (e *processExit) set(st exitStatus) {
	select {
	case <-e.done:
	default:
		e.status = st
		close(e.done)
	}
}

// exitStatus is how a task process ended, as its parent saw it.
type exitStatus struct {
	code   int
	signal syscall.Signal
	// lost: the parent (zygote) died before reporting; nothing is known.
	lost bool
}
