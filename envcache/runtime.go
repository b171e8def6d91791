package envcache

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/pyrunner/pyrunner/python"
)

// DefaultCacheDir is where caches go when N8N_PYTHON_CACHE_DIR is unset:
// $XDG_CACHE_HOME/pyrunner, else ~/.cache/pyrunner, else a per-user
// directory under the system's temporary directory.
func DefaultCacheDir() string {
	if dir, err := os.UserCacheDir(); err == nil {
		return filepath.Join(dir, "pyrunner")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("pyrunner-cache-%d", os.Getuid()))
}

// InstallRuntime writes the embedded Python runtime under cacheDir, once
// per runtime version, and compiles its bytecode with in so that processes
// load .pyc files and never compile pyrunner's modules themselves. It
// returns the directory to put on sys.path. Safe against concurrent
// pyrunners: the tree is built aside and renamed into place.
func InstallRuntime(ctx context.Context, cacheDir string, in Interpreter) (string, error) {
	dir := filepath.Join(cacheDir, "runtime-"+python.RuntimeHash())
	stamp := filepath.Join(dir, ".compiled-"+in.VersionString())
	if _, err := os.Stat(stamp); err == nil {
		return dir, nil
	}
	if _, err := os.Stat(dir); err != nil {
		if err := writeRuntime(cacheDir, dir); err != nil {
			return "", err
		}
	}
	cmd := exec.CommandContext(ctx, in.Executable, "-I", "-m", "compileall", "-q", "-j", "0", filepath.Join(dir, "pyrunner_runtime"))
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("compiling runtime bytecode: %w: %s", err, strings.TrimSpace(string(out)))
	}
	if err := os.WriteFile(stamp, nil, 0o644); err != nil {
		return "", fmt.Errorf("marking runtime compiled: %w", err)
	}
	return dir, nil
}

func writeRuntime(cacheDir, dir string) error {
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return fmt.Errorf("creating cache directory: %w", err)
	}
	tmp, err := os.MkdirTemp(cacheDir, ".runtime-")
	if err != nil {
		return fmt.Errorf("creating cache directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := os.CopyFS(tmp, python.RuntimeFS()); err != nil {
		return fmt.Errorf("writing runtime: %w", err)
	}
	// Readable by the unprivileged task user as well.
	_ = filepath.WalkDir(tmp, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		mode := os.FileMode(0o644)
		if d.IsDir() {
			mode = 0o755
		}
		return os.Chmod(p, mode)
	})
	if err := os.Rename(tmp, dir); err != nil && !os.IsExist(err) {
		if _, statErr := os.Stat(dir); statErr != nil {
			return fmt.Errorf("installing runtime: %w", err)
		}
	}
	return nil
}
