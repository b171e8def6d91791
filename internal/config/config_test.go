package config

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"
)

func loadEnv(t *testing.T, env map[string]string) (*Config, error) {
	t.Helper()
	return Load(context.Background(), envconfig.MapLookuper(env))
}

func TestConfigDefaultsAreN8NsRunners(t *testing.T) {
	c, err := loadEnv(t, map[string]string{"N8N_RUNNERS_GRANT_TOKEN": "g"})
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Broker: Broker{
			GrantToken: "g", URI: "http://127.0.0.1:5679", MaxConcurrency: 5, MaxPayload: 1073741824,
			AutoShutdownTimeout: 0, GracefulShutdownTimeout: 10, HealthHost: "127.0.0.1", HealthPort: 5681,
		},
		Log: Log{LevelName: "INFO"},
		Pool: Pool{
			Isolation: "isolated", MinWorkers: 2, MaxWorkers: 8, MaxIdleTime: 300000,
			MaxExecutions: 100, StartupTimeout: 30000, ImmortalObjects: true, InheritCodeMappings: true,
			TaskUID: -1, TaskGID: -1, // Interpreter unset: pyrunner chooses
		},
		Limits: Limits{
			TaskTimeout:    60,
			BuiltinsDeny:   parseList("eval,exec,compile,open,input,breakpoint,getattr,object,type,vars,setattr,delattr,hasattr,dir,memoryview,__build_class__,globals,locals,license,help,credits,copyright"),
			BlockEnvAccess: true,
			MaxMemoryMB:    1024, MaxProcesses: 32, MaxOutputKB: 1024, MaxResultMB: 128, NetworkAccess: true,
		},
		Packages: Packages{
			BuildConcurrency: 2, MaxEnvironments: 20, MaxDiskMB: 10240, EnvTTL: 3600000, CleanupInterval: 60000,
			MaxCodeSize: 1000, CodeTTL: 1800000, MaxMemory: 1073741824,
		},
		Metrics: Metrics{SampleInterval: 5000, HighLatency: 5000, MemoryLeak: 500, HighErrorRate: 0.1, CacheMiss: 0.3,
			MinAvailableMemory: 256, MinFreeDisk: 512},
	}
	if len(c.Limits.BuiltinsDeny) != 22 {
		t.Fatalf("builtins deny has %d names, want n8n's 22", len(c.Limits.BuiltinsDeny))
	}
	if got, w := strings.Join(c.Limits.BuiltinsDeny, ","), strings.Join(want.Limits.BuiltinsDeny, ","); got != w {
		t.Fatalf("builtins deny %s", got)
	}
	// Lists compare by content: unset ones are nil, set ones empty.
	c.Limits.BuiltinsDeny, want.Limits.BuiltinsDeny = nil, nil
	c.Limits.StdlibAllow, c.Limits.ExternalAllow, c.Limits.ReadablePaths, c.Pool.Preload = nil, nil, nil, nil
	c.Packages.Allow, c.Packages.defaults = nil, nil
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
			func(c *Config) bool { return bool(c.Broker.HealthEnabled) }},
		{"anything else is false, not an error",
			map[string]string{"N8N_BLOCK_RUNNER_ENV_ACCESS": "yes"},
			func(c *Config) bool { return !bool(c.Limits.BlockEnvAccess) }},
		{"integers may carry spaces",
			map[string]string{"N8N_RUNNERS_MAX_CONCURRENCY": " 7 "},
			func(c *Config) bool { return c.Broker.MaxConcurrency == 7 }},
		{"lists are trimmed, deduplicated, empties dropped, case kept",
			map[string]string{"N8N_RUNNERS_STDLIB_ALLOW": " json, re ,,json, Re"},
			func(c *Config) bool { return slices.Equal(c.Limits.StdlibAllow, []string{"Re", "json", "re"}) }},
		{"an empty deny list denies nothing",
			map[string]string{"N8N_RUNNERS_BUILTINS_DENY": ""},
			func(c *Config) bool { return len(c.Limits.BuiltinsDeny) == 0 }},
		{"a lone wildcard is fine",
			map[string]string{"N8N_RUNNERS_EXTERNAL_ALLOW": "*"},
			func(c *Config) bool { return slices.Equal(c.Limits.ExternalAllow, []string{"*"}) }},
		{"the auth token alone is enough",
			map[string]string{"N8N_RUNNERS_GRANT_TOKEN": "", "N8N_RUNNERS_AUTH_TOKEN": "a"},
			func(c *Config) bool { return c.Broker.AuthToken == "a" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"N8N_RUNNERS_GRANT_TOKEN": "g"}
			for k, v := range tc.env {
				env[k] = v
			}
			c, err := loadEnv(t, env)
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
	c, err := loadEnv(t, map[string]string{"N8N_RUNNERS_AUTH_TOKEN_FILE": token, "N8N_RUNNERS_TASK_TIMEOUT_FILE": token + "-missing"})
	if err == nil || !strings.Contains(err.Error(), "Failed to read N8N_RUNNERS_TASK_TIMEOUT_FILE from file") {
		t.Fatalf("want the unreadable file reported, got %v", err)
	}
	if c.Broker.AuthToken != "secret-from-file" {
		t.Fatalf("auth token %q", c.Broker.AuthToken)
	}
	// The direct variable wins over its _FILE.
	c, err = loadEnv(t, map[string]string{"N8N_RUNNERS_AUTH_TOKEN": "direct", "N8N_RUNNERS_AUTH_TOKEN_FILE": token})
	if err != nil || c.Broker.AuthToken != "direct" {
		t.Fatalf("got %q, %v", c.Broker.AuthToken, err)
	}
}

// TestUnreadableTokenFileIsTheOnlyProblem: a token file that cannot be
// read is reported as that, not also as a missing token.
func TestUnreadableTokenFileIsTheOnlyProblem(t *testing.T) {
	for _, name := range []string{"N8N_RUNNERS_AUTH_TOKEN", "N8N_RUNNERS_GRANT_TOKEN"} {
		_, err := loadEnv(t, map[string]string{name + "_FILE": "/nope"})
		if err == nil || !strings.Contains(err.Error(), "Failed to read "+name+"_FILE from file: open /nope") {
			t.Fatalf("%s_FILE=/nope: %v", name, err)
		}
		if strings.Contains(err.Error(), "is required") {
			t.Fatalf("%s_FILE=/nope also reports a missing token:\n%v", name, err)
		}
	}
}

func TestConfigReportsEveryProblem(t *testing.T) {
	_, err := loadEnv(t, map[string]string{
		"N8N_RUNNERS_MAX_CONCURRENCY":           "x",
		"N8N_RUNNERS_TASK_TIMEOUT":              "-1",
		"N8N_RUNNERS_AUTO_SHUTDOWN_TIMEOUT":     "-2",
		"N8N_RUNNERS_GRACEFUL_SHUTDOWN_TIMEOUT": "1.5",
		"N8N_RUNNERS_HEALTH_CHECK_SERVER_PORT":  "70000",
		"N8N_RUNNERS_EXTERNAL_ALLOW":            "pandas,*",
		"N8N_RUNNERS_TASK_BROKER_URI":           "ftp://x",
		"N8N_RUNNERS_LAUNCHER_LOG_LEVEL":        "chatty",
	})
	wantProblems(t, err,
		"Environment variable N8N_RUNNERS_GRANT_TOKEN is required",
		"Environment variable N8N_RUNNERS_MAX_CONCURRENCY must be an integer, got 'x'",
		"Environment variable N8N_RUNNERS_GRACEFUL_SHUTDOWN_TIMEOUT must be an integer, got '1.5'",
		"Task timeout must be positive, got -1 (N8N_RUNNERS_TASK_TIMEOUT)",
		"Auto shutdown timeout must be non-negative, got -2 (N8N_RUNNERS_AUTO_SHUTDOWN_TIMEOUT)",
		"N8N_RUNNERS_HEALTH_CHECK_SERVER_PORT must be between 0 and 65535, got 70000",
		"Wildcard '*' in N8N_RUNNERS_EXTERNAL_ALLOW must be used alone, not with other modules. Got: ['*', 'pandas']",
		"N8N_RUNNERS_TASK_BROKER_URI must be an http://, https://, ws:// or wss:// URL with a host, got 'ftp://x'",
		"N8N_RUNNERS_LAUNCHER_LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got 'chatty'",
	)
}

// wantProblems: err reports each of the problems, among others.
func wantProblems(t *testing.T, err error, problems ...string) {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range problems {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
}

// TestLoadWithoutBrokerNeedsNoToken: `pyrunner exec` talks to no broker,
// so the broker's settings cannot stop it, and everything else still can.
func TestLoadWithoutBrokerNeedsNoToken(t *testing.T) {
	c, err := LoadWithoutBroker(context.Background(), envconfig.MapLookuper(map[string]string{}))
	if err != nil {
		t.Fatalf("no token, no broker: %v", err)
	}
	if c.Limits.Timeout() != time.Minute || c.Pool.Isolation != IsolationIsolated {
		t.Fatalf("defaults not read: %+v", *c)
	}
	_, err = LoadWithoutBroker(context.Background(), envconfig.MapLookuper(map[string]string{
		"N8N_RUNNERS_MAX_CONCURRENCY": "x",
		"N8N_RUNNERS_TASK_BROKER_URI": "ftp://x",
		"N8N_RUNNERS_TASK_TIMEOUT":    "-1",
		"N8N_PYTHON_ISOLATION":        "shared",
		"N8N_PYTHON_MAX_OUTPUT_KB":    "lots",
	}))
	wantProblems(t, err,
		"Task timeout must be positive, got -1 (N8N_RUNNERS_TASK_TIMEOUT)",
		"N8N_PYTHON_ISOLATION must be isolated, reuse, workflow or spawn, got 'shared'",
		"Environment variable N8N_PYTHON_MAX_OUTPUT_KB must be an integer, got 'lots'",
	)
	for _, broker := range []string{"N8N_RUNNERS_GRANT_TOKEN", "N8N_RUNNERS_MAX_CONCURRENCY", "N8N_RUNNERS_TASK_BROKER_URI"} {
		if strings.Contains(err.Error(), broker) {
			t.Errorf("a broker setting is reported: %s in\n%v", broker, err)
		}
	}
}

func TestDerivedDurations(t *testing.T) {
	cases := []struct {
		name    string
		env     map[string]string
		timeout time.Duration
		cpu     int
	}{
		{"n8n's task timeout, CPU a second more", map[string]string{}, time.Minute, 61},
		{"pyrunner's execution time wins, CPU rounded up", map[string]string{"N8N_PYTHON_MAX_EXECUTION_TIME": "1500"}, 1500 * time.Millisecond, 3},
		{"an explicit CPU time", map[string]string{"N8N_PYTHON_MAX_CPU_TIME": "7"}, time.Minute, 7},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.env["N8N_RUNNERS_GRANT_TOKEN"] = "g"
			c, err := loadEnv(t, tc.env)
			if err != nil {
				t.Fatal(err)
			}
			if c.Limits.Timeout() != tc.timeout || c.Limits.CPUSeconds() != tc.cpu {
				t.Fatalf("timeout %s, CPU %d s; want %s, %d s", c.Limits.Timeout(), c.Limits.CPUSeconds(), tc.timeout, tc.cpu)
			}
		})
	}
}

// TestREADMEListsEveryVariable: the README's configuration tables have a
// row for each variable pyrunner reads, and for no other.
func TestREADMEListsEveryVariable(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([A-Z][A-Z0-9_]*)` \\|").FindAllStringSubmatch(string(readme), -1) {
		rows[m[1]] = true
	}
	read := map[string]bool{}
	for _, name := range Variables() {
		read[name] = true
		if !rows[name] {
			t.Errorf("README.md has no row for %s", name)
		}
	}
	for name := range rows {
		if !read[name] {
			t.Errorf("README.md has a row for %s, which pyrunner does not read", name)
		}
	}
	if len(read) < 40 {
		t.Errorf("Variables found %d variables, want every section's", len(read))
	}
}

// TestRequirements: N8N_PYTHON_REQUIREMENTS as a list or, through
// N8N_PYTHON_REQUIREMENTS_FILE, a requirements file; an invalid one is a
// problem naming the variable and the line.
func TestRequirements(t *testing.T) {
	file := filepath.Join(t.TempDir(), "requirements.txt")
	if err := os.WriteFile(file, []byte("# for the reports\npandas>=2\npython-dateutil  # dates\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(context.Background(), envconfig.MapLookuper(map[string]string{"N8N_RUNNERS_GRANT_TOKEN": "g", "N8N_PYTHON_REQUIREMENTS_FILE": file}))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Packages.Default(); len(got) != 2 || got[0].Spec != "pandas>=2" || got[1].Name != "python-dateutil" {
		t.Fatalf("from the file: %+v", got)
	}
	_, err = Load(context.Background(), envconfig.MapLookuper(map[string]string{"N8N_RUNNERS_GRANT_TOKEN": "g", "N8N_PYTHON_REQUIREMENTS": "numpy, pandas>=>2"}))
	if err == nil || !strings.Contains(err.Error(), `N8N_PYTHON_REQUIREMENTS: line 1: "pandas>=>2" is not a valid requirement`) {
		t.Fatalf("an invalid requirement: %v", err)
	}
}

func TestMetricsThresholds(t *testing.T) {
	c, err := loadEnv(t, map[string]string{"N8N_RUNNERS_GRANT_TOKEN": "t"})
	if err != nil {
		t.Fatal(err)
	}
	th := c.Metrics.Thresholds(time.Minute)
	if th.HighLatency != 5*time.Second || th.MemoryLeak != 500<<20 || th.MinAvailableMemory != 256<<20 || th.PoolExhaustedAfter != time.Minute {
		t.Fatalf("thresholds %+v", th)
	}
}

// TestMetricsReportsEveryProblem: every bad value is named at once.
func TestMetricsReportsEveryProblem(t *testing.T) {
	_, err := loadEnv(t, map[string]string{
		"N8N_RUNNERS_GRANT_TOKEN":                      "t",
		"N8N_PYTHON_METRICS_SAMPLE_INTERVAL":           "50",
		"N8N_PYTHON_METRICS_HIGH_LATENCY_THRESHOLD":    "soon",
		"N8N_PYTHON_METRICS_MEMORY_LEAK_THRESHOLD":     "-1",
		"N8N_PYTHON_METRICS_HIGH_ERROR_RATE_THRESHOLD": "1.5",
		"N8N_PYTHON_METRICS_CACHE_MISS_THRESHOLD":      "lots",
	})
	if err == nil {
		t.Fatal("no error")
	}
	got := err.Error()
	for _, want := range []string{
		"N8N_PYTHON_METRICS_SAMPLE_INTERVAL must be 0 (off) or at least 100 ms, got 50",
		"Environment variable N8N_PYTHON_METRICS_HIGH_LATENCY_THRESHOLD must be an integer, got 'soon'",
		"N8N_PYTHON_METRICS_MEMORY_LEAK_THRESHOLD must not be negative (0 turns the alert off), got -1",
		"N8N_PYTHON_METRICS_HIGH_ERROR_RATE_THRESHOLD must be between 0 (off) and 1, got 1.5",
		"Environment variable N8N_PYTHON_METRICS_CACHE_MISS_THRESHOLD must be a number, got 'lots'",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	if n := strings.Count(got, "\n") + 1; n != 5 {
		t.Errorf("%d problems, want 5:\n%s", n, got)
	}
}
