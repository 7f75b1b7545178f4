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
	seed   maphash.Seed
	shards []shard
	mask   uint64
}

var _ Store = (*Local)(nil)

// NewLocal returns an empty Local store. A negative MaxKeys is treated as
// the default; MaxKeys below the shard count uses a single shard.
func NewLocal(o LocalOptions) *Local {
	maxKeys := o.MaxKeys
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	caps := stripe.Capacities(maxKeys)
	n := len(caps)
	l := &Local{
		now:    now,
		epoch:  now(),
		seed:   maphash.MakeSeed(), // random per store: keys cannot be crafted to pile into one shard
		shards: make([]shard, n),
		mask:   uint64(n - 1),
	}
	for i, c := range caps {
		l.shards[i] = shard{cap: c, keys: make(map[string]*entry)}
	}
	return l
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
	s := &l.shards[maphash.String(l.seed, key)&l.mask]

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
			s.fix(e.idx) // TAT only grows: the entry can only move down
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
	for i := range l.shards {
		s := &l.shards[i]
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
	heap []*entry
}

// insert adds a key, first evicting idle entries (up to sweepPerInsert,
// or as many as needed when full) and, if the shard is still full, the
// entry with the earliest TAT.
func (s *shard) insert(key string, tat, now int64) {
	for i := 0; len(s.heap) > 0 && s.heap[0].tat <= now && (i < sweepPerInsert || len(s.heap) >= s.cap); i++ {
		s.removeMin()
	}
	if len(s.heap) >= s.cap {
		s.removeMin()
	}
	e := &entry{key: key, tat: tat, idx: len(s.heap)}
	s.keys[key] = e
	s.heap = append(s.heap, e)
	s.up(e.idx)
}

func (s *shard) removeMin() {
	last := len(s.heap) - 1
	old := s.heap[0]
	s.swap(0, last)
	s.heap[last] = nil
	s.heap = s.heap[:last]
	delete(s.keys, old.key)
	if last > 0 {
		s.down(0)
	}
}

// fix restores heap order after the entry at i grew its TAT.
func (s *shard) fix(i int) { s.down(i) }

func (s *shard) swap(i, j int) {
	s.heap[i], s.heap[j] = s.heap[j], s.heap[i]
	s.heap[i].idx = i
	s.heap[j].idx = j
}

func (s *shard) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if s.heap[p].tat <= s.heap[i].tat {
			return
		}
		s.swap(i, p)
		i = p
	}
}

func (s *shard) down(i int) {
	n := len(s.heap)
	for {
		c := 2*i + 1
		if c >= n {
			return
		}
		if r := c + 1; r < n && s.heap[r].tat < s.heap[c].tat {
			c = r
		}
		if s.heap[i].tat <= s.heap[c].tat {
			return
		}
		s.swap(i, c)
		i = c
	}
}
