package metrics

import (
	"sync"
	"time"
)

// State is what the runner reports about itself; it feeds the metrics and
// the readiness answer. It satisfies runner.Observer. Safe for concurrent
// use.
type State struct {
	m *Metrics
	// capacity reports how many tasks the pool can run now.
	capacity func() int

	mu         sync.Mutex
	registered bool
	since      time.Time // of the last change of registered
	lastErr    string
}

// NewState reports into m; capacity is the pool's (may be nil).
func NewState(m *Metrics, capacity func() int) *State {
	if capacity == nil {
		capacity = func() int { return 1 }
	}
	return &State{m: m, capacity: capacity, since: time.Now()}
}

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
	s.registered, s.since, s.lastErr = true, time.Now(), ""
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
}

func (s *State) TaskFinished(outcome string, took time.Duration) {
	s.m.TasksFinished.WithLabelValues(outcome).Inc()
	s.m.TaskDuration.WithLabelValues(outcome).Observe(took.Seconds())
	s.m.TasksRunning.Dec()
}

func (s *State) TaskRejected(reason string) { s.m.TasksRejected.WithLabelValues(reason).Inc() }
func (s *State) OffersOpen(n int)           { s.m.OffersOpen.Set(float64(n)) }

// Readiness is the /readyz answer.
type Readiness struct {
	Ready      bool   `json:"ready"`
	Registered bool   `json:"registered"`
	Since      string `json:"since"`
	Capacity   int    `json:"capacity"`
	LastError  string `json:"lastError,omitempty"`
}

// Ready: registered with the broker and able to run a task.
func (s *State) Ready() Readiness {
	capacity := s.capacity()
	s.mu.Lock()
	defer s.mu.Unlock()
	return Readiness{
		Ready:      s.registered && capacity > 0,
		Registered: s.registered,
		Since:      time.Since(s.since).Round(time.Second).String(),
		Capacity:   capacity,
		LastError:  s.lastErr,
	}
}
