package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"
)

func TestMetricsConfigDefaults(t *testing.T) {
	c, problems := loadMetricsConfig(context.Background(), envconfig.MapLookuper(nil))
	if len(problems) > 0 {
		t.Fatal(errors.Join(problems...))
	}
	want := metricsConfig{SampleInterval: 5000, HighLatency: 5000, MemoryLeak: 500, HighErrorRate: 0.1, CacheMiss: 0.3,
		MinAvailableMemory: 256, MinFreeDisk: 512}
	if *c != want {
		t.Fatalf("defaults %+v, want %+v", *c, want)
	}
	th := c.thresholds(time.Minute)
	if th.HighLatency != 5*time.Second || th.MemoryLeak != 500<<20 || th.MinAvailableMemory != 256<<20 || th.PoolExhaustedAfter != time.Minute {
		t.Fatalf("thresholds %+v", th)
	}
}

// TestMetricsConfigReportsEveryProblem: every bad value is named at once.
func TestMetricsConfigReportsEveryProblem(t *testing.T) {
	_, problems := loadMetricsConfig(context.Background(), envconfig.MapLookuper(map[string]string{
		"N8N_PYTHON_METRICS_SAMPLE_INTERVAL":           "50",
		"N8N_PYTHON_METRICS_HIGH_LATENCY_THRESHOLD":    "soon",
		"N8N_PYTHON_METRICS_MEMORY_LEAK_THRESHOLD":     "-1",
		"N8N_PYTHON_METRICS_HIGH_ERROR_RATE_THRESHOLD": "1.5",
		"N8N_PYTHON_METRICS_CACHE_MISS_THRESHOLD":      "lots",
	}))
	got := errors.Join(problems...).Error()
	for _, want := range []string{
		"N8N_PYTHON_METRICS_SAMPLE_INTERVAL must be 0 (off) or at least 100 ms, got 50",
		"Environment variable N8N_PYTHON_METRICS_HIGH_LATENCY_THRESHOLD must be an integer, got 'soon'",
		"N8N_PYTHON_METRICS_MEMORY_LEAK_THRESHOLD must not be negative (0 turns the alert off), got -1",
		"N8N_PYTHON_METRICS_HIGH_ERROR_RATE_THRESHOLD must be between 0 (off) and 1, got 1.5",
		"Environment variable N8N_PYTHON_METRICS_CACHE_MISS_THRESHOLD must be a number, got 'lots'",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	if n := len(problems); n != 5 {
		t.Errorf("%d problems, want 5:\n%s", n, got)
	}
}
