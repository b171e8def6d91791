package fakebroker

import (
	"strings"
	"sync"
)

// SyncBuffer collects text written from several goroutines or pipes: the
// broker's log, or a runner's interleaved stdout and stderr, for the tests
// and the demo that drive the fake broker.
type SyncBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String is everything written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
