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
// may not exceed it (reference §13.3).
const maxPipeMessage = 4294967295

// nobodyID is the uid and gid tasks run as when pyrunner runs as root.
const nobodyID = 65534

// Config is every setting pyrunner reads. Each variable may also be given
// as <NAME>_FILE (the file's trimmed content); the direct variable wins.
type Config struct {
	// n8n's runner's variables, same names and defaults (reference §13.2).
	GrantToken              string  `env:"N8N_RUNNERS_GRANT_TOKEN"`
	TaskBrokerURI           string  `env:"N8N_RUNNERS_TASK_BROKER_URI, default=http://127.0.0.1:5679"`
	MaxConcurrency          envInt  `env:"N8N_RUNNERS_MAX_CONCURRENCY, default=5"`
	MaxPayload              envInt  `env:"N8N_RUNNERS_MAX_PAYLOAD, default=1073741824"`
	TaskTimeout             envInt  `env:"N8N_RUNNERS_TASK_TIMEOUT, default=60"`
	AutoShutdownTimeout     envInt  `env:"N8N_RUNNERS_AUTO_SHUTDOWN_TIMEOUT, default=0"`
	GracefulShutdownTimeout envInt  `env:"N8N_RUNNERS_GRACEFUL_SHUTDOWN_TIMEOUT, default=10"`
	StdlibAllow             envList `env:"N8N_RUNNERS_STDLIB_ALLOW"`
	ExternalAllow           envList `env:"N8N_RUNNERS_EXTERNAL_ALLOW"`
	// Default: n8n's 22 names (reference §12.4).
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
	AuthToken   string `env:"N8N_RUNNERS_AUTH_TOKEN"`
	Interpreter string `env:"N8N_PYTHON_INTERPRETER, default=python3"`
	CacheDir    string `env:"N8N_PYTHON_CACHE_DIR"`
	TaskUID     envInt `env:"N8N_PYTHON_TASK_UID, default=-1"`
	TaskGID     envInt `env:"N8N_PYTHON_TASK_GID, default=-1"`
}

// Durations in the units n8n's variables use (seconds).
func (c *Config) taskTimeout() time.Duration { return time.Duration(c.TaskTimeout) * time.Second }
func (c *Config) autoShutdown() time.Duration {
	return time.Duration(c.AutoShutdownTimeout) * time.Second
}
func (c *Config) gracefulTimeout() time.Duration {
	return time.Duration(c.GracefulShutdownTimeout) * time.Second
}

// taskIDs is the uid and gid tasks run as: N8N_PYTHON_TASK_UID/GID when
// set; when pyrunner runs as root, nobody (65534); otherwise pyrunner's
// own (-1: no change).
func (c *Config) taskIDs() (uid, gid int) {
	uid, gid = int(c.TaskUID), int(c.TaskGID)
	if os.Geteuid() == 0 {
		if uid < 0 {
			uid = nobodyID
		}
		if gid < 0 {
			gid = nobodyID
		}
	}
	if uid >= 0 && gid < 0 {
		gid = uid
	}
	return uid, gid
}

// LoadConfig reads the configuration through lookup and reports every
// problem at once, each naming its variable.
func LoadConfig(ctx context.Context, lookup envconfig.Lookuper) (*Config, error) {
	skip := map[string]bool{}
	var problems []error
	for {
		files := &fileLookuper{env: lookup}
		var c Config
		err := envconfig.ProcessWith(ctx, &envconfig.Config{Target: &c, Lookuper: skipping(files, skip)})
		if err == nil {
			problems = append(problems, files.errs...)
			problems = append(problems, c.Validate()...)
			if len(problems) > 0 {
				return &c, errors.Join(problems...)
			}
			return &c, nil
		}
		// go-envconfig stops at the first bad value ("Field: reason"):
		// note it, set that variable aside, and go on to find the rest.
		field, reason, _ := strings.Cut(err.Error(), ": ")
		name := envName(field)
		if name == "" || skip[name] {
			return nil, errors.Join(append(problems, err)...)
		}
		skip[name] = true
		problems = append(problems, fmt.Errorf("Environment variable %s %s", name, reason))
	}
}

// Validate checks values against n8n's runner's rules, with its texts
// (reference §13.3), plus pyrunner's own.
func (c *Config) Validate() []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.GrantToken == "" && c.AuthToken == "" {
		add("Environment variable N8N_RUNNERS_GRANT_TOKEN is required (or N8N_RUNNERS_AUTH_TOKEN, to let pyrunner fetch its own grants)")
	}
	if u, err := url.Parse(c.TaskBrokerURI); err != nil || u.Host == "" || !slices.Contains([]string{"http", "https", "ws", "wss"}, u.Scheme) {
		add("N8N_RUNNERS_TASK_BROKER_URI must be an http(s):// URL with a host, got '%s'", c.TaskBrokerURI)
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
		add("Task timeout must be positive, got %d", c.TaskTimeout)
	}
	if c.AutoShutdownTimeout < 0 {
		add("Auto shutdown timeout must be non-negative, got %d", c.AutoShutdownTimeout)
	}
	if c.GracefulShutdownTimeout <= 0 {
		add("Graceful shutdown timeout must be positive, got %d", c.GracefulShutdownTimeout)
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
	if c.Interpreter == "" {
		add("N8N_PYTHON_INTERPRETER must not be empty")
	}
	if c.TaskUID < -1 || c.TaskGID < -1 {
		add("N8N_PYTHON_TASK_UID and N8N_PYTHON_TASK_GID must be -1 (default) or a user/group id")
	}
	return errs
}

// envName maps a Config field name to its variable.
func envName(field string) string {
	f, ok := reflect.TypeOf(Config{}).FieldByName(field)
	if !ok {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
	return name
}

// fileLookuper resolves NAME from the environment, else from the file
// named by NAME_FILE (trimmed), as n8n's runner and launcher do.
type fileLookuper struct {
	env  envconfig.Lookuper
	errs []error
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
