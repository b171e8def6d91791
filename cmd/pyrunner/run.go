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
	"github.com/pyrunner/pyrunner/internal/bootstrap"
	"github.com/pyrunner/pyrunner/internal/config"
	"github.com/pyrunner/pyrunner/internal/runnerlog"
	"github.com/pyrunner/pyrunner/metrics"
	"github.com/pyrunner/pyrunner/runner"
)

// runCommand is `pyrunner run`: config, logger, health server, pool,
// broker connection, signals. It returns the exit status.
func runCommand(args []string, secrets bootstrap.Secrets) int {
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
	cfg, err := config.Load(ctx, secrets)
	if err != nil {
		printConfigProblems("pyrunner", err)
		return 1
	}
	logger := slog.New(runnerlog.New(cfg.Log.Level(), os.Stdout, os.Stderr, cfg.Log.NoColor != ""))
	logger.Info("Starting runner...", "version", version)
	if cfg.Log.SentryDSN != "" {
		logger.Warn("N8N_SENTRY_DSN is set, but pyrunner does not report to Sentry; errors are in its log and metrics")
	}

	// Our own memory holds the tokens: no other process of this user may
	// ptrace us or read /proc/<pid>/mem.
	if err := bootstrap.SetNotDumpable(); err != nil {
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

	state := metrics.NewState(m, exec.Capacity)
	if cfg.Broker.HealthEnabled {
		srv, err := metrics.Listen(cfg.Broker.HealthHost, int(cfg.Broker.HealthPort), state, m, logger)
		if err != nil {
			logger.Error(err.Error())
			return 1
		}
		defer srv.Close()
	}

	r := runner.New(runner.Options{
		MaxConcurrency:          int(cfg.Broker.MaxConcurrency),
		TaskTimeout:             cfg.Limits.Timeout(),
		AutoShutdownTimeout:     cfg.Broker.AutoShutdownTimeout.Duration(),
		GracefulShutdownTimeout: cfg.Broker.GracefulShutdownTimeout.Duration(),
		MaxPayload:              int(cfg.Broker.MaxPayload),
		Logger:                  logger,
		Observer:                state,
	}, exec)

	runCtx, hardStop := context.WithCancel(ctx)
	defer hardStop()
	go handleSignals(runCtx, sigs, r, hardStop, cfg.Broker.GracefulShutdownTimeout.Duration(), logger)

	dialer := &broker.Dialer{
		BrokerURI:  cfg.Broker.URI,
		RunnerID:   newRunnerID(),
		GrantToken: cfg.Broker.GrantToken,
		AuthToken:  cfg.Broker.AuthToken,
		MaxPayload: int64(cfg.Broker.MaxPayload),
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
func warnAboutReadableSecrets(secrets bootstrap.Secrets, logger *slog.Logger) {
	for _, name := range bootstrap.SecretVars {
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
