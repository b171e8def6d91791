package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/pyrunner/pyrunner/envcache"
	"github.com/pyrunner/pyrunner/internal/config"
	"github.com/pyrunner/pyrunner/internal/taskuser"
	"github.com/pyrunner/pyrunner/pool"
	"github.com/pyrunner/pyrunner/python"
)

// startPool decides who tasks run as, resolves the interpreter, installs
// the runtime and starts the executor: what `run` and `exec` share. The
// returned cleanup removes the tasks' directory and lets go of the task
// users; call it after the executor's Close.
func startPool(ctx context.Context, cfg *config.Config, onBuilt func(time.Duration, error), logger *slog.Logger) (pool.Executor, func(), error) {
	removeStaleTasksDirs(logger)
	tasks, err := createTasksDir()
	if err != nil {
		return nil, nil, err
	}
	users, err := taskuser.Decide(int(cfg.Pool.TaskUID), int(cfg.Pool.TaskGID), int(cfg.Pool.TaskUIDCount))
	if err != nil {
		tasks.remove()
		return nil, nil, err
	}
	cleanup := func() { tasks.remove(); users.Release() }
	pyCfg := pythonConfig(cfg, users, tasks.path)
	in, err := chooseInterpreter(ctx, cfg.Pool.Interpreter, pyCfg, logger)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	cacheDir := cfg.Pool.CacheDir
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
			StartupTimeout: cfg.Pool.StartupTimeout.Duration(),
			Logger:         logger,
		},
		MaxWorkers:    int(cfg.Pool.MaxWorkers),
		MinWorkers:    int(cfg.Pool.MinWorkers),
		MaxIdleTime:   cfg.Pool.MaxIdleTime.Duration(),
		Reuse:         cfg.Pool.Isolation == config.IsolationReuse,
		PerWorkflow:   cfg.Pool.Isolation == config.IsolationWorkflow,
		MaxExecutions: int(cfg.Pool.MaxExecutions),
		Zygotes:       int(cfg.Pool.Zygotes),
		WaitTimeout:   cfg.Pool.StartupTimeout.Duration(),
		MaxPayload:    int(cfg.Broker.MaxPayload),
	}
	opts.CodeCacheEntries = int(cfg.Packages.MaxCodeSize)
	if opts.CodeCacheEntries == 0 {
		opts.CodeCacheEntries = -1 // 0 turns the cache off
	}
	opts.CodeCacheBytes = int(cfg.Packages.MaxMemory)
	opts.CodeCacheTTL = cfg.Packages.CodeTTL.Duration()
	var exec pool.Executor
	if cfg.Pool.Isolation == config.IsolationSpawn {
		exec = pool.NewSpawnExecutor(opts)
	} else {
		envs, err := openEnvCache(ctx, cfg, in, cacheDir, pyCfg, onBuilt, logger)
		if err != nil {
			cleanup()
			return nil, nil, err
		}
		if envs != nil {
			removeCache := cleanup
			cleanup = func() { removeCache(); envs.Close() }
		}
		preload, all := withoutStar(cfg.Pool.Preload)
		opts.Spec.Config.Preload = preload
		exec = pool.NewEnvExecutor(pool.EnvOptions{
			Options: opts, Cache: envs, Default: cfg.Packages.Default(), PackagesAllow: cfg.Packages.Allow,
			PreloadAll: all, CleanupInterval: cfg.Packages.CleanupInterval.Duration(), PythonVersion: in.Version,
		})
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
func pythonConfig(cfg *config.Config, users taskuser.Users, tasksDir string) python.Config {
	limits := cfg.Limits
	return python.Config{
		StdlibAllow:            limits.StdlibAllow,
		ExternalAllow:          limits.ExternalAllow,
		BuiltinsDeny:           limits.BuiltinsDeny,
		BlockEnvAccess:         bool(limits.BlockEnvAccess),
		AllowTransitiveImports: bool(limits.AllowTransitiveImports),
		TaskUID:                users.UID,
		TaskGID:                users.GID,
		TaskUIDCount:           users.Count,
		UIDPerTask:             users.OwnUID, // decided once, in taskuser; pool and zygote follow it
		LandlockABI:            -1,
		MemoryMB:               int(limits.MaxMemoryMB),
		CPUSeconds:             limits.CPUSeconds(),
		MaxProcesses:           int(limits.MaxProcesses),
		MaxOutputChars:         int(limits.MaxOutputKB) << 10,
		MaxResultBytes:         int(limits.MaxResultMB) << 20,
		Network:                bool(limits.NetworkAccess),
		TasksDir:               tasksDir,
		ReadablePaths:          limits.ReadablePaths,
		Preload:                cfg.Pool.Preload,
		ImmortalObjects:        bool(cfg.Pool.ImmortalObjects),
		InheritCodeMappings:    bool(cfg.Pool.InheritCodeMappings),
	}
}

// pythonEnv is the environment of every Python process. With
// N8N_BLOCK_RUNNER_ENV_ACCESS (the default) it is a minimal one, and the
// task process clears even that; otherwise it is pyrunner's own, which
// never holds the tokens (see bootstrap.HideSecrets).
func pythonEnv(cfg *config.Config) []string {
	if !cfg.Limits.BlockEnvAccess {
		return os.Environ()
	}
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"}
	if tz, ok := os.LookupEnv("TZ"); ok {
		env = append(env, "TZ="+tz)
	}
	return env
}

// openEnvCache opens the cache of Python environments under cacheDir/envs,
// or returns nil when this interpreter cannot build environments (no venv
// or pip, and no uv): tasks then run in the interpreter as it is, and a
// Code node that asks for packages is told why it cannot have them.
func openEnvCache(ctx context.Context, cfg *config.Config, in envcache.Interpreter, cacheDir string, pyCfg python.Config, onBuilt func(time.Duration, error), logger *slog.Logger) (*envcache.Cache, error) {
	installer := "pip"
	if _, err := exec.LookPath("uv"); err == nil {
		installer = "uv"
	} else if err := exec.CommandContext(ctx, in.Executable, "-I", "-c", "import venv, pip").Run(); err != nil {
		if len(cfg.Packages.Default()) > 0 {
			return nil, fmt.Errorf("N8N_PYTHON_REQUIREMENTS needs venv and pip for %s (Debian: apt-get install python3-venv python3-pip), or uv on PATH", in.Executable)
		}
		logger.Info("No Python environments for Code nodes: this Python has no venv or pip (Debian: python3-venv, python3-pip) and uv is not on PATH", "python", in.Executable)
		return nil, nil
	}
	var usable func(context.Context, *envcache.Env) error
	if os.Geteuid() == 0 && pyCfg.TaskUID > 0 {
		usable = func(ctx context.Context, env *envcache.Env) error {
			return envcache.ImportableBy(ctx, env.Python(), env.RequestedImports, pyCfg.TaskUID, pyCfg.TaskGID)
		}
	}
	return envcache.OpenCache(envcache.CacheOptions{
		Dir: filepath.Join(cacheDir, "envs"), Interpreter: in, Installer: installer, Usable: usable,
		MaxEnvironments: int(cfg.Packages.MaxEnvironments), MaxDiskBytes: int64(cfg.Packages.MaxDiskMB) << 20,
		TTL: cfg.Packages.EnvTTL.Duration(), BuildConcurrency: int(cfg.Packages.BuildConcurrency), Logger: logger, OnBuilt: onBuilt,
	})
}

// withoutStar splits "*" off a N8N_PYTHON_PRELOAD list: it means "each
// environment's own packages", not a module.
func withoutStar(list []string) (modules []string, star bool) {
	for _, m := range list {
		if m == "*" {
			star = true
			continue
		}
		modules = append(modules, m)
	}
	return modules, star
}
