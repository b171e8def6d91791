package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/sethvargo/go-envconfig"
)

// maxPipeMessage is n8n's runner's PIPE_MSG_MAX_SIZE; N8N_RUNNERS_MAX_PAYLOAD
// may not exceed it (docs/errors.md §8).
const maxPipeMessage = 4294967295

// Config is every setting pyrunner reads. Each variable may also be given
// as <NAME>_FILE (the file's trimmed content); the direct variable wins.
type Config struct {
	// n8n's runner's variables, same names and defaults (docs/protocol.md §10.2).
	GrantToken              string  `env:"N8N_RUNNERS_GRANT_TOKEN"`
	TaskBrokerURI           string  `env:"N8N_RUNNERS_TASK_BROKER_URI, default=http://127.0.0.1:5679"`
	MaxConcurrency          envInt  `env:"N8N_RUNNERS_MAX_CONCURRENCY, default=5"`
	MaxPayload              envInt  `env:"N8N_RUNNERS_MAX_PAYLOAD, default=1073741824"`
	TaskTimeout             envInt  `env:"N8N_RUNNERS_TASK_TIMEOUT, default=60"`
	AutoShutdownTimeout     envInt  `env:"N8N_RUNNERS_AUTO_SHUTDOWN_TIMEOUT, default=0"`
	GracefulShutdownTimeout envInt  `env:"N8N_RUNNERS_GRACEFUL_SHUTDOWN_TIMEOUT, default=10"`
	StdlibAllow             envList `env:"N8N_RUNNERS_STDLIB_ALLOW"`
	ExternalAllow           envList `env:"N8N_RUNNERS_EXTERNAL_ALLOW"`
	// Default: n8n's 22 names (docs/sandbox.md §4.3).
	BuiltinsDeny           envList `env:"N8N_RUNNERS_BUILTINS_DENY, default=eval,exec,compile,open,input,breakpoint,getattr,object,type,vars,setattr,delattr,hasattr,dir,memoryview,__build_class__,globals,locals,license,help,credits,copyright"`
	BlockEnvAccess         envBool `env:"N8N_BLOCK_RUNNER_ENV_ACCESS, default=true"`
	AllowTransitiveImports envBool `env:"N8N_RUNNERS_ALLOW_TRANSITIVE_IMPORTS, default=false"`
	HealthEnabled          envBool `env:"N8N_RUNNERS_HEALTH_CHECK_SERVER_ENABLED, default=false"`
	HealthHost             string  `env:"N8N_RUNNERS_HEALTH_CHECK_SERVER_HOST, default=127.0.0.1"`
	HealthPort             envInt  `env:"N8N_RUNNERS_HEALTH_CHECK_SERVER_PORT, default=5681"`
	LogLevel               string  `env:"N8N_RUNNERS_LAUNCHER_LOG_LEVEL, default=INFO"`
	NoColor                string  `env:"NO_COLOR"`
	SentryDSN              string  `env:"N8N_SENTRY_DSN"`

	// pyrunner's own.
	AuthToken string `env:"N8N_RUNNERS_AUTH_TOKEN"`
	// Interpreter: empty lets pyrunner choose (envcache.Choose).
	Interpreter string `env:"N8N_PYTHON_INTERPRETER"`
	CacheDir    string `env:"N8N_PYTHON_CACHE_DIR"`
	TaskUID     envInt `env:"N8N_PYTHON_TASK_UID, default=-1"`
	TaskGID     envInt `env:"N8N_PYTHON_TASK_GID, default=-1"`
	// TaskUIDCount: how many uids from TaskUID tasks use, one per live task
	// process; 0 means 1024 with the default range, 1 with an explicit uid.
	TaskUIDCount envInt `env:"N8N_PYTHON_TASK_UID_COUNT, default=0"`

	// The warm pool (milliseconds, as in pyrunner's founding design).
	Isolation          string  `env:"N8N_PYTHON_ISOLATION, default=isolated"`
	PoolMinWorkers     envInt  `env:"N8N_PYTHON_POOL_MIN_WORKERS, default=2"`
	PoolMaxWorkers     envInt  `env:"N8N_PYTHON_POOL_MAX_WORKERS, default=8"`
	PoolMaxIdleTime    envInt  `env:"N8N_PYTHON_POOL_MAX_IDLE_TIME, default=300000"`
	PoolMaxExecutions  envInt  `env:"N8N_PYTHON_POOL_MAX_EXECUTIONS, default=100"`
	PoolStartupTimeout envInt  `env:"N8N_PYTHON_POOL_STARTUP_TIMEOUT, default=30000"`
	PoolZygotes        envInt  `env:"N8N_PYTHON_POOL_ZYGOTES, default=0"` // 0: one per four cores, at most 8
	Preload            envList `env:"N8N_PYTHON_PRELOAD"`

	// Per-task limits.
	MaxMemoryMB      envInt  `env:"N8N_PYTHON_MAX_MEMORY_MB, default=1024"`
	MaxExecutionTime envInt  `env:"N8N_PYTHON_MAX_EXECUTION_TIME, default=0"` // ms; wins over N8N_RUNNERS_TASK_TIMEOUT
	MaxCPUTime       envInt  `env:"N8N_PYTHON_MAX_CPU_TIME, default=0"`       // s; 0: the task timeout + 1 s
	MaxProcesses     envInt  `env:"N8N_PYTHON_MAX_PROCESSES, default=32"`
	MaxOutputKB      envInt  `env:"N8N_PYTHON_MAX_OUTPUT_KB, default=1024"`
	MaxResultMB      envInt  `env:"N8N_PYTHON_MAX_RESULT_MB, default=128"`
	NetworkAccess    envBool `env:"N8N_PYTHON_NETWORK_ACCESS, default=true"`
	ReadablePaths    envList `env:"N8N_PYTHON_READABLE_PATHS"`

	// unreadable names the variables whose <NAME>_FILE could not be read:
	// that is their problem, reported once, not also a missing value.
	unreadable map[string]bool
}

// N8N_PYTHON_ISOLATION's values.
const (
	isolationIsolated = "isolated" // a fresh forked process per task (default)
	isolationReuse    = "reuse"    // long-lived workers, N8N_PYTHON_POOL_MAX_EXECUTIONS tasks each
	isolationSpawn    = "spawn"    // a new interpreter per task: the benchmarks' baseline
)

func ms(v envInt) time.Duration { return time.Duration(v) * time.Millisecond }

// defaultTaskUID is the first of the uids a root pyrunner gives its tasks,
// one per live task process: a range no distribution or container runtime
// hands out, so no other process shares them.
const defaultTaskUID, defaultTaskUIDCount = 1900000000, 1024

// taskTimeout is N8N_PYTHON_MAX_EXECUTION_TIME (ms) when set, else
// N8N_RUNNERS_TASK_TIMEOUT (s): the pyrunner setting is the more specific,
// and n8n's launcher always passes its own N8N_RUNNERS_TASK_TIMEOUT.
func (c *Config) taskTimeout() time.Duration {
	if c.MaxExecutionTime > 0 {
		return time.Duration(c.MaxExecutionTime) * time.Millisecond
	}
	return time.Duration(c.TaskTimeout) * time.Second
}

// cpuSeconds is N8N_PYTHON_MAX_CPU_TIME, or the task timeout rounded up
// plus one second: a single-threaded task then always meets the wall-clock
// timeout first, and the CPU limit stops code that burns several cores.
func (c *Config) cpuSeconds() int {
	if c.MaxCPUTime > 0 {
		return int(c.MaxCPUTime)
	}
	return int((c.taskTimeout()+time.Second-1)/time.Second) + 1
}

// Durations in the units n8n's variables use (seconds).
func (c *Config) autoShutdown() time.Duration {
	return time.Duration(c.AutoShutdownTimeout) * time.Second
}
func (c *Config) gracefulTimeout() time.Duration {
	return time.Duration(c.GracefulShutdownTimeout) * time.Second
}

// taskIDs is who tasks run as. Not root: pyrunner's own user (-1), unless
// N8N_PYTHON_TASK_UID says otherwise. Root: a uid of its own for every live
// task process, count of them from N8N_PYTHON_TASK_UID on; by default a
// block of 1024 from 1900000000 that no other pyrunner on the machine
// holds (see claimUIDBlock; the returned file holds the claim). An
// explicit uid alone (count 1) is shared by all tasks.
func (c *Config) taskIDs() (uid, gid, count int, claim *os.File, err error) {
	uid, gid, count = int(c.TaskUID), int(c.TaskGID), int(c.TaskUIDCount)
	if os.Geteuid() == 0 && uid < 0 {
		if count == 0 {
			count = defaultTaskUIDCount
		}
		uid, claim, err = claimUIDBlock(defaultTaskUID, count)
		if err != nil {
			return 0, 0, 0, nil, err
		}
	}
	if count == 0 {
		count = 1
	}
	if uid >= 0 && gid < 0 {
		gid = uid
	}
	return uid, gid, count, claim, nil
}

// LoadConfig reads the configuration through lookup and reports every
// problem at once, each naming its variable.
func LoadConfig(ctx context.Context, lookup envconfig.Lookuper) (*Config, error) {
	var c Config
	problems, unreadable, err := readSection(ctx, lookup, &c)
	if err != nil {
		return nil, errors.Join(append(problems, err)...)
	}
	c.unreadable = unreadable
	problems = append(problems, c.Validate()...)
	if len(problems) > 0 {
		return &c, errors.Join(problems...)
	}
	return &c, nil
}

// readSection fills section from lookup and returns what could not be
// read: values that do not parse (each left at its default) and _FILEs
// that could not be read, whose variables unreadable names. err is a
// problem that stops the reading.
func readSection[S any](ctx context.Context, lookup envconfig.Lookuper, section *S) (problems []error, unreadable map[string]bool, err error) {
	skip := map[string]bool{}
	for {
		files := &fileLookuper{env: lookup}
		var s S
		err := envconfig.ProcessWith(ctx, &envconfig.Config{Target: &s, Lookuper: skipping(files, skip)})
		*section = s
		if err == nil {
			return append(problems, files.errs...), files.failed, nil
		}
		// go-envconfig stops at the first bad value ("Field: reason"):
		// note it, set that variable aside, and go on to find the rest.
		field, reason, _ := strings.Cut(err.Error(), ": ")
		name := envName(reflect.TypeFor[S](), field)
		if name == "" || skip[name] {
			return problems, files.failed, err
		}
		skip[name] = true
		problems = append(problems, fmt.Errorf("Environment variable %s %s", name, reason))
	}
}

// Validate checks values against n8n's runner's rules, with its texts
// (docs/errors.md §8), plus pyrunner's own.
func (c *Config) Validate() []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.GrantToken == "" && c.AuthToken == "" && !c.unreadable["N8N_RUNNERS_GRANT_TOKEN"] && !c.unreadable["N8N_RUNNERS_AUTH_TOKEN"] {
		add("Environment variable N8N_RUNNERS_GRANT_TOKEN is required (or N8N_RUNNERS_AUTH_TOKEN, to let pyrunner fetch its own grants)")
	}
	if u, err := url.Parse(c.TaskBrokerURI); err != nil || u.Host == "" || !slices.Contains([]string{"http", "https", "ws", "wss"}, u.Scheme) {
		add("N8N_RUNNERS_TASK_BROKER_URI must be an http://, https://, ws:// or wss:// URL with a host, got '%s'", c.TaskBrokerURI)
	}
	if c.MaxConcurrency < 1 {
		add("N8N_RUNNERS_MAX_CONCURRENCY must be at least 1, got %d", c.MaxConcurrency)
	}
	if c.MaxPayload < 1 {
		add("N8N_RUNNERS_MAX_PAYLOAD must be positive, got %d", c.MaxPayload)
	}
	if int64(c.MaxPayload) > maxPipeMessage {
		add("Max payload size of %d bytes exceeds pipe message limit of %d bytes. Reduce N8N_RUNNERS_MAX_PAYLOAD.", c.MaxPayload, int64(maxPipeMessage))
	}
	if c.TaskTimeout <= 0 {
		add("Task timeout must be positive, got %d (N8N_RUNNERS_TASK_TIMEOUT)", c.TaskTimeout)
	}
	if c.AutoShutdownTimeout < 0 {
		add("Auto shutdown timeout must be non-negative, got %d (N8N_RUNNERS_AUTO_SHUTDOWN_TIMEOUT)", c.AutoShutdownTimeout)
	}
	if c.GracefulShutdownTimeout <= 0 {
		add("Graceful shutdown timeout must be positive, got %d (N8N_RUNNERS_GRACEFUL_SHUTDOWN_TIMEOUT)", c.GracefulShutdownTimeout)
	}
	for name, list := range map[string]envList{"N8N_RUNNERS_STDLIB_ALLOW": c.StdlibAllow, "N8N_RUNNERS_EXTERNAL_ALLOW": c.ExternalAllow} {
		if slices.Contains(list, "*") && len(list) > 1 {
			add("Wildcard '*' in %s must be used alone, not with other modules. Got: %s", name, pythonList(list))
		}
	}
	if c.HealthPort < 0 || c.HealthPort > 65535 {
		add("N8N_RUNNERS_HEALTH_CHECK_SERVER_PORT must be between 0 and 65535, got %d", c.HealthPort)
	}
	if _, ok := parseLevel(c.LogLevel); !ok {
		add("N8N_RUNNERS_LAUNCHER_LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got '%s'", c.LogLevel)
	}
	if c.TaskUID < -1 || c.TaskGID < -1 {
		add("N8N_PYTHON_TASK_UID and N8N_PYTHON_TASK_GID must be -1 (default) or a user/group id")
	}
	if c.TaskUIDCount < 0 || c.TaskUIDCount > 65536 {
		add("N8N_PYTHON_TASK_UID_COUNT must be between 0 (default) and 65536, got %d", c.TaskUIDCount)
	}
	for name, v := range map[string]envInt{
		"N8N_PYTHON_MAX_MEMORY_MB": c.MaxMemoryMB, "N8N_PYTHON_MAX_EXECUTION_TIME": c.MaxExecutionTime,
		"N8N_PYTHON_MAX_CPU_TIME": c.MaxCPUTime, "N8N_PYTHON_MAX_PROCESSES": c.MaxProcesses,
		"N8N_PYTHON_MAX_OUTPUT_KB": c.MaxOutputKB, "N8N_PYTHON_MAX_RESULT_MB": c.MaxResultMB,
	} {
		if v < 0 {
			add("%s must not be negative, got %d", name, v)
		}
	}
	switch c.Isolation {
	case isolationIsolated, isolationReuse, isolationSpawn:
	default:
		add("N8N_PYTHON_ISOLATION must be isolated, reuse or spawn, got '%s'", c.Isolation)
	}
	if c.PoolMaxWorkers < 1 {
		add("N8N_PYTHON_POOL_MAX_WORKERS must be at least 1, got %d", c.PoolMaxWorkers)
	}
	if c.PoolMinWorkers < 0 || c.PoolMinWorkers > c.PoolMaxWorkers {
		add("N8N_PYTHON_POOL_MIN_WORKERS must be between 0 and N8N_PYTHON_POOL_MAX_WORKERS (%d), got %d", c.PoolMaxWorkers, c.PoolMinWorkers)
	}
	if c.PoolZygotes < 0 || c.PoolZygotes > 64 {
		add("N8N_PYTHON_POOL_ZYGOTES must be between 0 (one per four cores) and 64, got %d", c.PoolZygotes)
	}
	for name, v := range map[string]envInt{
		"N8N_PYTHON_POOL_MAX_IDLE_TIME": c.PoolMaxIdleTime, "N8N_PYTHON_POOL_MAX_EXECUTIONS": c.PoolMaxExecutions,
		"N8N_PYTHON_POOL_STARTUP_TIMEOUT": c.PoolStartupTimeout,
	} {
		if v < 1 {
			add("%s must be positive, got %d", name, v)
		}
	}
	if c.MaxOutputKB < 1 {
		add("N8N_PYTHON_MAX_OUTPUT_KB must be at least 1, got %d", c.MaxOutputKB)
	}
	if c.MaxMemoryMB > 0 && c.MaxMemoryMB < 64 {
		add("N8N_PYTHON_MAX_MEMORY_MB must be at least 64 (Python itself needs that much), got %d", c.MaxMemoryMB)
	}
	return errs
}

// envName maps a section's field name to its variable.
func envName(section reflect.Type, field string) string {
	f, ok := section.FieldByName(field)
	if !ok {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
	return name
}

// fileLookuper resolves NAME from the environment, else from the file
// named by NAME_FILE (trimmed), as n8n's runner and launcher do.
type fileLookuper struct {
	env    envconfig.Lookuper
	errs   []error
	failed map[string]bool // keys whose file could not be read
}

func (l *fileLookuper) Lookup(key string) (string, bool) {
	if v, ok := l.env.Lookup(key); ok {
		return v, true
	}
	path, ok := l.env.Lookup(key + "_FILE")
	if !ok || path == "" {
		return "", false
	}
	b, err := os.ReadFile(path)
	if err != nil {
		l.errs = append(l.errs, fmt.Errorf("Failed to read %s_FILE from file: %w", key, err))
		if l.failed == nil {
			l.failed = map[string]bool{}
		}
		l.failed[key] = true
		return "", false
	}
	return strings.TrimSpace(string(b)), true
}

// skipping hides the variables in skip, so that their defaults apply while
// the rest of the configuration is checked.
func skipping(l envconfig.Lookuper, skip map[string]bool) envconfig.Lookuper {
	return envconfig.LookuperFunc(func(key string) (string, bool) {
		if skip[key] {
			return "", false
		}
		return l.Lookup(key)
	})
}
