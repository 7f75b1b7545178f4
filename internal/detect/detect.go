package detect

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/bulwarkapi/bulwark/internal/event"
	"github.com/bulwarkapi/bulwark/internal/finding"
)

// ErrInvalidOptions reports Options that New cannot use; every error New
// returns wraps it.
var ErrInvalidOptions = errors.New("invalid detector options")

// Defaults and bounds of Options; the package documentation gives the
// reason for each default.
const (
	// DefaultWindow is the sliding counting window when Window is zero.
	DefaultWindow = 60 * time.Second
	// DefaultMaxDistinctObjects is the enumeration threshold on distinct
	// object ids when MaxDistinctObjects is zero.
	DefaultMaxDistinctObjects = 20
	// DefaultMinFailureShare is the enumeration threshold on the share of
	// denied or missing objects when MinFailureShare is zero.
	DefaultMinFailureShare = 0.5
	// DefaultMinFailures is the least number of denied or missing objects
	// the failure share needs, when MinFailures is zero.
	DefaultMinFailures = 10
	// DefaultMinSequentialSteps is the enumeration threshold on
	// sequential steps (event.Exchange.ObjectStep onto a new id) when
	// MinSequentialSteps is zero.
	DefaultMinSequentialSteps = 10
	// DefaultStuffingUsernames is the credential-stuffing threshold on
	// distinct failing usernames from one client address.
	DefaultStuffingUsernames = 10
	// DefaultStuffingFailures is the credential-stuffing threshold on
	// failed logins from one client address.
	DefaultStuffingFailures = 30
	// DefaultDistributedClients is the distributed-guessing threshold: a
	// username failing from more client addresses than this.
	DefaultDistributedClients = 10
	// DefaultOwnershipMinSubjects is the ownership-anomaly threshold on
	// distinct foreign objects one subject requested.
	DefaultOwnershipMinSubjects = 3
	// DefaultMaxTracked bounds the keys (and findings, and cool-downs)
	// held when MaxTracked is zero.
	DefaultMaxTracked = 100_000
	// DefaultMaxOwners bounds the object-ownership map when MaxOwners is
	// zero.
	DefaultMaxOwners = 1_000_000
	// DefaultCoolDown is how long a flagged identity or address stays on
	// cool-down when CoolDown is zero.
	DefaultCoolDown = 5 * time.Minute

	// MinWindow and MaxWindow bound Window: below a second the buckets
	// are shorter than the gateway's batching, above a day counts mean
	// little and a typo is likelier than intent.
	MinWindow = time.Second
	MaxWindow = 24 * time.Hour
	// MaxCoolDown bounds CoolDown, catching typos that would lock an
	// identity out for good.
	MaxCoolDown = 24 * time.Hour
	// MinTracked is the least MaxTracked: each detector's table gets a
	// share of it, and at least one key.
	MinTracked = tableEighths
	// MaxThreshold bounds every count threshold; distinct sets are sized
	// from thresholds, so this also bounds memory per key.
	MaxThreshold = 10_000

	// setCapFactor sizes a key's distinct set at setCapFactor × (its
	// threshold + 1) members: enough to report how far past the threshold
	// a key went, bounded whatever the attack's size.
	setCapFactor = 2
	// maxIDsPerEvent is how many ObjectIDs and ReturnedIDs of one event
	// are read: a response listing thousands of ids must not stall the
	// ingest goroutine.
	maxIDsPerEvent = 256
	// maxFutureSkew is how far ahead of the clock an event time may be
	// before it is replaced by the clock: a gateway with a bad clock must
	// not push every window ahead.
	maxFutureSkew = time.Minute
	// maxSamples is how many request ids a finding's evidence keeps.
	maxSamples = 5
)

// Options configures a Detector. Zero values take the defaults above;
// New reports every invalid field at once.
type Options struct {
	// Window is the sliding window the detectors count in, in
	// [MinWindow, MaxWindow]. Default DefaultWindow.
	Window time.Duration
	// MaxDistinctObjects: more distinct object ids than this requested by
	// one identity (or anonymous client) on one operation within Window is
	// enumeration. Default DefaultMaxDistinctObjects.
	MaxDistinctObjects int
	// MinFailureShare: enumeration also when at least this share of the
	// key's object requests within Window were denied or not found, with
	// at least MinFailures of them. In (0, 1]; default
	// DefaultMinFailureShare.
	MinFailureShare float64
	// MinFailures is the least number of failures MinFailureShare needs.
	// Default DefaultMinFailures.
	MinFailures int
	// MinSequentialSteps: enumeration also when one identity (or
	// anonymous client) made this many sequential steps onto new ids on
	// one operation within Window: acc-1041, acc-1042, ... Default
	// DefaultMinSequentialSteps.
	MinSequentialSteps int
	// StuffingUsernames: failed logins for at least this many distinct
	// usernames from one client address within Window is credential
	// stuffing. Default DefaultStuffingUsernames.
	StuffingUsernames int
	// StuffingFailures: at least this many failed logins from one client
	// address within Window is credential stuffing too. Default
	// DefaultStuffingFailures.
	StuffingFailures int
	// DistributedClients: failed logins for one username from more
	// distinct client addresses than this within Window is distributed
	// guessing. Default DefaultDistributedClients.
	DistributedClients int
	// OwnershipMinSubjects: an ownership anomaly is reported when one
	// subject requested at least this many distinct objects first seen
	// with other subjects within Window. Default
	// DefaultOwnershipMinSubjects.
	OwnershipMinSubjects int
	// MaxTracked bounds the keys the detectors count for (identity or
	// address × operation), least recently used first out, split between
	// the detectors (see the package documentation); it also bounds the
	// findings remembered and the cool-down table. At least MinTracked;
	// default DefaultMaxTracked.
	MaxTracked int
	// MaxOwners bounds the object → first owner map, oldest first out.
	// Default DefaultMaxOwners.
	MaxOwners int
	// CoolDown is how long a flagged identity or address is reported by
	// CoolingDown after its latest suspicious request, in (0, MaxCoolDown].
	// Default DefaultCoolDown.
	CoolDown time.Duration
	// Now is the clock; nil means time.Now. Tests inject a fake.
	Now func() time.Time
}

// withDefaults fills the zero fields.
func (o Options) withDefaults() Options {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	if o.Window == 0 {
		o.Window = DefaultWindow
	}
	def(&o.MaxDistinctObjects, DefaultMaxDistinctObjects)
	if o.MinFailureShare == 0 {
		o.MinFailureShare = DefaultMinFailureShare
	}
	def(&o.MinFailures, DefaultMinFailures)
	def(&o.MinSequentialSteps, DefaultMinSequentialSteps)
	def(&o.StuffingUsernames, DefaultStuffingUsernames)
	def(&o.StuffingFailures, DefaultStuffingFailures)
	def(&o.DistributedClients, DefaultDistributedClients)
	def(&o.OwnershipMinSubjects, DefaultOwnershipMinSubjects)
	def(&o.MaxTracked, DefaultMaxTracked)
	def(&o.MaxOwners, DefaultMaxOwners)
	if o.CoolDown == 0 {
		o.CoolDown = DefaultCoolDown
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// validate reports every invalid field of defaulted options.
func (o Options) validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidOptions}, args...)...))
	}
	if o.Window < MinWindow || o.Window > MaxWindow {
		bad("window %s is not in [%s, %s]", o.Window, MinWindow, MaxWindow)
	}
	for _, t := range []struct {
		name string
		v    int
	}{
		{"max_distinct_objects", o.MaxDistinctObjects},
		{"min_failures", o.MinFailures},
		{"min_sequential_steps", o.MinSequentialSteps},
		{"stuffing_usernames", o.StuffingUsernames},
		{"stuffing_failures", o.StuffingFailures},
		{"distributed_clients", o.DistributedClients},
		{"ownership_min_subjects", o.OwnershipMinSubjects},
	} {
		if t.v < 1 || t.v > MaxThreshold {
			bad("%s %d is not in [1, %d]", t.name, t.v, MaxThreshold)
		}
	}
	if math.IsNaN(o.MinFailureShare) || o.MinFailureShare <= 0 || o.MinFailureShare > 1 {
		bad("min_failure_share %v is not in (0, 1]", o.MinFailureShare)
	}
	if o.MaxTracked < MinTracked {
		bad("max_tracked %d is less than %d", o.MaxTracked, MinTracked)
	}
	if o.MaxOwners < 1 {
		bad("max_owners %d is not positive", o.MaxOwners)
	}
	if o.CoolDown <= 0 || o.CoolDown > MaxCoolDown {
		bad("cool_down %s is not in (0, %s]", o.CoolDown, MaxCoolDown)
	}
	return errors.Join(errs...)
}

// Detector runs the behavioural detectors over the exchange-event stream.
// It is safe for concurrent use: Observe and Stats serialise on one lock,
// CoolingDown reads a separate table under a read lock and never waits
// for a batch.
type Detector struct {
	o        Options
	bucketNS int64

	mu       sync.Mutex
	keys     [numDetectors]*lru[key, entry]
	reports  *lru[string, *report]
	owners   *owners
	latest   int64     // the latest event time observed, Unix ns
	batch    []*report // findings touched by the current batch
	coolUps  []coolUpdate
	events   uint64
	reported uint64
	evicted  uint64

	cool coolTable
}

// New returns a Detector, or an error wrapping ErrInvalidOptions for
// every invalid field.
func New(o Options) (*Detector, error) {
	o = o.withDefaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	d := &Detector{
		o:        o,
		bucketNS: int64(o.Window / numBuckets),
		reports:  newLRU[string, *report](o.MaxTracked),
		owners:   newOwners(o.MaxOwners),
		cool:     coolTable{m: make(map[coolKey]int64), max: o.MaxTracked},
	}
	for det := range d.keys {
		d.keys[det] = newLRU[key, entry](max(1, o.MaxTracked*tableShares[det]/tableEighths))
	}
	return d, nil
}

// Observe runs the detectors over a batch of events, in order, and
// returns the findings this batch created or updated: each at most once,
// with its Count and LastSeen as of the batch's end. Finding ids are
// stable (see the package documentation), so a caller upserts by ID. The
// events are not retained, but strings in them may be (as map keys).
func (d *Detector) Observe(events []event.Exchange) []finding.Finding {
	if len(events) == 0 {
		return nil
	}
	now := d.o.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := range events {
		e := &events[i]
		t := eventTime(e.Time, now)
		d.latest = max(d.latest, t)
		b := t / d.bucketNS
		d.enumeration(e, t, b)
		d.ownership(e, t, b)
		d.stuffing(e, t, b)
	}
	d.events += uint64(len(events))
	d.expireIdle()
	var out []finding.Finding
	if len(d.batch) > 0 {
		out = make([]finding.Finding, 0, len(d.batch))
	}
	for _, r := range d.batch {
		r.inBatch = false
		r.reports++
		out = append(out, r.finding(d.o.Window))
		if r.cool != (coolKey{}) {
			d.coolUps = append(d.coolUps, coolUpdate{key: r.cool, until: r.lastSeen + int64(d.o.CoolDown)})
		}
	}
	d.reported += uint64(len(d.batch))
	clear(d.batch)
	d.batch = d.batch[:0]
	d.cool.apply(d.coolUps, now.UnixNano(), d.o.CoolDown)
	clear(d.coolUps)
	d.coolUps = d.coolUps[:0]
	return out
}

// eventTime is e's time in Unix nanoseconds, or now's for a zero time, a
// time before 1970 or one more than maxFutureSkew ahead of now.
func eventTime(ts, now time.Time) int64 {
	if ts.IsZero() || ts.Unix() < 0 || ts.After(now.Add(maxFutureSkew)) {
		ts = now
	}
	return ts.UnixNano()
}

// expireIdle drops the keys whose latest event has left the window: the
// oldest first, stopping at the first that has not. Keys are ordered by
// their latest touch, so this is amortised O(1) per event.
func (d *Detector) expireIdle() {
	horizon := d.horizon()
	for _, tab := range d.keys {
		for n := tab.oldest(); n != nil && n.val.last < horizon; n = tab.oldest() {
			tab.remove(n)
		}
	}
}

// CoolingDown reports whether the identity (subject hash) or the client
// address is on cool-down now, and until when; when both are, the later
// end. Empty arguments are skipped. It is cheap and never waits for
// Observe: the gateway may call it on every request in enforce mode.
func (d *Detector) CoolingDown(subject, client string) (until time.Time, ok bool) {
	now := d.o.Now().UnixNano()
	var end int64
	if subject != "" {
		if u, hit := d.cool.until(coolKey{id: subject}, now); hit {
			end, ok = u, true
		}
	}
	if client != "" {
		if u, hit := d.cool.until(coolKey{client: true, id: client}, now); hit && u > end {
			end, ok = u, true
		}
	}
	if !ok {
		return time.Time{}, false
	}
	return time.Unix(0, end).UTC(), true
}

// Stats is a snapshot of the Detector's state, for metrics.
type Stats struct {
	// Tracked is the number of keys counted for (identity or address ×
	// operation, per detector); at most MaxTracked.
	Tracked int
	// Findings is the number of findings remembered for stable counts;
	// at most MaxTracked.
	Findings int
	// Owners is the number of objects with a known first owner; at most
	// MaxOwners.
	Owners int
	// CoolingDown is the number of identities and addresses in the
	// cool-down table, expired ones not yet swept included; at most
	// MaxTracked.
	CoolingDown int
	// Events is the number of events observed.
	Events uint64
	// Reported is the number of findings Observe returned (new and
	// updated).
	Reported uint64
	// Evicted counts keys dropped for MaxTracked before their window
	// ended: under sustained pressure, detections may be missed.
	Evicted uint64
	// OwnersEvicted counts objects whose owner was forgotten for
	// MaxOwners.
	OwnersEvicted uint64
}

// Stats returns the current counts.
func (d *Detector) Stats() Stats {
	d.mu.Lock()
	s := Stats{
		Findings:      d.reports.len(),
		Owners:        len(d.owners.m),
		Events:        d.events,
		Reported:      d.reported,
		Evicted:       d.evicted,
		OwnersEvicted: d.owners.evicted,
	}
	for _, tab := range d.keys {
		s.Tracked += tab.len()
	}
	d.mu.Unlock()
	s.CoolingDown = d.cool.len()
	return s
}
