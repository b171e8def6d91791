package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// The directories pyrunner gives its tasks, under the system's temporary
// directory: each task process gets a private working directory in one.
// A directory is created under a hidden name, locked (flock on the
// directory itself, held for pyrunner's life) and only then renamed to its
// visible name, so that a visible directory nobody holds a lock on belongs
// to a pyrunner that is gone: killed by a signal it could not handle.
const (
	tasksDirPrefix    = "pyrunner-tasks-"
	newTasksDirPrefix = ".pyrunner-tasks-new-"
	// A hidden directory exists for microseconds; one older than this was
	// left by a pyrunner killed while creating it.
	newTasksDirGrace = time.Minute
)

// tasksDir is this pyrunner's tasks directory and the lock that marks it
// as in use.
type tasksDir struct {
	path string
	lock *os.File
}

// createTasksDir makes a tasks directory (0711: a task reaches its own
// subdirectory but cannot list the others') and locks it.
func createTasksDir() (*tasksDir, error) {
	tmp, err := os.MkdirTemp("", newTasksDirPrefix)
	if err != nil {
		return nil, fmt.Errorf("creating the tasks' directory: %w", err)
	}
	lock, err := lockDir(tmp)
	if err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("locking the tasks' directory: %w", err)
	}
	path := filepath.Join(filepath.Dir(tmp), tasksDirPrefix+strings.TrimPrefix(filepath.Base(tmp), newTasksDirPrefix))
	if err := os.Rename(tmp, path); err != nil {
		lock.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("creating the tasks' directory: %w", err)
	}
	d := &tasksDir{path: path, lock: lock}
	if err := os.Chmod(path, 0o711); err != nil {
		d.remove()
		return nil, fmt.Errorf("creating the tasks' directory: %w", err)
	}
	return d, nil
}

// remove deletes the directory, then lets go of its lock.
func (d *tasksDir) remove() {
	os.RemoveAll(d.path)
	d.lock.Close()
}

// lockDir takes an exclusive, non-blocking flock on a directory; it is
// held until the returned file is closed (or the process ends).
func lockDir(path string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// removeStaleTasksDirs removes the tasks directories of pyrunners that are
// gone: visible ones nobody holds a lock on, and hidden ones older than
// newTasksDirGrace. A live pyrunner's directory is always locked.
func removeStaleTasksDirs(logger *slog.Logger) {
	tmp := os.TempDir()
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		hidden := strings.HasPrefix(name, newTasksDirPrefix)
		if !e.IsDir() || !(hidden || strings.HasPrefix(name, tasksDirPrefix)) {
			continue
		}
		path := filepath.Join(tmp, name)
		if info, err := e.Info(); hidden && (err != nil || time.Since(info.ModTime()) < newTasksDirGrace) {
			continue
		}
		lock, err := lockDir(path)
		if err != nil {
			continue // in use, or not ours to open
		}
		if err := os.RemoveAll(path); err != nil {
			logger.Warn("could not remove a tasks directory left by a pyrunner that was killed", "path", path, "error", err)
		} else {
			logger.Info("Removed a tasks directory left by a pyrunner that was killed", "path", path)
		}
		lock.Close()
	}
}
