package e2e

// The queue-mode tests run n8n, its workers and pyrunner with the settings
// deploy/kubernetes gives them, read from the manifests themselves: what
// those files get wrong shows here. Only what a pod has and this machine
// has not is replaced (queueAddresses in queue_harness_test.go).

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// queueWiring is what deploy/kubernetes (and, under the pyrunner sidecar,
// the Dockerfile) sets for each process of the queue-mode setup, with the
// Secret's values filled in.
type queueWiring struct {
	main, worker, runner map[string]string // environments, as the container sees them
	mainArgs, workerArgs []string          // n8n's arguments (the image's command is n8n)
	redisArgs            []string          // redis-server's
	pgDatabase, pgUser   string            // what the Postgres image creates
	pgPasswordEnv        string            // the variable that gives n8n the password
}

// The Secret's keys (deploy/README.md creates it by hand).
const (
	secretRunnersToken = "runners-auth-token"
	secretEncryption   = "encryption-key"
	secretPostgres     = "postgres-password"
)

type k8sManifest struct {
	Kind     string
	Metadata struct{ Name string }
	Data     map[string]string // ConfigMap
	Spec     struct {
		Template struct {
			Spec struct {
				InitContainers []k8sContainer `yaml:"initContainers"`
				Containers     []k8sContainer
			}
		}
	}
}

type k8sContainer struct {
	Name    string
	Image   string
	Command []string
	Args    []string
	EnvFrom []struct {
		ConfigMapRef *struct{ Name string } `yaml:"configMapRef"`
	} `yaml:"envFrom"`
	Env []struct {
		Name      string
		Value     string
		ValueFrom *struct {
			SecretKeyRef *struct{ Name, Key string } `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	}
}

// loadQueueWiring reads deploy/kubernetes and the Dockerfile from the
// repository root (the parent of the test's directory).
func loadQueueWiring(secrets map[string]string) (*queueWiring, error) {
	files, err := filepath.Glob("../deploy/kubernetes/*.yaml")
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no manifests under deploy/kubernetes (%v)", err)
	}
	configMaps := map[string]map[string]string{}
	pods := map[string][]k8sContainer{} // by workload name
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		dec := yaml.NewDecoder(strings.NewReader(string(raw)))
		for {
			var m k8sManifest
			if err := dec.Decode(&m); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			switch m.Kind {
			case "ConfigMap":
				configMaps[m.Metadata.Name] = m.Data
			case "Deployment", "StatefulSet":
				s := m.Spec.Template.Spec
				pods[m.Metadata.Name] = append(slices.Clone(s.InitContainers), s.Containers...)
			}
		}
	}
	var errs []error
	container := func(workload, name string) k8sContainer {
		for _, c := range pods[workload] {
			if c.Name == name {
				return c
			}
		}
		errs = append(errs, fmt.Errorf("deploy/kubernetes has no container %q in %q", name, workload))
		return k8sContainer{}
	}
	env := func(c k8sContainer) map[string]string {
		out := map[string]string{}
		for _, from := range c.EnvFrom {
			if from.ConfigMapRef != nil {
				cm, ok := configMaps[from.ConfigMapRef.Name]
				if !ok {
					errs = append(errs, fmt.Errorf("%s: no ConfigMap %q", c.Name, from.ConfigMapRef.Name))
				}
				maps.Copy(out, cm)
			}
		}
		// As in Kubernetes, env wins over envFrom.
		for _, e := range c.Env {
			switch {
			case e.ValueFrom == nil:
				out[e.Name] = e.Value
			case e.ValueFrom.SecretKeyRef != nil && secrets[e.ValueFrom.SecretKeyRef.Key] != "":
				out[e.Name] = secrets[e.ValueFrom.SecretKeyRef.Key]
			default:
				errs = append(errs, fmt.Errorf("%s: %s comes from something the test cannot fill in", c.Name, e.Name))
			}
		}
		return out
	}

	w := &queueWiring{}
	main, worker, runner := container("n8n-main", "n8n"), container("n8n-worker", "n8n-worker"), container("n8n-worker", "pyrunner")
	w.main, w.worker = env(main), env(worker)
	// The n8nio/n8n image runs n8n with the container's arguments; with
	// none, `n8n` alone, which is `n8n start`.
	w.mainArgs, w.workerArgs = main.Args, worker.Args
	if len(w.mainArgs) == 0 {
		w.mainArgs = []string{"start"}
	}
	image, err := dockerfileEnv("../Dockerfile")
	if err != nil {
		errs = append(errs, err)
	}
	// The image's ENV, under the container's env.
	w.runner = image
	maps.Copy(w.runner, env(runner))
	if len(runner.Args) != 1 || runner.Args[0] != "run" || len(runner.Command) > 0 {
		errs = append(errs, fmt.Errorf("the pyrunner sidecar runs %v %v; the test runs `pyrunner run`", runner.Command, runner.Args))
	}

	redis := container("redis", "redis")
	if len(redis.Command) > 0 {
		errs = append(errs, fmt.Errorf("the redis container sets a command %v; the test runs redis-server with its args", redis.Command))
	}
	w.redisArgs = redis.Args
	pg := env(container("postgres", "postgres"))
	w.pgDatabase, w.pgUser = pg["POSTGRES_DB"], pg["POSTGRES_USER"]
	if w.pgDatabase == "" || w.pgUser == "" {
		errs = append(errs, errors.New("postgres.yaml sets no POSTGRES_DB or POSTGRES_USER"))
	}
	for _, name := range []string{"DB_POSTGRESDB_DATABASE", "DB_POSTGRESDB_USER", "DB_POSTGRESDB_PASSWORD"} {
		if w.main[name] == "" || w.main[name] != w.worker[name] {
			errs = append(errs, fmt.Errorf("main and worker disagree on %s (%q, %q)", name, w.main[name], w.worker[name]))
		}
	}
	if w.main["DB_POSTGRESDB_DATABASE"] != w.pgDatabase || w.main["DB_POSTGRESDB_USER"] != w.pgUser {
		errs = append(errs, fmt.Errorf("n8n uses database %q as %q, postgres.yaml creates %q for %q",
			w.main["DB_POSTGRESDB_DATABASE"], w.main["DB_POSTGRESDB_USER"], w.pgDatabase, w.pgUser))
	}
	return w, errors.Join(errs...)
}

// dockerfileEnv is the ENV of the Dockerfile's last stage, written one
// NAME=value a line as ours is.
func dockerfileEnv(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "FROM ") {
			clear(env)
		}
		if rest, ok := strings.CutPrefix(line, "ENV "); ok {
			name, value, ok := strings.Cut(rest, "=")
			if !ok || strings.ContainsAny(value, " \"'$") {
				return nil, fmt.Errorf("%s: cannot read %q (want ENV NAME=value)", path, line)
			}
			env[name] = value
		}
	}
	return env, sc.Err()
}
