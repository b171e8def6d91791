package config

import (
	"fmt"
	"slices"
	"time"
)

// Limits is what one task may do: how long it may run, what it may use,
// what it may import and reach. n8n's runner's sandbox variables, then
// pyrunner's own limits.
type Limits struct {
	TaskTimeout            Seconds `env:"N8N_RUNNERS_TASK_TIMEOUT, default=60"`
	StdlibAllow            List    `env:"N8N_RUNNERS_STDLIB_ALLOW"`
	ExternalAllow          List    `env:"N8N_RUNNERS_EXTERNAL_ALLOW"`
	AllowTransitiveImports Bool    `env:"N8N_RUNNERS_ALLOW_TRANSITIVE_IMPORTS, default=false"`
	// Default: n8n's 22 names (docs/sandbox.md §4.3).
	BuiltinsDeny   List `env:"N8N_RUNNERS_BUILTINS_DENY, default=eval,exec,compile,open,input,breakpoint,getattr,object,type,vars,setattr,delattr,hasattr,dir,memoryview,__build_class__,globals,locals,license,help,credits,copyright"`
	BlockEnvAccess Bool `env:"N8N_BLOCK_RUNNER_ENV_ACCESS, default=true"`

	MaxExecutionTime Millis `env:"N8N_PYTHON_MAX_EXECUTION_TIME, default=0"` // wins over TaskTimeout
	MaxCPUTime       Int    `env:"N8N_PYTHON_MAX_CPU_TIME, default=0"`       // s; 0: the task timeout + 1 s
	MaxMemoryMB      Int    `env:"N8N_PYTHON_MAX_MEMORY_MB, default=1024"`
	MaxProcesses     Int    `env:"N8N_PYTHON_MAX_PROCESSES, default=32"`
	MaxOutputKB      Int    `env:"N8N_PYTHON_MAX_OUTPUT_KB, default=1024"`
	MaxResultMB      Int    `env:"N8N_PYTHON_MAX_RESULT_MB, default=128"`
	NetworkAccess    Bool   `env:"N8N_PYTHON_NETWORK_ACCESS, default=true"`
	ReadablePaths    List   `env:"N8N_PYTHON_READABLE_PATHS"`
}

// Timeout is N8N_PYTHON_MAX_EXECUTION_TIME (ms) when set, else
// N8N_RUNNERS_TASK_TIMEOUT (s): the pyrunner setting is the more specific,
// and n8n's launcher always passes its own N8N_RUNNERS_TASK_TIMEOUT.
func (l *Limits) Timeout() time.Duration {
	if l.MaxExecutionTime > 0 {
		return l.MaxExecutionTime.Duration()
	}
	return l.TaskTimeout.Duration()
}

// CPUSeconds is N8N_PYTHON_MAX_CPU_TIME, or the task timeout rounded up
// plus one second: a single-threaded task then always meets the wall-clock
// timeout first, and the CPU limit stops code that burns several cores.
func (l *Limits) CPUSeconds() int {
	if l.MaxCPUTime > 0 {
		return int(l.MaxCPUTime)
	}
	return int((l.Timeout()+time.Second-1)/time.Second) + 1
}

// Validate checks the section against n8n's runner's rules, with its texts
// (docs/errors.md §8), plus pyrunner's own.
func (l *Limits) Validate() []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if l.TaskTimeout <= 0 {
		add("Task timeout must be positive, got %d (N8N_RUNNERS_TASK_TIMEOUT)", l.TaskTimeout)
	}
	for name, list := range map[string]List{"N8N_RUNNERS_STDLIB_ALLOW": l.StdlibAllow, "N8N_RUNNERS_EXTERNAL_ALLOW": l.ExternalAllow} {
		if slices.Contains(list, "*") && len(list) > 1 {
			add("Wildcard '*' in %s must be used alone, not with other modules. Got: %s", name, pythonList(list))
		}
	}
	for name, v := range map[string]int{
		"N8N_PYTHON_MAX_MEMORY_MB": int(l.MaxMemoryMB), "N8N_PYTHON_MAX_EXECUTION_TIME": int(l.MaxExecutionTime),
		"N8N_PYTHON_MAX_CPU_TIME": int(l.MaxCPUTime), "N8N_PYTHON_MAX_PROCESSES": int(l.MaxProcesses),
		"N8N_PYTHON_MAX_OUTPUT_KB": int(l.MaxOutputKB), "N8N_PYTHON_MAX_RESULT_MB": int(l.MaxResultMB),
	} {
		if v < 0 {
			add("%s must not be negative, got %d", name, v)
		}
	}
	if l.MaxOutputKB < 1 {
		add("N8N_PYTHON_MAX_OUTPUT_KB must be at least 1, got %d", l.MaxOutputKB)
	}
	if l.MaxMemoryMB > 0 && l.MaxMemoryMB < 64 {
		add("N8N_PYTHON_MAX_MEMORY_MB must be at least 64 (Python itself needs that much), got %d", l.MaxMemoryMB)
	}
	return errs
}
