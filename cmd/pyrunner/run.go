package main

import (
	"context"
	"errors"
	"flag"
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
func runCommand(args []string, secrets map[string]string) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: pyrunner [run]\n\nConnects to n8n's task broker and runs Python Code-node tasks. It takes no flags: "+
			"everything is configured by environment variables (N8N_RUNNERS_TASK_BROKER_URI, N8N_RUNNERS_AUTH_TOKEN or "+
			"N8N_RUNNERS_GRANT_TOKEN, N8N_PYTHON_*); README.md lists them all with their defaults.\n")
	}
	if code, done := parseFlags(fs, args); done {
		return code
	}
	ctx := context.Background()
	cfg, err := LoadConfig(ctx, secretLookuper(secrets))
	mcfg, metricsProblems := loadMetricsConfig(ctx, secretLookuper(secrets))
	if err := errors.Join(append([]error{err}, metricsProblems...)...); err != nil {
		printConfigProblems("pyrunner", err)
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

	// Signals are ours from here on: one that comes while the pool starts
	// ends the start-up, and what it created is removed.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	startCtx, abortStart := context.WithCancelCause(ctx)
	defer abortStart(nil)
	started := make(chan struct{})
	go func() {
		select {
		case sig := <-sigs:
			abortStart(fmt.Errorf("received %s", signalName(sig)))
		case <-started:
		}
	}()

	m := metrics.New()
	exec, cleanup, err := startPool(startCtx, cfg, logger)
	close(started)
	if startCtx.Err() != nil {
		if err == nil {
			exec.Close()
			cleanup()
		}
		logger.Info(fmt.Sprintf("Stopped during start-up: %v", context.Cause(startCtx)))
		return 0
	}
	if errors.Is(err, envcache.ErrNoInterpreter) {
		printConfigProblems("pyrunner", err)
		return 1
	}
	if err != nil {
		logger.Error(fmt.Sprintf("Python pool failed to start: %v", err))
		return 1
	}
	defer cleanup()
	defer exec.Close()

	state := metrics.NewState(m, time.Now)
	mon, gated := startMonitor(m, state, exec, monitorOptions(cfg, mcfg, logger))
	defer mon.Close()
	if cfg.HealthEnabled {
		srv, err := metrics.Listen(cfg.HealthHost, int(cfg.HealthPort), mon, m, logger)
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
	}, gated)

	runCtx, hardStop := context.WithCancel(ctx)
	defer hardStop()
	go handleSignals(runCtx, sigs, r, hardStop, cfg.gracefulTimeout(), logger)

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

// printConfigProblems prints a configuration error, one problem a line.
func printConfigProblems(command string, err error) {
	fmt.Fprintf(os.Stderr, "%s: invalid configuration:\n", command)
	for _, line := range strings.Split(err.Error(), "\n") {
		fmt.Fprintf(os.Stderr, "  - %s\n", line)
	}
}

// startPool resolves the interpreter, installs the runtime and starts the
// executor. The returned cleanup removes the tasks' directory.
func startPool(ctx context.Context, cfg *Config, logger *slog.Logger) (pool.Executor, func(), error) {
	removeStaleTasksDirs(logger)
	tasks, err := createTasksDir()
	if err != nil {
		return nil, nil, err
	}
	cleanup := tasks.remove
	pyCfg, claim, err := pythonConfig(cfg, tasks.path)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	if claim != nil {
		removeDir := cleanup
		cleanup = func() { removeDir(); claim.Close() }
	}
	in, err := chooseInterpreter(ctx, cfg.Interpreter, pyCfg, logger)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	cacheDir := cfg.CacheDir
	if cacheDir == "" {
		cacheDir = envcache.DefaultCacheDir()
	}
	runtimeDir, err := envcache.InstallRuntime(ctx, cacheDir, in)
	if err != nil {
		cleanup()
		return nil, nil, err
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
	logger.Debug("Python pool ready", "python", in.Executable, "version", in.VersionString(), "runtime", runtimeDir, "tasks", tasks.path)
	return exec, cleanup, nil
}

// chooseInterpreter picks the Python (envcache.Choose) and logs which one
// and why. When pyrunner is root and tasks run as another user, that user
// must be able to read it.
func chooseInterpreter(ctx context.Context, setting string, pyCfg python.Config, logger *slog.Logger) (envcache.Interpreter, error) {
	var usable func(context.Context, envcache.Interpreter) error
	if os.Geteuid() == 0 && pyCfg.TaskUID > 0 {
		usable = func(ctx context.Context, in envcache.Interpreter) error {
			return in.ReadableBy(ctx, pyCfg.TaskUID, pyCfg.TaskGID)
		}
	}
	choice, err := envcache.Choose(ctx, setting, usable)
	if err != nil {
		return envcache.Interpreter{}, err
	}
	logger.Info(fmt.Sprintf("Using Python %s at %s: %s", choice.VersionString(), choice.Executable, choice.Reason))
	return choice.Interpreter, nil
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
		// Decided here, once: the pool and the zygotes follow it.
		UIDPerTask:     count > 1 && uid > 0 && os.Geteuid() == 0,
		LandlockABI:    -1,
		MemoryMB:       int(cfg.MaxMemoryMB),
		CPUSeconds:     cfg.cpuSeconds(),
		MaxProcesses:   int(cfg.MaxProcesses),
		MaxOutputChars: int(cfg.MaxOutputKB) << 10,
		MaxResultBytes: int(cfg.MaxResultMB) << 20,
		Network:        bool(cfg.NetworkAccess),
		TasksDir:       tasksDir,
		ReadablePaths:  cfg.ReadablePaths,
		Preload:        cfg.Preload,
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
func handleSignals(ctx context.Context, sigs <-chan os.Signal, r *runner.Runner, hardStop func(), grace time.Duration, logger *slog.Logger) {
	var sig os.Signal
	select {
	case sig = <-sigs:
	case <-ctx.Done():
		return
	}
	logger.Info(fmt.Sprintf("Received %s signal, starting shutdown...", signalName(sig)))
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

// signalName is SIGTERM, SIGINT, … as n8n's runner logs them.
func signalName(sig os.Signal) string {
	switch sig {
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGHUP:
		return "SIGHUP"
	}
	return sig.String()
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
