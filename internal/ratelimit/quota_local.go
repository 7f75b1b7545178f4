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
	seed   maphash.Seed
	shards []quotaShard
	mask   uint64
}

var _ QuotaStore = (*LocalQuotas)(nil)

// NewLocalQuotas returns an empty LocalQuotas store.
func NewLocalQuotas(o LocalQuotaOptions) *LocalQuotas {
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
	q := &LocalQuotas{
		now:    now,
		seed:   maphash.MakeSeed(), // random per store, as in Local
		shards: make([]quotaShard, n),
		mask:   uint64(n - 1),
	}
	for i, c := range caps {
		q.shards[i] = quotaShard{
			cap:    c,
			m:      make(map[quotaKey]*quotaEntry),
			byEnd:  quotaHeap{byUsed: false},
			byUsed: quotaHeap{byUsed: true},
		}
	}
	return q
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
	s := &lq.shards[maphash.String(lq.seed, key)&lq.mask] // both periods of a key share a shard

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
				s.byEnd.fix(e.endIdx)
			}
			e.used = used
			s.byUsed.fix(e.usedIdx)
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
	for i := range lq.shards {
		s := &lq.shards[i]
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
	byEnd  quotaHeap
	byUsed quotaHeap
}

// insert adds a counter, first evicting counters of ended windows (up to
// sweepPerInsert, or as many as needed when full) and, if the shard is
// still full, the counter with the lowest count.
func (s *quotaShard) insert(k quotaKey, end, used, now int64) {
	for i := 0; s.byEnd.len() > 0 && s.byEnd.min().end <= now && (i < sweepPerInsert || len(s.m) >= s.cap); i++ {
		s.remove(s.byEnd.min())
	}
	if len(s.m) >= s.cap {
		s.remove(s.byUsed.min())
	}
	e := &quotaEntry{k: k, end: end, used: used}
	s.m[k] = e
	s.byEnd.push(e)
	s.byUsed.push(e)
}

func (s *quotaShard) remove(e *quotaEntry) {
	s.byEnd.remove(e.endIdx)
	s.byUsed.remove(e.usedIdx)
	delete(s.m, e.k)
}

// quotaHeap is an indexed min-heap of entries ordered by end or by used;
// each entry records its position so that it can be fixed or removed.
type quotaHeap struct {
	items  []*quotaEntry
	byUsed bool
}

func (h *quotaHeap) len() int           { return len(h.items) }
func (h *quotaHeap) min() *quotaEntry   { return h.items[0] }
func (h *quotaHeap) less(i, j int) bool { return h.key(h.items[i]) < h.key(h.items[j]) }

func (h *quotaHeap) key(e *quotaEntry) int64 {
	if h.byUsed {
		return e.used
	}
	return e.end
}

func (h *quotaHeap) setIdx(e *quotaEntry, i int) {
	if h.byUsed {
		e.usedIdx = i
	} else {
		e.endIdx = i
	}
}

func (h *quotaHeap) push(e *quotaEntry) {
	h.items = append(h.items, e)
	h.setIdx(e, len(h.items)-1)
	h.up(len(h.items) - 1)
}

func (h *quotaHeap) remove(i int) {
	last := len(h.items) - 1
	if i != last {
		h.swap(i, last)
	}
	h.items[last] = nil
	h.items = h.items[:last]
	if i != last {
		h.fix(i)
	}
}

// fix restores heap order after the key of the entry at i changed either way.
func (h *quotaHeap) fix(i int) {
	if !h.up(i) {
		h.down(i)
	}
}

func (h *quotaHeap) swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.setIdx(h.items[i], i)
	h.setIdx(h.items[j], j)
}

// up moves the entry at i towards the root and reports whether it moved.
func (h *quotaHeap) up(i int) bool {
	moved := false
	for i > 0 {
		p := (i - 1) / 2
		if !h.less(i, p) {
			break
		}
		h.swap(i, p)
		i = p
		moved = true
	}
	return moved
}

func (h *quotaHeap) down(i int) {
	n := len(h.items)
	for {
		c := 2*i + 1
		if c >= n {
			return
		}
		if r := c + 1; r < n && h.less(r, c) {
			c = r
		}
		if !h.less(c, i) {
			return
		}
		h.swap(i, c)
		i = c
	}
}
