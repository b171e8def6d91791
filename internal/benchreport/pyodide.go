package benchreport

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/pyrunner/pyrunner/internal/excerpt"
)

// The Pyodide columns: 0.28.3, the last Pyodide n8n shipped for its
// in-process Python Code node, and the newest on npm when this was
// written, pinned so that runs compare.
const (
	PyodideN8N    = "0.28.3"
	PyodideNewest = "314.0.8"
)

//go:embed pyodide_harness.js
var pyodideHarness []byte

const pyodideMeasured = "in-process in Node, as n8n 1.x ran Python Code nodes: items converted in (toPy), " +
	"the code run, the result converted out (toJs), timed with performance.now() inside the Node process"

// PyodideInfo is what a Pyodide column ran on.
type PyodideInfo struct {
	Version string  `json:"version"`
	Python  string  `json:"python"`
	Node    string  `json:"node"`
	Dir     string  `json:"dir"`
	LoadMs  float64 `json:"load_ms"`
}

// pyodideSetup installs pyodide@version from npm into cacheDir (once; a
// stamp file marks a finished install) and returns its column, or a column
// that says why it cannot run here.
func pyodideSetup(ctx context.Context, version, cacheDir string, logf func(string, ...any)) (Setup, *PyodideInfo) {
	s := Setup{Key: "pyodide-" + version, Title: "Pyodide " + version + " (in-process, warm)", Measured: pyodideMeasured}
	node, err := findNode(ctx)
	if err != nil {
		s.NotRun = "not run: " + err.Error()
		return s, nil
	}
	dir, err := installPyodide(ctx, version, cacheDir, logf)
	if err != nil {
		s.NotRun = "not run: " + err.Error()
		return s, nil
	}
	info := &PyodideInfo{Version: version, Node: node.version, Dir: dir}
	s.start = func(ctx context.Context, sc Scenario) (Target, error) {
		return startPyodide(ctx, node.path, dir, sc, info)
	}
	return s, info
}

type nodeBinary struct{ path, version string }

// findNode is the node on PATH, if it is 18 or newer (what Pyodide needs).
func findNode(ctx context.Context) (nodeBinary, error) {
	path, err := exec.LookPath("node")
	if err != nil {
		return nodeBinary{}, errors.New("Node.js is not on PATH (Pyodide runs under Node 18 or newer)")
	}
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		return nodeBinary{}, fmt.Errorf("%s --version: %w", path, err)
	}
	version := strings.TrimSpace(string(out))
	major, _ := strconv.Atoi(strings.SplitN(strings.TrimPrefix(version, "v"), ".", 2)[0])
	if major < 18 {
		return nodeBinary{}, fmt.Errorf("%s is Node %s; Pyodide needs 18 or newer", path, version)
	}
	return nodeBinary{path, version}, nil
}

// installPyodide runs npm install pyodide@version into cacheDir/pyodide-
// version unless a finished install is there, and returns the package's
// directory.
func installPyodide(ctx context.Context, version, cacheDir string, logf func(string, ...any)) (string, error) {
	dir := filepath.Join(cacheDir, "pyodide-"+version)
	pkg := filepath.Join(dir, "node_modules", "pyodide")
	stamp := filepath.Join(dir, ".installed")
	if _, err := os.Stat(stamp); err == nil {
		return pkg, nil
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return "", fmt.Errorf("npm is not on PATH to install pyodide@%s into %s", version, dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "package.json"), []byte(`{"private":true}`+"\n"), 0o644); err != nil {
		return "", err
	}
	logf("installing pyodide@%s from npm into %s", version, dir)
	cmd := exec.CommandContext(ctx, npm, "install", "--no-audit", "--no-fund", "--loglevel=error", "pyodide@"+version)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("npm install pyodide@%s in %s: %w: %s", version, dir, err, excerpt.Of(string(out)))
	}
	return pkg, os.WriteFile(stamp, nil, 0o644)
}

func startPyodide(ctx context.Context, node, pkg string, sc Scenario, info *PyodideInfo) (Target, error) {
	harness := filepath.Join(filepath.Dir(filepath.Dir(pkg)), "pyrunner-bench-harness.js")
	if err := os.WriteFile(harness, pyodideHarness, 0o644); err != nil {
		return nil, err
	}
	t, greeting, err := startHarness(ctx, []string{node, harness, pkg}, sc)
	if err != nil {
		return nil, err
	}
	info.Python, info.LoadMs = greeting.Python, greeting.LoadMs
	return t, nil
}
