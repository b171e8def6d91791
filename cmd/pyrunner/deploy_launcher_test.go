package main

import (
	"encoding/json"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"testing"
)

// ---- n8n-task-runners.json ------------------------------------------------------------------

// launcherEntry is one runner of n8n-task-runners.json (docs/launcher.md §2).
type launcherEntry struct {
	RunnerType   string            `json:"runner-type"`
	Command      string            `json:"command"`
	Args         []string          `json:"args"`
	HealthPort   string            `json:"health-check-server-port"`
	AllowedEnv   []string          `json:"allowed-env"`
	EnvOverrides map[string]string `json:"env-overrides"`
}

// launcherSetting is what n8n's launcher gives the python entry (docs/launcher.md §3): the
// allowed-env names (unset here), the protected variables, the legacy pass-through with the
// launcher's defaults, then env-overrides.
func launcherSetting(t *testing.T) pyrunnerSetting {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(deployRoot, "deploy", "n8n-task-runners.json"))
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		TaskRunners []launcherEntry `json:"task-runners"`
	}
	if err := json.Unmarshal(b, &file); err != nil {
		t.Fatalf("n8n-task-runners.json: %v", err)
	}
	i := slices.IndexFunc(file.TaskRunners, func(e launcherEntry) bool { return e.RunnerType == "python" })
	if i < 0 {
		t.Fatal("n8n-task-runners.json has no python entry")
	}
	entry := file.TaskRunners[i]
	if path.Base(entry.Command) != "pyrunner" || !slices.Equal(entry.Args, []string{"run"}) {
		t.Errorf("the python entry runs %s %v, want pyrunner run", entry.Command, entry.Args)
	}
	env := map[string]string{
		"N8N_RUNNERS_TASK_BROKER_URI":             "http://127.0.0.1:5679",
		"N8N_RUNNERS_HEALTH_CHECK_SERVER_ENABLED": "true",
		"N8N_RUNNERS_HEALTH_CHECK_SERVER_PORT":    entry.HealthPort,
		"N8N_RUNNERS_GRANT_TOKEN":                 deployPlaceholderToken,
		"N8N_RUNNERS_AUTO_SHUTDOWN_TIMEOUT":       "15",
		"N8N_RUNNERS_TASK_TIMEOUT":                "60",
	}
	maps.Copy(env, entry.EnvOverrides)
	names := append(slices.Clone(entry.AllowedEnv), slices.Sorted(maps.Keys(entry.EnvOverrides))...)
	return pyrunnerSetting{Source: "n8n-task-runners.json, python entry", Names: names, Env: env}
}
