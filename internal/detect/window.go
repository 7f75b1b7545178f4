package detect

import "math"

// numBuckets is how many buckets a sliding window is cut into. With 12 a
// window of 60s moves in steps of 5s: counts cover between 11/12 and all
// of Window, and a key's counters are 3 × 12 small integers.
const numBuckets = 12

// noBucket stands for "no bucket": an id with no live sighting, a set
// never swept.
const noBucket = math.MinInt64

// window holds one key's counters over the last numBuckets buckets.
// Bucket b covers event times [b×width, (b+1)×width); head is the newest
// bucket seen and the live buckets are (head-numBuckets, head]. Totals
// are kept alongside the buckets, so reading a count is O(1) and moving
// the window costs at most numBuckets slot resets.
type window struct {
	head int64
	// reqs and fails are the two per-detector event counters (see the
	// detectors for what they count); ids counts the members of the key's
	// idSet by the bucket of their latest sighting.
	reqs, fails, ids          [numBuckets]uint32
	totReqs, totFails, totIDs int
	// steps counts enumeration's sequential steps onto new ids.
	steps    [numBuckets]uint32
	totSteps int
}

// slot is the array index of bucket b, for any sign of b.
func slot(b int64) int {
	s := b % numBuckets
	if s < 0 {
		s += numBuckets
	}
	return int(s)
}

// live reports whether bucket b is within the window.
func (w *window) live(b int64) bool { return b <= w.head && b > w.head-numBuckets }

// advance moves the window so that b is live, forgetting the buckets that
// fall out. A b older than the window leaves it unchanged.
func (w *window) advance(b int64) {
	if b <= w.head {
		return
	}
	steps := min(b-w.head, numBuckets)
	for i := int64(1); i <= steps; i++ {
		s := slot(w.head + i)
		w.totReqs -= int(w.reqs[s])
		w.totFails -= int(w.fails[s])
		w.totIDs -= int(w.ids[s])
		w.totSteps -= int(w.steps[s])
		w.reqs[s], w.fails[s], w.ids[s], w.steps[s] = 0, 0, 0, 0
	}
	w.head = b
}

// count adds one event to bucket b (live), and one failure when fail.
func (w *window) count(b int64, fail bool) {
	s := slot(b)
	w.reqs[s]++
	w.totReqs++
	if fail {
		w.fails[s]++
		w.totFails++
	}
}

// step counts one sequential step in bucket b (live).
func (w *window) step(b int64) {
	w.steps[slot(b)]++
	w.totSteps++
}

// moveID records that an id last seen in bucket from (noBucket: never
// within the window) was seen again in bucket to.
func (w *window) moveID(from, to int64) {
	if from != noBucket {
		w.ids[slot(from)]--
		w.totIDs--
	}
	w.ids[slot(to)]++
	w.totIDs++
}

// idSet is the set of distinct ids (object hashes, usernames, client
// addresses) a key saw within its window, each with the bucket of its
// latest sighting; the window's ids counters say how many are live.
// It holds at most its cap members: past that only the crossing of the
// detector's threshold matters, and the cap bounds memory per key.
type idSet struct {
	m map[string]int64
	// swept is the head bucket of the last sweep at capacity: a full set
	// of live ids is swept at most once per bucket.
	swept int64
}

// add records id seen in bucket b (live in w) and keeps w.ids in step,
// and reports whether id is new: not seen within the window before.
// Once the set is full of live ids a new id is not remembered, so the
// distinct count saturates at the cap (and add reports false).
func (s *idSet) add(w *window, id string, b int64, limit int) bool {
	if a, ok := s.m[id]; ok {
		fresh := false
		switch {
		case !w.live(a):
			w.moveID(noBucket, b) // its old sighting has left the window
			fresh = true
		case b > a:
			w.moveID(a, b)
		default:
			return false
		}
		s.m[id] = b
		return fresh
	}
	if len(s.m) >= limit {
		if s.swept == w.head {
			return false
		}
		s.swept = w.head
		for k, a := range s.m {
			if !w.live(a) {
				delete(s.m, k)
			}
		}
		if len(s.m) >= limit {
			return false
		}
	}
	if s.m == nil {
		s.m = make(map[string]int64, 1)
	}
	s.m[id] = b
	w.moveID(noBucket, b)
	return true
}

// lruNode is one element of an lru, holding its value inline so that a
// pointer to the value stays valid for the node's life.
type lruNode[K comparable, V any] struct {
	key        K
	val        V
	prev, next *lruNode[K, V]
}

// lru is a map bounded at max elements with least-recently-used
// eviction. get promotes; the list runs from root.next (newest) to
// root.prev (oldest). Not safe for concurrent use.
type lru[K comparable, V any] struct {
	items map[K]*lruNode[K, V]
	root  lruNode[K, V]
	max   int
}

func newLRU[K comparable, V any](max int) *lru[K, V] {
	l := &lru[K, V]{items: make(map[K]*lruNode[K, V]), max: max}
	l.root.next, l.root.prev = &l.root, &l.root
	return l
}

func (l *lru[K, V]) len() int { return len(l.items) }

// get returns k's node, promoted to newest, or nil.
func (l *lru[K, V]) get(k K) *lruNode[K, V] {
	n := l.items[k]
	if n != nil {
		l.promote(n)
	}
	return n
}

// peek returns k's node without promoting it, or nil.
func (l *lru[K, V]) peek(k K) *lruNode[K, V] { return l.items[k] }

// promote makes n the newest.
func (l *lru[K, V]) promote(n *lruNode[K, V]) {
	if l.root.next != n {
		l.unlink(n)
		l.pushFront(n)
	}
}

// add inserts k (which must be absent) as newest with a zero value. When
// the lru is full it first evicts the oldest element and reports it.
func (l *lru[K, V]) add(k K) (n *lruNode[K, V], evicted bool) {
	if len(l.items) >= l.max {
		l.remove(l.root.prev)
		evicted = true
	}
	n = &lruNode[K, V]{key: k}
	l.items[k] = n
	l.pushFront(n)
	return n, evicted
}

// oldest returns the least recently used node, or nil when empty.
func (l *lru[K, V]) oldest() *lruNode[K, V] {
	if l.root.prev == &l.root {
		return nil
	}
	return l.root.prev
}

// each calls f on every node, newest first, until f returns false.
func (l *lru[K, V]) each(f func(*lruNode[K, V]) bool) {
	for n := l.root.next; n != &l.root; n = n.next {
		if !f(n) {
			return
		}
	}
}

func (l *lru[K, V]) remove(n *lruNode[K, V]) {
	l.unlink(n)
	delete(l.items, n.key)
}

func (l *lru[K, V]) unlink(n *lruNode[K, V]) {
	n.prev.next, n.next.prev = n.next, n.prev
	n.prev, n.next = nil, nil
}

func (l *lru[K, V]) pushFront(n *lruNode[K, V]) {
	n.prev, n.next = &l.root, l.root.next
	l.root.next.prev = n
	l.root.next = n
}
