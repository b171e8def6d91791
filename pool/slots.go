package pool

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// zygoteSlot keeps one zygote alive: it starts it, and replaces it (with
// capped backoff) whenever it dies, until the executor closes. An executor
// has several when the machine has the cores: one zygote forks one process
// at a time, which caps isolated mode at about 800 tasks/s whatever the
// cores.
type zygoteSlot struct {
	spec   ProcessSpec
	logger *slog.Logger

	// mu guards current and ready.
	mu      sync.Mutex
	current *zygote       // nil while (re)starting
	ready   chan struct{} // closed when current is set; replaced on death
}

func newZygoteSlot(spec ProcessSpec) *zygoteSlot {
	return &zygoteSlot{spec: spec, logger: spec.Logger, ready: make(chan struct{})}
}

func (s *zygoteSlot) set(z *zygote) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.current = z
	close(s.ready)
}

// up reports whether the slot has a live zygote.
func (s *zygoteSlot) up() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.current != nil
}

// get returns the live zygote, waiting for a restart if one is under way.
func (s *zygoteSlot) get(ctx context.Context) (*zygote, error) {
	for {
		s.mu.Lock()
		z, ready := s.current, s.ready
		s.mu.Unlock()
		if z != nil {
			return z, nil
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// supervise restarts the zygote whenever it dies, until ctx ends; then it
// stops the zygote and returns what stopping it failed with. restarted is
// called after each restart.
func (s *zygoteSlot) supervise(ctx context.Context, restarted func()) error {
	s.mu.Lock()
	z := s.current
	s.mu.Unlock()
	backoff := 100 * time.Millisecond
	for {
		select {
		case <-ctx.Done():
			return z.close()
		case <-z.dead:
		}
		s.logger.Warn("Python zygote exited; starting a new one", "error", z.deadErr)
		s.mu.Lock()
		s.current = nil
		s.ready = make(chan struct{})
		s.mu.Unlock()
		closeErr := z.close()
		for {
			next, err := startZygote(ctx, s.spec)
			if err == nil {
				z = next
				backoff = 100 * time.Millisecond
				s.set(z)
				restarted()
				break
			}
			if ctx.Err() != nil {
				return closeErr // closing: the start was abandoned, nothing failed
			}
			s.logger.Error("Python zygote failed to start", "error", err, "retry_in", backoff)
			wait := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				wait.Stop()
				return closeErr
			case <-wait.C:
			}
			backoff = min(backoff*2, 5*time.Second)
		}
		if closeErr != nil {
			s.logger.Warn("the zygote that exited could not be stopped cleanly", "error", closeErr)
		}
	}
}

// pid is the current zygote's process id, or 0.
func (s *zygoteSlot) pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.current == nil {
		return 0
	}
	return s.current.cmd.Process.Pid
}
