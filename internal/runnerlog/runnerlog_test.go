package runnerlog

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestLinesAsUnderTheLauncher: not a terminal, so bare messages with their
// attributes, problems on the error stream.
func TestLinesAsUnderTheLauncher(t *testing.T) {
	dir := t.TempDir()
	out, err := os.Create(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	errOut, err := os.Create(filepath.Join(dir, "err"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { out.Close(); errOut.Close() })
	logger := slog.New(New(slog.LevelInfo, out, errOut, false)).With("task", "t1")
	logger.Debug("not shown")
	logger.Info("Runner registered", "took", 1500*time.Nanosecond, "name", "a b")
	logger.Warn("Task failed", "error", "")
	for file, want := range map[string]string{
		"out": "Runner registered task=t1 took=2µs name=\"a b\"\n",
		"err": "Task failed task=t1 error=\"\"\n",
	} {
		got, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Errorf("%s: got %q, want %q", file, got, want)
		}
	}
}
