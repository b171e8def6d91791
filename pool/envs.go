package pool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pyrunner/pyrunner/envcache"
)

// EnvOptions configure an EnvExecutor.
type EnvOptions struct {
	// Options are the default environment's, and the base of every other:
	// the worker limits in them are global.
	Options
	// Cache builds and keeps the environments; nil: none can be built, and
	// a task whose code asks for packages fails saying so.
	Cache *envcache.Cache
	// Default are the administrator's requirements (N8N_PYTHON_REQUIREMENTS):
	// the default environment is built from them at start, and every other
	// environment has them too. Empty: the interpreter as it is.
	Default []envcache.Requirement
	// PackagesAllow is what tasks may install (N8N_PYTHON_PACKAGES_ALLOW,
	// distribution names; "*": anything; empty: nothing).
	PackagesAllow []string
	// PreloadAll (N8N_PYTHON_PRELOAD=*) makes each environment's zygote
	// import the top-level modules of the environment's requirements.
	PreloadAll bool
	// CleanupInterval is how often environments nobody uses are evicted
	// (N8N_PYTHON_CACHE_CLEANUP_INTERVAL, default 1 min).
	CleanupInterval time.Duration
	// PythonVersion is the interpreter's, for a block's requires-python.
	PythonVersion [3]int
}

// EnvExecutor runs each task in the Python environment its code asks for
// (a PEP 723 block) or in the default one. Each environment in use has a
// ZygoteExecutor of its own, started from the environment's interpreter
// and importing its packages, so that no task pays for an import;
// one that nobody used for MaxIdleTime retires. N8N_PYTHON_POOL_MAX_WORKERS
// bounds the task processes of all of them together.
type EnvExecutor struct {
	opts   EnvOptions
	log    *slog.Logger
	budget *workerBudget
	uids   *uidShares

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// mu guards everything below.
	mu     sync.Mutex
	closed bool
	// def is the default environment's executor, nil while it is built;
	// defReady is closed once it is set (or its build failed for good).
	def      *ZygoteExecutor
	defReady chan struct{}
	defErr   error
	since    time.Time // the default environment's build began
	units    map[string]*envUnit
}

// envUnit is one environment in use: its executor, started once.
type envUnit struct {
	ready    chan struct{} // closed once exec or err is set
	exec     *ZygoteExecutor
	err      error
	release  func() // lets go of the environment in the cache
	uidShare func() // gives the unit's uids back
	running  int    // tasks in it now
	lastUsed time.Time
	what     string // its requirements, for messages
}

var _ Executor = (*EnvExecutor)(nil)

// NewEnvExecutor returns an executor that is not started yet.
func NewEnvExecutor(opts EnvOptions) *EnvExecutor {
	opts.Options = opts.Options.withDefaults()
	if opts.CleanupInterval <= 0 {
		opts.CleanupInterval = time.Minute
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &EnvExecutor{
		opts: opts, log: opts.Spec.Logger, budget: newWorkerBudget(opts.MaxWorkers),
		uids: newUIDShares(opts.Options), ctx: ctx, cancel: cancel,
		defReady: make(chan struct{}), units: map[string]*envUnit{},
	}
}

// Start starts the default environment's executor. With default
// requirements, their environment is built first, in the background:
// Start returns at once, Capacity is 0 until it is ready, and Building
// says what is being built. Ready waits for it.
func (e *EnvExecutor) Start(ctx context.Context) error {
	if e.opts.Cache != nil {
		e.goTracked(func() { e.opts.Cache.Run(e.ctx, e.opts.CleanupInterval) })
	}
	e.goTracked(e.retireIdle)
	if len(e.opts.Default) == 0 || e.opts.Cache == nil {
		if len(e.opts.Default) > 0 {
			return errors.New("N8N_PYTHON_REQUIREMENTS needs the environment cache (pip, venv)")
		}
		def := NewZygoteExecutor(e.defaultOptions(e.opts.Options))
		if err := def.Start(ctx); err != nil {
			def.Close()
			return err
		}
		e.setDefault(def, nil)
		return nil
	}
	e.mu.Lock()
	e.since = time.Now()
	e.mu.Unlock()
	e.opts.Cache.Pin(e.opts.Cache.Key(e.opts.Default))
	e.goTracked(e.buildDefault)
	return nil
}

// buildDefault builds the default environment and starts its executor,
// retrying a failed build with a growing pause until Close.
func (e *EnvExecutor) buildDefault() {
	what := strings.Join(specs(e.opts.Default), ", ")
	e.log.Info("Building the default Python environment (N8N_PYTHON_REQUIREMENTS); no task is taken until it is ready", "requirements", what)
	pause := 10 * time.Second
	for {
		env, release, err := e.opts.Cache.Acquire(e.ctx, e.opts.Default)
		if err == nil {
			def := NewZygoteExecutor(e.defaultOptions(e.envOptions(env, e.opts.Options)))
			if err = def.Start(e.ctx); err == nil {
				e.log.Info("The default Python environment is ready", "requirements", what, "took", time.Since(e.since).Round(time.Millisecond))
				e.setDefault(def, nil)
				e.goTracked(func() { <-e.ctx.Done(); release() })
				return
			}
			def.Close()
			release()
		}
		if e.ctx.Err() != nil {
			return
		}
		e.mu.Lock()
		e.defErr = err
		e.mu.Unlock()
		e.log.Error("The default Python environment could not be made; trying again", "requirements", what, "error", err, "retry_in", pause)
		select {
		case <-e.ctx.Done():
			return
		case <-time.After(pause):
		}
		pause = min(2*pause, 5*time.Minute)
	}
}

func (e *EnvExecutor) setDefault(def *ZygoteExecutor, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		if def != nil {
			def.Close()
		}
		return
	}
	e.def, e.defErr = def, err
	close(e.defReady)
}

// Ready waits until the default environment can run tasks.
func (e *EnvExecutor) Ready(ctx context.Context) error {
	select {
	case <-e.defReady:
		return nil
	case <-ctx.Done():
		e.mu.Lock()
		defer e.mu.Unlock()
		if e.defErr != nil {
			return e.defErr
		}
		return ctx.Err()
	}
}

// Building says what the default environment is waiting for, while it is
// built: what is being installed and since when ("" once it is ready).
func (e *EnvExecutor) Building() (what string, since time.Time, lastErr error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.def != nil {
		return "", time.Time{}, nil
	}
	return strings.Join(specs(e.opts.Default), ", "), e.since, e.defErr
}

// defaultOptions: the default environment's executor takes the first uid
// shares and the global budget.
func (e *EnvExecutor) defaultOptions(o Options) Options {
	o.budget = e.budget
	o.Spec.Config = e.uids.forDefault(o.Spec.Config)
	return o
}

// envOptions are o adapted to run in env: its interpreter, its packages
// importable (with what they import), its requested modules preloaded
// with N8N_PYTHON_PRELOAD=*.
func (e *EnvExecutor) envOptions(env *envcache.Env, o Options) Options {
	o.Spec.Executable = env.Python()
	c := o.Spec.Config
	if !slices.Contains(c.ExternalAllow, "*") {
		c.ExternalAllow = append(slices.Clone(c.ExternalAllow), env.Imports...)
	}
	// A package the task declared may import what it needs.
	c.AllowTransitiveImports = true
	if e.opts.PreloadAll {
		c.Preload = append(slices.Clone(c.Preload), env.RequestedImports...)
	}
	o.Spec.Config = c
	return o
}

// Capacity is the default environment's: 0 until it is ready.
func (e *EnvExecutor) Capacity() int {
	e.mu.Lock()
	def, closed := e.def, e.closed
	e.mu.Unlock()
	if def == nil || closed {
		return 0
	}
	return def.Capacity()
}

// Run runs t in the environment its code asks for.
func (e *EnvExecutor) Run(ctx context.Context, t Task) Result {
	meta, err := envcache.ParseScriptMetadata(t.Code)
	if err != nil {
		return Result{Err: &TaskError{Message: err.Error(), Kind: KindStatic}}
	}
	if meta != nil && meta.RequiresPython != "" {
		if ok, err := envcache.SatisfiesPython(meta.RequiresPython, e.opts.PythonVersion); err != nil || !ok {
			return Result{Err: &TaskError{Kind: KindStatic, Message: fmt.Sprintf(
				"The code requires Python %s (requires-python), but the runner's is %s (N8N_PYTHON_INTERPRETER)",
				meta.RequiresPython, versionText(e.opts.PythonVersion))}}
		}
	}
	if meta == nil || len(meta.Dependencies) == 0 {
		e.mu.Lock()
		def := e.def
		e.mu.Unlock()
		if def == nil {
			return Result{Err: internalError("The default Python environment is not ready yet")}
		}
		return def.Run(ctx, t)
	}
	if err := e.allowed(meta.Dependencies); err != nil {
		return Result{Err: &TaskError{Message: err.Error(), Kind: KindStatic}}
	}
	reqs := append(slices.Clone(e.opts.Default), meta.Dependencies...)
	waitCtx := ctx
	if t.Timeout > 0 {
		var cancel context.CancelFunc
		waitCtx, cancel = context.WithTimeout(ctx, t.Timeout)
		defer cancel()
	}
	unit, err := e.unit(waitCtx, reqs)
	if err != nil {
		if ctx.Err() != nil {
			return Result{Err: CancelledError()}
		}
		return Result{Err: &TaskError{Kind: KindInternal, Description: strPtr(""), Message: fmt.Sprintf(
			"Could not prepare a Python environment with %s: %v", strings.Join(specs(meta.Dependencies), ", "), err)}}
	}
	defer e.done(unit)
	return unit.exec.Run(ctx, t)
}

// allowed checks the packages a task asks for against
// N8N_PYTHON_PACKAGES_ALLOW; the administrator's own are always allowed.
func (e *EnvExecutor) allowed(deps []envcache.Requirement) error {
	if e.opts.Cache == nil {
		return errors.New("This runner cannot install packages for Code nodes: its Python has no pip or venv")
	}
	if slices.Contains(e.opts.PackagesAllow, "*") {
		return nil
	}
	var refused []string
	for _, d := range deps {
		ok := slices.ContainsFunc(e.opts.Default, func(r envcache.Requirement) bool { return r.Name == d.Name }) ||
			slices.ContainsFunc(e.opts.PackagesAllow, func(a string) bool { return envcache.NormalizeName(a) == d.Name })
		if !ok {
			refused = append(refused, "'"+d.Name+"'")
		}
	}
	if len(refused) == 0 {
		return nil
	}
	allowed := "none"
	if len(e.opts.PackagesAllow) > 0 {
		allowed = strings.Join(e.opts.PackagesAllow, ", ")
	}
	return fmt.Errorf("Installing package %s for a Code node is disallowed. Allowed packages: %s (N8N_PYTHON_PACKAGES_ALLOW)",
		strings.Join(refused, ", "), allowed)
}

// unit returns the started executor of the environment of reqs, making
// it (and building the environment) if no task has it yet.
func (e *EnvExecutor) unit(ctx context.Context, reqs []envcache.Requirement) (*envUnit, error) {
	key := e.opts.Cache.Key(reqs)
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil, ErrClosed
	}
	u := e.units[key]
	if u == nil {
		u = &envUnit{ready: make(chan struct{}), what: strings.Join(specs(reqs), ", ")}
		e.units[key] = u
		e.goTracked(func() { e.startUnit(key, u, reqs) })
	}
	u.running++
	u.lastUsed = time.Now()
	e.mu.Unlock()
	select {
	case <-u.ready:
	case <-ctx.Done():
		e.done(u)
		return nil, ctx.Err()
	}
	if u.err != nil {
		e.done(u)
		return nil, u.err
	}
	return u, nil
}

// startUnit builds (or finds) the environment and starts its executor.
// A unit that failed is forgotten, so that a later task tries again.
func (e *EnvExecutor) startUnit(key string, u *envUnit, reqs []envcache.Requirement) {
	fail := func(err error) {
		e.mu.Lock()
		u.err = err
		if e.units[key] == u {
			delete(e.units, key)
		}
		e.mu.Unlock()
		close(u.ready)
	}
	env, release, err := e.opts.Cache.Acquire(e.ctx, reqs)
	if err != nil {
		fail(err)
		return
	}
	o, giveBack, err := e.uids.forEnv(e.envOptions(env, e.opts.Options))
	if err != nil {
		release()
		fail(err)
		return
	}
	o.budget = e.budget
	o.Zygotes = 1
	o.MinWorkers = min(o.MinWorkers, 1)
	exec := NewZygoteExecutor(o)
	if err := exec.Start(e.ctx); err != nil {
		exec.Close()
		giveBack()
		release()
		fail(fmt.Errorf("starting its zygote: %w", err))
		return
	}
	e.log.Info("Started the zygote of a Python environment", "requirements", u.what, "python", env.Python())
	e.mu.Lock()
	u.exec, u.release, u.uidShare = exec, release, giveBack
	e.mu.Unlock()
	close(u.ready)
}

// done notes that a task of u has ended.
func (e *EnvExecutor) done(u *envUnit) {
	e.mu.Lock()
	defer e.mu.Unlock()
	u.running--
	u.lastUsed = time.Now()
}

// retireIdle stops the executors of environments nobody used for
// MaxIdleTime, until Close.
func (e *EnvExecutor) retireIdle() {
	t := time.NewTicker(min(e.opts.MaxIdleTime/4+time.Second, 30*time.Second))
	defer t.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case now := <-t.C:
			var idle []*envUnit
			e.mu.Lock()
			for key, u := range e.units {
				if u.exec != nil && u.running == 0 && now.Sub(u.lastUsed) > e.opts.MaxIdleTime {
					idle = append(idle, u)
					delete(e.units, key)
				}
			}
			e.mu.Unlock()
			for _, u := range idle {
				e.log.Info("Retiring the zygote of a Python environment nobody used", "requirements", u.what, "idle_for", e.opts.MaxIdleTime)
				e.stopUnit(u)
			}
		}
	}
}

func (e *EnvExecutor) stopUnit(u *envUnit) error {
	err := u.exec.Close()
	u.uidShare()
	u.release()
	return err
}

// Stats adds up the executors' states, and their caches by name. The
// executors of environments since dropped are not counted.
func (e *EnvExecutor) Stats() Stats {
	var s Stats
	caches := map[string]int{} // name -> index in s.Caches
	for _, x := range e.executors() {
		st := x.Stats()
		s.Ready += st.Ready
		s.Busy += st.Busy
		s.Starting += st.Starting
		s.Waiting += st.Waiting
		s.ArrivalRate += st.ArrivalRate
		s.Zygotes += st.Zygotes
		s.Started += st.Started
		s.StartFailures += st.StartFailures
		s.WornOut += st.WornOut
		s.Recycled += st.Recycled
		s.ZygoteRestarts += st.ZygoteRestarts
		s.ZygotesReplaced += st.ZygotesReplaced
		if s.StartError == "" {
			s.StartError = st.StartError
		}
		for _, c := range st.Caches {
			i, ok := caches[c.Name]
			if !ok {
				caches[c.Name] = len(s.Caches)
				s.Caches = append(s.Caches, CacheStats{Name: c.Name})
				i = len(s.Caches) - 1
			}
			s.Caches[i].CacheCounts = addCounts(s.Caches[i].CacheCounts, c.CacheCounts)
		}
	}
	if e.opts.Cache != nil {
		env := e.opts.Cache.Stats()
		s.Caches = append(s.Caches, CacheStats{Name: "environments", CacheCounts: CacheCounts{
			Hits: env.Hits, Misses: env.Misses, Evictions: env.Evictions, Entries: env.Environments, Bytes: int(env.DiskBytes)}})
	}
	return s
}

// Processes lists every environment's zygotes and task processes.
func (e *EnvExecutor) Processes() []ProcessInfo {
	var out []ProcessInfo
	for _, x := range e.executors() {
		out = append(out, x.Processes()...)
	}
	return out
}

// Recycle asks the executor that owns pid to replace it (ZygoteExecutor.Recycle).
func (e *EnvExecutor) Recycle(pid int, why string) bool {
	for _, x := range e.executors() {
		if x.Recycle(pid, why) {
			return true
		}
	}
	return false
}

func addCounts(a, b CacheCounts) CacheCounts {
	return CacheCounts{Hits: a.Hits + b.Hits, Misses: a.Misses + b.Misses, Evictions: a.Evictions + b.Evictions,
		Entries: a.Entries + b.Entries, Bytes: a.Bytes + b.Bytes}
}

// ZygotePID is the default environment's first zygote, or 0.
func (e *EnvExecutor) ZygotePID() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.def == nil {
		return 0
	}
	return e.def.ZygotePID()
}

// executors are the executors of the default environment and of the
// environments in use now.
func (e *EnvExecutor) executors() []*ZygoteExecutor {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.executorsLocked()
}

func (e *EnvExecutor) executorsLocked() []*ZygoteExecutor {
	var out []*ZygoteExecutor
	if e.def != nil {
		out = append(out, e.def)
	}
	for _, u := range e.units {
		if u.exec != nil {
			out = append(out, u.exec)
		}
	}
	return out
}

// Close stops every environment's executor and waits for what the
// executor started. Safe to call twice.
func (e *EnvExecutor) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	def := e.def
	units := e.units
	e.units = map[string]*envUnit{}
	e.mu.Unlock()
	e.cancel()
	var errs []error
	if def != nil {
		errs = append(errs, def.Close())
	}
	e.wg.Wait() // units still starting have finished starting (or failed)
	for _, u := range units {
		if u.exec != nil {
			errs = append(errs, e.stopUnit(u))
		}
	}
	return errors.Join(errs...)
}

func (e *EnvExecutor) goTracked(f func()) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		f()
	}()
}

func specs(reqs []envcache.Requirement) []string {
	out := make([]string, len(reqs))
	for i, r := range reqs {
		out[i] = r.Spec
	}
	return out
}

func versionText(v [3]int) string { return fmt.Sprintf("%d.%d.%d", v[0], v[1], v[2]) }
