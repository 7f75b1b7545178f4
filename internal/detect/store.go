package detect

import (
	"sync"
	"time"
)

// ownerKey is one object of one API: ids are scoped by API, so two APIs
// whose id spaces overlap (order 17, account 17) do not share owners.
type ownerKey struct {
	api, id string
}

// owners remembers the first subject each object was returned to or
// successfully requested by. It holds at most max objects and evicts the
// oldest insertion first: ownership is a long-lived fact with no window,
// and insertion order is the cheapest bound that an attacker cannot use
// to keep its own entries (re-reading an object does not refresh it).
type owners struct {
	m map[ownerKey]string
	// order is a ring of the keys in insertion order; once it holds max
	// keys, next is the oldest.
	order   []ownerKey
	next    int
	max     int
	evicted uint64
}

func newOwners(max int) *owners {
	return &owners{m: make(map[ownerKey]string), max: max}
}

// shared is the owner of an object returned to more than one subject: a
// joint account, or a merchant every customer's transactions name. It
// has no single owner, so requests for it are never foreign.
const shared = "\x00shared"

// get returns the object's owner, "" when unknown or shared.
func (o *owners) get(k ownerKey) string {
	if s := o.m[k]; s != shared {
		return s
	}
	return ""
}

// returned records that k was returned to subject: its first owner, or
// shared when it was returned to another subject before.
func (o *owners) returned(k ownerKey, subject string) {
	if s, ok := o.m[k]; ok {
		if s != subject {
			o.m[k] = shared
		}
		return
	}
	o.learn(k, subject)
}

// learn records subject as the owner of k unless k has one.
func (o *owners) learn(k ownerKey, subject string) {
	if _, ok := o.m[k]; ok {
		return
	}
	if len(o.order) < o.max {
		o.order = append(o.order, k)
	} else {
		delete(o.m, o.order[o.next])
		o.order[o.next] = k
		o.next = (o.next + 1) % o.max
		o.evicted++
	}
	o.m[k] = subject
}

// coolKey is an identity (subject hash) or a client address on cool-down.
type coolKey struct {
	client bool
	id     string
}

// coolTable is the cool-down list read by request goroutines. It has its
// own lock so that CoolingDown never waits for Observe to finish a batch.
type coolTable struct {
	mu sync.RWMutex
	// m maps a key to the end of its cool-down, in Unix nanoseconds.
	m         map[coolKey]int64
	max       int
	lastSweep int64
}

// until returns the end of k's cool-down when it is after now.
func (c *coolTable) until(k coolKey, now int64) (int64, bool) {
	c.mu.RLock()
	u, ok := c.m[k]
	c.mu.RUnlock()
	return u, ok && u > now
}

// coolUpdate is one cool-down to apply.
type coolUpdate struct {
	key   coolKey
	until int64
}

// fullSweepGap is the least time between two sweeps of a full cool-down
// table: a table full of live entries is not rescanned for every insert.
const fullSweepGap = time.Second

// apply extends the cool-downs in ups (never shortens one), under one
// write lock. It is called by Observe only (under the Detector's lock),
// so lastSweep needs no lock of its own. Expired entries are swept once
// per sweepEvery, and when a new key meets a full table (at most once per
// fullSweepGap); when the table is still full the new key replaces an
// arbitrary one (Go's map order), which keeps the cost O(1) and cannot be
// steered by an attacker.
func (c *coolTable) apply(ups []coolUpdate, now int64, sweepEvery time.Duration) {
	periodic := now-c.lastSweep >= int64(sweepEvery)
	if len(ups) == 0 && !periodic {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if periodic {
		c.sweep(now)
	}
	for _, u := range ups {
		if u.until <= now {
			continue
		}
		if old, ok := c.m[u.key]; ok {
			c.m[u.key] = max(old, u.until)
			continue
		}
		if len(c.m) >= c.max && now-c.lastSweep >= int64(fullSweepGap) {
			c.sweep(now)
		}
		if len(c.m) >= c.max {
			for k := range c.m {
				delete(c.m, k)
				break
			}
		}
		c.m[u.key] = u.until
	}
}

func (c *coolTable) sweep(now int64) {
	c.lastSweep = now
	for k, u := range c.m {
		if u <= now {
			delete(c.m, k)
		}
	}
}

func (c *coolTable) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}
