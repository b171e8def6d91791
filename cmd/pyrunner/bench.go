package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/pyrunner/pyrunner/internal/benchreport"
	"github.com/pyrunner/pyrunner/internal/bootstrap"
	"github.com/pyrunner/pyrunner/internal/config"
	"github.com/pyrunner/pyrunner/internal/taskuser"
)

// benchCommand is `pyrunner bench`: the founding table, measured (see
// internal/benchreport).
func benchCommand(args []string, secrets bootstrap.Secrets) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	outDir := fs.String("o", ".", "directory for benchmark-results.json, benchmark-report.md and benchmark-chart.svg")
	tasks := fs.Int("n", 200, "tasks run one at a time after warm-up (latency percentiles, throughput at concurrency 1)")
	throughputTasks := fs.Int("throughput-n", 100, "tasks then run -c at a time (throughput)")
	concurrency := fs.Int("c", 4, "concurrency of the throughput measurement")
	var scenarios, setups config.List
	fs.Func("scenarios", "comma-separated scenarios to run (calc,numpy,pandas,json,files); empty: all", scenarios.EnvDecode)
	fs.Func("setups", "comma-separated setups to run (direct,pool,cached,reuse,official,pyodide-"+
		benchreport.PyodideN8N+",pyodide-"+benchreport.PyodideNewest+",cpython); empty: all. -previous adds its column whatever this names", setups.EnvDecode)
	previous := fs.String("previous", "", "another pyrunner binary (the build before a change) whose worker pool is measured as a column of its own (previous), right after this one's")
	render := fs.String("render", "", "measure nothing: write the report and chart of this benchmark-results.json again")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: pyrunner bench [flags]\n\nMeasures five Code-node scenarios in pyrunner's setups, in a warm Pyodide and (with\nPYRUNNER_BENCH_OFFICIAL_RUNNER) in n8n's official Python runner, and writes the report.\nTasks run on N8N_PYTHON_INTERPRETER's Python, chosen as `pyrunner run` chooses it.\n\n")
		fs.PrintDefaults()
	}
	if code, done := parseFlags(fs, args); done {
		return code
	}
	if *render != "" {
		res, err := benchreport.ReadResults(*render)
		if err == nil {
			err = writeBench(res, *outDir)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "pyrunner bench: %v\n", err)
			return 1
		}
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	// The first signal stops the bench cleanly; a second one kills it.
	go func() { <-ctx.Done(); stop() }()
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(os.Stderr, "pyrunner bench: %v\n", err)
		return 1
	}
	interpreter, err := benchInterpreter(ctx, secrets)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pyrunner bench: %v\n", err)
		return 1
	}
	res, err := benchreport.Run(ctx, benchreport.Options{
		Binary: self, Interpreter: interpreter, Tasks: *tasks, ThroughputTasks: *throughputTasks, Concurrency: *concurrency,
		Scenarios: scenarios, Setups: setups, Previous: *previous,
		Official: os.Getenv("PYRUNNER_BENCH_OFFICIAL_RUNNER"), CacheDir: benchreport.DefaultCacheDir(),
		Pyodide: []string{benchreport.PyodideN8N, benchreport.PyodideNewest}, Version: version, Commit: commit, Progress: os.Stdout,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "pyrunner bench: %v\n", err)
		return 1
	}
	if err := writeBench(res, *outDir); err != nil {
		fmt.Fprintf(os.Stderr, "pyrunner bench: %v\n", err)
		return 1
	}
	return 0
}

func writeBench(res *benchreport.Results, dir string) error {
	written, err := res.Write(dir)
	if err != nil {
		return err
	}
	fmt.Printf("Wrote %s (measured in %.0f s)\n", strings.Join(written, ", "), res.Seconds)
	return nil
}

// benchInterpreter is the Python `pyrunner run` would run tasks on with
// this environment, as a path.
func benchInterpreter(ctx context.Context, secrets bootstrap.Secrets) (string, error) {
	cfg, err := config.LoadWithoutBroker(ctx, secrets)
	if err != nil {
		return "", fmt.Errorf("invalid configuration: %w", err)
	}
	users, err := taskuser.Decide(int(cfg.Pool.TaskUID), int(cfg.Pool.TaskGID), int(cfg.Pool.TaskUIDCount))
	if err != nil {
		return "", err
	}
	defer users.Release()
	in, err := chooseInterpreter(ctx, cfg.Pool.Interpreter, pythonConfig(cfg, users, ""), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return "", err
	}
	return in.Executable, nil
}
