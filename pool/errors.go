package pool

import (
	"fmt"
	"syscall"
	"time"
)

// The messages below are n8n's official runner's, byte for byte
// (docs/errors.md §2), so that a workflow shows the same error whichever
// runner ran it.

func strPtr(s string) *string { return &s }

// TimeoutError is the runner-side task timeout.
func TimeoutError(timeout time.Duration) *TaskError {
	if timeout < time.Second || timeout%time.Second != 0 {
		// n8n's runner counts whole seconds; pyrunner's millisecond setting
		// may not: say exactly what happened.
		return &TaskError{Message: fmt.Sprintf("Task execution timed out after %s", timeout), Description: strPtr(""), Kind: KindTimeout}
	}
	return &TaskError{Message: fmt.Sprintf("Task execution timed out after %s", plural(int(timeout/time.Second), "second")),
		Description: strPtr(""), Kind: KindTimeout}
}

// plural is "1 second", "2 seconds", as n8n words it.
func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

// CancelledError is a task stopped because its caller cancelled it.
func CancelledError() *TaskError {
	return &TaskError{Message: "Task was cancelled", Kind: KindCancelled}
}

// crashError describes a task process that ended without sending a result.
// cpuSeconds is the task's CPU time limit (0: none): the kernel ends a task
// over it with SIGXCPU.
func crashError(st exitStatus, cpuSeconds int) *TaskError {
	switch {
	case st.signal == syscall.SIGXCPU && cpuSeconds > 0:
		return &TaskError{Message: fmt.Sprintf("Task exceeded the CPU time limit of %s (N8N_PYTHON_MAX_CPU_TIME)", plural(cpuSeconds, "second")),
			Description: strPtr(""), Kind: KindCrashed}
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
