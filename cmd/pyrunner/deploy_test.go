package main

// The deployment files (Dockerfile, .dockerignore, deploy/) are checked here without Docker or a
// cluster: they parse, they have the shape deploy/README.md promises, every variable they set
// for pyrunner is one that pyrunner reads, and the values they set pass pyrunner's own
// validation. Building the image and running it are not checked here.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"
	"go.yaml.in/yaml/v3"

	"github.com/pyrunner/pyrunner/internal/bootstrap"
	"github.com/pyrunner/pyrunner/internal/config"
)

// deployRoot is the repository root, seen from this package's directory.
const deployRoot = "../.."

// launcherStandardEnv: n8n's launcher gives every runner these besides its entry's allowed-env
// (docs/launcher.md §3); they are not pyrunner settings.
var launcherStandardEnv = []string{"PATH", "LANG", "TZ", "TERM"}

// deployPlaceholderToken stands in for what the files take from Secrets and secret files.
const deployPlaceholderToken = "placeholder-auth-token"

// pyrunnerSetting is the environment one deployment file gives pyrunner: Names as written
// there, Env as pyrunner would see it, with secret references resolved to the placeholder.
type pyrunnerSetting struct {
	Source string
	Names  []string
	Env    map[string]string
}

func TestDeployFilesParse(t *testing.T) {
	var files []string
	err := filepath.WalkDir(filepath.Join(deployRoot, "deploy"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 3 {
		t.Fatalf("%d YAML files under deploy/, want compose.yaml and the Kubernetes manifests", len(files))
	}
	for _, f := range files {
		docs := yamlDocuments(t, f)
		if filepath.Base(filepath.Dir(f)) != "kubernetes" {
			continue
		}
		for i, doc := range docs {
			var obj k8sObject
			if err := doc.Decode(&obj); err != nil {
				t.Fatalf("%s, document %d: %v", f, i+1, err)
			}
			if obj.APIVersion == "" || obj.Kind == "" || (obj.Metadata.Name == "" && obj.Kind != "Kustomization") {
				t.Errorf("%s, document %d: want apiVersion, kind and metadata.name, got %q %q %q", f, i+1, obj.APIVersion, obj.Kind, obj.Metadata.Name)
			}
		}
	}

	// The Kustomization lists exactly the manifests beside it.
	dir := filepath.Join(deployRoot, "deploy", "kubernetes")
	var kustomization struct {
		Resources []string `yaml:"resources"`
	}
	if err := yamlDocuments(t, filepath.Join(dir, "kustomization.yaml"))[0].Decode(&kustomization); err != nil {
		t.Fatal(err)
	}
	manifests, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	var want []string
	for _, m := range manifests {
		if base := filepath.Base(m); base != "kustomization.yaml" {
			want = append(want, base)
		}
	}
	if got := slices.Sorted(slices.Values(kustomization.Resources)); !slices.Equal(got, want) {
		t.Errorf("kustomization.yaml resources %v, want the manifests %v", got, want)
	}
}

func TestDeployEnvNamesAreConfigVariables(t *testing.T) {
	known := configVariables()
	// The check must be able to fail: a typo is not a variable, NAME_FILE is one.
	if known["N8N_PYTHON_MAX_MEMORY_MBS"] || !known["N8N_RUNNERS_AUTH_TOKEN_FILE"] || !known["N8N_PYTHON_NETWORK_ACCESS"] {
		t.Fatal("configVariables does not follow the configuration's env tags")
	}
	settings := pyrunnerSettings(t)
	if len(settings) < 4 {
		t.Fatalf("pyrunner's environment found in %d places, want the Dockerfile, compose.yaml, the worker pod and n8n-task-runners.json", len(settings))
	}
	for _, s := range settings {
		for _, name := range s.Names {
			if !known[name] && !slices.Contains(launcherStandardEnv, name) {
				t.Errorf("%s sets %s, which pyrunner does not read", s.Source, name)
			}
		}
	}
}

func TestDeployPyrunnerSettingsPassValidation(t *testing.T) {
	for _, s := range pyrunnerSettings(t) {
		t.Run(s.Source, func(t *testing.T) {
			c, err := config.Load(context.Background(), envconfig.MapLookuper(s.Env))
			if err != nil {
				t.Fatalf("pyrunner would refuse this configuration:\n%v", err)
			}
			if !c.Broker.HealthEnabled {
				t.Error("the health server is off: nothing can probe this pyrunner")
			}
			if c.Broker.AuthToken != deployPlaceholderToken && c.Broker.GrantToken != deployPlaceholderToken {
				t.Error("no auth or grant token reaches pyrunner")
			}
		})
	}
}

func TestDeployWorkerPodRunsPyrunnerSidecar(t *testing.T) {
	image := dockerfileEnv(t)
	found := false
	for _, obj := range kubernetesObjects(t) {
		pod := obj.Spec.Template.Spec
		all := append(slices.Clone(pod.InitContainers), pod.Containers...)
		worker := slices.IndexFunc(all, func(c k8sContainer) bool { return slices.Contains(c.Args, "worker") })
		runner := slices.IndexFunc(all, func(c k8sContainer) bool { return c.Name == "pyrunner" })
		if obj.Kind != "Deployment" || worker < 0 || runner < 0 {
			continue
		}
		found = true
		name, c := obj.Metadata.Name, all[runner]
		if runner < len(pod.InitContainers) && c.RestartPolicy != "Always" {
			t.Errorf("%s: pyrunner is an init container without restartPolicy: Always; the pod would wait for it to exit", name)
		}
		cfg, err := config.Load(context.Background(), envconfig.MapLookuper(c.setting(t, image).Env))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if cfg.Broker.HealthHost != "0.0.0.0" {
			t.Errorf("%s: health server on %s, where the kubelet's HTTP probes cannot reach it", name, cfg.Broker.HealthHost)
		}
		for _, p := range []struct {
			kind  string
			probe *k8sProbe
			path  string
		}{{"liveness", c.LivenessProbe, "/healthz"}, {"readiness", c.ReadinessProbe, "/readyz"}} {
			if p.probe == nil || p.probe.HTTPGet == nil {
				t.Errorf("%s: pyrunner has no HTTP %s probe", name, p.kind)
				continue
			}
			if get := p.probe.HTTPGet; get.Path != p.path || c.port(get.Port) != int(cfg.Broker.HealthPort) {
				t.Errorf("%s: %s probe asks %s on port %v, want %s on the health port %d", name, p.kind, get.Path, get.Port, p.path, cfg.Broker.HealthPort)
			}
		}
		requests, limits := c.Resources.Requests, c.Resources.Limits
		if requests["cpu"] == "" || requests["memory"] == "" || limits["cpu"] == "" || limits["memory"] == "" {
			t.Errorf("%s: pyrunner resources %+v, want cpu and memory requests and limits", name, c.Resources)
		}
		checkTaskMemoryFits(t, name, cfg, limits["memory"])
		if !c.tokenFromSecret(pod) {
			t.Errorf("%s: pyrunner's auth token does not come from a Secret", name)
		}
		if g := pod.TerminationGracePeriodSeconds; g == nil || *g <= int(cfg.Broker.GracefulShutdownTimeout) {
			t.Errorf("%s: terminationGracePeriodSeconds must exceed pyrunner's graceful shutdown timeout (%d s)", name, cfg.Broker.GracefulShutdownTimeout)
		}
		// pyrunner dials the broker of the worker in its own pod.
		u, err := url.Parse(cfg.Broker.URI)
		if listen := all[worker].envValue("N8N_RUNNERS_BROKER_LISTEN_ADDRESS"); err != nil || u.Hostname() != listen {
			t.Errorf("%s: pyrunner dials %s, the worker's broker listens on %q", name, cfg.Broker.URI, listen)
		}
	}
	if !found {
		t.Fatal("no Deployment runs `n8n worker` beside a container named pyrunner")
	}
}

func TestDeployCompose(t *testing.T) {
	compose := loadCompose(t)
	n8n, ok := compose.Services["n8n"]
	if !ok {
		t.Fatal("compose.yaml has no n8n service")
	}
	runner, ok := compose.Services["pyrunner"]
	if !ok {
		t.Fatal("compose.yaml has no pyrunner service")
	}
	if n8n.Environment["N8N_RUNNERS_MODE"] != "external" || n8n.Environment["N8N_RUNNERS_BROKER_LISTEN_ADDRESS"] != "0.0.0.0" {
		t.Error("n8n must run in external runner mode, its broker reachable from other containers")
	}
	dockerfile := filepath.Join(deployRoot, "deploy", runner.Build.Context, runner.Build.Dockerfile)
	if abs, _ := filepath.Abs(dockerfile); abs != mustAbs(t, filepath.Join(deployRoot, "Dockerfile")) {
		t.Errorf("pyrunner is built from %s, want the repository's Dockerfile", dockerfile)
	}
	if !slices.Contains(runner.DependsOn, "n8n") {
		t.Error("pyrunner does not depend on n8n")
	}
	if test := strings.Join(runner.Healthcheck.Test, " "); !strings.Contains(test, "pyrunner healthcheck") {
		t.Errorf("pyrunner's healthcheck %q does not run `pyrunner healthcheck`", test)
	}
	cfg, err := config.Load(context.Background(), envconfig.MapLookuper(runner.setting(t, dockerfileEnv(t)).Env))
	if err != nil {
		t.Fatal(err)
	}
	if u, err := url.Parse(cfg.Broker.URI); err != nil || u.Hostname() != "n8n" || u.Port() != "5679" {
		t.Errorf("pyrunner dials %s, want n8n's broker at n8n:5679", cfg.Broker.URI)
	}
	if stop, err := time.ParseDuration(runner.StopGracePeriod); err != nil || stop <= cfg.Broker.GracefulShutdownTimeout.Duration() {
		t.Errorf("stop_grace_period %q must exceed pyrunner's graceful shutdown timeout (%d s)", runner.StopGracePeriod, cfg.Broker.GracefulShutdownTimeout)
	}
	checkTaskMemoryFits(t, "compose.yaml", cfg, runner.Deploy.Resources.Limits.Memory)

	// n8n and pyrunner read the token from the same secret file, which git never sees.
	ignored, err := os.ReadFile(filepath.Join(deployRoot, "deploy", ".gitignore"))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]bool{}
	for name, svc := range map[string]composeService{"n8n": n8n, "pyrunner": runner} {
		file := svc.Environment["N8N_RUNNERS_AUTH_TOKEN_FILE"]
		i := slices.IndexFunc(svc.Secrets, func(s composeSecretRef) bool { return "/run/secrets/"+s.Target == file })
		if i < 0 || compose.Secrets[svc.Secrets[i].Source].File == "" {
			t.Errorf("%s: N8N_RUNNERS_AUTH_TOKEN_FILE=%q is not one of its Docker secret files", name, file)
			continue
		}
		files[compose.Secrets[svc.Secrets[i].Source].File] = true
	}
	if len(files) != 1 {
		t.Errorf("n8n and pyrunner read the token from %v, want one shared file", slices.Collect(maps.Keys(files)))
	}
	for f := range files {
		if !slices.Contains(strings.Fields(string(ignored)), path.Base(f)) {
			t.Errorf("deploy/.gitignore does not ignore the secret file %s", f)
		}
	}
}

func TestDockerfile(t *testing.T) {
	all := dockerfile(t)
	froms := 0
	var final []dockerInstruction // the runtime stage
	for _, in := range all {
		if in.Cmd == "FROM" {
			froms, final = froms+1, nil
		}
		final = append(final, in)
	}
	if froms < 2 {
		t.Fatalf("%d FROM lines, want a build stage and a runtime stage", froms)
	}
	last := map[string]string{}
	for _, in := range final {
		last[in.Cmd] = in.Args
		if in.Cmd == "ENV" && !in.Commented {
			t.Errorf("ENV %s has no comment above it", in.Args)
		}
	}
	if user, _, _ := strings.Cut(last["USER"], ":"); user == "" || user == "root" || user == "0" {
		t.Errorf("runtime stage USER %q, want a non-root user", last["USER"])
	}
	_, check, _ := strings.Cut(last["HEALTHCHECK"], "CMD")
	if args := execForm(check); len(args) < 2 || path.Base(args[0]) != "pyrunner" || args[1] != "healthcheck" {
		t.Errorf("HEALTHCHECK %q does not run `pyrunner healthcheck`", last["HEALTHCHECK"])
	}
	if args := execForm(last["ENTRYPOINT"]); len(args) == 0 || path.Base(args[0]) != "pyrunner" {
		t.Errorf("ENTRYPOINT %q, want the exec form running pyrunner (PID 1, so it gets SIGTERM)", last["ENTRYPOINT"])
	}
	if last["STOPSIGNAL"] != "SIGTERM" {
		t.Errorf("STOPSIGNAL %q, want SIGTERM (pyrunner's graceful shutdown)", last["STOPSIGNAL"])
	}
	// n8n's runners image is Alpine (musl): the binary copied there must need no libc.
	build := slices.IndexFunc(all, func(in dockerInstruction) bool { return in.Cmd == "RUN" && strings.Contains(in.Args, "go build") })
	if build < 0 || !strings.Contains(all[build].Args, "CGO_ENABLED=0") || !strings.Contains(all[build].Args, "./cmd/pyrunner") {
		t.Error("no static (CGO_ENABLED=0) go build of ./cmd/pyrunner")
	}
	port := dockerfileEnv(t)["N8N_RUNNERS_HEALTH_CHECK_SERVER_PORT"]
	if !slices.Contains(strings.Fields(last["EXPOSE"]), port) {
		t.Errorf("EXPOSE %q does not include the health port %q", last["EXPOSE"], port)
	}
}

func TestDockerignoreKeepsBuildInputs(t *testing.T) {
	f, err := os.Open(filepath.Join(deployRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var patterns []string
	for sc := bufio.NewScanner(f); sc.Scan(); {
		if line := strings.TrimSpace(sc.Text()); line != "" && !strings.HasPrefix(line, "#") {
			patterns = append(patterns, line)
		}
	}
	if !slices.Contains(patterns, ".git") || !slices.Contains(patterns, "bin") {
		t.Errorf(".dockerignore %v should keep .git and bin out of the build context", patterns)
	}
	// What the build needs: the module files, the packages of ./cmd/pyrunner and the Python
	// runtime that the binary embeds.
	needed := []string{"go.mod", "go.sum", "cmd/pyrunner/main.go", "internal/config/config.go", "python/embed.go", "broker/fakebroker/doc.go"}
	runtime, _ := filepath.Glob(filepath.Join(deployRoot, "python", "runtime", "pyrunner_runtime", "*.py"))
	if len(runtime) == 0 {
		t.Fatal("no Python runtime found")
	}
	needed = append(needed, "python/runtime/pyrunner_runtime/"+filepath.Base(runtime[0]))
	for _, p := range needed {
		for _, pattern := range patterns {
			if dockerignoreExcludes(pattern, p) {
				t.Errorf(".dockerignore pattern %q leaves %s out of the build", pattern, p)
			}
		}
	}
}

// configVariables is every variable pyrunner's configuration reads, each also as NAME_FILE.
func configVariables() map[string]bool {
	names := map[string]bool{}
	for _, name := range config.Variables() {
		names[name], names[name+"_FILE"] = true, true
	}
	return names
}

// pyrunnerSettings is pyrunner's environment in every file that sets one.
func pyrunnerSettings(t *testing.T) []pyrunnerSetting {
	t.Helper()
	image := dockerfileEnv(t)
	env := maps.Clone(image)
	env["N8N_RUNNERS_AUTH_TOKEN"] = deployPlaceholderToken
	settings := []pyrunnerSetting{
		{Source: "Dockerfile", Names: slices.Sorted(maps.Keys(image)), Env: env},
		loadCompose(t).Services["pyrunner"].setting(t, image),
	}
	for _, obj := range kubernetesObjects(t) {
		pod := obj.Spec.Template.Spec
		for _, c := range append(slices.Clone(pod.InitContainers), pod.Containers...) {
			if c.Name == "pyrunner" || strings.HasPrefix(path.Base(c.Image), "pyrunner") {
				s := c.setting(t, image)
				s.Source = fmt.Sprintf("%s %s, container %s", obj.Kind, obj.Metadata.Name, c.Name)
				settings = append(settings, s)
			}
		}
	}
	return append(settings, launcherSetting(t))
}

// withSecretFiles resolves what a container is given of pyrunner's tokens: a token variable
// becomes the placeholder, and a token's _FILE a file here that holds it.
func withSecretFiles(t *testing.T, env map[string]string) map[string]string {
	t.Helper()
	for _, name := range bootstrap.SecretVars {
		if _, ok := env[name]; ok {
			env[name] = deployPlaceholderToken
		}
		if _, ok := env[name+"_FILE"]; ok {
			file := filepath.Join(t.TempDir(), "token")
			if err := os.WriteFile(file, []byte(deployPlaceholderToken+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			env[name+"_FILE"] = file
		}
	}
	return env
}

// checkTaskMemoryFits: the tasks pyrunner runs at once, each allowed N8N_PYTHON_MAX_MEMORY_MB,
// fit in the container's memory limit.
func checkTaskMemoryFits(t *testing.T, where string, cfg *config.Config, limit string) {
	t.Helper()
	bytes, err := quantityBytes(limit)
	if err != nil {
		t.Errorf("%s: memory limit %q: %v", where, limit, err)
		return
	}
	tasks := int64(min(int(cfg.Broker.MaxConcurrency), int(cfg.Pool.MaxWorkers)))
	memoryMB := cfg.Limits.MaxMemoryMB
	if need := tasks * int64(memoryMB) << 20; memoryMB == 0 || need >= bytes {
		t.Errorf("%s: %d tasks of N8N_PYTHON_MAX_MEMORY_MB=%d do not fit in the memory limit %s", where, tasks, memoryMB, limit)
	}
}

// quantityBytes reads a memory size as Kubernetes writes it (2Gi, 512Mi, 2G). Compose's 2G
// means 2 GiB: reading it as 2×10⁹ errs on the safe side.
func quantityBytes(s string) (int64, error) {
	for _, u := range []struct {
		suffix string
		factor int64
	}{{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"k", 1e3}, {"K", 1e3}, {"M", 1e6}, {"G", 1e9}} {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseInt(n, 10, 64)
			return v * u.factor, err
		}
	}
	return strconv.ParseInt(s, 10, 64)
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	abs, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

func yamlDocuments(t *testing.T, file string) []*yaml.Node {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var docs []*yaml.Node
	for dec := yaml.NewDecoder(f); ; {
		var doc yaml.Node
		if err := dec.Decode(&doc); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		docs = append(docs, &doc)
	}
	if len(docs) == 0 {
		t.Fatalf("%s holds no YAML document", file)
	}
	return docs
}
