package detect

import (
	"container/heap"
	"sync"
	"time"

	"github.com/bulwarkapi/bulwark/internal/finding"
)

// CoolDown is one entry of a cool-down table: an identity (Subject, a
// subject hash) or a client address (Client) refused until Until. Exactly
// one of Subject and Client is set.
type CoolDown struct {
	Subject string
	Client  string
	Until   time.Time
}

// key returns the table key of cd, and false unless exactly one of
// Subject and Client is set.
func (cd CoolDown) key() (coolKey, bool) {
	switch {
	case cd.Subject != "" && cd.Client == "":
		return coolKey{id: cd.Subject}, true
	case cd.Client != "" && cd.Subject == "":
		return coolKey{client: true, id: cd.Client}, true
	}
	return coolKey{}, false
}

// coolDownOf is the CoolDown of a table entry.
func coolDownOf(k coolKey, until int64) CoolDown {
	cd := CoolDown{Until: time.Unix(0, until).UTC()}
	if k.client {
		cd.Client = k.id
	} else {
		cd.Subject = k.id
	}
	return cd
}

// ActiveCoolDowns returns every cool-down of the table that ends after
// now, in no particular order. It reads the table under its read lock
// and never waits for Observe; it costs one pass over the table (at most
// MaxTracked entries), so it suits a periodic snapshot, not a request.
func (d *Detector) ActiveCoolDowns(now time.Time) []CoolDown {
	n := now.UnixNano()
	d.cool.mu.RLock()
	defer d.cool.mu.RUnlock()
	out := make([]CoolDown, 0, len(d.cool.m))
	for k, u := range d.cool.m {
		if u > n {
			out = append(out, coolDownOf(k, u))
		}
	}
	return out
}

// CoolDownsOf returns the active cool-downs of the identities and client
// addresses the findings name (each finding's Subject and Client), each
// at most once: after Observe, the cool-downs that batch created or
// extended (a finding's other party, such as the client address of an
// identity flagged for enumeration, is returned only when it is on
// cool-down itself). Findings that put nothing on cool-down (distributed
// guessing) contribute nothing. Like CoolingDown it never waits for
// Observe.
func (d *Detector) CoolDownsOf(fs []finding.Finding) []CoolDown {
	if len(fs) == 0 {
		return nil
	}
	now := d.o.Now().UnixNano()
	seen := make(map[coolKey]bool, len(fs))
	var out []CoolDown
	look := func(k coolKey) {
		if k.id == "" || seen[k] {
			return
		}
		seen[k] = true
		if u, ok := d.cool.until(k, now); ok {
			out = append(out, coolDownOf(k, u))
		}
	}
	for _, f := range fs {
		look(coolKey{id: f.Subject})
		look(coolKey{client: true, id: f.Client})
	}
	return out
}

// tableSweepEvery is the least time between two sweeps of a
// CoolDownTable's expired entries by Apply.
const tableSweepEvery = time.Second

// CoolDownTable is a bounded cool-down list that is fed from outside,
// such as a gateway receiving the cool-downs a cluster's collector
// decided. It is safe for concurrent use: CoolingDown takes a read lock
// only, Apply and Sweep the write lock.
//
// It holds at most its max entries. When a new entry meets a full table,
// expired entries are swept first; if it is still full, the entry that
// ends soonest goes (the new one itself when it ends no later). Until is
// clamped to now + MaxCoolDown, so a faulty or hostile feed cannot lock
// anyone out for longer than a Detector could.
type CoolDownTable struct {
	now func() time.Time
	max int

	mu        sync.RWMutex
	m         map[coolKey]*coolItem
	h         coolHeap // the entries, soonest end first
	lastSweep int64
	evicted   uint64
}

// NewCoolDownTable returns an empty table of at most size entries
// (DefaultMaxTracked when size is not positive) on the clock now (nil
// means time.Now).
func NewCoolDownTable(size int, now func() time.Time) *CoolDownTable {
	if size <= 0 {
		size = DefaultMaxTracked
	}
	if now == nil {
		now = time.Now
	}
	return &CoolDownTable{now: now, max: size, m: make(map[coolKey]*coolItem)}
}

// Apply adds or extends the cool-downs in cds and returns how many it
// took. It never shortens one: of two ends for one key the later stays.
// Entries with neither or both of Subject and Client, and entries that
// ended already, are skipped.
func (t *CoolDownTable) Apply(cds []CoolDown) (applied int) {
	nowT := t.now()
	now := nowT.UnixNano()
	limitT := nowT.Add(MaxCoolDown)
	limit := limitT.UnixNano()
	t.mu.Lock()
	defer t.mu.Unlock()
	if now-t.lastSweep >= int64(tableSweepEvery) {
		t.sweep(now)
	}
	for _, cd := range cds {
		k, ok := cd.key()
		// Compared as times first: UnixNano is undefined outside the
		// years 1678 to 2262.
		if !ok || !cd.Until.After(nowT) {
			continue
		}
		u := limit
		if cd.Until.Before(limitT) {
			u = cd.Until.UnixNano()
		}
		if it, ok := t.m[k]; ok {
			if u > it.until {
				it.until = u
				heap.Fix(&t.h, it.idx)
			}
			applied++
			continue
		}
		if len(t.m) >= t.max {
			t.sweep(now)
		}
		if len(t.m) >= t.max {
			if t.h[0].until >= u {
				t.evicted++ // the new entry is the soonest to end
				continue
			}
			old := heap.Pop(&t.h).(*coolItem)
			delete(t.m, old.key)
			t.evicted++
		}
		it := &coolItem{key: k, until: u}
		heap.Push(&t.h, it)
		t.m[k] = it
		applied++
	}
	return applied
}

// CoolingDown reports whether the identity (subject hash) or the client
// address is on cool-down now, and until when; when both are, the later
// end. Empty arguments are skipped: the semantics of
// Detector.CoolingDown.
func (t *CoolDownTable) CoolingDown(subject, client string) (until time.Time, ok bool) {
	if subject == "" && client == "" {
		return time.Time{}, false
	}
	now := t.now().UnixNano()
	var end int64
	t.mu.RLock()
	if subject != "" {
		if it, hit := t.m[coolKey{id: subject}]; hit && it.until > now {
			end, ok = it.until, true
		}
	}
	if client != "" {
		if it, hit := t.m[coolKey{client: true, id: client}]; hit && it.until > now && it.until > end {
			end, ok = it.until, true
		}
	}
	t.mu.RUnlock()
	if !ok {
		return time.Time{}, false
	}
	return time.Unix(0, end).UTC(), true
}

// Sweep drops the entries that have ended.
func (t *CoolDownTable) Sweep() {
	now := t.now().UnixNano()
	t.mu.Lock()
	t.sweep(now)
	t.mu.Unlock()
}

// sweep pops ended entries off the heap: O(log n) per entry dropped.
func (t *CoolDownTable) sweep(now int64) {
	t.lastSweep = now
	for len(t.h) > 0 && t.h[0].until <= now {
		it := heap.Pop(&t.h).(*coolItem)
		delete(t.m, it.key)
	}
}

// Active returns the number of entries that have not ended.
func (t *CoolDownTable) Active() int {
	now := t.now().UnixNano()
	t.mu.RLock()
	defer t.mu.RUnlock()
	n := 0
	for _, it := range t.h {
		if it.until > now {
			n++
		}
	}
	return n
}

// Len returns the number of entries held, ended ones not yet swept
// included; at most the table's max.
func (t *CoolDownTable) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.m)
}

// Evicted counts the entries dropped (or not taken) because the table
// was full of live entries.
func (t *CoolDownTable) Evicted() uint64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.evicted
}

// coolItem is one entry of a CoolDownTable, at index idx of its heap.
type coolItem struct {
	key   coolKey
	until int64
	idx   int
}

// coolHeap orders items by their end, soonest first (container/heap).
type coolHeap []*coolItem

func (h coolHeap) Len() int           { return len(h) }
func (h coolHeap) Less(i, j int) bool { return h[i].until < h[j].until }
func (h coolHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}

func (h *coolHeap) Push(x any) {
	it := x.(*coolItem)
	it.idx = len(*h)
	*h = append(*h, it)
}

func (h *coolHeap) Pop() any {
	old := *h
	n := len(old)
	it := old[n-1]
	old[n-1] = nil
	*h = old[:n-1]
	return it
}
