package resources

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Proc is a Python process to sample, as the pool lists it.
type Proc struct {
	PID  int
	Role string // "zygote", "worker" (reuse) or "task" (isolated)
	Busy bool
}

// ProcReading is one read of a process: resident memory, and CPU time
// used since it started.
type ProcReading struct {
	RSS uint64
	CPU time.Duration
}

// HostReading is one read of the machine.
type HostReading struct {
	MemTotal, MemAvailable uint64 // /proc/meminfo
	Load1                  float64
	CPUs                   int
	// Cgroup is the memory limit of pyrunner's cgroup, nil when there is
	// none (or it cannot be read).
	Cgroup *CgroupMemory
	Disks  []Disk
}

// Disk is the filesystem holding Path.
type Disk struct {
	Path        string `json:"path"`
	Free, Total uint64
}

// Reader does the I/O of sampling.
type Reader interface {
	// Process reads one process; an error for one that has gone.
	Process(ctx context.Context, pid int) (ProcReading, error)
	// Host reads the machine and the filesystems holding paths.
	Host(ctx context.Context, paths []string) (HostReading, error)
}

// ProcSample is one process in a Sample.
type ProcSample struct {
	PID  int    `json:"pid"`
	Role string `json:"role"`
	Busy bool   `json:"busy"`
	RSS  uint64 `json:"rss_bytes"`
	// CPUCores is the CPU it used since the last sample, in cores (1 = one
	// core all the time); 0 on its first sample.
	CPUCores float64 `json:"cpu_cores"`
	// Baseline is the lowest RSS seen of it; Growth how far it is above.
	Baseline uint64 `json:"baseline_bytes"`
	Growth   uint64 `json:"growth_bytes"`
	// Since is when it was first sampled.
	Since time.Time `json:"since"`
}

// Host is the machine in a Sample.
type Host struct {
	MemTotal uint64 `json:"memory_total_bytes"`
	// MemAvailable is what may still be allocated: the machine's available
	// memory, or what is left under pyrunner's cgroup limit when that is
	// less (Limited).
	MemAvailable uint64  `json:"memory_available_bytes"`
	Limited      bool    `json:"memory_limited_by_cgroup"`
	Load1        float64 `json:"load1"`
	CPUs         int     `json:"cpus"`
	Disks        []Disk  `json:"disks"`
}

// Sample is one sampling of every process and the machine.
type Sample struct {
	At    time.Time     `json:"at"`
	Took  time.Duration `json:"took_ns"`
	Procs []ProcSample  `json:"processes"`
	Host  Host          `json:"host"`
	// Errors are what could not be read (a process that ended meanwhile
	// is not one).
	Errors []string `json:"errors,omitempty"`
}

// Totals sums the processes of one role.
type Totals struct {
	Count     int
	RSS       uint64
	CPUCores  float64
	MaxRSS    uint64
	MaxGrowth uint64
}

// ByRole sums the sample's processes by role.
func (s Sample) ByRole() map[string]Totals {
	out := map[string]Totals{}
	for _, p := range s.Procs {
		t := out[p.Role]
		t.Count++
		t.RSS += p.RSS
		t.CPUCores += p.CPUCores
		t.MaxRSS = max(t.MaxRSS, p.RSS)
		t.MaxGrowth = max(t.MaxGrowth, p.Growth)
		out[p.Role] = t
	}
	return out
}

// ErrGone is what a Reader returns for a process that has ended.
var ErrGone = errors.New("process gone")

// Sampler turns readings into samples, remembering each process's last
// CPU reading and lowest RSS. Not safe for concurrent use: one goroutine
// samples.
type Sampler struct {
	reader Reader
	paths  []string
	seen   map[int]*procHistory
}

type procHistory struct {
	cpu      time.Duration
	at       time.Time
	baseline uint64
	since    time.Time
}

// NewSampler samples through reader, watching the disks holding paths.
func NewSampler(reader Reader, paths []string) *Sampler {
	return &Sampler{reader: reader, paths: paths, seen: map[int]*procHistory{}}
}

// Sample reads procs and the machine at now. Processes no longer listed
// are forgotten, so a pid the system hands out again starts afresh.
func (s *Sampler) Sample(ctx context.Context, now time.Time, procs []Proc) Sample {
	out := Sample{At: now}
	listed := make(map[int]bool, len(procs))
	for _, p := range procs {
		listed[p.PID] = true
		r, err := s.reader.Process(ctx, p.PID)
		if errors.Is(err, ErrGone) {
			delete(s.seen, p.PID)
			continue
		}
		if err != nil {
			out.Errors = append(out.Errors, fmt.Sprintf("%s %d: %v", p.Role, p.PID, err))
			continue
		}
		out.Procs = append(out.Procs, s.track(p, r, now))
	}
	for pid := range s.seen {
		if !listed[pid] {
			delete(s.seen, pid)
		}
	}
	h, err := s.reader.Host(ctx, s.paths)
	if err != nil {
		out.Errors = append(out.Errors, fmt.Sprintf("host: %v", err))
	}
	out.Host = host(h)
	return out
}

// track turns a process's reading into its sample and remembers it.
func (s *Sampler) track(p Proc, r ProcReading, now time.Time) ProcSample {
	h := s.seen[p.PID]
	ps := ProcSample{PID: p.PID, Role: p.Role, Busy: p.Busy, RSS: r.RSS}
	if h == nil {
		h = &procHistory{baseline: r.RSS, since: now}
		s.seen[p.PID] = h
	} else if dt := now.Sub(h.at); dt > 0 && r.CPU >= h.cpu {
		ps.CPUCores = float64(r.CPU-h.cpu) / float64(dt)
	}
	h.cpu, h.at = r.CPU, now
	h.baseline = min(h.baseline, r.RSS)
	ps.Baseline, ps.Growth, ps.Since = h.baseline, r.RSS-h.baseline, h.since
	return ps
}

// host makes sense of a machine reading: the memory available is the
// tighter of the machine's and the cgroup's.
func host(h HostReading) Host {
	out := Host{MemTotal: h.MemTotal, MemAvailable: h.MemAvailable, Load1: h.Load1, CPUs: h.CPUs, Disks: h.Disks}
	if c := h.Cgroup; c != nil {
		if left := c.Available(); left < out.MemAvailable || out.MemTotal == 0 {
			out.MemAvailable, out.Limited = left, true
		}
		out.MemTotal = min(out.MemTotal, c.Limit)
		if out.MemTotal == 0 {
			out.MemTotal = c.Limit
		}
	}
	return out
}
