package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"

	"github.com/pyrunner/pyrunner/broker"
	"github.com/pyrunner/pyrunner/envcache"
	"github.com/pyrunner/pyrunner/metrics"
	"github.com/pyrunner/pyrunner/pool"
	"github.com/pyrunner/pyrunner/python"
	"github.com/pyrunner/pyrunner/runner"
)

// runCommand is `pyrunner run`: config, logger, health server, pool,
// broker connection, signals. It returns the exit status.
func runCommand(secrets map[string]string) int {
	ctx := context.Background()
	cfg, err := LoadConfig(ctx, secretLookuper(secrets))
	if err != nil {
		fmt.Fprintf(os.Stderr, "pyrunner: invalid configuration:\n")
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintf(os.Stderr, "  - %s\n", line)
		}
		return 1
	}
	level, _ := parseLevel(cfg.LogLevel)
	logger := slog.New(newLineHandler(level, os.Stdout, os.Stderr, cfg.NoColor != ""))
	logger.Info("Starting runner...", "version", version)
	if cfg.SentryDSN != "" {
		logger.Warn("N8N_SENTRY_DSN is set, but pyrunner does not report to Sentry; errors are in its log and metrics")
	}

	// Our own memory holds the tokens: no other process of this user may
	// ptrace us or read /proc/<pid>/mem.
	if err := setNotDumpable(); err != nil {
		logger.Warn("could not make the runner non-dumpable", "error", err)
	}

	warnAboutReadableSecrets(secrets, logger)

	m := metrics.New()
	exec, cleanup, err := startPool(ctx, cfg, logger)
	if err != nil {
		logger.Error(fmt.Sprintf("Python pool failed to start: %v", err))
		return 1
	}
	defer cleanup()
	defer exec.Close()

	state := metrics.NewState(m, exec.Capacity)
	if cfg.HealthEnabled {
		srv, err := metrics.Listen(cfg.HealthHost, int(cfg.HealthPort), state, m, logger)
		if err != nil {
			logger.Error(err.Error())
			return 1
		}
		defer srv.Close()
	}

	r := runner.New(runner.Options{
		MaxConcurrency:          int(cfg.MaxConcurrency),
		TaskTimeout:             cfg.taskTimeout(),
		AutoShutdownTimeout:     cfg.autoShutdown(),
		GracefulShutdownTimeout: cfg.gracefulTimeout(),
		MaxPayload:              int(cfg.MaxPayload),
		Logger:                  logger,
		Observer:                state,
	}, exec)

	runCtx, hardStop := context.WithCancel(ctx)
	defer hardStop()
	go handleSignals(runCtx, r, hardStop, cfg.gracefulTimeout(), logger)

	dialer := &broker.Dialer{
		BrokerURI:  cfg.TaskBrokerURI,
		RunnerID:   newRunnerID(),
		GrantToken: cfg.GrantToken,
		AuthToken:  cfg.AuthToken,
		MaxPayload: int64(cfg.MaxPayload),
		Logger:     logger,
		OnFailure:  state.Failed,
	}
	if err := r.Run(runCtx, dialer); err != nil {
		logger.Error(err.Error())
		return 1
	}
	return 0
}

// startPool resolves the interpreter, installs the runtime and starts the
// executor. The returned cleanup removes the tasks' directory.
func startPool(ctx context.Context, cfg *Config, logger *slog.Logger) (pool.Executor, func(), error) {
	in, err := envcache.ResolveInterpreter(ctx, cfg.Interpreter)
	if err != nil {
		return nil, nil, err
	}
	cacheDir := cfg.CacheDir
	if cacheDir == "" {
		cacheDir = envcache.DefaultCacheDir()
	}
	runtimeDir, err := envcache.InstallRuntime(ctx, cacheDir, in)
	if err != nil {
		return nil, nil, err
	}
	// Each task process gets a private working directory in here. 0711: a
	// task can reach its own directory but not list the others.
	tasksDir, err := os.MkdirTemp("", "pyrunner-tasks-")
	if err != nil {
		return nil, nil, fmt.Errorf("creating the tasks' directory: %w", err)
	}
	cleanup := func() { os.RemoveAll(tasksDir) }
	if err := os.Chmod(tasksDir, 0o711); err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("creating the tasks' directory: %w", err)
	}
	pyCfg, claim, err := pythonConfig(cfg, tasksDir)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	if claim != nil {
		removeDir := cleanup
		cleanup = func() { removeDir(); claim.Close() }
	}
	if os.Geteuid() == 0 && pyCfg.TaskUID == 0 {
		logger.Warn("N8N_PYTHON_TASK_UID=0: tasks run as root; only Landlock and seccomp fence them in")
	}
	opts := pool.Options{
		Spec: pool.ProcessSpec{
			Executable:     in.Executable,
			RuntimeDir:     runtimeDir,
			Env:            pythonEnv(cfg),
			Config:         pyCfg,
			StartupTimeout: ms(cfg.PoolStartupTimeout),
			Logger:         logger,
		},
		MaxWorkers:    int(cfg.PoolMaxWorkers),
		MinWorkers:    int(cfg.PoolMinWorkers),
		MaxIdleTime:   ms(cfg.PoolMaxIdleTime),
		Reuse:         cfg.Isolation == isolationReuse,
		MaxExecutions: int(cfg.PoolMaxExecutions),
		Zygotes:       int(cfg.PoolZygotes),
		WaitTimeout:   ms(cfg.PoolStartupTimeout),
		MaxPayload:    int(cfg.MaxPayload),
	}
	var exec pool.Executor = pool.NewZygoteExecutor(opts)
	if cfg.Isolation == isolationSpawn {
		exec = pool.NewSpawnExecutor(opts)
	}
	if err := exec.Start(ctx); err != nil {
		exec.Close()
		cleanup()
		return nil, nil, err
	}
	logger.Debug("Python pool ready", "python", in.Executable, "version", in.VersionString(), "runtime", runtimeDir, "tasks", tasksDir)
	return exec, cleanup, nil
}

// pythonConfig is what every task process is told of the configuration.
// claim, when not nil, holds this pyrunner's block of task uids: keep it
// open as long as tasks run.
func pythonConfig(cfg *Config, tasksDir string) (python.Config, *os.File, error) {
	uid, gid, count, claim, err := cfg.taskIDs()
	if err != nil {
		return python.Config{}, nil, err
	}
	return python.Config{
		StdlibAllow:            cfg.StdlibAllow,
		ExternalAllow:          cfg.ExternalAllow,
		BuiltinsDeny:           cfg.BuiltinsDeny,
		BlockEnvAccess:         bool(cfg.BlockEnvAccess),
		AllowTransitiveImports: bool(cfg.AllowTransitiveImports),
		TaskUID:                uid,
		TaskGID:                gid,
		TaskUIDCount:           count,
		LandlockABI:            -1,
		MemoryMB:               int(cfg.MaxMemoryMB),
		CPUSeconds:             cfg.cpuSeconds(),
		MaxProcesses:           int(cfg.MaxProcesses),
		MaxOutputChars:         int(cfg.MaxOutputKB) << 10,
		MaxResultBytes:         int(cfg.MaxResultMB) << 20,
		Network:                bool(cfg.NetworkAccess),
		TasksDir:               tasksDir,
		ReadablePaths:          cfg.ReadablePaths,
		Preload:                cfg.Preload,
	}, claim, nil
}

// pythonEnv is the environment of every Python process. With
// N8N_BLOCK_RUNNER_ENV_ACCESS (the default) it is a minimal one, and the
// task process clears even that; otherwise it is pyrunner's own, which
// never holds the tokens (see hideSecrets).
func pythonEnv(cfg *Config) []string {
	if !cfg.BlockEnvAccess {
		return os.Environ()
	}
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"}
	if tz, ok := os.LookupEnv("TZ"); ok {
		env = append(env, "TZ="+tz)
	}
	return env
}

// handleSignals: SIGTERM or SIGINT starts a graceful shutdown (n8n's
// wording in the log); a second one, or the graceful timeout plus a
// margin, stops at once.
func handleSignals(ctx context.Context, r *runner.Runner, hardStop func(), grace time.Duration, logger *slog.Logger) {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	var sig os.Signal
	select {
	case sig = <-sigs:
	case <-ctx.Done():
		return
	}
	name := "SIGTERM"
	if sig == syscall.SIGINT {
		name = "SIGINT"
	}
	logger.Info(fmt.Sprintf("Received %s signal, starting shutdown...", name))
	r.Shutdown()
	select {
	case <-sigs:
		logger.Warn("Second signal: stopping now")
	case <-time.After(grace + 2*time.Second):
		logger.Warn("Shutdown overran the graceful timeout: stopping now")
	case <-ctx.Done():
		return
	}
	hardStop()
}

// warnAboutReadableSecrets: tasks may read system directories (/etc,
// /usr, …); a token file there would be within their reach.
func warnAboutReadableSecrets(secrets map[string]string, logger *slog.Logger) {
	for _, name := range secretVars {
		path := secrets[name+"_FILE"]
		for _, dir := range []string{"/etc/", "/usr/", "/opt/", "/lib/", "/proc/", "/sys/"} {
			if strings.HasPrefix(path, dir) {
				logger.Warn(fmt.Sprintf("%s_FILE is under %s, which tasks may read; keep the secret elsewhere (e.g. /run/secrets)", name, dir))
			}
		}
	}
}

func newRunnerID() string {
	return strings.ReplaceAll(uuid.NewString(), "-", "")[:22]
}

func setNotDumpable() error {
	const prSetDumpable = 4
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetDumpable, 0, 0); errno != 0 {
		return errno
	}
	return nil
}
