package main

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/sethvargo/go-envconfig"
)

func load(t *testing.T, env map[string]string) (*Config, error) {
	t.Helper()
	return LoadConfig(context.Background(), envconfig.MapLookuper(env))
}

func TestConfigDefaultsAreN8NsRunners(t *testing.T) {
	c, err := load(t, map[string]string{"N8N_RUNNERS_GRANT_TOKEN": "g"})
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		GrantToken: "g", TaskBrokerURI: "http://127.0.0.1:5679", MaxConcurrency: 5, MaxPayload: 1073741824,
		TaskTimeout: 60, AutoShutdownTimeout: 0, GracefulShutdownTimeout: 10,
		BuiltinsDeny:   parseList("eval,exec,compile,open,input,breakpoint,getattr,object,type,vars,setattr,delattr,hasattr,dir,memoryview,__build_class__,globals,locals,license,help,credits,copyright"),
		BlockEnvAccess: true, HealthHost: "127.0.0.1", HealthPort: 5681, LogLevel: "INFO",
		TaskUID: -1, TaskGID: -1, // Interpreter unset: pyrunner chooses
		MaxMemoryMB: 1024, MaxProcesses: 32, MaxOutputKB: 1024, MaxResultMB: 128, NetworkAccess: true,
		Isolation: "isolated", PoolMinWorkers: 2, PoolMaxWorkers: 8, PoolMaxIdleTime: 300000,
		PoolMaxExecutions: 100, PoolStartupTimeout: 30000,
	}
	if len(c.BuiltinsDeny) != 22 {
		t.Fatalf("builtins deny has %d names, want n8n's 22", len(c.BuiltinsDeny))
	}
	if got, w := strings.Join(c.BuiltinsDeny, ","), strings.Join(want.BuiltinsDeny, ","); got != w {
		t.Fatalf("builtins deny %s", got)
	}
	// Lists compare by content: unset ones are nil, set ones empty.
	c.BuiltinsDeny, want.BuiltinsDeny = nil, nil
	c.StdlibAllow, c.ExternalAllow, c.ReadablePaths, c.Preload = nil, nil, nil, nil
	if !reflect.DeepEqual(*c, want) {
		t.Fatalf("config\n got %+v\nwant %+v", *c, want)
	}
}

func TestConfigParsingRules(t *testing.T) {
	cases := []struct {
		name  string
		env   map[string]string
		check func(*Config) bool
	}{
		{"bool is true only for 'true', any case, trimmed",
			map[string]string{"N8N_RUNNERS_HEALTH_CHECK_SERVER_ENABLED": "  TRUE "},
			func(c *Config) bool { return bool(c.HealthEnabled) }},
		{"anything else is false, not an error",
			map[string]string{"N8N_BLOCK_RUNNER_ENV_ACCESS": "yes"},
			func(c *Config) bool { return !bool(c.BlockEnvAccess) }},
		{"integers may carry spaces",
			map[string]string{"N8N_RUNNERS_MAX_CONCURRENCY": " 7 "},
			func(c *Config) bool { return c.MaxConcurrency == 7 }},
		{"lists are trimmed, deduplicated, empties dropped, case kept",
			map[string]string{"N8N_RUNNERS_STDLIB_ALLOW": " json, re ,,json, Re"},
			func(c *Config) bool { return slices.Equal(c.StdlibAllow, []string{"Re", "json", "re"}) }},
		{"an empty deny list denies nothing",
			map[string]string{"N8N_RUNNERS_BUILTINS_DENY": ""},
			func(c *Config) bool { return len(c.BuiltinsDeny) == 0 }},
		{"a lone wildcard is fine",
			map[string]string{"N8N_RUNNERS_EXTERNAL_ALLOW": "*"},
			func(c *Config) bool { return slices.Equal(c.ExternalAllow, []string{"*"}) }},
		{"the auth token alone is enough",
			map[string]string{"N8N_RUNNERS_GRANT_TOKEN": "", "N8N_RUNNERS_AUTH_TOKEN": "a"},
			func(c *Config) bool { return c.AuthToken == "a" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"N8N_RUNNERS_GRANT_TOKEN": "g"}
			for k, v := range tc.env {
				env[k] = v
			}
			c, err := load(t, env)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c) {
				t.Fatalf("unexpected config %+v", *c)
			}
		})
	}
}

func TestConfigFileVariables(t *testing.T) {
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("  secret-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := load(t, map[string]string{"N8N_RUNNERS_AUTH_TOKEN_FILE": token, "N8N_RUNNERS_TASK_TIMEOUT_FILE": token + "-missing"})
	if err == nil || !strings.Contains(err.Error(), "Failed to read N8N_RUNNERS_TASK_TIMEOUT_FILE from file") {
		t.Fatalf("want the unreadable file reported, got %v", err)
	}
	if c.AuthToken != "secret-from-file" {
		t.Fatalf("auth token %q", c.AuthToken)
	}
	// The direct variable wins over its _FILE.
	c, err = load(t, map[string]string{"N8N_RUNNERS_AUTH_TOKEN": "direct", "N8N_RUNNERS_AUTH_TOKEN_FILE": token})
	if err != nil || c.AuthToken != "direct" {
		t.Fatalf("got %q, %v", c.AuthToken, err)
	}
}

// TestUnreadableTokenFileIsTheOnlyProblem: a token file that cannot be
// read is reported as that, not also as a missing token.
func TestUnreadableTokenFileIsTheOnlyProblem(t *testing.T) {
	for _, name := range []string{"N8N_RUNNERS_AUTH_TOKEN", "N8N_RUNNERS_GRANT_TOKEN"} {
		_, err := load(t, map[string]string{name + "_FILE": "/nope"})
		if err == nil || !strings.Contains(err.Error(), "Failed to read "+name+"_FILE from file: open /nope") {
			t.Fatalf("%s_FILE=/nope: %v", name, err)
		}
		if strings.Contains(err.Error(), "is required") {
			t.Fatalf("%s_FILE=/nope also reports a missing token:\n%v", name, err)
		}
	}
}

func TestConfigReportsEveryProblem(t *testing.T) {
	_, err := load(t, map[string]string{
		"N8N_RUNNERS_MAX_CONCURRENCY":           "x",
		"N8N_RUNNERS_TASK_TIMEOUT":              "-1",
		"N8N_RUNNERS_AUTO_SHUTDOWN_TIMEOUT":     "-2",
		"N8N_RUNNERS_GRACEFUL_SHUTDOWN_TIMEOUT": "1.5",
		"N8N_RUNNERS_HEALTH_CHECK_SERVER_PORT":  "70000",
		"N8N_RUNNERS_EXTERNAL_ALLOW":            "pandas,*",
		"N8N_RUNNERS_TASK_BROKER_URI":           "ftp://x",
		"N8N_RUNNERS_LAUNCHER_LOG_LEVEL":        "chatty",
	})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		"Environment variable N8N_RUNNERS_GRANT_TOKEN is required",
		"Environment variable N8N_RUNNERS_MAX_CONCURRENCY must be an integer, got 'x'",
		"Environment variable N8N_RUNNERS_GRACEFUL_SHUTDOWN_TIMEOUT must be an integer, got '1.5'",
		"Task timeout must be positive, got -1 (N8N_RUNNERS_TASK_TIMEOUT)",
		"Auto shutdown timeout must be non-negative, got -2 (N8N_RUNNERS_AUTO_SHUTDOWN_TIMEOUT)",
		"N8N_RUNNERS_HEALTH_CHECK_SERVER_PORT must be between 0 and 65535, got 70000",
		"Wildcard '*' in N8N_RUNNERS_EXTERNAL_ALLOW must be used alone, not with other modules. Got: ['*', 'pandas']",
		"N8N_RUNNERS_TASK_BROKER_URI must be an http://, https://, ws:// or wss:// URL with a host, got 'ftp://x'",
		"N8N_RUNNERS_LAUNCHER_LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got 'chatty'",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
}

func TestUIDBlocksAreClaimedOnce(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	first, f1, err := claimUIDBlock(defaultTaskUID, 1024)
	if err != nil {
		t.Fatal(err)
	}
	second, f2, err := claimUIDBlock(defaultTaskUID, 1024)
	if err != nil {
		t.Fatal(err)
	}
	if first != defaultTaskUID || second != defaultTaskUID+1024 {
		t.Fatalf("blocks from %d and %d, want %d and %d", first, second, defaultTaskUID, defaultTaskUID+1024)
	}
	f1.Close() // the first instance exits: its block is free again
	third, f3, err := claimUIDBlock(defaultTaskUID, 1024)
	if err != nil || third != defaultTaskUID {
		t.Fatalf("after a release: %d, %v", third, err)
	}
	f2.Close()
	f3.Close()
}
