package fapi

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwarkapi/bulwark/internal/identity"
)

func replayKey(i int) [32]byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(i))
	return sha256.Sum256(b[:])
}

// queued is the number of queue slots the shards hold, live or not.
func (c *replayCache) queued() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.queue)
		s.mu.Unlock()
	}
	return n
}

func TestReplayCacheBoundUnderFlood(t *testing.T) {
	const size, ttl = 1000, 2 * time.Minute
	clock := newFakeClock(testNow)
	c := newReplayCache(size, ttl, clock.Now)
	flood := func(from int) (accepted int) {
		for i := from; i < from+3*size; i++ {
			switch err := c.add(replayKey(i)); {
			case err == nil:
				accepted++
			case !errors.Is(err, errCacheFull):
				t.Fatalf("key %d: %v", i, err)
			}
			if c.len() > size {
				t.Fatalf("cache holds %d entries, bound %d", c.len(), size)
			}
		}
		return accepted
	}
	if got := flood(0); got != size {
		t.Fatalf("%d of %d distinct proofs accepted, want exactly the bound %d", got, 3*size, size)
	}
	// Nothing unexpired is forgotten: every accepted key is still a replay.
	for i := 0; i < 3*size; i++ {
		if err := c.add(replayKey(i)); err == nil {
			t.Fatalf("key %d accepted again while the cache was full", i)
		}
	}
	// Once the entries expire the cache takes new ones, wherever the
	// expired entries sit (the sweep crosses shards).
	clock.Advance(ttl)
	if got := flood(10 * size); got != size {
		t.Fatalf("after expiry %d accepted, want %d", got, size)
	}
	if q, limit := c.queued(), 2*size+replayShards*compactAfter; q > limit {
		t.Fatalf("queues hold %d slots for a bound of %d, want at most %d", q, size, limit)
	}
}

func TestReplayCacheSteadyRateNeverFull(t *testing.T) {
	// 40 proofs/s kept 20s: about 800 live entries in a cache of 1000.
	const size, ttl, step = 1000, 20 * time.Second, 25 * time.Millisecond
	clock := newFakeClock(testNow)
	c := newReplayCache(size, ttl, clock.Now)
	for i := 0; i < 24000; i++ { // ten simulated minutes
		if err := c.add(replayKey(i)); err != nil {
			t.Fatalf("proof %d at +%s: %v (cache holds %d)", i, time.Duration(i)*step, err, c.len())
		}
		clock.Advance(step)
	}
	// Shards evict lazily, when touched, so a few expired entries linger
	// beyond the 800 live ones; never more than the bound.
	if n := c.len(); n > size {
		t.Fatalf("cache holds %d entries, bound %d", n, size)
	}
	if q, limit := c.queued(), 2*size+replayShards*compactAfter; q > limit {
		t.Fatalf("queues hold %d slots, want at most %d", q, limit)
	}
}

func TestReplayCacheExpiry(t *testing.T) {
	clock := newFakeClock(testNow)
	c := newReplayCache(10, time.Minute, clock.Now)
	k := replayKey(1)
	if err := c.add(k); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute - time.Nanosecond)
	if err := c.add(k); !errors.Is(err, errReplayed) {
		t.Fatalf("before expiry: %v, want replay", err)
	}
	clock.Advance(time.Nanosecond)
	if err := c.add(k); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
	if err := c.add(k); !errors.Is(err, errReplayed) {
		t.Fatalf("re-added key: %v, want replay", err)
	}
	if c.len() != 1 {
		t.Fatalf("len %d, want 1", c.len())
	}
}

func TestReplayCacheConcurrent(t *testing.T) {
	const workers, keys = 8, 2000
	c := newReplayCache(keys, time.Minute, newFakeClock(testNow).Now)
	var accepted [keys]atomic.Int32
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < keys; i++ {
				k := (i + w*keys/workers) % keys
				if err := c.add(replayKey(k)); err == nil {
					accepted[k].Add(1)
				} else if !errors.Is(err, errReplayed) {
					t.Errorf("key %d: %v", k, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for k := range accepted {
		if n := accepted[k].Load(); n != 1 {
			t.Fatalf("key %d accepted %d times, want once", k, n)
		}
	}
	if c.len() != keys {
		t.Fatalf("len %d, want %d", c.len(), keys)
	}
}

func TestVerifyReplayCacheFull(t *testing.T) {
	const size = 50
	es := es256Signer(t)
	clock := newFakeClock(testNow)
	v := newTestVerifier(t, clock, DPoPOptions{MaxAge: 10 * time.Second, ReplayCacheSize: size})
	accepted := 0
	for i := 0; i < 3*size; i++ {
		_, err := v.Verify(testRequest(es.proof(t, testNow, nil)), testToken)
		if err == nil {
			accepted++
			continue
		}
		wantReason(t, err, identity.CodeInvalidDPoPProof, "dpop_replay_cache_full")
	}
	if accepted != size || v.replay.len() != size {
		t.Fatalf("accepted %d, cache %d, want %d", accepted, v.replay.len(), size)
	}
	clock.Advance(20 * time.Second) // 2×MaxAge: every entry has expired
	if _, err := v.Verify(testRequest(es.proof(t, clock.Now(), nil)), testToken); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
}
