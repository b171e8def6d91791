package pool

import (
	"container/list"
	"crypto/sha256"
	"sync"
	"time"
)

// codeCache keeps the compiled form of Code nodes (Python's marshal of
// the code object, after the analysis and the rewriting), by the node's
// mode and code, so that a node that runs a thousand times is compiled
// once. Its entries come only from task processes that had run no user
// code when they sent them (python/doc.go, "compiled code"); the
// interpreter and the sandbox settings are the executor's, fixed for its
// life. Bounded by entries, by bytes and by age.
type codeCache struct {
	maxEntries int
	maxBytes   int
	ttl        time.Duration

	// mu guards everything below.
	mu    sync.Mutex
	order *list.List // most recently used first; values are *codeEntry
	byKey map[[32]byte]*list.Element
	bytes int
	stats CacheCounts
}

type codeEntry struct {
	key    [32]byte
	code   []byte
	stored time.Time
}

// CacheCounts are a cache's hits, misses and evictions, for metrics.
type CacheCounts struct {
	Hits, Misses, Evictions uint64
	Entries, Bytes          int
}

func newCodeCache(maxEntries, maxBytes int, ttl time.Duration) *codeCache {
	return &codeCache{maxEntries: maxEntries, maxBytes: maxBytes, ttl: ttl,
		order: list.New(), byKey: map[[32]byte]*list.Element{}}
}

// codeKey names a node's code in a mode.
func codeKey(mode, code string) [32]byte {
	h := sha256.New()
	h.Write([]byte(mode))
	h.Write([]byte{0})
	h.Write([]byte(code))
	var k [32]byte
	h.Sum(k[:0])
	return k
}

// lookup returns the compiled form of a node, or nil. It counts nothing:
// whether the task compiled its code is known only once it has run (a
// reuse worker keeps its own copies), and count says so then.
func (c *codeCache) lookup(key [32]byte, now time.Time) []byte {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byKey[key]
	if ok && now.Sub(el.Value.(*codeEntry).stored) > c.ttl {
		c.removeLocked(el)
		ok = false
	}
	if !ok {
		return nil
	}
	c.order.MoveToFront(el)
	return el.Value.(*codeEntry).code
}

// count records one task's lookup: a hit when the task ran compiled code
// it did not compile (this cache's, or its reuse worker's own), a miss
// when it compiled the code (or never got as far as saying).
func (c *codeCache) count(hit bool) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if hit {
		c.stats.Hits++
	} else {
		c.stats.Misses++
	}
}

// store keeps a node's compiled form, evicting the least recently used
// beyond the bounds. One larger than the whole budget is not kept.
func (c *codeCache) store(key [32]byte, code []byte, now time.Time) {
	if c == nil || len(code) == 0 || len(code) > c.maxBytes {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byKey[key]; ok {
		c.removeLocked(el)
	}
	c.byKey[key] = c.order.PushFront(&codeEntry{key: key, code: code, stored: now})
	c.bytes += len(code)
	for c.order.Len() > c.maxEntries || c.bytes > c.maxBytes {
		c.removeLocked(c.order.Back())
		c.stats.Evictions++
	}
}

func (c *codeCache) removeLocked(el *list.Element) {
	e := el.Value.(*codeEntry)
	c.order.Remove(el)
	delete(c.byKey, e.key)
	c.bytes -= len(e.code)
}

func (c *codeCache) counts() CacheCounts {
	if c == nil {
		return CacheCounts{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Entries, s.Bytes = c.order.Len(), c.bytes
	return s
}
