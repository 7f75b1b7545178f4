package detect

import (
	"strings"

	"github.com/bulwarkapi/bulwark/internal/event"
)

// detector tells the four detectors' keys and findings apart.
type detector uint8

const (
	detEnumeration detector = iota
	detOwnership
	detStuffing    // per client address
	detDistributed // per username
	numDetectors
)

// tableShares split MaxTracked between the detectors' key tables, in
// eighths, so that a flood of keys of one kind (a stuffing list's
// usernames) cannot evict another detector's keys (an enumerator's).
// Enumeration keys are the most numerous in normal traffic (every
// identity × operation with object ids), ownership keys exist only for
// identities that touched a foreign object.
var tableShares = [numDetectors]int{detEnumeration: 4, detOwnership: 2, detStuffing: 1, detDistributed: 1}

// tableEighths is the sum of tableShares.
const tableEighths = 8

// Stop-reason prefixes ("stage:reason") the detectors read.
const (
	// reasonAuthz and reasonAuthorize mark an object-level authorization
	// denial; the gateway's authorization stage is named "authorize",
	// "authz" is accepted as well.
	reasonAuthz     = "authz:"
	reasonAuthorize = "authorize:"
	// reasonBruteForce marks a login refused by the brute-force guard.
	reasonBruteForce = "brute_force:"
)

// Triggers name the condition that raised or updated a finding.
const (
	triggerDistinctObjects   = "distinct_objects"
	triggerFailureShare      = "failure_share"
	triggerSequentialWalk    = "sequential_walk"
	triggerForeignObjects    = "foreign_objects"
	triggerDistinctUsernames = "distinct_usernames"
	triggerFailedLogins      = "failed_logins"
	triggerDistinctClients   = "distinct_clients"
)

// key identifies what one detector counts for.
type key struct {
	// anon is true when who is a client address standing in for a
	// missing subject (enumeration by anonymous callers).
	anon bool
	api  string
	// who is the subject hash, the client address or the username hash.
	who string
	// op and param are the operation and its object parameter
	// (enumeration only).
	op, param string
}

// entry is one key's state.
type entry struct {
	last int64 // the latest event time, Unix ns
	win  window
	set  idSet
	// active is true while the detector's condition held at the key's
	// latest event.
	active bool
	// rep is the finding the key raised, nil before the first.
	rep *report
}

// touch returns k's entry in det's table, created when new and advanced
// to bucket b, or nil when b is older than the entry's window (a late
// event). An entry is promoted in its table when its window moves to a
// new bucket, not on every event: the order is least recently used at
// bucket granularity, which is all eviction and idle expiry need, and a
// busy key costs no list surgery (and its cache misses) per event.
func (d *Detector) touch(det detector, k key, t, b int64) *entry {
	tab := d.keys[det]
	n := tab.peek(k)
	if n != nil && b > n.val.win.head {
		tab.promote(n)
	}
	if n == nil {
		if tab.len() >= tab.max {
			old := tab.oldest()
			if old.val.last >= d.horizon() {
				d.evicted++
			}
			tab.remove(old)
		}
		n, _ = tab.add(k)
		n.val.win.head = b
		n.val.set.swept = noBucket
	}
	e := &n.val
	if b <= e.win.head-numBuckets {
		return nil
	}
	e.win.advance(b)
	e.last = max(e.last, t)
	return e
}

// horizon is the event time before which a key's latest event has left
// the window.
func (d *Detector) horizon() int64 { return d.latest - int64(d.o.Window) - d.bucketNS }

// setCap is the size of a distinct set whose threshold is threshold.
func setCap(threshold int) int { return setCapFactor * (threshold + 1) }

// capIDs limits the ids of one event read to maxIDsPerEvent.
func capIDs(ids []string) []string { return ids[:min(len(ids), maxIDsPerEvent)] }

// hasReason reports whether one of the stop reasons has the prefix.
func hasReason(reasons []string, prefix string) bool {
	for _, r := range reasons {
		if strings.HasPrefix(r, prefix) {
			return true
		}
	}
	return false
}

// objectFailure: the object request was denied or the object not found.
func objectFailure(e *event.Exchange) bool {
	return e.Status == 403 || e.Status == 404 ||
		hasReason(e.Reasons, reasonAuthz) || hasReason(e.Reasons, reasonAuthorize)
}

// loginFailure: the login attempt failed or was refused by the guard.
func loginFailure(e *event.Exchange) bool {
	return e.Status == 401 || e.Status == 403 || hasReason(e.Reasons, reasonBruteForce)
}

// success: the upstream answered 2xx and the gateway let it through.
func success(e *event.Exchange) bool {
	return e.Status >= 200 && e.Status < 300 && !e.Blocked
}

// enumeration counts, per (API, identity or anonymous client address,
// operation, object parameter), object requests, failures and distinct
// object ids.
func (d *Detector) enumeration(e *event.Exchange, t, b int64) {
	if len(e.ObjectIDs) == 0 {
		return
	}
	k := key{api: e.API, who: e.Subject, op: e.Operation, param: e.ObjectParam}
	if k.who == "" {
		k.who, k.anon = e.Client, true
	}
	if k.who == "" {
		return
	}
	en := d.touch(detEnumeration, k, t, b)
	if en == nil {
		return
	}
	w := &en.win
	w.count(b, objectFailure(e))
	limit := setCap(d.o.MaxDistinctObjects)
	for i, id := range capIDs(e.ObjectIDs) {
		// ObjectStep is about the first id (the object parameter's): a
		// step counts when it lands on an id new to the window, so a
		// customer switching between two adjacent accounts makes none.
		if en.set.add(w, id, b, limit) && i == 0 && e.ObjectStep {
			w.step(b)
		}
	}
	var trigger string
	switch {
	case w.totIDs > d.o.MaxDistinctObjects:
		trigger = triggerDistinctObjects
	case w.totFails >= d.o.MinFailures && float64(w.totFails) >= d.o.MinFailureShare*float64(w.totReqs):
		trigger = triggerFailureShare
	case w.totSteps >= d.o.MinSequentialSteps:
		trigger = triggerSequentialWalk
	default:
		en.active = false
		return
	}
	r := d.hit(detEnumeration, k, en, e, t, w.totReqs)
	r.trigger, r.distinct, r.requests, r.failures = trigger, w.totIDs, w.totReqs, w.totFails
	r.steps = w.totSteps
	r.endpoint, r.param = e.Operation, e.ObjectParam
	if k.anon {
		r.client = k.who
		r.cool = coolKey{client: true, id: k.who}
	} else {
		r.subject = k.who
		r.cool = coolKey{id: k.who}
		if e.Client != "" {
			r.client = e.Client
		}
	}
}

// ownership learns first owners and counts, per (API, subject), requests
// for objects first seen with another subject.
func (d *Detector) ownership(e *event.Exchange, t, b int64) {
	if e.Subject == "" || (len(e.ObjectIDs) == 0 && len(e.ReturnedIDs) == 0) {
		return
	}
	ok := success(e)
	ids := capIDs(e.ObjectIDs)
	foreign := false
	for _, id := range ids {
		if o := d.owners.get(ownerKey{e.API, id}); o != "" && o != e.Subject {
			foreign = true
			break
		}
	}
	if !foreign {
		// An exchange that touched someone else's object teaches nothing:
		// the ids in its response are the other subject's.
		if ok {
			for _, id := range ids {
				d.owners.learn(ownerKey{e.API, id}, e.Subject)
			}
			for _, id := range capIDs(e.ReturnedIDs) {
				d.owners.returned(ownerKey{e.API, id}, e.Subject)
			}
		}
		return
	}
	k := key{api: e.API, who: e.Subject}
	en := d.touch(detOwnership, k, t, b)
	if en == nil {
		return
	}
	w := &en.win
	w.count(b, ok) // fails counts the foreign requests that succeeded
	limit := setCap(d.o.OwnershipMinSubjects)
	for _, id := range ids {
		if o := d.owners.get(ownerKey{e.API, id}); o != "" && o != e.Subject {
			en.set.add(w, id, b, limit)
		}
	}
	if w.totIDs < d.o.OwnershipMinSubjects {
		en.active = false
		return
	}
	r := d.hit(detOwnership, k, en, e, t, w.totReqs)
	r.trigger, r.distinct, r.requests, r.failures = triggerForeignObjects, w.totIDs, w.totReqs, w.totFails
	r.endpoint, r.subject, r.cool = e.Operation, e.Subject, coolKey{id: e.Subject}
	if e.Client != "" {
		r.client = e.Client
	}
}

// stuffing counts failed logins per (API, client address), with their
// distinct usernames, and per (API, username), with their distinct
// client addresses.
func (d *Detector) stuffing(e *event.Exchange, t, b int64) {
	if e.Username == "" || !loginFailure(e) {
		return
	}
	if e.Client != "" {
		k := key{api: e.API, who: e.Client}
		if en := d.touch(detStuffing, k, t, b); en != nil {
			w := &en.win
			w.count(b, false) // reqs counts failed logins
			en.set.add(w, e.Username, b, setCap(d.o.StuffingUsernames))
			var trigger string
			switch {
			case w.totIDs >= d.o.StuffingUsernames:
				trigger = triggerDistinctUsernames
			case w.totReqs >= d.o.StuffingFailures:
				trigger = triggerFailedLogins
			default:
				en.active = false
			}
			if trigger != "" {
				r := d.hit(detStuffing, k, en, e, t, w.totReqs)
				r.trigger, r.distinct, r.requests = trigger, w.totIDs, w.totReqs
				r.endpoint, r.client, r.cool = e.Operation, e.Client, coolKey{client: true, id: e.Client}
			}
		}
	}
	k := key{api: e.API, who: e.Username}
	en := d.touch(detDistributed, k, t, b)
	if en == nil {
		return
	}
	w := &en.win
	w.count(b, false)
	if e.Client != "" {
		en.set.add(w, e.Client, b, setCap(d.o.DistributedClients))
	}
	if w.totIDs <= d.o.DistributedClients {
		en.active = false
		return
	}
	r := d.hit(detDistributed, k, en, e, t, w.totReqs)
	r.trigger, r.distinct, r.requests = triggerDistinctClients, w.totIDs, w.totReqs
	r.endpoint, r.username = e.Operation, e.Username
}

// hit attributes e to en's finding, raising the finding first when en
// has none: the first event of an activation adds the window's count
// (the events that led to it), each later one adds one.
func (d *Detector) hit(det detector, k key, en *entry, e *event.Exchange, t int64, windowCount int) *report {
	r := en.rep
	if r == nil {
		id := findingID(det, k)
		if n := d.reports.get(id); n != nil {
			r = n.val
		} else {
			n, _ := d.reports.add(id)
			r = &report{id: id, det: det, api: k.api, firstSeen: t, lastSeen: t}
			n.val = r
		}
		en.rep = r
	}
	if en.active {
		r.count++
	} else {
		r.count += windowCount
		en.active = true
	}
	r.lastSeen = max(r.lastSeen, t)
	if e.ID != "" && len(r.samples) < maxSamples {
		r.samples = append(r.samples, e.ID)
	}
	if !r.inBatch {
		r.inBatch = true
		d.batch = append(d.batch, r)
	}
	return r
}
