package config

import "fmt"

// Pool is the Python processes that run tasks: which Python, how many
// processes are kept and for how long, and which users they run as.
// pyrunner's own variables.
type Pool struct {
	// Interpreter: empty lets pyrunner choose (envcache.Choose).
	Interpreter string `env:"N8N_PYTHON_INTERPRETER"`
	CacheDir    string `env:"N8N_PYTHON_CACHE_DIR"` // empty: envcache.DefaultCacheDir
	// Isolation is IsolationIsolated, IsolationReuse, IsolationWorkflow or
	// IsolationSpawn.
	Isolation      string `env:"N8N_PYTHON_ISOLATION, default=isolated"`
	MinWorkers     Int    `env:"N8N_PYTHON_POOL_MIN_WORKERS, default=2"`
	MaxWorkers     Int    `env:"N8N_PYTHON_POOL_MAX_WORKERS, default=8"`
	MaxIdleTime    Millis `env:"N8N_PYTHON_POOL_MAX_IDLE_TIME, default=300000"`
	MaxExecutions  Int    `env:"N8N_PYTHON_POOL_MAX_EXECUTIONS, default=100"`
	StartupTimeout Millis `env:"N8N_PYTHON_POOL_STARTUP_TIMEOUT, default=30000"`
	Zygotes        Int    `env:"N8N_PYTHON_POOL_ZYGOTES, default=0"` // 0: one per four cores, at most 8
	Preload        List   `env:"N8N_PYTHON_PRELOAD"`
	// ImmortalObjects: zygotes on Python 3.12 and 3.13 mark their objects
	// immortal, so that task processes do not write to their pages.
	ImmortalObjects Bool `env:"N8N_PYTHON_POOL_IMMORTAL_OBJECTS, default=true"`
	// InheritCodeMappings: task processes inherit their zygote's mappings
	// of the interpreter's code instead of faulting each page in.
	InheritCodeMappings Bool `env:"N8N_PYTHON_POOL_INHERIT_CODE_MAPPINGS, default=true"`

	// Who tasks run as; -1 leaves the choice to pyrunner (taskuser.Decide).
	TaskUID Int `env:"N8N_PYTHON_TASK_UID, default=-1"`
	TaskGID Int `env:"N8N_PYTHON_TASK_GID, default=-1"`
	// TaskUIDCount: how many uids from TaskUID tasks use, one per live task
	// process; 0 means 1024 with the default range, 1 with an explicit uid.
	TaskUIDCount Int `env:"N8N_PYTHON_TASK_UID_COUNT, default=0"`
}

// N8N_PYTHON_ISOLATION's values.
const (
	IsolationIsolated = "isolated" // a fresh forked process per task (default)
	IsolationReuse    = "reuse"    // long-lived workers, N8N_PYTHON_POOL_MAX_EXECUTIONS tasks each
	IsolationWorkflow = "workflow" // reuse, each worker serving one workflow's tasks only
	IsolationSpawn    = "spawn"    // a new interpreter per task: the benchmarks' baseline
)

// Validate checks the section, each problem naming its variable.
func (p *Pool) Validate() []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if p.TaskUID < -1 || p.TaskGID < -1 {
		add("N8N_PYTHON_TASK_UID and N8N_PYTHON_TASK_GID must be -1 (default) or a user/group id")
	}
	if p.TaskUIDCount < 0 || p.TaskUIDCount > 65536 {
		add("N8N_PYTHON_TASK_UID_COUNT must be between 0 (default) and 65536, got %d", p.TaskUIDCount)
	}
	switch p.Isolation {
	case IsolationIsolated, IsolationReuse, IsolationWorkflow, IsolationSpawn:
	default:
		add("N8N_PYTHON_ISOLATION must be isolated, reuse, workflow or spawn, got '%s'", p.Isolation)
	}
	if p.MaxWorkers < 1 {
		add("N8N_PYTHON_POOL_MAX_WORKERS must be at least 1, got %d", p.MaxWorkers)
	}
	if p.MinWorkers < 0 || p.MinWorkers > p.MaxWorkers {
		add("N8N_PYTHON_POOL_MIN_WORKERS must be between 0 and N8N_PYTHON_POOL_MAX_WORKERS (%d), got %d", p.MaxWorkers, p.MinWorkers)
	}
	if p.Zygotes < 0 || p.Zygotes > 64 {
		add("N8N_PYTHON_POOL_ZYGOTES must be between 0 (one per four cores) and 64, got %d", p.Zygotes)
	}
	for name, v := range map[string]int{
		"N8N_PYTHON_POOL_MAX_IDLE_TIME": int(p.MaxIdleTime), "N8N_PYTHON_POOL_MAX_EXECUTIONS": int(p.MaxExecutions),
		"N8N_PYTHON_POOL_STARTUP_TIMEOUT": int(p.StartupTimeout),
	} {
		if v < 1 {
			add("%s must be positive, got %d", name, v)
		}
	}
	return errs
}
