package pool

import (
	"testing"

	"github.com/pyrunner/pyrunner/python"
)

// TestZygotesShareTheUIDRange: each zygote hands out uids from a share of
// its own, so no two live task processes ever run as one uid.
func TestZygotesShareTheUIDRange(t *testing.T) {
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
}
