package pool

import (
	"fmt"
	"syscall"
	"time"
)

// The messages below are n8n's official runner's, byte for byte (reference
// §10.11), so that a workflow shows the same error whichever runner ran it.

func strPtr(s string) *string { return &s }

// TimeoutError is the runner-side task timeout.
func TimeoutError(timeout time.Duration) *TaskError {
	secs := int(timeout.Round(time.Second) / time.Second)
	unit := "seconds"
	if secs == 1 {
		unit = "second"
	}
	if timeout < time.Second {
		// Below a second the official runner cannot be configured; say what happened.
		return &TaskError{Message: fmt.Sprintf("Task execution timed out after %s", timeout), Description: strPtr(""), Kind: KindTimeout}
	}
	return &TaskError{Message: fmt.Sprintf("Task execution timed out after %d %s", secs, unit), Description: strPtr(""), Kind: KindTimeout}
}

// CancelledError is a task stopped because its caller cancelled it.
func CancelledError() *TaskError {
	return &TaskError{Message: "Task was cancelled", Kind: KindCancelled}
}

// exitStatus is how a task process ended, as its parent saw it.
type exitStatus struct {
	code   int
	signal syscall.Signal
	// lost: the parent (zygote) died before reporting; nothing is known.
	lost bool
}

// crashError describes a task process that ended without sending a result.
func crashError(st exitStatus) *TaskError {
	switch {
	case st.lost:
		return &TaskError{Message: "Task process was lost: its zygote exited", Description: strPtr(""), Kind: KindCrashed}
	case st.signal == syscall.SIGKILL:
		return &TaskError{Message: "Process was forcefully killed (SIGKILL)", Description: strPtr(""), Kind: KindCrashed}
	case st.signal == syscall.SIGTERM:
		return CancelledError()
	case st.signal != 0:
		return &TaskError{Message: fmt.Sprintf("Task subprocess exited with code %d", -int(st.signal)), Description: strPtr(""), Kind: KindCrashed}
	case st.code != 0:
		return &TaskError{Message: fmt.Sprintf("Task subprocess exited with code %d", st.code), Description: strPtr(""), Kind: KindCrashed}
	}
	return &TaskError{Message: "Process completed but returned no result. This is likely an internal error.", Description: strPtr(""), Kind: KindCrashed}
}

// internalError is a task the pool could not run at all.
func internalError(format string, args ...any) *TaskError {
	return &TaskError{Message: fmt.Sprintf(format, args...), Description: strPtr(""), Kind: KindInternal}
}
