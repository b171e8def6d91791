package envcache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// MinPythonVersion is the oldest CPython pyrunner supports.
var MinPythonVersion = [2]int{3, 10}

// ErrUnsupportedPython is returned when the interpreter is not CPython 3.10
// or newer.
var ErrUnsupportedPython = errors.New("unsupported Python interpreter")

// Interpreter is a Python found on this machine and checked.
type Interpreter struct {
	// Executable is the real binary (sys.executable), not a shim: shims such
	// as pyenv's cost tens of milliseconds per start.
	Executable string
	Version    [3]int
	Prefix     string // sys.prefix
	BasePrefix string // sys.base_prefix
	Stdlib     string // sysconfig's stdlib directory
}

func (i Interpreter) VersionString() string {
	return fmt.Sprintf("%d.%d.%d", i.Version[0], i.Version[1], i.Version[2])
}

// probeProgram runs on any Python, 2.7 included, so that an old one gets a
// clear "unsupported" rather than a traceback.
const probeProgram = `import json, sys, sysconfig
impl = getattr(getattr(sys, "implementation", None), "name", "cpython")
print(json.dumps({"executable": sys.executable, "version": list(sys.version_info[:3]),
  "implementation": impl, "prefix": sys.prefix, "base_prefix": getattr(sys, "base_prefix", sys.prefix),
  "stdlib": sysconfig.get_paths()["stdlib"]}))`

// ResolveInterpreter runs name (a path or a command on PATH) once to find
// its real executable and version, and checks that it is CPython 3.10+.
func ResolveInterpreter(ctx context.Context, name string) (Interpreter, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	path, err := exec.LookPath(name)
	if err != nil {
		return Interpreter{}, fmt.Errorf("%w: %q not found: %v", ErrNoInterpreter, name, err)
	}
	cmd := exec.CommandContext(ctx, path, "-I", "-c", probeProgram)
	out, err := cmd.Output()
	if err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			return Interpreter{}, fmt.Errorf("python interpreter %q: %w: %s", name, err, strings.TrimSpace(string(exitErr.Stderr)))
		}
		return Interpreter{}, fmt.Errorf("python interpreter %q: %w", name, err)
	}
	var probe struct {
		Executable     string `json:"executable"`
		Version        []int  `json:"version"`
		Implementation string `json:"implementation"`
		Prefix         string `json:"prefix"`
		BasePrefix     string `json:"base_prefix"`
		Stdlib         string `json:"stdlib"`
	}
	if err := json.Unmarshal(out, &probe); err != nil || len(probe.Version) != 3 {
		return Interpreter{}, fmt.Errorf("python interpreter %q: unexpected probe output %q", name, out)
	}
	in := Interpreter{Executable: probe.Executable, Prefix: probe.Prefix, BasePrefix: probe.BasePrefix, Stdlib: probe.Stdlib}
	copy(in.Version[:], probe.Version)
	if in.Executable == "" {
		in.Executable = path
	}
	if probe.Implementation != "cpython" || in.Version[0] != MinPythonVersion[0] || in.Version[1] < MinPythonVersion[1] {
		return in, fmt.Errorf("%w: %s is %s %s; pyrunner needs CPython %d.%d or newer",
			ErrUnsupportedPython, name, probe.Implementation, in.VersionString(), MinPythonVersion[0], MinPythonVersion[1])
	}
	return in, nil
}
