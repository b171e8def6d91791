package resources

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"
)

// fakeReader returns readings the test sets.
type fakeReader struct {
	procs map[int]ProcReading
	host  HostReading
}

func (f *fakeReader) Process(_ context.Context, pid int) (ProcReading, error) {
	r, ok := f.procs[pid]
	if !ok {
		return ProcReading{}, ErrGone
	}
	return r, nil
}

func (f *fakeReader) Host(context.Context, []string) (HostReading, error) { return f.host, nil }

const mb = 1 << 20

func TestSamplerCPUAndGrowth(t *testing.T) {
	f := &fakeReader{procs: map[int]ProcReading{
		10: {RSS: 30 * mb, CPU: time.Second},
		20: {RSS: 40 * mb, CPU: 0},
	}}
	s := NewSampler(f, nil)
	t0 := time.Unix(1_800_000_000, 0)
	procs := []Proc{{PID: 10, Role: "zygote"}, {PID: 20, Role: "worker", Busy: true}}
	first := s.Sample(context.Background(), t0, procs)
	if len(first.Procs) != 2 || first.Procs[0].CPUCores != 0 || first.Procs[1].Growth != 0 {
		t.Fatalf("first sample: %+v", first.Procs)
	}
	// 5 s later: the zygote used 2.5 s of CPU (half a core); the worker
	// dipped to 35 MB, then grew to 135 MB.
	f.procs[10] = ProcReading{RSS: 30 * mb, CPU: 3500 * time.Millisecond}
	f.procs[20] = ProcReading{RSS: 35 * mb, CPU: time.Second}
	s.Sample(context.Background(), t0.Add(5*time.Second), procs)
	f.procs[20] = ProcReading{RSS: 135 * mb, CPU: 2 * time.Second}
	third := s.Sample(context.Background(), t0.Add(10*time.Second), procs)
	z, w := third.Procs[0], third.Procs[1]
	if z.CPUCores != 0 || w.CPUCores != 0.2 {
		t.Fatalf("cpu: zygote %v, worker %v", z.CPUCores, w.CPUCores)
	}
	if w.Baseline != 35*mb || w.Growth != 100*mb || !w.Since.Equal(t0) || !w.Busy {
		t.Fatalf("worker: %+v", w)
	}
	totals := third.ByRole()
	if totals["worker"].MaxGrowth != 100*mb || totals["zygote"].RSS != 30*mb || totals["worker"].Count != 1 {
		t.Fatalf("totals %+v", totals)
	}

	// The worker ends; a new process gets its pid: it starts afresh.
	delete(f.procs, 20)
	gone := s.Sample(context.Background(), t0.Add(15*time.Second), procs)
	if len(gone.Procs) != 1 || len(gone.Errors) != 0 {
		t.Fatalf("a process that ended: %+v", gone)
	}
	f.procs[20] = ProcReading{RSS: 500 * mb, CPU: 0}
	again := s.Sample(context.Background(), t0.Add(20*time.Second), procs)
	if p := again.Procs[1]; p.Growth != 0 || p.Baseline != 500*mb {
		t.Fatalf("a pid used again: %+v", p)
	}
}

func TestHostTakesTheTighterMemory(t *testing.T) {
	cases := []struct {
		name    string
		reading HostReading
		want    Host
	}{
		{"no cgroup limit", HostReading{MemTotal: 8 << 30, MemAvailable: 6 << 30},
			Host{MemTotal: 8 << 30, MemAvailable: 6 << 30}},
		{"a container's limit is tighter", HostReading{MemTotal: 8 << 30, MemAvailable: 6 << 30,
			Cgroup: &CgroupMemory{Limit: 1 << 30, Usage: 900 * mb, InactiveFile: 100 * mb}},
			Host{MemTotal: 1 << 30, MemAvailable: 224 * mb, Limited: true}},
		{"the machine is tighter", HostReading{MemTotal: 8 << 30, MemAvailable: 100 * mb,
			Cgroup: &CgroupMemory{Limit: 4 << 30, Usage: mb}},
			Host{MemTotal: 4 << 30, MemAvailable: 100 * mb}},
	}
	for _, c := range cases {
		if got := host(c.reading); got.MemTotal != c.want.MemTotal || got.MemAvailable != c.want.MemAvailable || got.Limited != c.want.Limited {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}

func TestParseCgroup(t *testing.T) {
	// As read on this project's machine (cgroup v1, no limit) and on a
	// Kubernetes pod with a 1 GiB limit (v2).
	v1Stat := "cache 3120000000\nrss 1200000000\ntotal_inactive_file 1048576\n"
	if c, err := parseCgroupV1("9223372036854771712\n", "4375113728\n", v1Stat); c != nil || err != nil {
		t.Fatalf("v1 without a limit: %+v %v", c, err)
	}
	c, err := parseCgroupV1("1073741824\n", "536870912\n", v1Stat)
	if err != nil || *c != (CgroupMemory{Limit: 1 << 30, Usage: 512 * mb, InactiveFile: mb}) || c.Available() != 513*mb {
		t.Fatalf("v1 with a limit: %+v %v", c, err)
	}
	v2Stat := "anon 500000000\nfile 20000000\ninactive_file 10485760\nactive_file 2000\n"
	c, err = parseCgroupV2("1073741824\n", "1073741824\n", v2Stat)
	if err != nil || c.Available() != 10*mb {
		t.Fatalf("v2 at the limit: %+v %v", c, err)
	}
	if c, err := parseCgroupV2("max\n", "123\n", v2Stat); c != nil || err != nil {
		t.Fatalf("v2 without a limit: %+v %v", c, err)
	}
	if _, err := parseCgroupV2("lots\n", "1\n", ""); err == nil {
		t.Fatal("a limit that is not a number parsed")
	}
	if over := (CgroupMemory{Limit: 10, Usage: 20}); over.Available() != 0 {
		t.Fatalf("over the limit: %d available", over.Available())
	}
}

func TestCgroupFiles(t *testing.T) {
	root := t.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(root+"/"+name, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if c := (GopsutilReader{CgroupRoot: root}).cgroup(); c != nil {
		t.Fatalf("no cgroup files: %+v", c)
	}
	write("memory.max", "2147483648\n")
	write("memory.current", "1073741824\n")
	write("memory.stat", "inactive_file 0\n")
	if c := (GopsutilReader{CgroupRoot: root}).cgroup(); c == nil || c.Available() != 1<<30 {
		t.Fatalf("cgroup v2: %+v", c)
	}
}

// TestGopsutilReader reads this test's own process and the machine, and
// tells a process that does not exist from a failure.
func TestGopsutilReader(t *testing.T) {
	r := GopsutilReader{}
	ctx := context.Background()
	p, err := r.Process(ctx, os.Getpid())
	if err != nil || p.RSS == 0 {
		t.Fatalf("own process: %+v %v", p, err)
	}
	if _, err := r.Process(ctx, 1<<30); !errors.Is(err, ErrGone) {
		t.Fatalf("a pid that does not exist: %v, want ErrGone", err)
	}
	h, err := r.Host(ctx, []string{t.TempDir()})
	if err != nil || h.MemTotal == 0 || h.MemAvailable == 0 || h.CPUs == 0 || len(h.Disks) != 1 || h.Disks[0].Total == 0 {
		t.Fatalf("host: %+v %v", h, err)
	}
}

// BenchmarkSample is the cost of one sample of n processes with the real
// reader (the processes are this one, read n times).
func BenchmarkSample(b *testing.B) {
	for _, n := range []int{1, 10} {
		b.Run(map[int]string{1: "1proc", 10: "10procs"}[n], func(b *testing.B) {
			procs := make([]Proc, n)
			for i := range procs {
				procs[i] = Proc{PID: os.Getpid(), Role: "worker"}
			}
			s := NewSampler(GopsutilReader{}, []string{os.TempDir()})
			for b.Loop() {
				s.Sample(context.Background(), time.Now(), procs)
			}
		})
	}
}
