package fapi

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// replayShards is the number of independently locked parts of the replay
// cache: a power of two, enough that 2 to 64 cores verifying proofs at once
// rarely meet on one lock.
const replayShards = 64

// compactAfter is the number of dead queue slots a shard tolerates
// before it compacts: small, so a shard's queue stays near its live size.
const compactAfter = 16

var (
	errReplayed  = errors.New("jti seen before")
	errCacheFull = errors.New("replay cache full of unexpired entries")
)

// replayCache remembers proof identifiers (SHA-256 of the jti) until they
// expire. It holds at most max entries in all: when it is full, expired
// entries are evicted first, and if none is, the new entry is refused
// (errCacheFull) rather than an unexpired one forgotten.
//
// Times are durations since the cache's creation, taken from the injected
// clock; with time.Now they use the monotonic clock, so a step of the wall
// clock neither expires entries early nor keeps them late.
type replayCache struct {
	max    int64
	ttl    time.Duration
	now    func() time.Time
	base   time.Time
	count  atomic.Int64 // entries queued in all shards
	shards [replayShards]replayShard
}

type replayShard struct {
	mu sync.Mutex
	// seen maps a key to its expiry.
	seen map[[32]byte]time.Duration
	// queue holds the entries in insertion order, hence (the clock being
	// monotonic) in expiry order, from head on.
	queue []replayEntry
	head  int
}

type replayEntry struct {
	key [32]byte
	exp time.Duration
}

func newReplayCache(max int, ttl time.Duration, now func() time.Time) *replayCache {
	c := &replayCache{max: int64(max), ttl: ttl, now: now, base: now()}
	for i := range c.shards {
		c.shards[i].seen = make(map[[32]byte]time.Duration)
	}
	return c
}

// add records key, or reports errReplayed if it is already recorded and
// unexpired, or errCacheFull if there is no room.
func (c *replayCache) add(key [32]byte) error {
	now := c.now().Sub(c.base)
	s := &c.shards[key[0]&(replayShards-1)]
	for attempt := 0; ; attempt++ {
		s.mu.Lock()
		c.count.Add(-s.evict(now))
		if exp, ok := s.seen[key]; ok && exp > now {
			s.mu.Unlock()
			return errReplayed
		}
		if c.count.Add(1) <= c.max {
			s.seen[key] = now + c.ttl
			s.queue = append(s.queue, replayEntry{key: key, exp: now + c.ttl})
			s.mu.Unlock()
			return nil
		}
		c.count.Add(-1)
		s.mu.Unlock()
		if attempt > 0 {
			return errCacheFull
		}
		// Full: the expired entries may sit in shards not touched lately.
		c.sweep(now)
	}
}

// sweep evicts the expired entries of every shard, one lock at a time.
func (c *replayCache) sweep(now time.Duration) {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		c.count.Add(-s.evict(now))
		s.mu.Unlock()
	}
}

// len is the number of entries held.
func (c *replayCache) len() int { return int(c.count.Load()) }

// evict drops the expired entries from the head of the queue and returns
// how many it dropped. The caller holds s.mu.
func (s *replayShard) evict(now time.Duration) int64 {
	var n int64
	for s.head < len(s.queue) && s.queue[s.head].exp <= now {
		e := s.queue[s.head]
		// A key re-added after expiring has a newer entry later in the
		// queue; only the entry that matches the map is removed from it.
		if s.seen[e.key] == e.exp {
			delete(s.seen, e.key)
		}
		s.queue[s.head] = replayEntry{}
		s.head++
		n++
	}
	switch {
	case s.head == len(s.queue):
		s.queue, s.head = s.queue[:0], 0
	case s.head >= compactAfter && 2*s.head >= len(s.queue):
		// Compact when at least half the queue is dead, so it holds at most
		// max(compactAfter, 2×live) slots; the copy costs no more than the
		// pops since the last one.
		s.queue = s.queue[:copy(s.queue, s.queue[s.head:])]
		s.head = 0
	}
	return n
}
