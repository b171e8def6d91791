package envcache

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// InterpreterSetting is the variable that names the interpreter; every
// error about the interpreter names it.
const InterpreterSetting = "N8N_PYTHON_INTERPRETER"

// systemPythons are where distributions and the official images install
// python3, tried in order when the python3 on PATH cannot serve the tasks.
var systemPythons = []string{"/usr/bin/python3", "/usr/local/bin/python3"}

// ErrNoInterpreter: no usable Python was found (the one named does not
// exist, or none of the candidates could serve the tasks).
var ErrNoInterpreter = errors.New("no usable Python interpreter")

// Choice is the interpreter pyrunner runs and why it was chosen, for the
// log.
type Choice struct {
	Interpreter
	Reason string
}

// Choose resolves the interpreter named by N8N_PYTHON_INTERPRETER (setting)
// and checks it with usable; a nonexistent one is an error naming the
// variable, and so is one usable refuses. When setting is empty it picks,
// the same way for every subcommand: the python3 on PATH if usable accepts
// it, else the first system python3 usable accepts. usable is nil when
// anything that runs will do.
func Choose(ctx context.Context, setting string, usable func(context.Context, Interpreter) error) (Choice, error) {
	check := func(name string) (Interpreter, error) {
		in, err := ResolveInterpreter(ctx, name)
		if err != nil {
			return in, err
		}
		if usable != nil {
			err = usable(ctx, in)
		}
		return in, err
	}
	if setting != "" {
		in, err := check(setting)
		if err != nil {
			return Choice{}, fmt.Errorf("%s=%s: %w", InterpreterSetting, setting, err)
		}
		return Choice{in, InterpreterSetting + " names it"}, nil
	}
	in, err := check("python3")
	if err == nil {
		return Choice{in, "python3 on PATH (" + InterpreterSetting + " is not set)"}, nil
	}
	tried := []string{fmt.Sprintf("python3 on PATH: %v", err)}
	for _, path := range systemPythons {
		if _, statErr := os.Stat(path); statErr != nil {
			continue
		}
		sys, sysErr := check(path)
		if sysErr == nil {
			return Choice{sys, fmt.Sprintf("the system's %s (%s is not set, and python3 on PATH cannot serve: %v)", path, InterpreterSetting, err)}, nil
		}
		tried = append(tried, fmt.Sprintf("%s: %v", path, sysErr))
	}
	return Choice{}, fmt.Errorf("%w (%s is not set): %s; set %s to a CPython 3.10+ that the task user can read",
		ErrNoInterpreter, InterpreterSetting, strings.Join(tried, "; "), InterpreterSetting)
}

// ReadableBy checks that uid and gid, the user tasks run as, can start in
// and import the standard library (a Python under /root, such as pyenv's,
// is not readable by other users, and each task would fail on its first
// import). It runs the interpreter as that user once.
func (i Interpreter) ReadableBy(ctx context.Context, uid, gid int) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, i.Executable, "-I", "-c",
		"import os, json, encodings.idna; os.listdir(os.path.dirname(os.__file__))")
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LANG=C.UTF-8"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	if err == nil {
		return nil
	}
	detail := strings.TrimSpace(string(out))
	if lines := strings.Split(detail, "\n"); len(lines) > 0 {
		detail = lines[len(lines)-1] // the exception, without the traceback
	}
	if detail == "" {
		detail = err.Error()
	}
	return fmt.Errorf("tasks run as uid %d (pyrunner runs as root), and that user cannot read this Python installation (%s): %s; "+
		"use an interpreter that user can read (%s), or another user (N8N_PYTHON_TASK_UID)", uid, i.Prefix, detail, InterpreterSetting)
}

// ImportableBy checks that uid and gid, the user tasks run as, can run
// python and import modules: an environment under a directory other users
// cannot read would fail each task on its first import.
func ImportableBy(ctx context.Context, python string, modules []string, uid, gid int) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	program := "import os"
	for _, m := range modules {
		program += "; import " + m
	}
	cmd := exec.CommandContext(ctx, python, "-I", "-B", "-c", program)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LANG=C.UTF-8"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}}
	if out, err := cmd.CombinedOutput(); err != nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		return fmt.Errorf("the task user (uid %d) cannot use it: %s; keep N8N_PYTHON_CACHE_DIR where that user can read", uid, lines[len(lines)-1])
	}
	return nil
}
