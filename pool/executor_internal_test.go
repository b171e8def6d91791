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
	spec := ProcessSpec{Config: python.Config{TaskUID: 1000, TaskGID: 1000, TaskUIDCount: 100, UIDPerTask: true}}
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

// TestResultLimitIsDecidedOnce: the largest reply is decided in Go and
// handed to Python with the setting that sets it; the frame limit follows
// from it.
func TestResultLimitIsDecidedOnce(t *testing.T) {
	cases := []struct {
		name                 string
		resultBytes, payload int
		limit                int
		setting              string
	}{
		{"the result limit is tighter", 32 << 20, 1 << 30, 32 << 20, "N8N_PYTHON_MAX_RESULT_MB"},
		{"the broker's is tighter", 32 << 20, 1 << 20, 1<<20 - replySlack, "N8N_RUNNERS_MAX_PAYLOAD"},
		{"no result limit", 0, 1 << 30, 1<<30 - replySlack, "N8N_RUNNERS_MAX_PAYLOAD"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := Options{MaxPayload: c.payload}
			o.Spec.Config.MaxResultBytes = c.resultBytes
			o = o.withDefaults()
			cfg := o.Spec.Config
			if cfg.MaxResultBytes != c.limit || cfg.MaxResultSetting != c.setting {
				t.Fatalf("limit %d %s, want %d %s", cfg.MaxResultBytes, cfg.MaxResultSetting, c.limit, c.setting)
			}
			if o.frameLimit() != c.limit+replySlack || o.frameLimit() > c.payload {
				t.Fatalf("frame limit %d", o.frameLimit())
			}
			if again := o.withDefaults().Spec.Config; again.MaxResultBytes != cfg.MaxResultBytes || again.MaxResultSetting != cfg.MaxResultSetting {
				t.Fatalf("deciding again changed the decision: %+v", again)
			}
			if cfg.MaxPrints != 100 {
				t.Fatalf("max prints %d, want n8n's 100", cfg.MaxPrints)
			}
		})
	}
}
