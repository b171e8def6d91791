package pool

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pyrunner/pyrunner/python"
)

// TestZygotesShareTheUIDRange: each zygote hands out uids from a share of
// its own, so no two live task processes ever run as one uid.
func TestZygotesShareTheUIDRange(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("tasks get uids of their own only under a root pyrunner")
	}
	spec := ProcessSpec{Config: python.Config{TaskUID: 1000, TaskGID: 1000, TaskUIDCount: 100}}
	opts := Options{Spec: spec, MaxWorkers: 4, Zygotes: 8}.withDefaults()
	if opts.Zygotes != 8 {
		t.Fatalf("zygotes %d, want 8: a share of 12 uids covers 2*4+2 processes", opts.Zygotes)
	}
	next := 1000
	for i := range opts.Zygotes {
		c := slotSpec(opts.Spec, i, opts.Zygotes).Config
		if c.TaskUID != next || c.TaskGID != next || c.TaskUIDCount != 12 {
			t.Fatalf("zygote %d: uid %d gid %d count %d, want %d %d 12", i, c.TaskUID, c.TaskGID, c.TaskUIDCount, next, next)
		}
		next += c.TaskUIDCount
	}
	if next > 1100 {
		t.Fatalf("shares end at %d, past the range", next)
	}

	small := Options{Spec: spec, MaxWorkers: 40, Zygotes: 8}.withDefaults()
	if small.Zygotes != 1 {
		t.Fatalf("zygotes %d, want 1: 100 uids cover one share of 2*40+2", small.Zygotes)
	}
	shared := ProcessSpec{Config: python.Config{TaskUID: 65534, TaskGID: 65534, TaskUIDCount: 1}}
	if c := slotSpec(shared, 3, 4).Config; c.TaskUID != 65534 || c.TaskUIDCount != 1 {
		t.Fatalf("one shared uid: %+v", c)
	}
	root := ProcessSpec{Config: python.Config{TaskUID: 0, TaskGID: 0, TaskUIDCount: 100}}
	if c := slotSpec(root, 3, 4).Config; c.TaskUID != 0 || c.TaskUIDCount != 100 {
		t.Fatalf("uid 0 is never a range to share: %+v", c)
	}
}

// TestZygoteStartEndsWhenCancelled: a zygote that never answers its
// configuration does not hold up the executor's Close (which cancels the
// start) for the startup timeout.
func TestZygoteStartEndsWhenCancelled(t *testing.T) {
	silent := filepath.Join(t.TempDir(), "python")
	if err := os.WriteFile(silent, []byte("#!/bin/sh\nexec sleep 60\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	spec := ProcessSpec{Executable: silent, StartupTimeout: time.Hour, Logger: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	done := make(chan error, 1)
	go func() {
		_, err := startZygote(ctx, spec)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("error %v, want one saying the start was cancelled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("startZygote ignored the cancellation")
	}
}
