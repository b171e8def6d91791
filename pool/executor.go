package pool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"time"
)

// Options configure a ZygoteExecutor. Zero values take the defaults noted.
type Options struct {
	Spec ProcessSpec
	// MaxWorkers bounds task processes, ready and running together
	// (N8N_PYTHON_POOL_MAX_WORKERS, default 8).
	MaxWorkers int
	// MinWorkers is how many ready processes (isolated) or live workers
	// (reuse) are kept however quiet it gets (N8N_PYTHON_POOL_MIN_WORKERS,
	// default 2).
	MinWorkers int
	// MaxIdleTime: ready processes beyond MinWorkers that have waited this
	// long are retired (N8N_PYTHON_POOL_MAX_IDLE_TIME, default 5 min).
	MaxIdleTime time.Duration
	// Reuse runs many tasks in each worker, MaxExecutions each, instead of
	// one process per task (N8N_PYTHON_ISOLATION=reuse). Tasks then share
	// interpreter state.
	Reuse         bool
	MaxExecutions int // default 100
	// PerWorkflow (N8N_PYTHON_ISOLATION=workflow) is Reuse with a worker
	// serving the tasks of one workflow only (Task.Workflow); a task
	// without one runs alone on a fresh worker (workflow.go). Implies Reuse.
	PerWorkflow bool
	// Zygotes is how many zygotes fork processes in parallel
	// (N8N_PYTHON_POOL_ZYGOTES); 0: one per four cores, at most 8.
	Zygotes int
	// WaitTimeout bounds how long a task waits for a process when none can
	// be started (N8N_PYTHON_POOL_STARTUP_TIMEOUT, default 30 s).
	WaitTimeout time.Duration
	// MaxPayload is the largest frame the broker takes
	// (N8N_RUNNERS_MAX_PAYLOAD): a reply is kept well under it.
	MaxPayload int
	// The compiled-code cache's bounds: entries
	// (N8N_PYTHON_CACHE_MAX_CODE_SIZE, 1000; negative: no cache), bytes
	// (N8N_PYTHON_CACHE_MAX_MEMORY, 1 GiB) and age
	// (N8N_PYTHON_CACHE_CODE_TTL, 30 min).
	CodeCacheEntries int
	CodeCacheBytes   int
	CodeCacheTTL     time.Duration

	// budget is shared with the other executors of an EnvExecutor.
	budget *workerBudget
}

// maxPrints is n8n's: its runner keeps the first 100 print() calls.
const maxPrints = 100

// replySlack is room above the result limit for a reply frame: the task
// process checks its whole reply against that limit and sends a short
// error instead of one that is larger.
const replySlack = 64 << 10

func (o Options) withDefaults() Options {
	if o.MaxWorkers <= 0 {
		o.MaxWorkers = 8
	}
	o.MinWorkers = min(max(o.MinWorkers, 0), o.MaxWorkers)
	if o.MaxIdleTime <= 0 {
		o.MaxIdleTime = 5 * time.Minute
	}
	if o.PerWorkflow {
		o.Reuse = true
	}
	if o.MaxExecutions <= 0 {
		o.MaxExecutions = 100
	}
	if o.Zygotes <= 0 {
		o.Zygotes = min(8, max(1, runtime.NumCPU()/4))
	}
	if r := uidsOf(o.Spec.Config); r.count > 0 {
		// Each zygote needs a share of the uid range at least as large as
		// the processes it may have alive.
		o.Zygotes = max(1, min(o.Zygotes, r.count/(2*o.MaxWorkers+2)))
	}
	if o.WaitTimeout <= 0 {
		o.WaitTimeout = 30 * time.Second
	}
	if o.MaxPayload <= 0 {
		o.MaxPayload = 1 << 30
	}
	if o.CodeCacheEntries == 0 {
		o.CodeCacheEntries = 1000
	}
	if o.CodeCacheBytes <= 0 {
		o.CodeCacheBytes = 1 << 30
	}
	if o.CodeCacheTTL <= 0 {
		o.CodeCacheTTL = 30 * time.Minute
	}
	if o.Spec.Config.MaxPrints <= 0 {
		o.Spec.Config.MaxPrints = maxPrints
	}
	o.Spec.Config.MaxResultBytes, o.Spec.Config.MaxResultSetting = o.resultLimit()
	if o.Spec.Logger == nil {
		o.Spec.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// resultLimit decides, once, the largest reply a task process may send and
// the setting that sets it: N8N_PYTHON_MAX_RESULT_MB, or what the broker
// takes (N8N_RUNNERS_MAX_PAYLOAD, less room for the message around the
// result) when that is tighter or no result limit is set. The task process
// replaces a larger reply with an error naming the setting; a frame beyond
// the limit and replySlack is refused unread (frameLimit).
func (o Options) resultLimit() (int, string) {
	room := o.MaxPayload - replySlack
	if room < o.MaxPayload/2 {
		room = o.MaxPayload / 2
	}
	if r := o.Spec.Config.MaxResultBytes; r > 0 && r <= room && o.Spec.Config.MaxResultSetting != "N8N_RUNNERS_MAX_PAYLOAD" {
		return r, "N8N_PYTHON_MAX_RESULT_MB"
	}
	return room, "N8N_RUNNERS_MAX_PAYLOAD"
}

// frameLimit is the largest reply frame read: a larger one is refused
// before it is read, so that code writing to its channel cannot make the
// runner hold more than an honest reply would.
func (o Options) frameLimit() int {
	return o.Spec.Config.MaxResultBytes + replySlack
}

// taskRun is t on proc with these options' limits.
func (o Options) taskRun(proc taskProcess, t Task) taskRun {
	return taskRun{proc: proc, task: t, frameMax: o.frameLimit(), setting: o.Spec.Config.MaxResultSetting,
		maxPrints: o.Spec.Config.MaxPrints, cpuSeconds: o.Spec.Config.CPUSeconds, log: o.Spec.Logger}
}

// ZygoteExecutor runs tasks in processes forked from zygotes that have
// already imported the runtime and the preloaded modules. In the default
// isolated mode each task gets a fresh process that was forked and fenced
// in before the task arrived, and that exits after it; in reuse mode a
// worker serves up to MaxExecutions tasks. A zygote that dies is replaced
// and only the tasks it was running fail.
//
// Every goroutine it starts (the zygotes' supervisors, the maintainer, the
// process starts) ends when Close cancels its context, and Close waits for
// them.
type ZygoteExecutor struct {
	opts     Options
	logger   *slog.Logger
	slots    []*zygoteSlot
	sched    *scheduler
	verdicts *verdicts
	code     *codeCache // nil: no compiled-code cache

	// ctx is cancelled by Close; wg counts every goroutine started.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// mu guards closed and closeErrs.
	mu        sync.Mutex
	closed    bool
	closeErrs []error
}

var _ Executor = (*ZygoteExecutor)(nil)

// ErrClosed is returned when a closed executor is asked to work.
var ErrClosed = errors.New("executor closed")

// NewZygoteExecutor returns an executor that is not started yet.
func NewZygoteExecutor(opts Options) *ZygoteExecutor {
	opts = opts.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	e := &ZygoteExecutor{
		opts: opts, logger: opts.Spec.Logger, verdicts: newVerdicts(),
		ctx: ctx, cancel: cancel,
	}
	for i := range opts.Zygotes {
		e.slots = append(e.slots, newZygoteSlot(slotSpec(opts.Spec, i, opts.Zygotes)))
	}
	e.sched = newScheduler(opts, e.slots, e.goTracked, e.logger)
	if opts.CodeCacheEntries > 0 {
		e.code = newCodeCache(opts.CodeCacheEntries, opts.CodeCacheBytes, opts.CodeCacheTTL)
	}
	return e
}

// goTracked runs f on a goroutine that Close waits for.
func (e *ZygoteExecutor) goTracked(f func()) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		f()
	}()
}

// slotSpec is the spec of zygote i of n: with a uid of its own per task
// process, each zygote hands out its own share of the range, so that no
// two live task processes ever share a uid.
func slotSpec(spec ProcessSpec, i, n int) ProcessSpec {
	c := spec.Config
	if uidsOf(c).count > 0 {
		share := c.TaskUIDCount / n
		c.TaskUID += i * share
		if c.TaskGID >= 0 {
			c.TaskGID += i * share
		}
		c.TaskUIDCount = share
	}
	spec.Config = c
	return spec
}

// Start starts the zygotes (in parallel), the supervisors that replace
// them when they die, and the maintainer that keeps processes ready. ctx
// bounds the start-up; Close, called meanwhile, abandons it.
func (e *ZygoteExecutor) Start(ctx context.Context) error {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	abandon := context.AfterFunc(e.ctx, stop)
	defer abandon()
	zygotes := make([]*zygote, len(e.slots))
	errs := make([]error, len(e.slots))
	var starting sync.WaitGroup
	for i := range e.slots {
		starting.Add(1)
		go func() {
			defer starting.Done()
			zygotes[i], errs[i] = startZygote(ctx, e.slots[i].spec)
		}()
	}
	starting.Wait()
	closeAll := func() {
		for _, z := range zygotes {
			if z != nil {
				_ = z.close()
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		closeAll()
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		closeAll()
		return ErrClosed
	}
	for i, slot := range e.slots {
		slot.set(zygotes[i])
		e.goTracked(func() {
			if err := slot.supervise(e.ctx, func() { e.sched.zygoteUp(slot) }); err != nil {
				e.mu.Lock()
				e.closeErrs = append(e.closeErrs, err)
				e.mu.Unlock()
			}
		})
	}
	e.goTracked(func() { e.sched.maintain(e.ctx) })
	return nil
}

// Capacity is MaxWorkers while a zygote is up and processes can be
// started, else 0.
func (e *ZygoteExecutor) Capacity() int {
	e.mu.Lock()
	closed := e.closed
	e.mu.Unlock()
	if closed || e.sched.failing() {
		return 0
	}
	for _, s := range e.slots {
		if s.up() {
			return e.opts.MaxWorkers
		}
	}
	return 0
}

// ZygotePID is the first zygote's process id, or 0 while there is none.
func (e *ZygoteExecutor) ZygotePID() int { return e.slots[0].pid() }

// Run takes a ready process (waiting, by priority, when none is), hands it
// t and returns its result.
func (e *ZygoteExecutor) Run(ctx context.Context, t Task) Result {
	known, refused := e.verdicts.lookup(t.Code)
	if refused != nil {
		return Result{Err: refused}
	}
	t.analyzed = known
	queued := time.Now()
	w, err := e.sched.acquire(ctx, t.Priority, t.Workflow)
	waited := time.Since(queued)
	if err != nil {
		if ctx.Err() != nil {
			return Result{Err: CancelledError(), Waited: waited}
		}
		return Result{Err: internalError("%v", err), Waited: waited}
	}
	run := e.opts.taskRun(w.proc, t)
	looked := t.Code != "" && t.Mode != "" && e.code != nil
	if looked {
		key := codeKey(t.Mode, t.Code)
		run.compiled = e.code.lookup(key, time.Now())
		// Only a process that has run no user code may give compiled code
		// to the cache: a fresh isolated process, a reuse worker's first task.
		if run.compiled == nil && w.tasks == 0 {
			run.wantCompiled = true
			run.onCompiled = func(code []byte) { e.code.store(key, code, time.Now()) }
		}
	}
	res, alive := run.run(ctx)
	e.sched.release(w, alive)
	if looked {
		e.code.count(run.compiled != nil || res.ownCompiled)
	}
	if !known {
		e.verdicts.record(t.Code, res)
	}
	res.Waited = waited
	return res
}

// Stats is a snapshot of the pool, for metrics and tests.
type Stats struct {
	Ready, Busy, Starting, Waiting int
	// ArrivalRate is the recent rate of tasks, per second.
	ArrivalRate float64
	// Zygotes is how many zygotes are up.
	Zygotes int

	// Counts since the executor started: task processes that became ready,
	// and starts that failed; reuse workers replaced after MaxExecutions
	// tasks (WornOut) or at Recycle's request (Recycled); zygotes that
	// exited and were restarted, and those replaced at Recycle's request.
	Started, StartFailures, WornOut, Recycled uint64
	ZygoteRestarts, ZygotesReplaced           uint64
	// StartError is why starts fail while they keep failing (Capacity is
	// then 0); empty otherwise.
	StartError string
	// Caches are the executor's caches, by name: "verdicts", the static
	// analysis's verdicts, and "code", the compiled code.
	Caches []CacheStats
}

// CacheStats is one cache's use since the executor started.
type CacheStats struct {
	Name string
	CacheCounts
}

// Stats reports the pool's current state.
func (e *ZygoteExecutor) Stats() Stats {
	st := e.sched.stats()
	for _, slot := range e.slots {
		slot.mu.Lock()
		if slot.current != nil {
			st.Zygotes++
		}
		st.ZygoteRestarts += slot.restarts
		st.ZygotesReplaced += slot.replaced
		slot.mu.Unlock()
	}
	st.Caches = []CacheStats{{"verdicts", e.verdicts.Counts()}, {"code", e.code.counts()}}
	return st
}

// CodeCacheCounts reports the compiled-code cache's counts.
func (e *ZygoteExecutor) CodeCacheCounts() CacheCounts { return e.code.counts() }

// Close stops the zygotes and every task process, and waits for every
// goroutine the executor started. It returns what stopping failed with.
// Safe to call twice.
func (e *ZygoteExecutor) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.mu.Unlock()
	e.sched.closeAll(fmt.Errorf("pool: %w", ErrClosed))
	e.cancel()
	e.wg.Wait()
	e.mu.Lock()
	defer e.mu.Unlock()
	return errors.Join(e.closeErrs...)
}
