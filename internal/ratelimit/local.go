package ratelimit

import (
	"context"
	"fmt"
	stripe "github.com/bulwarkapi/bulwark/internal/shard"
	"hash/maphash"
	"sync"
	"time"
)

const (
	// DefaultMaxKeys bounds a Local store when LocalOptions.MaxKeys is zero.
	// One entry costs roughly 100 bytes plus the key, so the default stays
	// in the low hundreds of megabytes even under a key-spraying flood.
	DefaultMaxKeys = 1_000_000

	// sweepPerInsert is how many idle entries (TAT in the past) an insert
	// removes opportunistically even when its shard is not full: enough to
	// keep up with churn, small enough to bound the latency of one call.
	sweepPerInsert = 2
)

// LocalOptions configures a Local store.
type LocalOptions struct {
	// MaxKeys bounds the number of keys held; 0 means DefaultMaxKeys.
	MaxKeys int
	// Now is the clock; nil means time.Now. Tests inject a fake.
	Now func() time.Time
}

// Local is an in-memory GCRA Store for one process, with bounded memory.
// It is safe for concurrent use. See the package documentation for the
// algorithm and the eviction order.
type Local struct {
	now    func() time.Time
	epoch  time.Time
	shards stripe.Set[shard]
}

var _ Store = (*Local)(nil)

// NewLocal returns an empty Local store. A negative MaxKeys is treated as
// the default; MaxKeys below the shard count uses a single shard.
func NewLocal(o LocalOptions) *Local {
	now := o.Now
	if now == nil {
		now = time.Now
	}
	return &Local{now: now, epoch: now(), shards: stripe.NewSet(o.MaxKeys, DefaultMaxKeys, newShard)}
}

// Allow decides n events for key under lim at the store's current time.
// n == 0 reports the key's state without consuming. It fails only on a
// cancelled context, an invalid Limit, n < 0, or n > lim.Burst.
func (l *Local) Allow(ctx context.Context, key string, lim Limit, n int) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	if err := lim.Validate(); err != nil {
		return Result{}, err
	}
	if n < 0 {
		return Result{}, fmt.Errorf("%w: negative event count %d", ErrInvalidLimit, n)
	}
	if n > lim.Burst {
		return Result{}, fmt.Errorf("%w: %d events under %s", ErrExceedsBurst, n, lim)
	}
	now := int64(l.now().Sub(l.epoch))
	s := l.shards.At(maphash.String(l.shards.Seed, key))

	s.mu.Lock()
	e := s.keys[key]
	tat := now
	if e != nil && e.tat > now {
		tat = e.tat
	}
	t := int64(lim.Interval())
	tau := t * int64(lim.Burst)
	newTAT := tat + int64(n)*t
	allowAt := newTAT - tau
	allowed := allowAt <= now
	if allowed && n > 0 {
		switch {
		case e != nil:
			e.tat = newTAT
			s.heap.Fix(e.idx, newTAT) // TAT only grows: the entry can only move down
		default:
			s.insert(key, newTAT, now)
		}
		tat = newTAT
	}
	s.mu.Unlock()

	r := Result{Allowed: allowed, Limit: lim}
	if rem := (now + tau - tat) / t; rem > 0 {
		r.Remaining = int(rem)
	}
	if !allowed {
		r.RetryAfter = time.Duration(allowAt - now)
	}
	if tat > now {
		r.ResetAfter = time.Duration(tat - now)
	}
	return r, nil
}

// AllowAll decides a batch as BatchStore documents: one Allow per request,
// in order, each at the store's current time. Like the loop it replaces,
// it is atomic per key, not across keys: a concurrent call may be decided
// between two requests of the batch.
func (l *Local) AllowAll(ctx context.Context, reqs []Request) ([]Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := checkAll(reqs); err != nil {
		return nil, err
	}
	return allowEach(ctx, l, reqs)
}

// Len reports how many keys the store holds, idle ones not yet evicted
// included. It is never more than MaxKeys.
func (l *Local) Len() int {
	n := 0
	for i := range l.shards.Shards {
		s := &l.shards.Shards[i]
		s.mu.Lock()
		n += len(s.keys)
		s.mu.Unlock()
	}
	return n
}

// entry is one key's state; idx is its position in the shard's heap.
type entry struct {
	key string
	tat int64 // nanoseconds since Local.epoch
	idx int
}

// shard is a capped map of entries plus a min-heap of the same entries
// ordered by TAT, the eviction order.
type shard struct {
	mu   sync.Mutex
	cap  int
	keys map[string]*entry
	heap stripe.Heap[*entry]
}

func newShard(c int) shard {
	return shard{cap: c, keys: make(map[string]*entry),
		heap: stripe.NewHeap(func(e *entry, i int) { e.idx = i })}
}

// insert adds a key, first evicting idle entries (up to sweepPerInsert,
// or as many as needed when full) and, if the shard is still full, the
// entry with the earliest TAT.
func (s *shard) insert(key string, tat, now int64) {
	for i := 0; s.heap.Len() > 0 && s.minTAT() <= now && (i < sweepPerInsert || s.heap.Len() >= s.cap); i++ {
		s.removeMin()
	}
	if s.heap.Len() >= s.cap {
		s.removeMin()
	}
	e := &entry{key: key, tat: tat}
	s.keys[key] = e
	s.heap.Push(e, tat)
}

func (s *shard) minTAT() int64 { _, tat := s.heap.Min(); return tat }

func (s *shard) removeMin() {
	e, _ := s.heap.Min()
	delete(s.keys, e.key)
	s.heap.Remove(0)
}
