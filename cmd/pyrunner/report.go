package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/pyrunner/pyrunner/metrics"
	"github.com/pyrunner/pyrunner/metrics/report"
)

// reportCommand is `pyrunner report`: fetch a running pyrunner's /stats
// and write the markdown performance report (metrics/report).
func reportCommand(args []string) int {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	url := fs.String("url", defaultHealthURL(), "the running pyrunner's health server (N8N_RUNNERS_HEALTH_CHECK_SERVER_HOST:PORT)")
	out := fs.String("o", "", "write the report to this file instead of stdout")
	timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for /stats")
	if code, done := parseFlags(fs, args); done {
		return code
	}
	source := strings.TrimSuffix(*url, "/") + "/stats"
	st, err := fetchStats(source, *timeout)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pyrunner report: %v\n", err)
		return 1
	}
	w := io.Writer(os.Stdout)
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			fmt.Fprintf(os.Stderr, "pyrunner report: %v\n", err)
			return 1
		}
		defer f.Close()
		w = f
	}
	if err := report.Render(w, st, source); err != nil {
		fmt.Fprintf(os.Stderr, "pyrunner report: %v\n", err)
		return 1
	}
	return 0
}

func fetchStats(url string, timeout time.Duration) (metrics.Stats, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return metrics.Stats{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return metrics.Stats{}, fmt.Errorf("%w (is pyrunner running with N8N_RUNNERS_HEALTH_CHECK_SERVER_ENABLED=true?)", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return metrics.Stats{}, fmt.Errorf("%s answered %s", url, resp.Status)
	}
	var st metrics.Stats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return metrics.Stats{}, fmt.Errorf("%s: not pyrunner's /stats: %w", url, err)
	}
	return st, nil
}

// defaultHealthURL is the health server as the environment configures
// it, reached from this machine.
func defaultHealthURL() string {
	return "http://" + net.JoinHostPort(healthAddress())
}
