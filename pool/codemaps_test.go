package pool_test

import (
	"context"
	"testing"

	"github.com/pyrunner/pyrunner/pool"
	"github.com/pyrunner/pyrunner/pool/pooltest"
)

// codeMappingsTask sums, in the task process, the private pages of the
// read-only mappings that hold code (r-xp, backed by a file): the zygote
// gave each one when InheritCodeMappings is on, and a process that merely
// runs code has none.
const codeMappingsTask = `private = 0
current = False
with open('/proc/self/smaps') as smaps:
    for line in smaps:
        fields = line.split()
        if not fields[0].endswith(':'):
            current = len(fields) >= 6 and fields[1] == 'r-xp' and fields[5].startswith('/')
        elif fields[0] == 'Anonymous:' and current:
            private += int(fields[1])
return [{'json': {'private': private}}]`

// TestTaskProcessesInheritCodeMappings: with InheritCodeMappings a task
// process, isolated or reused, holds the zygote's private page in each
// mapping of code (so fork copied those mappings' page tables); without,
// none.
func TestTaskProcessesInheritCodeMappings(t *testing.T) {
	spec := pooltest.Spec(t)
	for _, inherit := range []bool{true, false} {
		spec.Config.InheritCodeMappings = inherit
		for _, reuse := range []bool{false, true} {
			exec := startExecutor(t, pool.Options{Spec: spec, MaxWorkers: 1, MinWorkers: 1, Reuse: reuse})
			task := pool.Task{ID: "maps", Settings: settings(t, codeMappingsTask, "runOnceForAllItems", []any{})}
			private := oneItem[struct{ Private int }](t, exec.Run(context.Background(), task)).Private
			if got := private > 0; got != inherit {
				t.Errorf("inherit %v, reuse %v: %d kB private in the code mappings", inherit, reuse, private)
			}
		}
	}
}
