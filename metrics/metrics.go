package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

const namespace = "pyrunner"

// Metrics are pyrunner's domain metrics, declared together. The process
// and Go runtime collectors live in the same registry but are standard.
type Metrics struct {
	Registry *prometheus.Registry

	Connected     prometheus.Gauge
	Connects      prometheus.Counter
	TasksAccepted prometheus.Counter
	TasksFinished *prometheus.CounterVec // by outcome; running = accepted - finished
	TaskDuration  *prometheus.HistogramVec
	TasksRejected *prometheus.CounterVec // by reason
	OffersOpen    prometheus.Gauge
	TasksRunning  prometheus.Gauge
}

// New registers every metric in a fresh registry.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
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
		OffersOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "offers", Name: "open",
			Help: "Task offers currently open at the broker.",
		}),
		TasksRunning: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: "tasks", Name: "in_progress",
			Help: "Accepted tasks not finished yet (accepted - finished).",
		}),
	}
	m.Registry.MustRegister(
		m.Connected, m.Connects, m.TasksAccepted, m.TasksFinished, m.TaskDuration,
		m.TasksRejected, m.OffersOpen, m.TasksRunning,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}
