package fakebroker

import (
	"sync"
	"time"
)

// fixedWindow mirrors express-rate-limit's memory store, which n8n puts in
// front of POST /runners/auth: each client's window opens with its first
// request, and every request in it counts, refused ones included. A nil or
// negative-limit window allows everything.
type fixedWindow struct {
	limit  int
	window time.Duration

	mu      sync.Mutex
	clients map[string]*windowCount
}

type windowCount struct {
	hits    int
	resetAt time.Time
}

func newFixedWindow(limit int, window time.Duration) *fixedWindow {
	return &fixedWindow{limit: limit, window: window, clients: make(map[string]*windowCount)}
}

// allow counts one request from client and reports whether it is within
// the limit.
func (f *fixedWindow) allow(client string, now time.Time) bool {
	if f == nil || f.limit < 0 {
		return true
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	w := f.clients[client]
	if w == nil || !now.Before(w.resetAt) {
		w = &windowCount{resetAt: now.Add(f.window)}
		f.clients[client] = w
	}
	w.hits++
	return w.hits <= f.limit
}

// slidingWindow limits WebSocket upgrades globally: at most limit in any
// window (docs/protocol.md §3.2). Only allowed upgrades are counted; whether
// n8n counts refused ones is not known.
type slidingWindow struct {
	limit  int
	window time.Duration

	mu   sync.Mutex
	hits []time.Time
}

func newSlidingWindow(limit int, window time.Duration) *slidingWindow {
	return &slidingWindow{limit: limit, window: window}
}

// allow reports whether one more upgrade fits in the window ending now, and
// counts it if so.
func (s *slidingWindow) allow(now time.Time) bool {
	if s == nil || s.limit < 0 {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cutoff := now.Add(-s.window)
	kept := s.hits[:0]
	for _, t := range s.hits {
		if t.After(cutoff) {
			kept = append(kept, t)
		}
	}
	s.hits = kept
	if len(s.hits) >= s.limit {
		return false
	}
	s.hits = append(s.hits, now)
	return true
}
