package jwtauth

import (
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"time"

	"github.com/bulwarkapi/bulwark/internal/identity"
)

// maxCacheShards: enough shards that parallel requests rarely contend on
// one lock (the cache is read on every request).
const maxCacheShards = 16

// evictScan is how many entries an insert into a full shard looks at for
// an expired one before evicting an arbitrary one (Go's map iteration
// starts at a random entry).
const evictScan = 8

// tokenCache maps the SHA-256 of a verified token to its identity, until
// the token's exp. It is bounded: at most size entries in all.
type tokenCache struct {
	shards   []cacheShard
	perShard int
}

type cacheShard struct {
	mu sync.RWMutex
	m  map[[sha256.Size]byte]cacheEntry
	_  [40]byte // keep shards on separate cache lines
}

type cacheEntry struct {
	id    *identity.Identity
	epoch uint64 // key-set epoch when verified
}

func newTokenCache(size int) *tokenCache {
	n := min(size, maxCacheShards)
	c := &tokenCache{shards: make([]cacheShard, n), perShard: size / n}
	for i := range c.shards {
		c.shards[i].m = make(map[[sha256.Size]byte]cacheEntry, min(c.perShard, 1024))
	}
	return c
}

func (c *tokenCache) shard(k *[sha256.Size]byte) *cacheShard {
	return &c.shards[binary.LittleEndian.Uint64(k[:8])%uint64(len(c.shards))]
}

// get returns the cached identity of a token unless it expired (now is not
// before its exp) or was verified under an older key-set epoch.
func (c *tokenCache) get(k *[sha256.Size]byte, now time.Time, epoch uint64) (*identity.Identity, bool) {
	s := c.shard(k)
	s.mu.RLock()
	e, ok := s.m[*k]
	s.mu.RUnlock()
	if !ok {
		return nil, false
	}
	if now.Before(e.id.Expiry) && e.epoch == epoch {
		return e.id, true
	}
	s.mu.Lock()
	if cur, ok := s.m[*k]; ok && cur.id == e.id {
		delete(s.m, *k)
	}
	s.mu.Unlock()
	return nil, false
}

// put stores a verified identity, evicting an expired or else an arbitrary
// entry when the shard is full.
func (c *tokenCache) put(k *[sha256.Size]byte, id *identity.Identity, epoch uint64, now time.Time) {
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[*k]; !ok && len(s.m) >= c.perShard {
		var victim [sha256.Size]byte
		haveVictim, n := false, 0
		for key, e := range s.m {
			if !now.Before(e.id.Expiry) || e.epoch != epoch {
				delete(s.m, key) // the map was full, so one delete makes room
				haveVictim = false
				break
			}
			if !haveVictim {
				victim, haveVictim = key, true
			}
			if n++; n == evictScan {
				break
			}
		}
		if haveVictim {
			delete(s.m, victim)
		}
	}
	s.m[*k] = cacheEntry{id: id, epoch: epoch}
}

// len counts the entries (for tests and metrics).
func (c *tokenCache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}
