package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/pyrunner/pyrunner/envcache"
	"github.com/pyrunner/pyrunner/internal/bootstrap"
	"github.com/pyrunner/pyrunner/internal/config"
	"github.com/pyrunner/pyrunner/internal/loadgen"
	"github.com/pyrunner/pyrunner/internal/runnerlog"
	"github.com/pyrunner/pyrunner/pool"
)

// execCommand is `pyrunner exec`: run a Code-node snippet on items through
// the same pool and sandbox as n8n's tasks, without n8n, and print the
// result as JSON. With -repeat it runs the snippet many times and prints
// latency statistics instead.
func execCommand(args []string, secrets bootstrap.Secrets) int {
	fs := flag.NewFlagSet("exec", flag.ContinueOnError)
	code := fs.String("c", "", "the snippet (or -code FILE)")
	codeFile := fs.String("code", "", "file holding the snippet; - for stdin")
	itemsFile := fs.String("items", "", "JSON file with the input items (an array; plain objects become {\"json\": object}); - for stdin")
	mode := fs.String("mode", "all", "all (runOnceForAllItems) or each (runOnceForEachItem)")
	continueOnFail := fs.Bool("continue-on-fail", false, "report a failure as one error item, as the Code node's option does")
	priority := fs.String("priority", "normal", "high, normal or low: the pool's queue order")
	repeat := fs.Int("repeat", 0, "run it this many times and print latency statistics")
	concurrency := fs.Int("concurrency", 1, "with -repeat, tasks in flight at once")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: pyrunner exec [flags]\n\nRuns a Python Code-node snippet through pyrunner's pool and sandbox, configured by the same\nenvironment variables as `pyrunner run`, and prints the result as JSON.\n\n")
		fs.PrintDefaults()
	}
	if code, done := parseFlags(fs, args); done {
		return code
	}
	settings, prio, err := execSettings(*code, *codeFile, *itemsFile, *mode, *continueOnFail, *priority)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pyrunner exec: %v\n", err)
		return 2
	}

	// Interrupted (Ctrl-C, a closed terminal, SIGTERM): the task is
	// cancelled and everything pyrunner created is removed before it exits.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	// No broker here: its settings, tokens included, are not needed.
	cfg, err := config.LoadWithoutBroker(ctx, secrets)
	if err != nil {
		printConfigProblems("pyrunner exec", err)
		return 1
	}
	logger := slog.New(runnerlog.New(max(cfg.Log.Level(), slog.LevelWarn), os.Stderr, os.Stderr, cfg.Log.NoColor != ""))
	exec, cleanup, err := startPool(ctx, cfg, logger)
	if errors.Is(err, envcache.ErrNoInterpreter) {
		printConfigProblems("pyrunner exec", err)
		return 1
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "pyrunner exec: %v\n", err)
		return 1
	}
	defer cleanup()
	defer exec.Close()

	var read struct{ Code, NodeMode string }
	_ = json.Unmarshal(settings, &read) // built above: always an object
	task := pool.Task{ID: "exec", Settings: settings, Timeout: cfg.Limits.Timeout(), Priority: prio, Code: read.Code, Mode: read.NodeMode}
	if r, ok := exec.(interface{ Ready(context.Context) error }); ok {
		// A default environment (N8N_PYTHON_REQUIREMENTS) is built first.
		if err := r.Ready(ctx); err != nil {
			fmt.Fprintf(os.Stderr, "pyrunner exec: %v\n", err)
			return 1
		}
	}
	if *repeat > 0 {
		return execRepeat(ctx, exec, task, *repeat, max(1, *concurrency))
	}
	res := exec.Run(ctx, task)
	if ctx.Err() != nil {
		fmt.Fprintln(os.Stderr, "pyrunner exec: interrupted")
		return 130
	}
	if res.Err != nil && res.Err.Stack != "" {
		// The traceback, for a person: user frames only, user line numbers.
		fmt.Fprint(os.Stderr, res.Err.Stack)
	}
	if *continueOnFail {
		res = res.ContinueOnFail()
	}
	out := struct {
		Result json.RawMessage   `json:"result,omitempty"`
		Prints []json.RawMessage `json:"prints"`
		Error  *pool.TaskError   `json:"error,omitempty"`
	}{Result: res.Result, Prints: res.Prints, Error: res.Err}
	if out.Prints == nil {
		out.Prints = []json.RawMessage{}
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	_ = enc.Encode(out)
	if res.Err != nil {
		return 1
	}
	return 0
}

// execSettings builds Code-node settings from the flags.
func execSettings(code, codeFile, itemsFile, mode string, continueOnFail bool, priority string) (json.RawMessage, pool.Priority, error) {
	if (code == "") == (codeFile == "") {
		return nil, 0, errors.New("give the snippet with -c or -code")
	}
	if codeFile != "" {
		b, err := readInput(codeFile)
		if err != nil {
			return nil, 0, fmt.Errorf("reading the snippet: %w", err)
		}
		code = string(b)
	}
	nodeMode := map[string]string{"all": "runOnceForAllItems", "each": "runOnceForEachItem"}[mode]
	if nodeMode == "" {
		return nil, 0, fmt.Errorf("-mode must be all or each, got %q", mode)
	}
	prio, ok := map[string]pool.Priority{"high": pool.High, "normal": pool.Normal, "low": pool.Low}[priority]
	if !ok {
		return nil, 0, fmt.Errorf("-priority must be high, normal or low, got %q", priority)
	}
	items := []map[string]any{}
	if itemsFile != "" {
		b, err := readInput(itemsFile)
		if err != nil {
			return nil, 0, fmt.Errorf("reading the items: %w", err)
		}
		raw, err := parseItems(b)
		if err != nil {
			return nil, 0, err
		}
		for i, it := range raw {
			obj, isObj := it.(map[string]any)
			if _, hasJSON := obj["json"]; !isObj || !hasJSON {
				obj = map[string]any{"json": it}
			}
			if _, ok := obj["pairedItem"]; !ok {
				obj["pairedItem"] = map[string]any{"item": i}
			}
			items = append(items, obj)
		}
	}
	b, err := json.Marshal(map[string]any{"code": code, "nodeMode": nodeMode, "items": items, "continueOnFail": continueOnFail})
	return b, prio, err
}

// itemsShape says what -items takes, for the errors that show it.
const itemsShape = `the items must be a JSON array of n8n items, e.g. [{"json": {"name": "Ada"}}, {"json": {"name": "Grace"}}] ` +
	`(a plain object in the array is taken as an item's json: [{"name": "Ada"}])`

// parseItems reads -items: a JSON array; anything else is refused with
// what it should look like.
func parseItems(b []byte) ([]any, error) {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("the items are not valid JSON (%v); %s", err, itemsShape)
	}
	items, ok := v.([]any)
	if !ok {
		hint := ""
		if _, isObject := v.(map[string]any); isObject {
			hint = "; wrap a single item in brackets: [{...}]"
		}
		return nil, fmt.Errorf("got %s; %s%s", jsonKind(v), itemsShape, hint)
	}
	return items, nil
}

// jsonKind names the type of a decoded JSON value that is not an array.
func jsonKind(v any) string {
	switch v.(type) {
	case map[string]any:
		return "a JSON object"
	case string:
		return "a string"
	case float64:
		return "a number"
	case bool:
		return "a boolean"
	}
	return "null"
}

func readInput(name string) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(os.Stdin)
	}
	return os.ReadFile(name)
}

// execRepeat runs task n times, c at a time, and prints latency percentiles
// and throughput as JSON.
func execRepeat(ctx context.Context, exec pool.Executor, task pool.Task, n, c int) int {
	res := loadgen.ClosedLoop(n, c, func(int) (time.Duration, bool) {
		start := time.Now()
		r := exec.Run(ctx, task)
		return time.Since(start), r.Err == nil
	})
	_ = json.NewEncoder(os.Stdout).Encode(res)
	if res.Failed > 0 {
		return 1
	}
	return 0
}
