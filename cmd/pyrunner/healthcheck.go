package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"
)

// healthcheckCommand is `pyrunner healthcheck`: GET the runner's health
// endpoint and exit 0 when it answers 200, else 1. For Docker's HEALTHCHECK
// and Kubernetes exec probes in images without curl. The address defaults
// to the health server's configured host and port.
func healthcheckCommand(args []string) int {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	path := fs.String("path", "/healthz", "endpoint to ask: /healthz (alive) or /readyz (registered and able to run a task)")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for the answer")
	if code, done := parseFlags(fs, args); done {
		return code
	}
	host := os.Getenv("N8N_RUNNERS_HEALTH_CHECK_SERVER_HOST")
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	port := os.Getenv("N8N_RUNNERS_HEALTH_CHECK_SERVER_PORT")
	if _, err := strconv.Atoi(port); err != nil {
		port = "5681"
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	url := "http://" + net.JoinHostPort(host, port) + *path
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pyrunner healthcheck: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(os.Stderr, "pyrunner healthcheck: %s answered %d: %s\n", url, resp.StatusCode, body)
		return 1
	}
	return 0
}
