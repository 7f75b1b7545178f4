package detect

import (
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/bulwarkapi/bulwark/internal/event"
	"github.com/bulwarkapi/bulwark/internal/finding"
)

// walk is subject walking n account ids within span, the first own of
// them answered 200 and the rest status.
func walk(subject, client string, n, own int, span time.Duration, status int) []event.Exchange {
	var evs []event.Exchange
	for i := range n {
		st := status
		if i < own {
			st = 200
		}
		at := base.Add(span * time.Duration(i) / time.Duration(n))
		evs = append(evs, objectGet(at, subject, client, fmt.Sprintf("acc-%04d", 1000+i), st))
	}
	return evs
}

func TestEnumerationWalk(t *testing.T) {
	for _, tc := range []struct {
		name    string
		status  int
		trigger string
	}{
		{"mostly denied", 403, triggerFailureShare},
		{"all answered (vulnerable API)", 200, triggerDistinctObjects},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, c := newTest(t, Options{})
			attacker := hash("mallory")
			batches := run(d, c, walk(attacker, "198.51.100.7", 50, 2, 20*time.Second, tc.status))
			all := flat(batches)
			if len(all) == 0 {
				t.Fatal("no finding for a walk of 50 ids in 20s")
			}
			if got := ids(all); len(got) != 1 {
				t.Fatalf("%d finding ids, want exactly one: %v", len(got), got)
			}
			first := all[0]
			if first.Kind != finding.KindEnumeration || first.Severity != finding.High || first.Subject != attacker ||
				first.Endpoint != "GET /accounts/{accountId}" || first.API != "bank" || first.Client != "198.51.100.7" {
				t.Fatalf("finding %+v", first)
			}
			if first.ID != finding.MakeID(finding.KindEnumeration, "bank", attacker, "GET /accounts/{accountId}") {
				t.Errorf("id %s is not MakeID(kind, api, subject, operation)", first.ID)
			}
			if first.Evidence[EvidenceTrigger] != tc.trigger || first.Evidence[EvidenceReports] != 1 {
				t.Errorf("first evidence %v", first.Evidence)
			}
			if len(all) < 2 {
				t.Fatalf("the finding was not updated by later batches: %d reports", len(all))
			}
			for i := 1; i < len(all); i++ {
				prev, cur := all[i-1], all[i]
				if cur.Count <= prev.Count || !cur.FirstSeen.Equal(first.FirstSeen) || cur.LastSeen.Before(prev.LastSeen) ||
					cur.Evidence[EvidenceReports] != i+1 {
					t.Fatalf("update %d: count %d after %d, first %v, reports %v", i, cur.Count, prev.Count, cur.FirstSeen, cur.Evidence[EvidenceReports])
				}
			}
			last := all[len(all)-1]
			if last.Count != 50 {
				t.Errorf("final count %d, want every one of the 50 requests attributed", last.Count)
			}
			if !last.LastSeen.Before(base.Add(20 * time.Second)) {
				t.Errorf("last seen %v is not within the walk", last.LastSeen)
			}
			checkInvariants(t, d)
		})
	}
}

// normalTraffic is ten customers using their own 2-3 accounts for 20s.
func normalTraffic() []event.Exchange {
	var evs []event.Exchange
	for tick := range 100 { // every 200ms
		at := base.Add(time.Duration(tick) * 200 * time.Millisecond)
		for c := range 10 {
			subject, client := hash(fmt.Sprintf("customer-%d", c)), fmt.Sprintf("203.0.113.%d", c+1)
			accounts := []string{fmt.Sprintf("c%d-current", c), fmt.Sprintf("c%d-savings", c)}
			if c%2 == 0 {
				accounts = append(accounts, fmt.Sprintf("c%d-isa", c))
			}
			switch (tick + c) % 5 {
			case 0:
				evs = append(evs, list(at, subject, client, accounts...))
			case 1, 2, 3:
				evs = append(evs, objectGet(at, subject, client, accounts[(tick+c)%len(accounts)], 200))
			case 4:
				if tick%25 == 4 {
					evs = append(evs, login(at, fmt.Sprintf("user%d", c), client, 200))
				}
			}
		}
	}
	return evs
}

func TestNormalCustomersRaiseNothing(t *testing.T) {
	d, c := newTest(t, Options{})
	evs := normalTraffic()
	if len(evs) < 300 {
		t.Fatalf("only %d events", len(evs))
	}
	if all := flat(run(d, c, evs)); len(all) != 0 {
		t.Fatalf("normal traffic raised %d findings, first %+v", len(all), all[0])
	}
	for i := range 10 {
		if _, ok := d.CoolingDown(hash(fmt.Sprintf("customer-%d", i)), fmt.Sprintf("203.0.113.%d", i+1)); ok {
			t.Errorf("customer %d on cool-down", i)
		}
	}
	if s := d.Stats(); s.Findings != 0 || s.Reported != 0 || s.Events != uint64(len(evs)) {
		t.Errorf("stats %+v", s)
	}
	checkInvariants(t, d)
}

func TestOwnershipAnomaly(t *testing.T) {
	for _, status := range []int{403, 200} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			d, c := newTest(t, Options{})
			alice, bob := hash("alice"), hash("bob")
			accounts := []string{"a-1", "a-2", "a-3"}
			evs := []event.Exchange{list(base, alice, "192.0.2.1", accounts...)}
			for i, a := range accounts { // alice reads her own: nothing
				evs = append(evs, objectGet(base.Add(time.Duration(i+1)*time.Second), alice, "192.0.2.1", a, 200))
			}
			if all := flat(run(d, c, evs)); len(all) != 0 {
				t.Fatalf("alice reading her own objects raised %+v", all)
			}
			var got []finding.Finding
			for i, a := range accounts {
				at := base.Add(time.Duration(10+i) * time.Second)
				c.Set(at)
				fs := d.Observe([]event.Exchange{objectGet(at, bob, "192.0.2.99", a, status)})
				if i < 2 && len(fs) != 0 {
					t.Fatalf("finding after %d foreign objects: %+v", i+1, fs)
				}
				got = append(got, fs...)
			}
			if len(got) != 1 {
				t.Fatalf("%d findings, want one: %+v", len(got), got)
			}
			f := got[0]
			if f.Kind != finding.KindOwnershipAnomaly || f.Subject != bob || f.Severity != finding.High ||
				f.ID != finding.MakeID(finding.KindOwnershipAnomaly, "bank", bob, "") {
				t.Fatalf("finding %+v", f)
			}
			wantOK := 0
			if status == 200 {
				wantOK = 3
			}
			if f.Evidence["foreign_objects"] != 3 || f.Evidence["foreign_requests"] != 3 || f.Evidence["foreign_successes"] != wantOK {
				t.Errorf("evidence %v", f.Evidence)
			}
			// Alice reading her own objects afterwards still raises nothing.
			at := base.Add(20 * time.Second)
			c.Set(at)
			if fs := d.Observe([]event.Exchange{objectGet(at, alice, "192.0.2.1", "a-1", 200)}); len(fs) != 0 {
				t.Fatalf("alice raised %+v", fs)
			}
			checkInvariants(t, d)
		})
	}
}

// TestSequentialWalk: ten steps onto new adjacent ids raise enumeration
// well before the distinct-objects threshold; a customer switching
// between two adjacent accounts all day, and a caller reading scattered
// ids, raise none.
func TestSequentialWalk(t *testing.T) {
	d, c := newTest(t, Options{})
	walker, customer, browser := hash("walker"), hash("customer"), hash("browser")
	var evs []event.Exchange
	for i := range 40 {
		at := base.Add(time.Duration(i) * time.Second)
		e := objectGet(at, customer, "192.0.2.2", fmt.Sprintf("acc-%d", 1000+i%2), 200)
		e.ObjectStep = i > 0 // every switch is adjacent, never new after the second
		evs = append(evs, e)
	}
	for i := range 15 {
		at := base.Add(time.Duration(i) * time.Second)
		evs = append(evs, objectGet(at, browser, "192.0.2.3", fmt.Sprintf("acc-%d", 3000+i*97), 200))
	}
	if all := flat(run(d, c, evs)); len(all) != 0 {
		t.Fatalf("legitimate traffic raised %+v", all)
	}
	var got []finding.Finding
	for i := range 11 {
		at := base.Add(time.Duration(50+i) * time.Second)
		c.Set(at)
		e := objectGet(at, walker, "203.0.113.9", fmt.Sprintf("acc-%d", 2000+i), 200)
		e.ObjectStep = i > 0
		got = append(got, d.Observe([]event.Exchange{e})...)
		if i < DefaultMinSequentialSteps && len(got) != 0 {
			t.Fatalf("finding after %d steps: %+v", i, got)
		}
	}
	if len(got) != 1 || got[0].Kind != finding.KindEnumeration || got[0].Subject != walker ||
		got[0].Evidence[EvidenceTrigger] != triggerSequentialWalk || got[0].Evidence["sequential_steps"] != DefaultMinSequentialSteps {
		t.Fatalf("findings %+v", got)
	}
	checkInvariants(t, d)
}

// TestOwnershipShared: ids returned to two subjects (joint accounts, a
// merchant on everyone's statement) have no owner, so a third subject
// reading them is not foreign; ids returned to one subject still are.
func TestOwnershipShared(t *testing.T) {
	d, c := newTest(t, Options{})
	alice, bob, carol := hash("alice"), hash("bob"), hash("carol")
	joint := []string{"j-1", "j-2", "j-3"}
	own := []string{"a-1", "a-2", "a-3", "a-4"}
	evs := []event.Exchange{
		list(base, alice, "192.0.2.1", append(append([]string{}, joint...), own...)...),
		list(base.Add(time.Second), bob, "192.0.2.2", joint...),
		list(base.Add(2*time.Second), bob, "192.0.2.2", own[0]), // shared once bob sees it too
	}
	for i, a := range joint {
		evs = append(evs, objectGet(base.Add(time.Duration(3+i)*time.Second), carol, "192.0.2.3", a, 200))
	}
	evs = append(evs, objectGet(base.Add(7*time.Second), carol, "192.0.2.3", own[0], 200))
	if all := flat(run(d, c, evs)); len(all) != 0 {
		t.Fatalf("reading shared objects raised %+v", all)
	}
	var got []finding.Finding
	for i, a := range own[1:] {
		at := base.Add(time.Duration(10+i) * time.Second)
		c.Set(at)
		got = append(got, d.Observe([]event.Exchange{objectGet(at, carol, "192.0.2.3", a, 200)})...)
	}
	// Only alice's three unshared accounts are foreign: one finding, on
	// the third, counting three objects.
	if len(got) != 1 || got[0].Subject != carol || got[0].Evidence["foreign_objects"] != 3 {
		t.Fatalf("findings %+v", got)
	}
	checkInvariants(t, d)
}

func TestCredentialStuffing(t *testing.T) {
	t.Run("one client, 15 usernames", func(t *testing.T) {
		d, c := newTest(t, Options{})
		var evs []event.Exchange
		for i := range 15 {
			evs = append(evs, login(base.Add(time.Duration(i)*time.Second), fmt.Sprintf("victim%d", i), "198.51.100.66", 401))
		}
		all := flat(run(d, c, evs))
		if len(ids(all)) != 1 {
			t.Fatalf("findings %+v", all)
		}
		f := all[0]
		if f.Kind != finding.KindCredentialStuffing || f.Client != "198.51.100.66" || f.Severity != finding.High ||
			f.Evidence["pattern"] != patternStuffing || f.Evidence["distinct_usernames"] != DefaultStuffingUsernames ||
			f.Evidence[EvidenceTrigger] != triggerDistinctUsernames {
			t.Fatalf("finding %+v", f)
		}
		if last := all[len(all)-1]; last.Count != 15 || last.Evidence["distinct_usernames"] != 15 {
			t.Errorf("last %d %v", last.Count, last.Evidence)
		}
	})
	t.Run("many failures on few usernames", func(t *testing.T) {
		d, c := newTest(t, Options{})
		var evs []event.Exchange
		for i := range DefaultStuffingFailures {
			e := login(base.Add(time.Duration(i)*time.Second), fmt.Sprintf("victim%d", i%2), "198.51.100.67", 429)
			e.Reasons, e.Blocked = []string{"brute_force:client_locked"}, true
			evs = append(evs, e)
		}
		all := flat(run(d, c, evs))
		if len(all) != 1 || all[0].Evidence[EvidenceTrigger] != triggerFailedLogins {
			t.Fatalf("findings %+v", all)
		}
	})
	t.Run("five users mistyping twice", func(t *testing.T) {
		for _, shared := range []bool{false, true} {
			d, c := newTest(t, Options{})
			var evs []event.Exchange
			for i := range 10 {
				client := fmt.Sprintf("203.0.113.%d", i/2+1)
				if shared {
					client = "203.0.113.200" // one office NAT
				}
				evs = append(evs, login(base.Add(time.Duration(i)*time.Second), fmt.Sprintf("user%d", i/2), client, 401))
			}
			for i := range 5 {
				evs = append(evs, login(base.Add(time.Duration(10+i)*time.Second), fmt.Sprintf("user%d", i), "203.0.113.200", 200))
			}
			if all := flat(run(d, c, evs)); len(all) != 0 {
				t.Fatalf("shared=%v: %+v", shared, all)
			}
		}
	})
	t.Run("distributed guessing", func(t *testing.T) {
		for _, clients := range []int{DefaultDistributedClients, DefaultDistributedClients + 1} {
			d, c := newTest(t, Options{})
			var evs []event.Exchange
			for i := range clients {
				evs = append(evs, login(base.Add(time.Duration(i)*time.Second), "ceo", fmt.Sprintf("100.64.0.%d", i+1), 401))
			}
			all := flat(run(d, c, evs))
			if clients == DefaultDistributedClients {
				if len(all) != 0 {
					t.Fatalf("%d clients: %+v", clients, all)
				}
				continue
			}
			if len(all) != 1 {
				t.Fatalf("%d clients: %+v", clients, all)
			}
			f := all[0]
			if f.Kind != finding.KindCredentialStuffing || f.Severity != finding.Medium || f.Evidence["pattern"] != patternDistributed ||
				f.Evidence["username"] != hash("ceo") || f.Client != "" ||
				f.ID != finding.MakeID(finding.KindCredentialStuffing, "bank", hash("ceo"), patternDistributed) {
				t.Fatalf("finding %+v", f)
			}
		}
	})
}

func TestCoolDown(t *testing.T) {
	d, c := newTest(t, Options{CoolDown: 2 * time.Minute})
	attacker := hash("mallory")
	all := flat(run(d, c, walk(attacker, "198.51.100.7", 50, 0, 20*time.Second, 404)))
	if len(all) == 0 {
		t.Fatal("no finding")
	}
	last := all[len(all)-1].LastSeen
	want := last.Add(2 * time.Minute)
	until, ok := d.CoolingDown(attacker, "")
	if !ok || !until.Equal(want) {
		t.Fatalf("CoolingDown = %v, %v; want %v", until, ok, want)
	}
	if until, ok := d.CoolingDown(attacker, "192.0.2.200"); !ok || !until.Equal(want) {
		t.Fatalf("with another client: %v %v", until, ok)
	}
	if _, ok := d.CoolingDown("", "198.51.100.7"); ok {
		t.Error("the subject's address is on cool-down: it may front other users")
	}
	if _, ok := d.CoolingDown(hash("alice"), "203.0.113.1"); ok {
		t.Error("an unrelated identity is on cool-down")
	}
	c.Set(want.Add(-time.Millisecond))
	if _, ok := d.CoolingDown(attacker, ""); !ok {
		t.Error("cool-down ended early")
	}
	c.Set(want)
	if _, ok := d.CoolingDown(attacker, ""); ok {
		t.Error("cool-down did not end")
	}

	// An address: credential stuffing cools the client down.
	var evs []event.Exchange
	start := want.Add(time.Minute)
	for i := range 12 {
		evs = append(evs, login(start.Add(time.Duration(i)*time.Second), fmt.Sprintf("v%d", i), "198.51.100.66", 401))
	}
	c.Set(start)
	if fs := d.Observe(evs); len(fs) != 1 {
		t.Fatalf("findings %+v", fs)
	}
	end := start.Add(11*time.Second + 2*time.Minute)
	if until, ok := d.CoolingDown("", "198.51.100.66"); !ok || !until.Equal(end) {
		t.Fatalf("client cool-down %v %v, want %v", until, ok, end)
	}
	c.Set(end)
	if _, ok := d.CoolingDown("", "198.51.100.66"); ok {
		t.Error("client cool-down did not end")
	}
	// Expired entries are swept by a later batch.
	c.Set(end.Add(3 * time.Minute))
	d.Observe([]event.Exchange{list(end.Add(3*time.Minute), hash("alice"), "203.0.113.1")})
	if s := d.Stats(); s.CoolingDown != 0 {
		t.Errorf("%d cool-downs left after expiry", s.CoolingDown)
	}
}

func TestMemoryBound(t *testing.T) {
	n := 1_000_000
	if testing.Short() {
		n = 100_000
	}
	d, c := newTest(t, Options{MaxTracked: 1000, MaxOwners: 1000})
	batch := make([]event.Exchange, 0, 1000)
	clients := make([]string, 250)
	for i := range clients {
		clients[i] = "10.0." + strconv.Itoa(i) + ".1"
	}
	for i := range n {
		at := base.Add(time.Duration(i) * 10 * time.Microsecond)
		s := strconv.Itoa(i)
		e := event.Exchange{
			Time: at, API: "bank", Operation: "GET /accounts/{accountId}", ObjectParam: "accountId",
			Subject: s, Client: clients[i%len(clients)], Status: 200 + 203*(i%2),
			ObjectIDs: []string{s}, ReturnedIDs: []string{s + "r"},
		}
		if i%4 == 0 { // and a failed login for a fresh username
			e.Username, e.Status = s, 401
		}
		batch = append(batch, e)
		if len(batch) == cap(batch) {
			c.Set(at)
			d.Observe(batch)
			batch = batch[:0]
		}
	}
	s := d.Stats()
	if s.Tracked > 1000 || s.Owners > 1000 || s.Findings > 1000 || s.CoolingDown > 1000 {
		t.Fatalf("stats %+v exceed the bounds", s)
	}
	if s.Events != uint64(n) || s.Evicted == 0 || s.OwnersEvicted == 0 {
		t.Errorf("stats %+v", s)
	}
	checkInvariants(t, d)
}

func TestWindowSlides(t *testing.T) {
	d, c := newTest(t, Options{})
	subject := hash("busy")
	burst := func(from time.Time, first int) []event.Exchange {
		var evs []event.Exchange
		for i := range 15 {
			evs = append(evs, objectGet(from.Add(time.Duration(i)*time.Second), subject, "192.0.2.9", fmt.Sprintf("x%d", first+i), 200))
		}
		return evs
	}
	// 15 distinct ids, then 15 others more than a window later: never
	// more than 20 within one window.
	if all := flat(run(d, c, append(burst(base, 0), burst(base.Add(90*time.Second), 100)...))); len(all) != 0 {
		t.Fatalf("findings across windows: %+v", all)
	}
	// 15 more within the window of the second burst: 30 > 20.
	if all := flat(run(d, c, burst(base.Add(110*time.Second), 200))); len(all) == 0 {
		t.Fatal("no finding for 30 ids within one window")
	}
	checkInvariants(t, d)
}

func TestIdleKeysExpire(t *testing.T) {
	d, c := newTest(t, Options{})
	run(d, c, normalTraffic())
	if s := d.Stats(); s.Tracked == 0 {
		t.Fatal("nothing tracked")
	}
	later := base.Add(3 * time.Minute)
	c.Set(later)
	d.Observe([]event.Exchange{{Time: later, API: "bank", Status: 200}})
	if s := d.Stats(); s.Tracked != 0 || s.Owners == 0 {
		t.Errorf("after the window: %+v (ownership is not windowed)", s)
	}
}

func TestEventTimes(t *testing.T) {
	d, c := newTest(t, Options{})
	subject := hash("clockless")
	// Zero and far-future times take the clock's; a late event beyond its
	// key's window is ignored.
	var evs []event.Exchange
	for i := range 25 {
		e := objectGet(time.Time{}, subject, "192.0.2.5", fmt.Sprintf("z%d", i), 200)
		if i%2 == 1 {
			e.Time = base.Add(24 * time.Hour)
		}
		evs = append(evs, e)
	}
	fs := d.Observe(evs)
	if len(fs) != 1 || !fs[0].LastSeen.Equal(base) {
		t.Fatalf("findings %+v", fs)
	}
	late := objectGet(base.Add(-5*time.Minute), subject, "192.0.2.5", "late", 200)
	if fs := d.Observe([]event.Exchange{late}); len(fs) != 0 {
		t.Fatalf("a late event updated the finding: %+v", fs)
	}
	_ = c
	checkInvariants(t, d)
}

func TestAnonymousEnumerationUsesClient(t *testing.T) {
	d, c := newTest(t, Options{})
	all := flat(run(d, c, walk("", "198.51.100.8", 30, 0, 10*time.Second, 404)))
	if len(ids(all)) != 1 {
		t.Fatalf("findings %+v", all)
	}
	f := all[0]
	if f.Subject != "" || f.Client != "198.51.100.8" {
		t.Fatalf("finding %+v", f)
	}
	if _, ok := d.CoolingDown("", "198.51.100.8"); !ok {
		t.Error("anonymous enumerator's address not on cool-down")
	}
}

func TestConcurrentUse(t *testing.T) {
	d, c := newTest(t, Options{})
	evs := walk(hash("mallory"), "198.51.100.7", 200, 0, 20*time.Second, 403)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
					d.CoolingDown(hash("mallory"), "198.51.100.7")
					d.Stats()
				}
			}
		})
	}
	run(d, c, evs)
	close(stop)
	wg.Wait()
	if _, ok := d.CoolingDown(hash("mallory"), ""); !ok {
		t.Error("not on cool-down")
	}
}
