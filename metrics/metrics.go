package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

const namespace = "pyrunner"

// Metrics are pyrunner's metrics, declared together. The domain metrics
// (pyrunner_*) are in Registry; the Go runtime's and the process's (go_*,
// process_*) in Runtime, apart, as node_exporter keeps its own. /metrics
// serves both.
//
// Two kinds: those the runner's events push (State), and those read when
// Prometheus scrapes (the Desc fields, collected by collector.go from the
// pool, the latest resource sample and the alerts).
type Metrics struct {
	Registry *prometheus.Registry
	Runtime  *prometheus.Registry

	// Pushed by events.
	Connected     prometheus.Gauge
	Connects      prometheus.Counter
	TasksAccepted prometheus.Counter
	TasksFinished *prometheus.CounterVec // by outcome; running = accepted - finished
	TaskDuration  *prometheus.HistogramVec
	TasksRejected *prometheus.CounterVec // by reason
	TasksLimited  *prometheus.CounterVec // by limit
	OffersOpen    prometheus.Gauge
	TasksRunning  prometheus.Gauge
	QueueWait     prometheus.Histogram
	// Environment builds, as envcache reports them (State.EnvironmentBuilt).
	EnvBuilds        *prometheus.CounterVec // by outcome
	EnvBuildDuration *prometheus.HistogramVec

	// Read at scrape time.
	poolProcesses, poolQueue, poolZygotes, poolCapacity          *prometheus.Desc
	poolStarts, poolStartFailures, workerRecycles, zygoteRestart *prometheus.Desc
	cacheHits, cacheMisses, cacheEvictions, cacheEntries         *prometheus.Desc
	pyProcesses, pyRSS, pyRSSMax, pyGrowthMax, pyCPU             *prometheus.Desc
	hostMemAvailable, hostMemTotal, hostLoad1, hostCPUs          *prometheus.Desc
	diskFree, diskTotal                                          *prometheus.Desc
	sampleDuration, sampleSuccess, sampleTime                    *prometheus.Desc
	alertActive                                                  *prometheus.Desc
}

func desc(subsystem, name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(namespace, subsystem, name), help, labels, nil)
}

// New registers every metric in fresh registries.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		Runtime:  prometheus.NewRegistry(),
		Connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "broker", Name: "connected",
			Help: "1 while a websocket connection to the n8n broker is open.",
		}),
		Connects: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "broker", Name: "connections_total",
			Help: "Websocket connections opened to the n8n broker.",
		}),
		TasksAccepted: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "tasks", Name: "accepted_total",
			Help: "Tasks accepted from the broker.",
		}),
		TasksFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "tasks", Name: "finished_total",
			Help: "Accepted tasks that ended, by outcome (success, error, timeout, cancelled).",
		}, []string{"outcome"}),
		TaskDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "tasks", Name: "duration_seconds",
			Help:    "Time from a task's settings to its result, by outcome.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 14), // 100 µs .. ~15 min
		}, []string{"outcome"}),
		TasksRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "tasks", Name: "rejected_total",
			Help: "Offers the broker tried to use that the runner rejected, by reason.",
		}, []string{"reason"}),
		TasksLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "tasks", Name: "limit_exceeded_total",
			Help: "Tasks that failed by hitting a per-task limit, by limit (memory, cpu, result, timeout).",
		}, []string{"limit"}),
		OffersOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "offers", Name: "open",
			Help: "Task offers currently open at the broker.",
		}),
		TasksRunning: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "tasks", Name: "in_progress",
			Help: "Accepted tasks not finished yet (accepted - finished).",
		}),
		QueueWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "pool", Name: "queue_wait_seconds",
			Help:    "Time a task waited for a Python process.",
			Buckets: prometheus.ExponentialBuckets(0.00001, 4, 12), // 10 µs .. ~42 s
		}),
		EnvBuilds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: "environment", Name: "builds_total",
			Help: "Python environments built, by outcome (success, error).",
		}, []string{"outcome"}),
		EnvBuildDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: "environment", Name: "build_duration_seconds",
			Help:    "Time to build a Python environment, by outcome.",
			Buckets: prometheus.ExponentialBuckets(0.1, 2, 12), // 100 ms .. ~7 min
		}, []string{"outcome"}),

		poolProcesses: desc("pool", "processes", "Task processes by state (ready, running, starting).", "state"),
		poolQueue:     desc("pool", "queue_length", "Tasks waiting for a Python process."),
		poolZygotes:   desc("pool", "zygotes", "Zygotes up."),
		poolCapacity: desc("pool", "capacity",
			"Tasks the runner may take at once now: the pool's capacity, 0 while offers are stopped (an exhaustion alert) or no process can start."),
		poolStarts:        desc("pool", "process_starts_total", "Task processes started (ready to serve)."),
		poolStartFailures: desc("pool", "process_start_failures_total", "Task process starts that failed."),
		workerRecycles: desc("pool", "worker_recycles_total",
			"Reuse workers replaced, by reason (max_executions, memory_growth).", "reason"),
		zygoteRestart: desc("pool", "zygote_restarts_total",
			"Zygotes replaced, by reason (exited, memory_growth).", "reason"),
		cacheHits:      desc("cache", "hits_total", "Cache lookups that found an entry, by cache (verdicts, code, environments).", "cache"),
		cacheMisses:    desc("cache", "misses_total", "Cache lookups that found none, by cache.", "cache"),
		cacheEvictions: desc("cache", "evictions_total", "Entries dropped to make room, by cache.", "cache"),
		cacheEntries:   desc("cache", "entries", "Entries held, by cache.", "cache"),
		pyProcesses:    desc("python", "processes", "Python processes sampled, by role (zygote, worker, task).", "role"),
		pyRSS:          desc("python", "resident_memory_bytes", "Resident memory of the Python processes, summed by role.", "role"),
		pyRSSMax:       desc("python", "resident_memory_max_bytes", "Resident memory of the largest Python process of each role.", "role"),
		pyGrowthMax: desc("python", "memory_growth_max_bytes",
			"Largest growth of a Python process above its lowest resident memory, by role: what the memory_leak alert judges.", "role"),
		pyCPU:            desc("python", "cpu_cores", "CPU the Python processes used between the last two samples, in cores, summed by role.", "role"),
		hostMemAvailable: desc("host", "memory_available_bytes", "Memory that may still be allocated: the machine's, or what is left under pyrunner's cgroup limit when less."),
		hostMemTotal:     desc("host", "memory_total_bytes", "The machine's memory, or pyrunner's cgroup limit when less."),
		hostLoad1:        desc("host", "load1", "The machine's 1-minute load average."),
		hostCPUs:         desc("host", "cpus", "CPUs pyrunner may use."),
		diskFree:         desc("host", "disk_free_bytes", "Free space on the filesystem holding path (the cache and the tasks' directories).", "path"),
		diskTotal:        desc("host", "disk_total_bytes", "Size of the filesystem holding path.", "path"),
		sampleDuration:   desc("resources", "sample_duration_seconds", "How long the last resource sample took."),
		sampleSuccess:    desc("resources", "sample_success", "1 when the last resource sample read everything, else 0."),
		sampleTime:       desc("resources", "sample_timestamp_seconds", "When the last resource sample was taken (Unix time)."),
		alertActive:      desc("alert", "active", "1 while the alert is active, for every alert pyrunner has.", "alert"),
	}
	m.Registry.MustRegister(
		m.Connected, m.Connects, m.TasksAccepted, m.TasksFinished, m.TaskDuration,
		m.TasksRejected, m.TasksLimited, m.OffersOpen, m.TasksRunning, m.QueueWait,
		m.EnvBuilds, m.EnvBuildDuration,
	)
	m.Runtime.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Gatherer is what /metrics serves: the domain metrics, then the runtime's.
func (m *Metrics) Gatherer() prometheus.Gatherer {
	return prometheus.Gatherers{m.Registry, m.Runtime}
}
