package bruteforce

import (
	"context"
	stripe "github.com/bulwarkapi/bulwark/internal/shard"
	"hash/maphash"
	"sync"
	"time"
)

const (
	// DefaultMaxKeys bounds a Local store when LocalOptions.MaxKeys is zero.
	// With 64-byte hashed keys a subject costs about 0.5 KB with one member
	// in its distinct set and about 2.5 KB with a full set (20 members at
	// the default thresholds), so a full default store takes about 50 MB
	// typically and 250 MB at worst: enough subjects for a large attack
	// within one window, small enough for every replica to afford as the
	// fallback of the shared store.
	DefaultMaxKeys = 100_000

	// sweepPerInsert is how many expired entries an insert removes even
	// when its shard is not full: enough to keep up with churn, small
	// enough to bound the latency of one call.
	sweepPerInsert = 2
)

// LocalOptions configures a Local store.
type LocalOptions struct {
	// MaxKeys bounds the number of subjects (usernames plus client
	// addresses) held; 0 or negative means DefaultMaxKeys.
	MaxKeys int
	// Now is the clock; nil means time.Now. Tests inject a fake.
	Now func() time.Time
}

// Local is an in-memory Store for one process, with bounded memory. It is
// safe for concurrent use. See the package documentation for its eviction
// order.
type Local struct {
	now    func() time.Time
	epoch  time.Time
	shards stripe.Set[shard]
}

var _ Store = (*Local)(nil)

// NewLocal returns an empty Local store.
func NewLocal(o LocalOptions) *Local {
	now := o.Now
	if now == nil {
		now = time.Now
	}
	return &Local{now: now, epoch: now(), shards: stripe.NewSet(o.MaxKeys, DefaultMaxKeys, func(c int) shard {
		setIdx := func(e *entry, i int) { e.idx = i }
		return shard{cap: c, keys: make(map[subjectKey]*entry), plain: stripe.NewHeap(setIdx), guarded: stripe.NewHeap(setIdx)}
	})}
}

// kind tells a username from a client address with the same text.
type kind uint8

const (
	kindUser kind = iota + 1
	kindClient
)

// subjectKey identifies one subject in the store.
type subjectKey struct {
	kind kind
	id   string
}

// limits is one subject's side of a Policy, in nanoseconds.
type limits struct {
	maxFailures, maxDistinct, setCap int
	window, lockout                  int64
}

// RecordFailure implements Store. It fails only on a cancelled context or
// an invalid Policy.
func (l *Local) RecordFailure(ctx context.Context, user, client string, p Policy) (State, error) {
	if err := ctx.Err(); err != nil {
		return State{}, err
	}
	if err := p.check(); err != nil {
		return State{}, err
	}
	now := l.clock()
	var st State
	if user != "" {
		st.User = l.shard(subjectKey{kindUser, user}).record(subjectKey{kindUser, user}, client, limits{
			maxFailures: p.MaxFailures, maxDistinct: p.MaxClientsPerUsername, setCap: setCap(p.MaxClientsPerUsername),
			window: int64(p.Window), lockout: int64(p.Lockout),
		}, now)
	}
	if client != "" {
		st.Client = l.shard(subjectKey{kindClient, client}).record(subjectKey{kindClient, client}, user, limits{
			maxFailures: p.MaxClientFailures, maxDistinct: p.MaxUsernamesPerClient, setCap: setCap(p.MaxUsernamesPerClient),
			window: int64(p.Window), lockout: int64(p.Lockout),
		}, now)
	}
	return st, nil
}

// State implements Store. It fails only on a cancelled context.
func (l *Local) State(ctx context.Context, user, client string) (State, error) {
	if err := ctx.Err(); err != nil {
		return State{}, err
	}
	now := l.clock()
	var st State
	if user != "" {
		st.User = l.shard(subjectKey{kindUser, user}).view(subjectKey{kindUser, user}, now)
	}
	if client != "" {
		st.Client = l.shard(subjectKey{kindClient, client}).view(subjectKey{kindClient, client}, now)
	}
	return st, nil
}

// Reset implements Store. It fails only on a cancelled context.
func (l *Local) Reset(ctx context.Context, user string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if user == "" {
		return nil
	}
	k := subjectKey{kindUser, user}
	l.shard(k).reset(k, l.clock())
	return nil
}

// Len reports how many subjects the store holds, expired ones not yet
// evicted included. It is never more than MaxKeys.
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

// clock is the current time in nanoseconds since the store's epoch; with
// time.Now it is monotonic, immune to wall-clock steps.
func (l *Local) clock() int64 { return int64(l.now().Sub(l.epoch)) }

func (l *Local) shard(k subjectKey) *shard {
	return l.shards.At(maphash.Comparable(l.shards.Seed, k))
}

// entry is one subject's state. Every part carries its own end instant
// (nanoseconds since the epoch) and is void once that instant is reached.
type entry struct {
	key      subjectKey
	count    int
	countEnd int64
	lockEnd  int64
	set      map[string]struct{}
	setEnd   int64
	flagEnd  int64

	end  int64                // max of the part ends: the entry is void from then on
	heap *stripe.Heap[*entry] // the shard heap holding the entry
	idx  int                  // position in that heap
}

// view is the entry's Subject at now, without changing it.
func (e *entry) view(now int64) Subject {
	var s Subject
	if e.countEnd > now {
		s.Failures = e.count
	}
	if e.lockEnd > now {
		s.Locked = time.Duration(e.lockEnd - now)
	}
	if e.setEnd > now {
		s.Distinct = len(e.set)
	}
	if e.flagEnd > now {
		s.Flagged = time.Duration(e.flagEnd - now)
	}
	return s
}

// record applies one failure with counterpart member (may be empty).
func (e *entry) record(member string, lim limits, now int64) (lockedNow, flaggedNow bool) {
	if e.countEnd <= now {
		e.count, e.countEnd = 0, 0
	}
	if e.setEnd <= now {
		e.set, e.setEnd = nil, 0
	}
	if e.lockEnd <= now {
		if e.count >= lim.maxFailures {
			e.count = 0 // the lock has been served: a new round
		}
		if e.count == 0 {
			e.countEnd = now + lim.window
		}
		e.count++
		if e.count >= lim.maxFailures {
			e.lockEnd = now + lim.lockout
			lockedNow = true
		}
	}
	if member != "" {
		if _, ok := e.set[member]; !ok && len(e.set) < lim.setCap {
			if e.set == nil {
				e.set = make(map[string]struct{}) // no size hint: most sets stay tiny
				e.setEnd = now + lim.window
			}
			e.set[member] = struct{}{}
		}
		if len(e.set) > lim.maxDistinct && e.flagEnd <= now {
			e.flagEnd = e.setEnd
			flaggedNow = true
		}
	}
	e.end = max(e.countEnd, e.lockEnd, e.setEnd, e.flagEnd)
	return lockedNow, flaggedNow
}

// guarded reports whether the entry blocks attempts at now; such entries
// are evicted only when no other entry can be.
func (e *entry) guarded(now int64) bool { return e.lockEnd > now || e.flagEnd > now }

// shard is a capped map of entries, which also sit in one of two min-heaps
// ordered by end: plain entries and guarded ones (holding a lock or a flag
// when last written).
type shard struct {
	mu      sync.Mutex
	cap     int
	keys    map[subjectKey]*entry
	plain   stripe.Heap[*entry]
	guarded stripe.Heap[*entry]
}

func (s *shard) record(k subjectKey, member string, lim limits, now int64) Subject {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.keys[k]
	if e == nil {
		s.makeRoom(now)
		e = &entry{key: k}
		s.keys[k] = e
	}
	lockedNow, flaggedNow := e.record(member, lim, now)
	s.place(e, now)
	v := e.view(now)
	v.LockedNow, v.FlaggedNow = lockedNow, flaggedNow
	return v
}

func (s *shard) view(k subjectKey, now int64) Subject {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.keys[k]; e != nil {
		return e.view(now)
	}
	return Subject{}
}

func (s *shard) reset(k subjectKey, now int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.keys[k]
	if e == nil {
		return
	}
	e.count, e.countEnd = 0, 0
	e.end = max(e.lockEnd, e.setEnd, e.flagEnd)
	if e.end <= now {
		s.drop(e)
		return
	}
	s.place(e, now)
}

// place files e in the heap matching its class, or restores its position
// after its end changed.
func (s *shard) place(e *entry, now int64) {
	want := &s.plain
	if e.guarded(now) {
		want = &s.guarded
	}
	if e.heap == want {
		want.Fix(e.idx, e.end)
		return
	}
	if e.heap != nil {
		e.heap.Remove(e.idx)
	}
	e.heap = want
	want.Push(e, e.end)
}

func (s *shard) drop(e *entry) {
	e.heap.Remove(e.idx)
	e.heap, e.idx = nil, -1
	delete(s.keys, e.key)
}

// makeRoom prepares the insertion of one entry: it drops expired entries
// (up to sweepPerInsert, or as many as needed when full) and, if the shard
// is still full, the plain entry that ends first, or failing that the
// guarded entry that ends first.
func (s *shard) makeRoom(now int64) {
	for i := 0; i < sweepPerInsert || len(s.keys) >= s.cap; i++ {
		e := s.expired(now)
		if e == nil {
			break
		}
		s.drop(e)
	}
	if len(s.keys) < s.cap {
		return
	}
	for _, h := range []*stripe.Heap[*entry]{&s.plain, &s.guarded} {
		if h.Len() > 0 {
			e, _ := h.Min()
			s.drop(e)
			return
		}
	}
}

// expired returns an entry whose end has passed, if a heap top has one.
func (s *shard) expired(now int64) *entry {
	for _, h := range []*stripe.Heap[*entry]{&s.plain, &s.guarded} {
		if h.Len() > 0 {
			if e, end := h.Min(); end <= now {
				return e
			}
		}
	}
	return nil
}
