package metrics

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/pyrunner/pyrunner/metrics/alerts"
	"github.com/pyrunner/pyrunner/metrics/resources"
)

// fakePool is a Pool the test sets up, recording Recycle calls.
type fakePool struct {
	mu       sync.Mutex
	reading  PoolReading
	capacity int
	recycled []int
}

func (p *fakePool) Read() PoolReading {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.reading
}

func (p *fakePool) Capacity() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.capacity
}

func (p *fakePool) Recycle(pid int, _ string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.recycled = append(p.recycled, pid)
	return true
}

// fakeReader returns the readings the test sets.
type fakeReader struct {
	mu    sync.Mutex
	procs map[int]resources.ProcReading
	host  resources.HostReading
}

func (f *fakeReader) Process(_ context.Context, pid int) (resources.ProcReading, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.procs[pid]
	if !ok {
		return r, resources.ErrGone
	}
	return r, nil
}

func (f *fakeReader) Host(context.Context, []string) (resources.HostReading, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.host, nil
}

func (f *fakeReader) set(pid int, rss uint64, avail uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.procs[pid] = resources.ProcReading{RSS: rss}
	f.host.MemAvailable = avail
}

const mb = 1 << 20

var testThresholds = alerts.Thresholds{
	HighLatency: 5 * time.Second, MemoryLeak: 500 * mb, HighErrorRate: 0.1, CacheMiss: 0.3,
	MinAvailableMemory: 256 * mb, MinFreeDisk: 512 * mb, PoolExhaustedAfter: time.Minute,
}

type fixture struct {
	m      *Metrics
	state  *State
	pool   *fakePool
	reader *fakeReader
	mon    *Monitor
	logs   *strings.Builder
	clock  time.Time
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{m: New(), logs: &strings.Builder{}, clock: time.Unix(1_800_000_000, 0)}
	f.state = NewState(f.m, f.now)
	f.pool = &fakePool{capacity: 4, reading: PoolReading{Ready: 1, Zygotes: 1,
		Processes: []resources.Proc{{PID: 10, Role: "zygote"}, {PID: 11, Role: "worker"}},
		Caches:    []CacheReading{{Name: "verdicts", Hits: 3, Misses: 1, Entries: 1}}}}
	f.reader = &fakeReader{procs: map[int]resources.ProcReading{10: {RSS: 30 * mb}, 11: {RSS: 40 * mb}},
		host: resources.HostReading{MemTotal: 8 << 30, MemAvailable: 4 << 30, CPUs: 2,
			Disks: []resources.Disk{{Path: "/cache", Free: 10 << 30, Total: 20 << 30}}}}
	f.mon = NewMonitor(f.m, f.state, MonitorOptions{Pool: f.pool, Reader: f.reader, Interval: 5 * time.Second,
		Thresholds: testThresholds, MaxConcurrency: 5, Now: f.now,
		Logger: slog.New(slog.NewTextHandler(lockedWriter{w: f.logs}, nil))})
	return f
}

func (f *fixture) now() time.Time { return f.clock }

// tick advances the clock by a sample interval and samples.
func (f *fixture) tick() {
	f.clock = f.clock.Add(5 * time.Second)
	f.mon.Tick(context.Background())
}

// lockedWriter serialises writes to w.
type lockedWriter struct{ w io.Writer }

var logMu sync.Mutex

func (l lockedWriter) Write(p []byte) (int, error) {
	logMu.Lock()
	defer logMu.Unlock()
	return l.w.Write(p)
}

func TestReadinessReasons(t *testing.T) {
	f := newFixture(t)
	if r := f.mon.Ready(); r.Ready || r.Reason != "not registered with the broker yet" {
		t.Fatalf("before registering: %+v", r)
	}
	f.state.Failed(errors.New("dial tcp 127.0.0.1:5679: connection refused"))
	if r := f.mon.Ready(); r.Reason != "not registered with the broker yet: dial tcp 127.0.0.1:5679: connection refused" {
		t.Fatalf("failing to connect: %+v", r)
	}
	f.state.Connected(true)
	f.state.Registered()
	if r := f.mon.Ready(); !r.Ready || r.Capacity != 4 || r.Reason != "" || r.LastError != "" {
		t.Fatalf("registered: %+v", r)
	}
	f.pool.mu.Lock()
	f.pool.capacity, f.pool.reading.StartError = 0, "zygote could not fork: Resource temporarily unavailable"
	f.pool.mu.Unlock()
	if r := f.mon.Ready(); r.Ready || r.Reason != "no task process can start: zygote could not fork: Resource temporarily unavailable" {
		t.Fatalf("failing starts: %+v", r)
	}
	f.pool.mu.Lock()
	f.pool.capacity, f.pool.reading.StartError = 4, ""
	f.pool.mu.Unlock()
	f.state.Connected(false)
	f.state.Failed(io.ErrUnexpectedEOF)
	r := f.mon.Ready()
	if r.Ready || !strings.HasPrefix(r.Reason, "broker disconnected since ") || !strings.HasSuffix(r.Reason, ": unexpected EOF") {
		t.Fatalf("after the connection dropped: %+v", r)
	}
}

// TestMonitorActs: a worker that keeps growing is recycled; memory
// exhaustion stops offers (Capacity 0, /readyz says why) and they resume
// by themselves when it clears. Each change is logged once.
func TestMonitorActs(t *testing.T) {
	f := newFixture(t)
	f.state.Connected(true)
	f.state.Registered()
	for i := range 6 {
		f.reader.set(11, uint64(40+200*i)*mb, 4<<30)
		f.tick()
	}
	f.pool.mu.Lock()
	recycled := f.pool.recycled
	f.pool.mu.Unlock()
	if len(recycled) == 0 || recycled[0] != 11 {
		t.Fatalf("recycled %v, want worker 11", recycled)
	}
	if a := f.mon.Alerts(); len(a) != 1 || a[0].Name != alerts.MemoryLeak {
		t.Fatalf("alerts %+v", a)
	}

	for range 3 {
		f.reader.set(11, 40*mb, 180*mb)
		f.tick()
	}
	r := f.mon.Ready()
	if f.mon.Capacity() != 0 || r.Ready || !strings.Contains(r.Reason, "stopped offering: available memory 180 MB < 256 MB") {
		t.Fatalf("exhausted: capacity %d, %+v", f.mon.Capacity(), r)
	}
	for range 3 {
		f.reader.set(11, 40*mb, 4<<30)
		f.tick()
	}
	if r := f.mon.Ready(); !r.Ready || f.mon.Capacity() != 4 {
		t.Fatalf("after memory came back: %+v", r)
	}
	logs := f.logs.String()
	for _, want := range []string{
		"Alert memory_leak raised: worker 11 grew by",
		"Alert memory_exhausted raised: available memory 180 MB < 256 MB",
		"Stopped offering tasks to the broker until this clears",
		"Alert memory_exhausted resolved",
		"Offering tasks to the broker again",
	} {
		if strings.Count(logs, want) != 1 {
			t.Errorf("log has %q %d times, want once:\n%s", want, strings.Count(logs, want), logs)
		}
	}
}

// TestMonitorStops: Close ends the sampling goroutine.
func TestMonitorStops(t *testing.T) {
	before := goleak.IgnoreCurrent()
	f := newFixture(t)
	f.mon.opts.Interval = time.Millisecond
	f.mon.opts.Now = time.Now
	f.mon.now = time.Now
	f.mon.Start()
	for f.mon.latest() == nil {
		time.Sleep(time.Millisecond)
	}
	f.mon.Close()
	f.mon.Close()
	goleak.VerifyNone(t, before)
}

// BenchmarkTick is one sample, evaluation and action with the real
// reader: three processes (this one, read three times), two disks.
func BenchmarkTick(b *testing.B) {
	m := New()
	self := os.Getpid()
	pool := &fakePool{capacity: 4, reading: PoolReading{Processes: []resources.Proc{
		{PID: self, Role: "zygote"}, {PID: self, Role: "worker"}, {PID: self, Role: "worker"}}}}
	mon := NewMonitor(m, NewState(m, time.Now), MonitorOptions{Pool: pool, Thresholds: testThresholds, DiskPaths: []string{os.TempDir(), "/"}})
	for b.Loop() {
		mon.Tick(context.Background())
	}
}
