package e2e

// The harness for the tests named *Queue*: n8n 2.41.1 in queue mode on
// loopback, as deploy/kubernetes runs it. Redis and Postgres, one main
// that takes the webhooks and queues the executions, and workers, each
// with its own task broker and its own pyrunner registered there with the
// auth token, as the worker pod's sidecar is. Every process gets the
// variables the manifests give its container (queue_wiring_test.go); only
// addresses and this machine's paths differ.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pyrunner/pyrunner/internal/excerpt"
	"github.com/pyrunner/pyrunner/pool/pooltest"
)

// queueCluster is the running queue-mode setup.
type queueCluster struct {
	install string
	wiring  *queueWiring
	dir     string // everything's files: subdirectories by process
	redis   *redisServer
	pg      *postgresServer
	main    *n8nServer
	api     *n8nClient // the owner's, on main
	workers []*queueWorker
}

// queueWorker is an `n8n worker` and the pyrunner beside it. Its ports
// stay the same across restarts, as a pod's do.
type queueWorker struct {
	name       string
	n8n        *n8nServer // nil while stopped
	runner     *proc
	brokerPort int    // the worker's task broker
	serverPort int    // the worker's health server
	healthPort int    // pyrunner's /healthz, /readyz, /metrics
	home       string // pyrunner's HOME, with its TMPDIR and cache
	cred       *syscall.Credential
}

// useQueueCluster skips unless PYRUNNER_E2E_QUEUE=1, else starts the
// cluster with the given number of workers and stops it in t's Cleanup.
// On failure the test logs what every process printed.
func useQueueCluster(t *testing.T, workers int) *queueCluster {
	t.Helper()
	if os.Getenv("PYRUNNER_E2E_QUEUE") != "1" {
		t.Skip("needs n8n 2.41.1, redis-server and Postgres; run with `make e2e-queue` (PYRUNNER_E2E_QUEUE=1 go test -run Queue ./e2e/)")
	}
	install := installN8N(t)
	secrets := map[string]string{}
	for _, k := range []string{secretRunnersToken, secretEncryption, secretPostgres} {
		b := make([]byte, 24)
		_, _ = rand.Read(b)
		secrets[k] = hex.EncodeToString(b)
	}
	wiring, err := loadQueueWiring(secrets)
	if err != nil {
		t.Fatal(err)
	}
	// Not t.TempDir: Postgres and the tasks run as other users, who must
	// be able to reach their directories.
	dir, err := os.MkdirTemp("", "pyrunner-e2e-queue-")
	if err == nil {
		err = os.Chmod(dir, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}
	c := &queueCluster{install: install, wiring: wiring, dir: dir}
	t.Cleanup(func() {
		if t.Failed() {
			c.logOutputs(t)
		}
		begin := time.Now()
		if err := c.stop(); err != nil {
			t.Error(err)
		}
		t.Logf("queue cluster stopped in %s", time.Since(begin).Round(time.Millisecond))
	})
	// As the pod runs pyrunner as uid 1000, a root test runs each pyrunner
	// as a user of its own, claimed for this test so that no run beside it
	// uses the same (their processes would count against each other's
	// RLIMIT_NPROC, and a kill by uid would reach both).
	firstUID := -1
	if os.Geteuid() == 0 {
		firstUID = pooltest.UIDBlock(t, workers)
	}
	for i := range workers {
		w := &queueWorker{name: fmt.Sprintf("worker-%d", i+1)}
		if firstUID >= 0 {
			uid := uint32(firstUID + i)
			w.cred = &syscall.Credential{Uid: uid, Gid: uid}
		}
		if err := c.makeRunnerHome(w); err != nil {
			t.Fatal(err)
		}
		for _, p := range []*int{&w.brokerPort, &w.serverPort, &w.healthPort} {
			if *p, err = freePort(); err != nil {
				t.Fatal(err)
			}
		}
		c.workers = append(c.workers, w)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	begin := time.Now()
	var timings []string
	lap := func(what string) {
		timings = append(timings, fmt.Sprintf("%s %s", what, time.Since(begin).Round(time.Millisecond)))
		begin = time.Now()
	}
	redisPort, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	if c.redis, err = startRedis(ctx, wiring.redisArgs, redisPort, c.subdir(t, "redis")); err != nil {
		t.Fatal(err)
	}
	lap("redis")
	if c.pg, err = startPostgres(ctx, c.subdir(t, "postgres"), wiring.pgDatabase, wiring.pgUser, secrets[secretPostgres]); err != nil {
		t.Fatal(err)
	}
	lap("postgres (initdb, start, createdb)")
	if err := c.startMain(ctx); err != nil {
		t.Fatal(err)
	}
	lap("main (migrations, sign-in)")
	// As in the pod: the sidecar first, then the worker; pyrunner keeps
	// trying until the worker's broker is up.
	for _, w := range c.workers {
		if err := c.startRunner(w, binary); err != nil {
			t.Fatal(err)
		}
		if err := c.startWorker(w); err != nil {
			t.Fatal(err)
		}
	}
	for _, w := range c.workers {
		if err := c.waitWorker(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	lap(fmt.Sprintf("%d workers with their pyrunners ready", len(c.workers)))
	t.Logf("queue cluster up: %s", strings.Join(timings, ", "))
	return c
}

// startMain starts n8n main and signs in as the owner.
func (c *queueCluster) startMain(ctx context.Context) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	env := c.withAddresses(c.wiring.main)
	env["N8N_PORT"] = strconv.Itoa(port)
	env["N8N_LISTEN_ADDRESS"] = "127.0.0.1"
	if c.main, err = startN8NProcess(c.install, c.wiring.mainArgs, env); err != nil {
		return err
	}
	c.main.url = fmt.Sprintf("http://127.0.0.1:%d", port)
	// The first start runs the migrations, on Postgres slower than on sqlite.
	if err := c.main.waitReady(ctx, 5*time.Minute, c.main.url+"/healthz/readiness"); err != nil {
		return err
	}
	c.api = newN8NClient(c.main.url)
	// Calls are bounded by their contexts: a webhook may wait for a runner
	// for N8N_RUNNERS_TASK_REQUEST_TIMEOUT (60 s by default) and more.
	c.api.http.Timeout = 0
	if err := c.api.signIn(ctx); err != nil {
		return fmt.Errorf("n8n sign-in: %w\nn8n output:\n%s", err, excerpt.Of(c.main.out.String()))
	}
	return nil
}

// subdir makes the directory name under c.dir.
func (c *queueCluster) subdir(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(c.dir, name)
	if err := os.Mkdir(p, 0o700); err != nil {
		t.Fatal(err)
	}
	return p
}

// withAddresses is env with Redis and Postgres where they are on this
// machine; in the cluster the ConfigMap names their Services.
func (c *queueCluster) withAddresses(env map[string]string) map[string]string {
	out := maps.Clone(env)
	out["QUEUE_BULL_REDIS_HOST"] = "127.0.0.1"
	out["QUEUE_BULL_REDIS_PORT"] = strconv.Itoa(c.redis.port)
	out["DB_POSTGRESDB_HOST"] = "127.0.0.1"
	out["DB_POSTGRESDB_PORT"] = strconv.Itoa(c.pg.port)
	return out
}

// startWorker starts w's `n8n worker` without waiting for it. Every pod
// has the broker on 5679 and the health server on 5678 of its own
// loopback; here each worker gets ports of its own.
func (c *queueCluster) startWorker(w *queueWorker) error {
	env := c.withAddresses(c.wiring.worker)
	env["N8N_RUNNERS_BROKER_PORT"] = strconv.Itoa(w.brokerPort)
	env["QUEUE_HEALTH_CHECK_PORT"] = strconv.Itoa(w.serverPort)
	env["N8N_WORKER_SERVER_ADDRESS"] = "127.0.0.1"
	s, err := startN8NProcess(c.install, c.wiring.workerArgs, env)
	if err != nil {
		return err
	}
	s.name = "n8n " + w.name
	s.url = fmt.Sprintf("http://127.0.0.1:%d", w.serverPort)
	s.brokerURL = fmt.Sprintf("http://127.0.0.1:%d", w.brokerPort)
	w.n8n = s
	return nil
}

// waitWorker waits until w's broker and health server answer and its
// pyrunner is ready: registered with that broker and able to run a task.
func (c *queueCluster) waitWorker(ctx context.Context, w *queueWorker) error {
	if err := w.n8n.waitReady(ctx, 4*time.Minute, w.n8n.url+"/healthz/readiness"); err != nil {
		return err
	}
	return w.waitRunnerReady(ctx)
}

// stopWorker stops w's n8n as Kubernetes stops a container: SIGTERM, and
// n8n finishes its running executions first.
func (c *queueCluster) stopWorker(w *queueWorker) error {
	err := w.n8n.stop()
	w.n8n = nil
	return err
}

// startRunner starts w's pyrunner with the sidecar's environment, bin
// being the race-checked build or the plain one.
func (c *queueCluster) startRunner(w *queueWorker, bin string) error {
	env := maps.Clone(c.wiring.runner)
	// The pod's loopback broker, at this worker's port.
	broker, err := url.Parse(env["N8N_RUNNERS_TASK_BROKER_URI"])
	if err != nil || broker.Hostname() != "127.0.0.1" {
		return fmt.Errorf("the sidecar's N8N_RUNNERS_TASK_BROKER_URI %q is not the pod's loopback", env["N8N_RUNNERS_TASK_BROKER_URI"])
	}
	broker.Host = "127.0.0.1:" + strconv.Itoa(w.brokerPort)
	env["N8N_RUNNERS_TASK_BROKER_URI"] = broker.String()
	// Probes come from the kubelet there (0.0.0.0); from this test here.
	env["N8N_RUNNERS_HEALTH_CHECK_SERVER_HOST"] = "127.0.0.1"
	env["N8N_RUNNERS_HEALTH_CHECK_SERVER_PORT"] = strconv.Itoa(w.healthPort)
	// This machine's Python, for the image's /usr/local/bin/python3, and
	// the pod's volumes: the cache on /home/runner/.cache, /tmp.
	env["N8N_PYTHON_INTERPRETER"] = testInterpreter()
	env["N8N_PYTHON_CACHE_DIR"] = filepath.Join(w.home, ".cache", "pyrunner")
	env["HOME"] = w.home
	env["TMPDIR"] = filepath.Join(w.home, "tmp")
	env["PATH"] = os.Getenv("PATH")
	// The race-checked build ends at the first race (exit 66).
	env["GORACE"] = "halt_on_error=1 atexit_sleep_ms=0"
	var list []string
	for k, v := range env {
		list = append(list, k+"="+v)
	}
	if bin, err = c.runnerBinary(bin); err != nil {
		return err
	}
	w.runner, err = startPyrunner(bin, list, w.cred)
	return err
}

// makeRunnerHome makes w's pyrunner's home, with the pod's volumes in it:
// tmp for /tmp and .cache for /home/runner/.cache, owned by w.cred where
// the test is root. Not being root, pyrunner runs its tasks as its own
// uid, and Landlock and seccomp are what fence them, as in the pod. Its
// own /tmp also keeps the tasks' directories from other pyrunners on this
// machine.
func (c *queueCluster) makeRunnerHome(w *queueWorker) error {
	w.home = filepath.Join(c.dir, w.name)
	for _, d := range []string{w.home, filepath.Join(w.home, "tmp"), filepath.Join(w.home, ".cache")} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return err
		}
		if w.cred != nil {
			if err := os.Chown(d, int(w.cred.Uid), int(w.cred.Gid)); err != nil {
				return err
			}
		}
	}
	return nil
}

// runnerBinary is a copy of the pyrunner build bin that the pyrunners'
// users can run: the builds are in a directory only root can enter.
func (c *queueCluster) runnerBinary(bin string) (string, error) {
	dst := filepath.Join(c.dir, "bin", filepath.Base(bin))
	if _, err := os.Stat(dst); err == nil {
		return dst, nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", err
	}
	src, err := os.ReadFile(bin)
	if err != nil {
		return "", err
	}
	return dst, os.WriteFile(dst, src, 0o755)
}

// healthURL is w's pyrunner's health server.
func (w *queueWorker) healthURL() string {
	return fmt.Sprintf("http://127.0.0.1:%d", w.healthPort)
}

// waitRunnerReady waits until w's pyrunner answers /readyz 200.
func (w *queueWorker) waitRunnerReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, patience)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	last := "no answer"
	for {
		resp, err := client.Get(w.healthURL() + "/readyz")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, body)
		} else {
			last = err.Error()
		}
		select {
		case <-w.runner.exited:
			return fmt.Errorf("%s's pyrunner exited: %v\n%s", w.name, w.runner.err, excerpt.Of(w.runner.out.String()))
		case <-ctx.Done():
			return fmt.Errorf("%s's pyrunner not ready within %s; last /readyz: %s\npyrunner output:\n%s", w.name, patience, last, excerpt.Of(w.runner.out.String()))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// stopRunner stops w's pyrunner with SIGTERM, as the kubelet does, and
// expects exit 0; then it ends anything left in its process group.
func (w *queueWorker) stopRunner() error {
	err := stopN8NRunner(w.runner)
	if killErr := syscall.Kill(-w.runner.cmd.Process.Pid, syscall.SIGKILL); killErr != nil && !errors.Is(killErr, syscall.ESRCH) {
		err = errors.Join(err, killErr)
	}
	return err
}

// restartRedis stops Redis as its container is stopped (SIGTERM) and
// starts it again on the same port with the same arguments.
func (c *queueCluster) restartRedis(ctx context.Context) error {
	if err := c.redis.stop(syscall.SIGTERM, 30*time.Second); err != nil {
		return err
	}
	r, err := startRedis(ctx, c.redis.args, c.redis.port, filepath.Join(c.dir, "redis"))
	if err != nil {
		return err
	}
	c.redis = r
	return nil
}

// stop stops everything, in the order a cluster would: the workers
// (which finish what they run), their pyrunners, main, then Redis and
// Postgres; and removes their files.
func (c *queueCluster) stop() error {
	var errs []error
	for _, w := range c.workers {
		if w.n8n != nil {
			errs = append(errs, c.stopWorker(w))
		}
	}
	for _, w := range c.workers {
		if w.runner != nil {
			errs = append(errs, w.stopRunner())
		}
	}
	if c.main != nil {
		errs = append(errs, c.main.stop())
	}
	if c.redis != nil {
		errs = append(errs, c.redis.stop(syscall.SIGTERM, 30*time.Second))
	}
	if c.pg != nil {
		errs = append(errs, c.pg.stop())
	}
	errs = append(errs, os.RemoveAll(c.dir))
	return errors.Join(errs...)
}

// logOutputs logs the end of what every process printed.
func (c *queueCluster) logOutputs(t *testing.T) {
	t.Helper()
	if c.main != nil {
		t.Logf("n8n main output:\n%s", excerpt.Of(c.main.out.String()))
	}
	for _, w := range c.workers {
		if w.n8n != nil {
			t.Logf("n8n %s output:\n%s", w.name, excerpt.Of(w.n8n.out.String()))
		}
		if w.runner != nil {
			t.Logf("%s's pyrunner output:\n%s", w.name, excerpt.Of(w.runner.out.String()))
		}
	}
	if c.redis != nil {
		t.Logf("redis output:\n%s", excerpt.Of(c.redis.out.String()))
	}
	if c.pg != nil {
		t.Logf("postgres output:\n%s", excerpt.Of(c.pg.out.String()))
	}
}
