package pool

import "sync"

// workerBudget bounds the task processes of several executors together
// (the default environment's and one per other environment in use):
// N8N_PYTHON_POOL_MAX_WORKERS is global. A process takes a unit from the
// moment its start is decided until it is gone. When an executor with
// tasks waiting finds the budget spent, it asks the others to let go of a
// ready process they are keeping ahead of demand (reclaim), so that one
// environment's idle processes never starve another's tasks.
type workerBudget struct {
	// mu guards everything below.
	mu      sync.Mutex
	max     int
	used    int
	members []*scheduler
}

func newWorkerBudget(max int) *workerBudget { return &workerBudget{max: max} }

func (b *workerBudget) join(s *scheduler) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.members = append(b.members, s)
}

func (b *workerBudget) leave(s *scheduler) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, m := range b.members {
		if m == s {
			b.members = append(b.members[:i], b.members[i+1:]...)
			return
		}
	}
}

// take takes one unit, if one is left.
func (b *workerBudget) take() bool {
	if b == nil {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used >= b.max {
		return false
	}
	b.used++
	return true
}

// give returns n units and tells every member, so that one with tasks
// waiting starts a process now.
func (b *workerBudget) give(n int) {
	if b == nil || n == 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	members := append([]*scheduler(nil), b.members...)
	b.mu.Unlock()
	for _, m := range members {
		m.wake()
	}
}

// reclaim asks the members other than s to let go of one ready process
// each until one does; the unit comes back through give.
func (b *workerBudget) reclaim(s *scheduler) {
	if b == nil {
		return
	}
	b.mu.Lock()
	members := append([]*scheduler(nil), b.members...)
	b.mu.Unlock()
	for _, m := range members {
		if m != s && m.dropOneIdle() {
			return
		}
	}
}
