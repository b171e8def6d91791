package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pyrunner/pyrunner/metrics/alerts"
)

// Metrics is how often the Python processes and the machine are sampled,
// and the alerts' thresholds (README: Monitoring). pyrunner's own
// variables.
type Metrics struct {
	// SampleInterval: 0 turns resource sampling and the alerts off.
	SampleInterval Millis `env:"N8N_PYTHON_METRICS_SAMPLE_INTERVAL, default=5000"`
	// HighLatency in ms: the p95 of execution time over 5 minutes.
	HighLatency Millis `env:"N8N_PYTHON_METRICS_HIGH_LATENCY_THRESHOLD, default=5000"`
	// MemoryLeak in MB: growth of a zygote or reuse worker, idle, above its
	// lowest resident memory.
	MemoryLeak    Int   `env:"N8N_PYTHON_METRICS_MEMORY_LEAK_THRESHOLD, default=500"`
	HighErrorRate Float `env:"N8N_PYTHON_METRICS_HIGH_ERROR_RATE_THRESHOLD, default=0.1"`
	CacheMiss     Float `env:"N8N_PYTHON_METRICS_CACHE_MISS_THRESHOLD, default=0.3"`
	// Below these (MB), offers stop until they are back.
	MinAvailableMemory Int `env:"N8N_PYTHON_METRICS_MIN_AVAILABLE_MEMORY, default=256"`
	MinFreeDisk        Int `env:"N8N_PYTHON_METRICS_MIN_FREE_DISK, default=512"`
}

// Validate checks the section, each problem naming its variable.
func (c *Metrics) Validate() []error {
	var errs []error
	if c.SampleInterval != 0 && c.SampleInterval < 100 {
		errs = append(errs, fmt.Errorf("N8N_PYTHON_METRICS_SAMPLE_INTERVAL must be 0 (off) or at least 100 ms, got %d", c.SampleInterval))
	}
	for name, v := range map[string]int{
		"N8N_PYTHON_METRICS_HIGH_LATENCY_THRESHOLD": int(c.HighLatency), "N8N_PYTHON_METRICS_MEMORY_LEAK_THRESHOLD": int(c.MemoryLeak),
		"N8N_PYTHON_METRICS_MIN_AVAILABLE_MEMORY": int(c.MinAvailableMemory), "N8N_PYTHON_METRICS_MIN_FREE_DISK": int(c.MinFreeDisk),
	} {
		if v < 0 {
			errs = append(errs, fmt.Errorf("%s must not be negative (0 turns the alert off), got %d", name, v))
		}
	}
	for name, v := range map[string]Float{
		"N8N_PYTHON_METRICS_HIGH_ERROR_RATE_THRESHOLD": c.HighErrorRate, "N8N_PYTHON_METRICS_CACHE_MISS_THRESHOLD": c.CacheMiss,
	} {
		if v < 0 || v > 1 {
			errs = append(errs, fmt.Errorf("%s must be between 0 (off) and 1, got %v", name, float64(v)))
		}
	}
	return errs
}

// Thresholds are the alerts' settings; a pool without a free slot for
// longer than a task may run is exhausted.
func (c *Metrics) Thresholds(taskTimeout time.Duration) alerts.Thresholds {
	return alerts.Thresholds{
		HighLatency:        c.HighLatency.Duration(),
		MemoryLeak:         uint64(c.MemoryLeak) << 20,
		HighErrorRate:      float64(c.HighErrorRate),
		CacheMiss:          float64(c.CacheMiss),
		MinAvailableMemory: uint64(c.MinAvailableMemory) << 20,
		MinFreeDisk:        uint64(c.MinFreeDisk) << 20,
		PoolExhaustedAfter: taskTimeout,
	}
}

// Float is a number; surrounding whitespace is allowed.
type Float float64

func (f *Float) EnvDecode(v string) error {
	n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil {
		return fmt.Errorf("must be a number, got '%s'", v)
	}
	*f = Float(n)
	return nil
}
