package ratelimit

import (
	"context"
	stripe "github.com/bulwarkapi/bulwark/internal/shard"
	"hash/maphash"
	"sync"
	"time"
)

// LocalQuotaOptions configures a LocalQuotas store.
type LocalQuotaOptions struct {
	// MaxKeys bounds the number of counters held (one per key and period);
	// 0 or negative means DefaultMaxKeys.
	MaxKeys int
	// Now is the wall clock that places events in calendar windows; nil
	// means time.Now. Tests inject a fake.
	Now func() time.Time
}

// LocalQuotas is an in-memory QuotaStore for one process, with bounded
// memory. It is safe for concurrent use.
//
// It holds one counter per (key, Period) for the window last counted in.
// Counters are sharded like Local's TATs and capped at MaxKeys. When a
// shard is full, counters of windows that have ended are evicted first
// (they carry no state); if none has, the counter with the lowest count is
// evicted, because forgetting it forgives the fewest events: keys sprayed to
// flush an exhausted counter have counts of 1 and go first.
type LocalQuotas struct {
	now    func() time.Time
	shards stripe.Set[quotaShard]
}

var _ QuotaStore = (*LocalQuotas)(nil)

// NewLocalQuotas returns an empty LocalQuotas store.
func NewLocalQuotas(o LocalQuotaOptions) *LocalQuotas {
	now := o.Now
	if now == nil {
		now = time.Now
	}
	return &LocalQuotas{now: now, shards: stripe.NewSet(o.MaxKeys, DefaultMaxKeys, func(c int) quotaShard {
		return quotaShard{
			cap:    c,
			m:      make(map[quotaKey]*quotaEntry),
			byEnd:  stripe.NewHeap(func(e *quotaEntry, i int) { e.endIdx = i }),
			byUsed: stripe.NewHeap(func(e *quotaEntry, i int) { e.usedIdx = i }),
		}
	})}
}

// Take counts n events for key in the current window of q.Period if the
// count stays within q.Limit. It fails only on a cancelled context, an
// invalid Quota, n < 0 or n > q.Limit.
func (lq *LocalQuotas) Take(ctx context.Context, key string, q Quota, n int64) (QuotaResult, error) {
	if err := ctx.Err(); err != nil {
		return QuotaResult{}, err
	}
	if err := checkTake(q, n); err != nil {
		return QuotaResult{}, err
	}
	now := lq.now()
	_, winEnd := q.Period.window(now)
	end := winEnd.UnixNano()
	k := quotaKey{key: key, period: q.Period}
	s := lq.shards.At(maphash.String(lq.shards.Seed, key)) // both periods of a key share a shard

	s.mu.Lock()
	e := s.m[k]
	var used int64
	if e != nil && e.end == end {
		used = e.used // otherwise the counter is of another window: start afresh
	}
	allowed := used+n <= q.Limit // both ≤ maxQuotaLimit: no overflow
	if allowed && n > 0 {
		used += n
		if e == nil {
			s.insert(k, end, used, now.UnixNano())
		} else {
			if e.end != end {
				e.end = end
				s.byEnd.Fix(e.endIdx, end)
			}
			e.used = used
			s.byUsed.Fix(e.usedIdx, used)
		}
	}
	s.mu.Unlock()

	r := QuotaResult{Allowed: allowed, Quota: q, ResetAfter: winEnd.Sub(now)}
	if rem := q.Limit - used; rem > 0 {
		r.Remaining = rem
	}
	return r, nil
}

// Len reports how many counters the store holds, those of ended windows not
// yet evicted included. It is never more than MaxKeys.
func (lq *LocalQuotas) Len() int {
	n := 0
	for i := range lq.shards.Shards {
		s := &lq.shards.Shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

// quotaKey identifies one counter: a key has one per Period.
type quotaKey struct {
	key    string
	period Period
}

// quotaEntry is one counter; end identifies its window (the instant the
// window ends, Unix nanoseconds), and the indexes are its positions in the
// shard's two heaps.
type quotaEntry struct {
	k       quotaKey
	end     int64
	used    int64
	endIdx  int
	usedIdx int
}

// quotaShard is a capped map of counters plus two min-heaps of the same
// entries: by window end (to find ended windows) and by count (to pick the
// live counter whose loss forgives the fewest events).
type quotaShard struct {
	mu     sync.Mutex
	cap    int
	m      map[quotaKey]*quotaEntry
	byEnd  stripe.Heap[*quotaEntry]
	byUsed stripe.Heap[*quotaEntry]
}

// insert adds a counter, first evicting counters of ended windows (up to
// sweepPerInsert, or as many as needed when full) and, if the shard is
// still full, the counter with the lowest count.
func (s *quotaShard) insert(k quotaKey, end, used, now int64) {
	for i := 0; s.byEnd.Len() > 0 && (i < sweepPerInsert || len(s.m) >= s.cap); i++ {
		e, ended := s.byEnd.Min()
		if ended > now {
			break
		}
		s.remove(e)
	}
	if len(s.m) >= s.cap {
		e, _ := s.byUsed.Min()
		s.remove(e)
	}
	e := &quotaEntry{k: k, end: end, used: used}
	s.m[k] = e
	s.byEnd.Push(e, end)
	s.byUsed.Push(e, used)
}

func (s *quotaShard) remove(e *quotaEntry) {
	s.byEnd.Remove(e.endIdx)
	s.byUsed.Remove(e.usedIdx)
	delete(s.m, e.k)
}
