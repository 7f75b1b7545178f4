package introspect

import (
	"crypto/sha256"
	"sync"
	"time"

	"github.com/bulwarkapi/bulwark/internal/identity"
)

// cacheShards splits the cache so that concurrent requests for different
// tokens rarely wait on one lock. 16 is plenty for the core counts a
// gateway runs on; the key is a SHA-256, so shards fill evenly.
const cacheShards = 16

type cacheKey [sha256.Size]byte

// entry is a cached verdict: an identity (positive) or the refusal
// (negative), until expires.
type entry struct {
	id      *identity.Identity
	fail    *identity.Error
	expires time.Time
}

// cache is a bounded map from SHA-256(token) to verdicts. When a shard is
// full, expired entries go first, then an arbitrary one: a bound, not an
// LRU, because a miss costs one introspection call, not a failure.
type cache struct {
	shards   []shard
	perShard int
}

type shard struct {
	mu sync.Mutex
	m  map[cacheKey]entry
}

// newCache returns a cache of about size entries, or nil (no caching) when
// size <= 0.
func newCache(size int) *cache {
	if size <= 0 {
		return nil
	}
	n := min(cacheShards, size)
	c := &cache{shards: make([]shard, n), perShard: (size + n - 1) / n}
	for i := range c.shards {
		c.shards[i].m = make(map[cacheKey]entry)
	}
	return c
}

func (c *cache) shard(k cacheKey) *shard { return &c.shards[int(k[0])%len(c.shards)] }

// get returns the live entry for k.
func (c *cache) get(k cacheKey, now time.Time) (entry, bool) {
	if c == nil {
		return entry{}, false
	}
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[k]
	if !ok {
		return entry{}, false
	}
	if !now.Before(e.expires) {
		delete(s.m, k)
		return entry{}, false
	}
	return e, true
}

// put stores e under k unless it has already expired.
func (c *cache) put(k cacheKey, e entry, now time.Time) {
	if c == nil || !now.Before(e.expires) {
		return
	}
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[k]; !ok && len(s.m) >= c.perShard {
		for ek, ev := range s.m {
			if !now.Before(ev.expires) {
				delete(s.m, ek)
			}
		}
		if len(s.m) >= c.perShard {
			for ek := range s.m {
				delete(s.m, ek)
				break
			}
		}
	}
	s.m[k] = e
}

// len is the number of entries, live or not yet swept (for tests).
func (c *cache) len() int {
	if c == nil {
		return 0
	}
	n := 0
	for i := range c.shards {
		c.shards[i].mu.Lock()
		n += len(c.shards[i].m)
		c.shards[i].mu.Unlock()
	}
	return n
}
