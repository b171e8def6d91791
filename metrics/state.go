package metrics

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/pyrunner/pyrunner/metrics/window"
)

// State is what the runner reports about itself: it feeds the pushed
// metrics, the task statistics of /stats and the alerts (Recorder), and
// the broker half of readiness. It satisfies runner.Observer. Safe for
// concurrent use.
type State struct {
	m   *Metrics
	rec *window.Recorder
	// running counts accepted tasks not finished (accepted - finished).
	running atomic.Int64

	mu         sync.Mutex
	registered bool
	ever       bool      // registered at least once
	since      time.Time // of the last change of registered
	lastErr    string
}

// NewState reports into m and into a Recorder reading the time from now
// (time.Now in production).
func NewState(m *Metrics, now func() time.Time) *State {
	return &State{m: m, rec: window.New(now), since: now()}
}

// Recorder is the task statistics over the last minutes.
func (s *State) Recorder() *window.Recorder { return s.rec }

func (s *State) Connected(up bool) {
	if up {
		s.m.Connected.Set(1)
		s.m.Connects.Inc()
		return
	}
	s.m.Connected.Set(0)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.registered {
		s.registered, s.since = false, time.Now()
	}
}

func (s *State) Registered() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.registered, s.ever, s.since, s.lastErr = true, true, time.Now(), ""
}

// Failed records the last connection problem, shown while not ready.
func (s *State) Failed(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastErr = err.Error()
}

func (s *State) TaskAccepted() {
	s.m.TasksAccepted.Inc()
	s.m.TasksRunning.Inc()
	s.running.Add(1)
}

func (s *State) TaskRan(waited time.Duration, limit string) {
	s.m.QueueWait.Observe(waited.Seconds())
	if limit != "" {
		s.m.TasksLimited.WithLabelValues(limit).Inc()
	}
	s.rec.Ran(waited, limit)
}

func (s *State) TaskFinished(outcome string, took time.Duration) {
	s.m.TasksFinished.WithLabelValues(outcome).Inc()
	s.m.TaskDuration.WithLabelValues(outcome).Observe(took.Seconds())
	s.m.TasksRunning.Dec()
	s.running.Add(-1)
	s.rec.Task(outcome, took)
}

func (s *State) TaskRejected(reason string) {
	s.m.TasksRejected.WithLabelValues(reason).Inc()
	s.rec.Task(window.Rejected, 0)
}

func (s *State) OffersOpen(n int) { s.m.OffersOpen.Set(float64(n)) }

// EnvironmentBuilt counts a Python environment built (err nil) or not, and
// how long it took.
func (s *State) EnvironmentBuilt(took time.Duration, err error) {
	outcome := "success"
	if err != nil {
		outcome = "error"
	}
	s.m.EnvBuilds.WithLabelValues(outcome).Inc()
	s.m.EnvBuildDuration.WithLabelValues(outcome).Observe(took.Seconds())
}

// Running is how many accepted tasks have not finished.
func (s *State) Running() int { return int(s.running.Load()) }

// brokerStatus is the broker half of readiness.
type brokerStatus struct {
	registered, ever bool
	since            time.Time
	lastErr          string
}

func (s *State) broker() brokerStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return brokerStatus{registered: s.registered, ever: s.ever, since: s.since, lastErr: s.lastErr}
}
