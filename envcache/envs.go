package envcache

import (
	"bufio"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// envinfoProgram lists what a built environment gives its tasks.
//
//go:embed envinfo.py
var envinfoProgram string

// Env is one virtual environment the cache built: a dependency set
// installed for one interpreter, with its bytecode compiled.
type Env struct {
	Key string `json:"key"`
	// Dir is where it lives; set when it is loaded.
	Dir          string   `json:"-"`
	Requirements []string `json:"requirements"`
	// Interpreter is the base interpreter it was made from.
	Interpreter   string `json:"interpreter"`
	PythonVersion string `json:"python"`
	// Distributions are the requested ones and their dependencies, with
	// their versions; Imports the top-level modules they install, which
	// the tasks that use the environment may import.
	Distributions []Distribution `json:"distributions"`
	Imports       []string       `json:"imports"`
	// RequestedImports are the top-level modules of the requested
	// distributions alone: what N8N_PYTHON_PRELOAD=* imports.
	RequestedImports []string  `json:"requested_imports"`
	Size             int64     `json:"size"`
	Built            time.Time `json:"built"`
	BuildSeconds     float64   `json:"build_seconds"`
	// Manifest is a digest of every file's path, size and modification
	// time: a file changed since the build makes the environment unusable.
	Manifest string `json:"manifest"`
}

// Distribution is one installed distribution.
type Distribution struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Python is the environment's interpreter.
func (e *Env) Python() string { return filepath.Join(e.Dir, "bin", "python") }

// The files of an environment beside its own: its metadata (written last:
// an environment is complete only with it) and its last-use mark.
const (
	envMetaFile = "pyrunner-env.json"
	envUsedFile = ".used"
)

// CacheOptions configure a Cache. Zero values take the defaults noted.
type CacheOptions struct {
	// Dir holds the environments (N8N_PYTHON_CACHE_DIR/envs).
	Dir string
	// Interpreter is the base every environment is made from.
	Interpreter Interpreter
	// MaxEnvironments (N8N_PYTHON_CACHE_MAX_ENVIRONMENTS, 20) and
	// MaxDiskBytes (N8N_PYTHON_CACHE_MAX_DISK_MB, 10 GiB) bound what is
	// kept; TTL (N8N_PYTHON_CACHE_ENV_TTL, 1 h) is how long one nobody
	// uses is kept.
	MaxEnvironments int
	MaxDiskBytes    int64
	TTL             time.Duration
	// BuildConcurrency bounds builds at once
	// (N8N_PYTHON_CACHE_BUILD_CONCURRENCY, 2).
	BuildConcurrency int
	// BuildTimeout bounds one build (default 30 min).
	BuildTimeout time.Duration
	// Usable, when set, checks a built environment before it is kept:
	// that the task users can read it, say.
	Usable func(ctx context.Context, env *Env) error
	// Installer is "pip" (the default) or "uv": what installs packages.
	Installer string
	// Env is the environment of the build commands (pip's own settings,
	// PIP_INDEX_URL, PIP_FIND_LINKS… and HOME for pip.conf); nil: pyrunner's.
	Env    []string
	Logger *slog.Logger
}

func (o CacheOptions) withDefaults() CacheOptions {
	if o.MaxEnvironments <= 0 {
		o.MaxEnvironments = 20
	}
	if o.MaxDiskBytes <= 0 {
		o.MaxDiskBytes = 10240 << 20
	}
	if o.TTL <= 0 {
		o.TTL = time.Hour
	}
	if o.BuildConcurrency <= 0 {
		o.BuildConcurrency = 2
	}
	if o.BuildTimeout <= 0 {
		o.BuildTimeout = 30 * time.Minute
	}
	if o.Installer == "" {
		o.Installer = "pip"
	}
	if o.Env == nil {
		o.Env = os.Environ()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// CacheStats are the cache's counts, for metrics.
type CacheStats struct {
	Hits, Misses, Evictions, Builds, BuildFailures uint64
	// BuildSeconds is the time the finished builds took, in all.
	BuildSeconds float64
	Environments int
	DiskBytes    int64
	Building     []string // the requirements of the builds under way
}

// Cache keeps virtual environments, one per dependency set (Key), under a
// directory two pyrunners may share. An environment is built aside,
// renamed into place and complete only once its metadata is written, so a
// crash never leaves one that looks usable. One build per key at a time,
// however many tasks and pyrunners ask: the key's lock file is taken
// exclusively to build it, and shared while a pyrunner uses it, so that
// nobody evicts an environment another pyrunner has in use.
type Cache struct {
	opts CacheOptions
	log  *slog.Logger
	sem  chan struct{}

	// mu guards everything below.
	mu       sync.Mutex
	envs     map[string]*entry
	builds   map[string]*buildCall
	pinned   map[string]bool
	onDisk   map[string]int64 // every complete environment in Dir, ours or not: its size
	stats    CacheStats
	building map[string][]string
}

type entry struct {
	env      *Env
	lastUsed time.Time
	users    int
	// lock is the key's lock file, held shared while this pyrunner knows
	// the environment.
	lock *os.File
}

type buildCall struct {
	done chan struct{}
	env  *Env
	err  error
}

// OpenCache opens the environments directory: it removes what a build
// that did not finish left, and every environment that is incomplete,
// whose interpreter is gone or whose files changed.
func OpenCache(opts CacheOptions) (*Cache, error) {
	opts = opts.withDefaults()
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("environments directory: %w", err)
	}
	c := &Cache{
		opts: opts, log: opts.Logger, sem: make(chan struct{}, opts.BuildConcurrency),
		envs: map[string]*entry{}, builds: map[string]*buildCall{}, pinned: map[string]bool{},
		onDisk: map[string]int64{}, building: map[string][]string{},
	}
	entries, err := os.ReadDir(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("environments directory: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		switch {
		case strings.HasPrefix(name, ".build-"):
			c.removeIfUnlocked(strings.TrimPrefix(name, ".build-"), filepath.Join(opts.Dir, name), "a build that did not finish")
		case e.IsDir():
			env, err := c.load(name)
			if err != nil {
				c.removeIfUnlocked(name, filepath.Join(opts.Dir, name), err.Error())
				continue
			}
			c.onDisk[name] = env.Size
		}
	}
	return c, nil
}

// removeIfUnlocked removes path, left for key, unless a pyrunner holds the
// key's lock (it is building or using it right now).
func (c *Cache) removeIfUnlocked(key, path, why string) {
	lock, err := c.tryLock(key, syscall.LOCK_EX)
	if err != nil {
		return
	}
	defer lock.Close()
	if err := os.RemoveAll(path); err == nil {
		c.log.Info("Removed a Python environment", "path", path, "because", why)
	}
}

// load reads and verifies the environment of key.
func (c *Cache) load(key string) (*Env, error) {
	dir := filepath.Join(c.opts.Dir, key)
	b, err := os.ReadFile(filepath.Join(dir, envMetaFile))
	if err != nil {
		return nil, errors.New("incomplete: no metadata")
	}
	var env Env
	if err := json.Unmarshal(b, &env); err != nil || env.Key != key {
		return nil, errors.New("its metadata is unreadable")
	}
	env.Dir = dir
	if _, err := os.Stat(env.Interpreter); err != nil {
		return nil, fmt.Errorf("its interpreter %s is gone", env.Interpreter)
	}
	if m, err := manifest(dir); err != nil || m != env.Manifest {
		return nil, errors.New("its files changed since it was built")
	}
	return &env, nil
}

// Key names the environment of reqs for the cache's interpreter and pip's
// index settings: the same requirements, in any order or spelling, give the
// same key.
func (c *Cache) Key(reqs []Requirement) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%s\n", c.opts.Interpreter.Executable, c.opts.Interpreter.VersionString(), c.opts.Installer)
	for _, r := range requirementsKey(reqs) {
		fmt.Fprintf(h, "req %s\n", r)
	}
	for _, kv := range c.opts.Env {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "PIP_") || k == "UV_INDEX_URL" || k == "UV_EXTRA_INDEX_URL" {
			fmt.Fprintf(h, "env %s\n", kv)
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:24]
}

// Pin keeps the environment of key however long nobody uses it (the
// default environment).
func (c *Cache) Pin(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pinned[key] = true
}

// Acquire returns the environment of reqs, building it if needed, and
// marks it in use until release is called: an environment in use is never
// evicted. Concurrent calls for one key share one build. ctx bounds the
// wait, not the build: a task that gives up leaves the build to finish for
// the next one.
func (c *Cache) Acquire(ctx context.Context, reqs []Requirement) (env *Env, release func(), err error) {
	key := c.Key(reqs)
	c.mu.Lock()
	if e := c.envs[key]; e != nil {
		c.stats.Hits++
		c.mu.Unlock()
		return c.use(key)
	}
	call := c.builds[key]
	if call == nil {
		c.stats.Misses++
		call = &buildCall{done: make(chan struct{})}
		c.builds[key] = call
		c.building[key] = requirementsKey(reqs)
		go c.build(key, reqs, call)
	}
	c.mu.Unlock()
	select {
	case <-call.done:
	case <-ctx.Done():
		return nil, nil, fmt.Errorf("waiting for the Python environment (%s): %w", strings.Join(requirementsKey(reqs), ", "), ctx.Err())
	}
	if call.err != nil {
		return nil, nil, call.err
	}
	return c.use(key)
}

// use marks a known environment in use.
func (c *Cache) use(key string) (*Env, func(), error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.envs[key]
	if e == nil {
		return nil, nil, fmt.Errorf("the Python environment %s was evicted", key)
	}
	e.users++
	e.lastUsed = time.Now()
	var once sync.Once
	return e.env, func() { once.Do(func() { c.release(key) }) }, nil
}

func (c *Cache) release(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.envs[key]; e != nil {
		e.users--
		e.lastUsed = time.Now()
		_ = os.WriteFile(filepath.Join(e.env.Dir, envUsedFile), nil, 0o644) // its mtime: the last use, across restarts
	}
}

// build makes the environment of key, or finds it made by another
// pyrunner meanwhile, and announces the outcome on call.
func (c *Cache) build(key string, reqs []Requirement, call *buildCall) {
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.BuildTimeout)
	defer cancel()
	env, lock, err := c.obtain(ctx, key, reqs)
	c.mu.Lock()
	delete(c.builds, key)
	delete(c.building, key)
	if err == nil {
		c.envs[key] = &entry{env: env, lastUsed: time.Now(), lock: lock}
		c.onDisk[key] = env.Size
	} else {
		c.stats.BuildFailures++
	}
	c.mu.Unlock()
	call.env, call.err = env, err
	close(call.done)
}

// obtain returns the environment of key with its lock held shared:
// already on disk (this pyrunner's, or another's), or built now.
func (c *Cache) obtain(ctx context.Context, key string, reqs []Requirement) (*Env, *os.File, error) {
	for {
		if env, err := c.load(key); err == nil {
			lock, err := c.lockShared(ctx, key)
			if err != nil {
				return nil, nil, err
			}
			env.touchedUse()
			return env, lock, nil
		}
		// Not there: build it, unless another pyrunner is building it
		// right now; then wait for that one and look again.
		lock, err := c.tryLock(key, syscall.LOCK_EX)
		if err == nil {
			env, err := c.buildLocked(ctx, key, reqs)
			if err != nil {
				lock.Close()
				return nil, nil, err
			}
			// Keep the lock, shared now: the environment is in use here.
			if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_SH); err != nil {
				lock.Close()
				return nil, nil, fmt.Errorf("locking the Python environment: %w", err)
			}
			return env, lock, nil
		}
		select {
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("another pyrunner's build of the Python environment (%s) did not end in time: %w", strings.Join(requirementsKey(reqs), ", "), ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (e *Env) touchedUse() {
	_ = os.WriteFile(filepath.Join(e.Dir, envUsedFile), nil, 0o644)
}

// lockShared takes key's lock shared, waiting while someone holds it
// exclusively (building or evicting).
func (c *Cache) lockShared(ctx context.Context, key string) (*os.File, error) {
	for {
		lock, err := c.tryLock(key, syscall.LOCK_SH)
		if err == nil {
			return lock, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("locking the Python environment: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// tryLock takes key's lock file in mode without waiting.
func (c *Cache) tryLock(key string, mode int) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(c.opts.Dir, key+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), mode|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// buildLocked builds the environment of key; the caller holds its lock.
// At most BuildConcurrency builds run at once.
func (c *Cache) buildLocked(ctx context.Context, key string, reqs []Requirement) (*Env, error) {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-c.sem }()
	specs := requirementsKey(reqs)
	what := strings.Join(specs, ", ")
	c.log.Info("Building a Python environment", "requirements", what, "installer", c.opts.Installer, "key", key)
	started := time.Now()
	final := filepath.Join(c.opts.Dir, key)
	tmp := filepath.Join(c.opts.Dir, ".build-"+key)
	_ = os.RemoveAll(tmp)
	_ = os.RemoveAll(final) // incomplete: a complete one was loaded before
	fail := func(err error) (*Env, error) {
		_ = os.RemoveAll(tmp)
		_ = os.RemoveAll(final)
		c.log.Warn("Building a Python environment failed", "requirements", what, "error", err)
		return nil, fmt.Errorf("could not build the Python environment for %s: %w", what, err)
	}
	base := c.opts.Interpreter.Executable
	if err := c.run(ctx, "venv", c.venvCommand(ctx, base, tmp)); err != nil {
		return fail(err)
	}
	if len(specs) > 0 {
		if err := c.run(ctx, "install", c.installCommand(ctx, base, filepath.Join(tmp, "bin", "python"), specs)); err != nil {
			return fail(err)
		}
	}
	if err := os.Rename(tmp, final); err != nil {
		return fail(err)
	}
	python := filepath.Join(final, "bin", "python")
	// Bytecode once, here: no task process ever compiles a package's modules.
	if err := c.run(ctx, "compile", exec.CommandContext(ctx, python, "-I", "-m", "compileall", "-q", "-j", "0", filepath.Join(final, "lib"))); err != nil {
		return fail(err)
	}
	info, err := c.envInfo(ctx, python, reqs)
	if err != nil {
		return fail(err)
	}
	env := &Env{
		Key: key, Dir: final, Requirements: specs, Interpreter: base, PythonVersion: info.Python,
		Distributions: info.Distributions, Imports: info.Imports, RequestedImports: info.Requested, Built: time.Now().UTC(),
		BuildSeconds: time.Since(started).Seconds(),
	}
	if c.opts.Usable != nil {
		if err := c.opts.Usable(ctx, env); err != nil {
			return fail(err)
		}
	}
	if env.Size, err = dirSize(final); err != nil {
		return fail(err)
	}
	if env.Manifest, err = manifest(final); err != nil {
		return fail(err)
	}
	if err := writeJSONAtomically(filepath.Join(final, envMetaFile), env); err != nil {
		return fail(err)
	}
	env.touchedUse()
	c.mu.Lock()
	c.stats.Builds++
	c.stats.BuildSeconds += env.BuildSeconds
	c.mu.Unlock()
	c.log.Info("Built a Python environment", "requirements", what, "took", time.Since(started).Round(time.Millisecond),
		"size_mb", fmt.Sprintf("%.1f", float64(env.Size)/(1<<20)), "imports", strings.Join(env.Imports, ","))
	return env, nil
}

func (c *Cache) venvCommand(ctx context.Context, base, dir string) *exec.Cmd {
	// --system-site-packages: what the interpreter already has (Debian's
	// python3-pandas, an image's own pip installs) is used, not fetched
	// again; pip skips a requirement it already satisfies.
	if c.opts.Installer == "uv" {
		return exec.CommandContext(ctx, "uv", "venv", "--quiet", "--system-site-packages", "--python", base, dir)
	}
	return exec.CommandContext(ctx, base, "-I", "-m", "venv", "--without-pip", "--system-site-packages", dir)
}

func (c *Cache) installCommand(ctx context.Context, base, python string, specs []string) *exec.Cmd {
	if c.opts.Installer == "uv" {
		return exec.CommandContext(ctx, "uv", append([]string{"pip", "install", "--python", python}, specs...)...)
	}
	// The interpreter's own pip installs into the environment (--python):
	// no copy of pip in every environment. pip reads its settings as it
	// always does (PIP_* variables, pip.conf).
	return exec.CommandContext(ctx, base, append([]string{"-m", "pip", "--python", python, "install",
		"--disable-pip-version-check", "--no-input", "--progress-bar", "off"}, specs...)...)
}

// run runs one build step, its output to the log at debug level; a
// failure carries its last lines.
func (c *Cache) run(ctx context.Context, step string, cmd *exec.Cmd) error {
	cmd.Env = c.opts.Env
	cmd.Dir = c.opts.Dir
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		if step == "install" && c.opts.Installer == "pip" {
			return fmt.Errorf("%s: %w (is pip installed for %s? apt-get install python3-pip)", step, err, c.opts.Interpreter.Executable)
		}
		return fmt.Errorf("%s: %w", step, err)
	}
	var last []string
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		c.log.Debug(line, "source", "environment "+step)
		if last = append(last, line); len(last) > 12 {
			last = last[1:]
		}
	}
	_, _ = io.Copy(io.Discard, out)
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("%s failed (%v): %s", step, err, strings.Join(last, "\n"))
	}
	return nil
}

type envInfo struct {
	Python        string         `json:"python"`
	Distributions []Distribution `json:"distributions"`
	Imports       []string       `json:"imports"`
	Requested     []string       `json:"requested"`
	Missing       []string       `json:"missing"`
}

// envInfo asks the environment's interpreter what the requested
// distributions and their dependencies install.
func (c *Cache) envInfo(ctx context.Context, python string, reqs []Requirement) (envInfo, error) {
	args := []string{"-I", "-c", envinfoProgram}
	for _, r := range reqs {
		args = append(args, r.Name)
	}
	cmd := exec.CommandContext(ctx, python, args...)
	cmd.Env = c.opts.Env
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return envInfo{}, fmt.Errorf("reading what was installed: %v: %s", err, ee.Stderr)
		}
		return envInfo{}, fmt.Errorf("reading what was installed: %w", err)
	}
	var info envInfo
	if err := json.Unmarshal(out, &info); err != nil {
		return envInfo{}, fmt.Errorf("reading what was installed: %w", err)
	}
	if len(info.Missing) > 0 {
		return envInfo{}, fmt.Errorf("installed, but not found in the environment: %s", strings.Join(info.Missing, ", "))
	}
	return info, nil
}

// Cleanup evicts environments nobody uses: those unused for longer than
// the TTL, then the least recently used while there are more than
// MaxEnvironments or they take more than MaxDiskBytes. An environment in
// use, pinned (the default one), or in use by another pyrunner is never
// evicted.
func (c *Cache) Cleanup(now time.Time) {
	c.mu.Lock()
	var idle []string
	for key, e := range c.envs {
		if e.users == 0 && !c.pinned[key] {
			idle = append(idle, key)
		}
	}
	sort.Slice(idle, func(i, j int) bool { return c.envs[idle[i]].lastUsed.Before(c.envs[idle[j]].lastUsed) })
	var disk int64
	for _, size := range c.onDisk {
		disk += size
	}
	count := len(c.onDisk)
	var evict []string
	for _, key := range idle {
		expired := now.Sub(c.envs[key].lastUsed) > c.opts.TTL
		if expired || count > c.opts.MaxEnvironments || disk > c.opts.MaxDiskBytes {
			evict = append(evict, key)
			count--
			disk -= c.onDisk[key]
		}
	}
	c.mu.Unlock()
	for _, key := range evict {
		c.evict(key)
	}
}

// evict removes one environment this pyrunner knows and nobody uses.
func (c *Cache) evict(key string) {
	c.mu.Lock()
	e := c.envs[key]
	if e == nil || e.users > 0 {
		c.mu.Unlock()
		return
	}
	delete(c.envs, key)
	c.mu.Unlock()
	e.lock.Close() // our shared hold
	lock, err := c.tryLock(key, syscall.LOCK_EX)
	if err != nil {
		c.log.Debug("Python environment still in use by another pyrunner; not evicted", "key", key)
		return
	}
	defer lock.Close()
	// Metadata first: a half-removed environment is incomplete, never used.
	_ = os.Remove(filepath.Join(e.env.Dir, envMetaFile))
	err = os.RemoveAll(e.env.Dir)
	c.mu.Lock()
	delete(c.onDisk, key)
	c.stats.Evictions++
	c.mu.Unlock()
	c.log.Info("Evicted a Python environment", "requirements", strings.Join(e.env.Requirements, ", "), "error", err)
}

// Run evicts every interval until ctx ends.
func (c *Cache) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			c.Cleanup(now)
		}
	}
}

// Stats reports the cache's counts.
func (c *Cache) Stats() CacheStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Environments = len(c.onDisk)
	for _, size := range c.onDisk {
		s.DiskBytes += size
	}
	for _, reqs := range c.building {
		s.Building = append(s.Building, strings.Join(reqs, ", "))
	}
	slices.Sort(s.Building)
	return s
}

// Close lets go of every environment this pyrunner holds.
func (c *Cache) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.envs {
		e.lock.Close()
	}
}

// dirSize is the bytes of every regular file under dir.
func dirSize(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			total += info.Size()
		}
		return nil
	})
	return total, err
}

// manifest is a digest of every file under dir but the cache's own: path,
// type, size and modification time (of files: a directory's changes with
// the cache's own files).
func manifest(dir string) (string, error) {
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == envMetaFile || rel == envUsedFile {
			return nil
		}
		if d.IsDir() {
			fmt.Fprintf(h, "%s\tdir\n", rel)
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\t%v\t%d\t%d\n", rel, info.Mode(), info.Size(), info.ModTime().UnixNano())
		return nil
	})
	return hex.EncodeToString(h.Sum(nil)), err
}

func writeJSONAtomically(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
