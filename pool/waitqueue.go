package pool

// waiter is a task waiting for a process.
type waiter struct {
	prio     Priority
	seq      uint64
	workflow string       // its task's workflow id (workflow mode)
	ch       chan *worker // receives the process, or nil when the pool closes
	index    int          // in the heap; -1 once popped
}

// waitQueue is a container/heap of waiters: higher priority first, then
// first come.
type waitQueue []*waiter

func (q waitQueue) Len() int { return len(q) }
func (q waitQueue) Less(i, j int) bool {
	if q[i].prio != q[j].prio {
		return q[i].prio > q[j].prio
	}
	return q[i].seq < q[j].seq
}
func (q waitQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index, q[j].index = i, j
}
func (q *waitQueue) Push(x any) {
	w := x.(*waiter)
	w.index = len(*q)
	*q = append(*q, w)
}
func (q *waitQueue) Pop() any {
	old := *q
	w := old[len(old)-1]
	old[len(old)-1] = nil
	w.index = -1
	*q = old[:len(old)-1]
	return w
}
