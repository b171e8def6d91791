package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pyrunner/pyrunner/metrics/alerts"
)

// collector exports, when Prometheus scrapes, the pool as it is then, the
// latest resource sample and the alerts: nothing is pushed on every change.
type collector struct{ mon *Monitor }

func (c collector) descs() []*prometheus.Desc {
	m := c.mon.m
	return []*prometheus.Desc{
		m.poolProcesses, m.poolQueue, m.poolZygotes, m.poolCapacity,
		m.poolStarts, m.poolStartFailures, m.workerRecycles, m.zygoteRestart,
		m.cacheHits, m.cacheMisses, m.cacheEvictions, m.cacheEntries,
		m.pyProcesses, m.pyRSS, m.pyRSSMax, m.pyGrowthMax, m.pyCPU,
		m.hostMemAvailable, m.hostMemTotal, m.hostLoad1, m.hostCPUs,
		m.diskFree, m.diskTotal, m.sampleDuration, m.sampleSuccess, m.sampleTime,
		m.alertActive,
	}
}

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs() {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	m := c.mon.m
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}

	p := c.mon.opts.Pool.Read()
	gauge(m.poolProcesses, float64(p.Ready), "ready")
	gauge(m.poolProcesses, float64(p.Running), "running")
	gauge(m.poolProcesses, float64(p.Starting), "starting")
	gauge(m.poolQueue, float64(p.Queued))
	gauge(m.poolZygotes, float64(p.Zygotes))
	gauge(m.poolCapacity, float64(c.mon.Capacity()))
	counter(m.poolStarts, p.Starts)
	counter(m.poolStartFailures, p.StartFailures)
	counter(m.workerRecycles, p.WornOut, "max_executions")
	counter(m.workerRecycles, p.Recycled, "memory_growth")
	counter(m.zygoteRestart, p.ZygoteRestarts, "exited")
	counter(m.zygoteRestart, p.ZygotesReplaced, "memory_growth")
	for _, cache := range p.Caches {
		counter(m.cacheHits, cache.Hits, cache.Name)
		counter(m.cacheMisses, cache.Misses, cache.Name)
		counter(m.cacheEvictions, cache.Evictions, cache.Name)
		gauge(m.cacheEntries, float64(cache.Entries), cache.Name)
	}

	if s := c.mon.latest(); s != nil {
		for _, role := range []string{"zygote", "worker", "task"} {
			t := s.ByRole()[role]
			gauge(m.pyProcesses, float64(t.Count), role)
			gauge(m.pyRSS, float64(t.RSS), role)
			gauge(m.pyRSSMax, float64(t.MaxRSS), role)
			gauge(m.pyGrowthMax, float64(t.MaxGrowth), role)
			gauge(m.pyCPU, t.CPUCores, role)
		}
		h := s.Host
		gauge(m.hostMemAvailable, float64(h.MemAvailable))
		gauge(m.hostMemTotal, float64(h.MemTotal))
		gauge(m.hostLoad1, h.Load1)
		gauge(m.hostCPUs, float64(h.CPUs))
		for _, d := range h.Disks {
			gauge(m.diskFree, float64(d.Free), d.Path)
			gauge(m.diskTotal, float64(d.Total), d.Path)
		}
		gauge(m.sampleDuration, s.Took.Seconds())
		gauge(m.sampleSuccess, boolFloat(len(s.Errors) == 0))
		gauge(m.sampleTime, float64(s.At.UnixNano())/1e9)
	}

	active := map[string]bool{}
	for _, a := range c.mon.Alerts() {
		active[a.Name] = true
	}
	for _, name := range alerts.Names {
		gauge(m.alertActive, boolFloat(active[name]), name)
	}
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
