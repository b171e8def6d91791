package resources

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/shirou/gopsutil/v4/disk"
	"github.com/shirou/gopsutil/v4/load"
	"github.com/shirou/gopsutil/v4/mem"
	"github.com/shirou/gopsutil/v4/process"
)

// GopsutilReader reads processes and the machine with gopsutil, and the
// cgroup limit from CgroupRoot.
type GopsutilReader struct {
	// CgroupRoot is where the cgroup filesystem is mounted; empty:
	// /sys/fs/cgroup. In a container it shows the container's own cgroup.
	CgroupRoot string
}

var _ Reader = GopsutilReader{}

var cacheBootTime sync.Once

// Process reads /proc/<pid>/statm and /proc/<pid>/stat.
func (GopsutilReader) Process(ctx context.Context, pid int) (ProcReading, error) {
	// gopsutil reads /proc/stat for the boot time on every read of a
	// process's CPU times unless told to keep it; it does not change.
	cacheBootTime.Do(func() { process.EnableBootTimeCache(true) })
	p := &process.Process{Pid: int32(pid)}
	m, err := p.MemoryInfoWithContext(ctx)
	if err != nil {
		return ProcReading{}, gone(err)
	}
	t, err := p.TimesWithContext(ctx)
	if err != nil {
		return ProcReading{}, gone(err)
	}
	cpu := time.Duration((t.User + t.System) * float64(time.Second))
	return ProcReading{RSS: m.RSS, CPU: cpu}, nil
}

// gone turns "no such file" (the process ended) into ErrGone.
func gone(err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, process.ErrorProcessNotRunning) {
		return ErrGone
	}
	return err
}

// Host reads /proc/meminfo, /proc/loadavg, the cgroup's memory files and
// the filesystems holding paths.
func (r GopsutilReader) Host(ctx context.Context, paths []string) (HostReading, error) {
	var h HostReading
	var errs []error
	if vm, err := mem.VirtualMemoryWithContext(ctx); err == nil {
		h.MemTotal, h.MemAvailable = vm.Total, vm.Available
	} else {
		errs = append(errs, err)
	}
	if l, err := load.AvgWithContext(ctx); err == nil {
		h.Load1 = l.Load1
	} else {
		errs = append(errs, err)
	}
	h.CPUs = runtime.NumCPU()
	h.Cgroup = r.cgroup()
	for _, p := range paths {
		u, err := disk.UsageWithContext(ctx, p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		h.Disks = append(h.Disks, Disk{Path: p, Free: u.Free, Total: u.Total})
	}
	return h, errors.Join(errs...)
}

// cgroup reads the memory limit of the cgroup mounted at the root (v2,
// then v1), nil when there is none or it cannot be read.
func (r GopsutilReader) cgroup() *CgroupMemory {
	root := r.CgroupRoot
	if root == "" {
		root = "/sys/fs/cgroup"
	}
	read := func(parts ...string) string {
		b, err := os.ReadFile(filepath.Join(append([]string{root}, parts...)...))
		if err != nil {
			return ""
		}
		return string(b)
	}
	if maxText := read("memory.max"); maxText != "" {
		c, _ := parseCgroupV2(maxText, read("memory.current"), read("memory.stat"))
		return c
	}
	if limit := read("memory", "memory.limit_in_bytes"); limit != "" {
		c, _ := parseCgroupV1(limit, read("memory", "memory.usage_in_bytes"), read("memory", "memory.stat"))
		return c
	}
	return nil
}
