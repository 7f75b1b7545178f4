package detect

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulwarkapi/bulwark/internal/event"
)

// sortCoolDowns orders cool-downs by subject, then client, for comparison.
func sortCoolDowns(cds []CoolDown) []CoolDown {
	slices.SortFunc(cds, func(a, b CoolDown) int {
		if c := strings.Compare(a.Subject, b.Subject); c != 0 {
			return c
		}
		return strings.Compare(a.Client, b.Client)
	})
	return cds
}

// TestActiveCoolDowns: the Detector's table as CoolDowns, each answering
// the way CoolingDown does, ended ones left out.
func TestActiveCoolDowns(t *testing.T) {
	d, c := newTest(t, Options{CoolDown: 2 * time.Minute})
	if got := d.ActiveCoolDowns(base); len(got) != 0 {
		t.Fatalf("empty detector: %v", got)
	}
	attacker := hash("mallory")
	all := flat(run(d, c, walk(attacker, "198.51.100.7", 50, 0, 20*time.Second, 404)))
	if len(all) == 0 {
		t.Fatal("no finding")
	}
	subjectEnd := all[len(all)-1].LastSeen.Add(2 * time.Minute)
	var evs []event.Exchange
	start := base.Add(30 * time.Second)
	for i := range 12 {
		evs = append(evs, login(start.Add(time.Duration(i)*time.Second), fmt.Sprintf("v%d", i), "198.51.100.66", 401))
	}
	c.Set(start)
	if fs := d.Observe(evs); len(fs) != 1 {
		t.Fatalf("findings %+v", fs)
	}
	clientEnd := start.Add(11*time.Second + 2*time.Minute)

	for _, tc := range []struct {
		name string
		now  time.Time
		want []CoolDown
	}{
		{"both active", start, []CoolDown{{Client: "198.51.100.66", Until: clientEnd}, {Subject: attacker, Until: subjectEnd}}},
		{"the subject's ended", subjectEnd, []CoolDown{{Client: "198.51.100.66", Until: clientEnd}}},
		{"a nanosecond before the client's end", clientEnd.Add(-time.Nanosecond), []CoolDown{{Client: "198.51.100.66", Until: clientEnd}}},
		{"all ended", clientEnd, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := sortCoolDowns(d.ActiveCoolDowns(tc.now))
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i].Subject != tc.want[i].Subject || got[i].Client != tc.want[i].Client || !got[i].Until.Equal(tc.want[i].Until) {
					t.Fatalf("entry %d: got %+v, want %+v", i, got[i], tc.want[i])
				}
				c.Set(tc.now)
				if until, ok := d.CoolingDown(got[i].Subject, got[i].Client); !ok || !until.Equal(got[i].Until) {
					t.Errorf("CoolingDown(%+v) = %v %v", got[i], until, ok)
				}
			}
		})
	}
}

// TestCoolDownsOf: after a batch, the cool-downs its findings created or
// extended; distributed guessing and unflagged parties add nothing.
func TestCoolDownsOf(t *testing.T) {
	d, c := newTest(t, Options{CoolDown: time.Minute})
	attacker := hash("mallory")
	var fs []CoolDown
	for _, b := range run(d, c, walk(attacker, "198.51.100.7", 50, 0, 20*time.Second, 404)) {
		if got := d.CoolDownsOf(b); len(got) > 0 {
			fs = got
		}
	}
	if len(fs) != 1 || fs[0].Subject != attacker || fs[0].Client != "" {
		t.Fatalf("enumeration by a subject: %+v; want the subject only (its address is not cooled)", fs)
	}
	if until, _ := d.CoolingDown(attacker, ""); !fs[0].Until.Equal(until) {
		t.Errorf("until %v, CoolingDown says %v", fs[0].Until, until)
	}

	// Distributed guessing: one username from 12 addresses, no cool-down.
	var evs []event.Exchange
	start := base.Add(30 * time.Second)
	for i := range 12 {
		evs = append(evs, login(start.Add(time.Duration(i)*time.Millisecond), "victim", fmt.Sprintf("203.0.113.%d", i+1), 401))
	}
	c.Set(start.Add(time.Second))
	found := d.Observe(evs)
	if len(found) == 0 {
		t.Fatal("no distributed guessing finding")
	}
	if got := d.CoolDownsOf(found); len(got) != 0 {
		t.Fatalf("distributed guessing cooled %+v", got)
	}
	if got := d.CoolDownsOf(nil); got != nil {
		t.Fatalf("no findings: %+v", got)
	}
}

// TestCoolDownTable covers Apply and CoolingDown, step by step on one
// table and clock.
func TestCoolDownTable(t *testing.T) {
	c := &clock{t: base}
	tab := NewCoolDownTable(3, c.Now)
	at := func(d time.Duration) time.Time { return base.Add(d) }
	type check struct {
		subject, client string
		ok              bool
		until           time.Time
	}
	for _, step := range []struct {
		name    string
		now     time.Time
		apply   []CoolDown
		applied int
		checks  []check
		len     int
	}{
		{
			name: "empty", now: base,
			checks: []check{{subject: "s1"}, {client: "10.0.0.1"}, {}},
		},
		{
			name: "invalid entries are skipped", now: base,
			apply: []CoolDown{
				{Until: at(time.Minute)},                                    // neither
				{Subject: "s1", Client: "10.0.0.1", Until: at(time.Minute)}, // both
				{Subject: "s1"},                          // no end
				{Subject: "s1", Until: at(-time.Second)}, // ended
				{Subject: "s1", Until: base},             // ends now
				{Subject: "s1", Until: time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC)}, // before UnixNano's range
			},
			checks: []check{{subject: "s1"}, {client: "10.0.0.1"}},
		},
		{
			name: "a subject and an address", now: base,
			apply:   []CoolDown{{Subject: "s1", Until: at(time.Minute)}, {Client: "10.0.0.1", Until: at(2 * time.Minute)}},
			applied: 2, len: 2,
			checks: []check{
				{subject: "s1", ok: true, until: at(time.Minute)},
				{client: "10.0.0.1", ok: true, until: at(2 * time.Minute)},
				{subject: "s1", client: "10.0.0.1", ok: true, until: at(2 * time.Minute)}, // the later of the two
				{subject: "s1", client: "10.0.0.2", ok: true, until: at(time.Minute)},
				{subject: "10.0.0.1"}, // a subject and an address never share a key
				{client: "s1"},
				{},
			},
		},
		{
			name: "the later end stays", now: base,
			apply:   []CoolDown{{Subject: "s1", Until: at(30 * time.Second)}, {Subject: "s1", Until: at(3 * time.Minute)}},
			applied: 2, len: 2,
			checks: []check{
				{subject: "s1", ok: true, until: at(3 * time.Minute)},
				{subject: "s1", client: "10.0.0.1", ok: true, until: at(3 * time.Minute)},
			},
		},
		{
			name: "until is clamped to MaxCoolDown", now: base,
			apply: []CoolDown{
				{Client: "10.0.0.9", Until: at(1000 * time.Hour)},
				{Client: "10.0.0.9", Until: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)}, // beyond UnixNano's range
			},
			applied: 2, len: 3,
			checks: []check{{client: "10.0.0.9", ok: true, until: at(MaxCoolDown)}},
		},
		{
			name: "full: the soonest to end goes", now: base,
			apply:   []CoolDown{{Subject: "s2", Until: at(5 * time.Minute)}},
			applied: 1, len: 3,
			checks: []check{
				{client: "10.0.0.1"}, // ended soonest (2m), evicted
				{subject: "s2", ok: true, until: at(5 * time.Minute)},
				{subject: "s1", ok: true, until: at(3 * time.Minute)},
			},
		},
		{
			name: "full: a new entry ending soonest is not taken", now: base,
			apply: []CoolDown{{Subject: "s3", Until: at(time.Minute)}},
			len:   3,
			checks: []check{
				{subject: "s3"},
				{subject: "s1", ok: true, until: at(3 * time.Minute)},
			},
		},
		{
			name: "ended entries stop counting before they are swept", now: at(4 * time.Minute),
			len: 3,
			checks: []check{
				{subject: "s1"},
				{subject: "s2", ok: true, until: at(5 * time.Minute)},
				{client: "10.0.0.9", ok: true, until: at(MaxCoolDown)},
			},
		},
		{
			name: "full of partly ended entries: a sweep makes room", now: at(4 * time.Minute),
			apply:   []CoolDown{{Subject: "s3", Until: at(10 * time.Minute)}},
			applied: 1, len: 3,
			checks: []check{{subject: "s3", ok: true, until: at(10 * time.Minute)}, {subject: "s2", ok: true, until: at(5 * time.Minute)}},
		},
		{
			name: "an extension after eviction pressure", now: at(4 * time.Minute),
			apply:   []CoolDown{{Subject: "s2", Until: at(20 * time.Minute)}},
			applied: 1, len: 3,
			checks: []check{{subject: "s2", ok: true, until: at(20 * time.Minute)}},
		},
	} {
		t.Run(step.name, func(t *testing.T) {
			c.Set(step.now)
			if step.apply != nil {
				if n := tab.Apply(step.apply); n != step.applied {
					t.Errorf("Apply took %d, want %d", n, step.applied)
				}
			}
			for _, ch := range step.checks {
				until, ok := tab.CoolingDown(ch.subject, ch.client)
				if ok != ch.ok || !until.Equal(ch.until) {
					t.Errorf("CoolingDown(%q, %q) = %v %v; want %v %v", ch.subject, ch.client, until, ok, ch.until, ch.ok)
				}
			}
			if n := tab.Len(); n != step.len {
				t.Errorf("Len %d, want %d", n, step.len)
			}
		})
	}
	if n := tab.Evicted(); n != 2 {
		t.Errorf("Evicted %d, want 2", n)
	}
}

// TestCoolDownTableSweep: ended entries leave on Sweep and on a later
// Apply, and Active counts only live ones.
func TestCoolDownTableSweep(t *testing.T) {
	c := &clock{t: base}
	tab := NewCoolDownTable(0, c.Now)
	var cds []CoolDown
	for i := range 100 {
		cds = append(cds, CoolDown{Subject: fmt.Sprintf("s%d", i), Until: base.Add(time.Duration(i+1) * time.Second)})
	}
	if n := tab.Apply(cds); n != 100 {
		t.Fatalf("applied %d", n)
	}
	c.Set(base.Add(40 * time.Second))
	if n, l := tab.Active(), tab.Len(); n != 60 || l != 100 {
		t.Fatalf("Active %d Len %d; want 60 of 100 before a sweep", n, l)
	}
	tab.Sweep()
	if n := tab.Len(); n != 60 {
		t.Fatalf("Len after Sweep %d, want 60", n)
	}
	c.Set(base.Add(90 * time.Second))
	tab.Apply(nil) // more than tableSweepEvery later: sweeps
	if n := tab.Len(); n != 10 {
		t.Fatalf("Len after a later Apply %d, want 10", n)
	}
}

// TestCoolDownTableFromDetector: a gateway's table fed with a Detector's
// ActiveCoolDowns answers what the Detector answers.
func TestCoolDownTableFromDetector(t *testing.T) {
	d, c := newTest(t, Options{CoolDown: time.Minute})
	var evs []event.Exchange
	for i := range 5 {
		evs = append(evs, walk(hash(fmt.Sprintf("walker-%d", i)), fmt.Sprintf("198.51.100.%d", i), 30, 0, 10*time.Second, 403)...)
	}
	slices.SortStableFunc(evs, func(a, b event.Exchange) int { return a.Time.Compare(b.Time) })
	run(d, c, evs)
	tab := NewCoolDownTable(100, c.Now)
	active := d.ActiveCoolDowns(c.Now())
	if len(active) != 5 {
		t.Fatalf("%d active cool-downs, want 5", len(active))
	}
	tab.Apply(active)
	for i := range 6 {
		s, cl := hash(fmt.Sprintf("walker-%d", i)), fmt.Sprintf("198.51.100.%d", i)
		du, dok := d.CoolingDown(s, cl)
		tu, tok := tab.CoolingDown(s, cl)
		if dok != tok || !du.Equal(tu) || (i < 5) != dok {
			t.Errorf("walker %d: detector %v %v, table %v %v", i, du, dok, tu, tok)
		}
	}
}

// TestCoolDownTableConcurrent runs Apply, Sweep and CoolingDown at once
// (for the race detector) and checks the bound holds.
func TestCoolDownTableConcurrent(t *testing.T) {
	tab := NewCoolDownTable(64, nil)
	now := time.Now()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 500 {
				tab.Apply([]CoolDown{{Subject: fmt.Sprintf("s%d-%d", w, i), Until: now.Add(time.Duration(i%50+1) * time.Minute)}})
				if i%100 == 0 {
					tab.Sweep()
				}
			}
		})
		wg.Go(func() {
			for i := range 2000 {
				tab.CoolingDown(fmt.Sprintf("s%d-%d", w, i%500), "10.0.0.1")
				_ = tab.Active()
			}
		})
	}
	wg.Wait()
	if n := tab.Len(); n != 64 {
		t.Fatalf("Len %d, want the bound 64", n)
	}
}
