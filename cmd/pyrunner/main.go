// Command pyrunner is an n8n task runner for Python Code nodes: a drop-in
// replacement for n8n's official Python runner. See README.md.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/pyrunner/pyrunner/internal/bootstrap"
)

// version and commit are set at build time (-ldflags "-X main.version=...
// -X main.commit=...").
var version, commit = "dev", ""

const usage = `pyrunner — n8n's Python task runner, on a warm pool of Python processes

Usage:
  pyrunner [run]     connect to the n8n broker and run tasks (configured by environment)
  pyrunner demo      start an embedded fake n8n broker, run pyrunner against it, show results
  pyrunner exec      run a Code-node snippet on items through the same pool and sandbox, print JSON
  pyrunner healthcheck [-path /readyz]   exit 0 if the running pyrunner's health endpoint answers 200
  pyrunner report [-url http://host:port] [-o report.md]   a markdown performance report from a running pyrunner's /stats
  pyrunner bench [-o dir] [-n 200]   the benchmark report: five Code nodes in pyrunner's setups, Pyodide and n8n's runner
  pyrunner version   print the version
  pyrunner help      this text

Every command answers -h with its own usage. Configuration is by environment
variables: see README.md.
`

// parseFlags parses a subcommand's flags. done: the command should exit
// now with code (0 after -h printed the usage, 2 for a bad flag or an
// argument the command does not take).
func parseFlags(fs *flag.FlagSet, args []string) (code int, done bool) {
	switch err := fs.Parse(args); {
	case errors.Is(err, flag.ErrHelp):
		return 0, true
	case err != nil:
		return 2, true
	case fs.NArg() > 0:
		fmt.Fprintf(fs.Output(), "pyrunner %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		fs.Usage()
		return 2, true
	}
	return 0, false
}

func main() {
	// A closed stdout or stderr (`pyrunner exec … | head`, a launcher that
	// died) must not kill pyrunner before it cleans up: with SIGPIPE
	// notified, such a write fails with EPIPE instead. Nothing reads the
	// channel; its one slot absorbs the signals.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	// Before anything else: no secret may stay readable in our initial
	// environment (this may re-execute the binary).
	secrets, err := bootstrap.HideSecrets()
	if err != nil {
		fatal("%v", err)
	}
	if bootstrap.NeedsInit() {
		os.Exit(bootstrap.RunInit(secrets))
	}
	cmd := "run"
	if len(os.Args) > 1 {
		cmd = os.Args[1]
	}
	switch cmd {
	case "run":
		os.Exit(runCommand(os.Args[min(2, len(os.Args)):], secrets))
	case "demo":
		os.Exit(demoCommand(os.Args[2:]))
	case "exec":
		os.Exit(execCommand(os.Args[2:], secrets))
	case "healthcheck":
		os.Exit(healthcheckCommand(os.Args[2:]))
	case "report":
		os.Exit(reportCommand(os.Args[2:]))
	case "bench":
		os.Exit(benchCommand(os.Args[2:], secrets))
	case "version", "--version":
		fmt.Println("pyrunner", version)
	case "help", "--help", "-h":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "pyrunner: unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
}

// fatal prints a startup error on stderr, for when no logger exists yet.
func fatal(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "pyrunner: "+format+"\n", args...)
	os.Exit(1)
}
