package detect

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/bulwarkapi/bulwark/internal/event"
	"github.com/bulwarkapi/bulwark/internal/finding"
)

var update = flag.Bool("update", false, "rewrite testdata/golden and the testdata/fuzz seed corpus")

// base is the start of every scenario: a minute boundary, so buckets of
// the default window start on it.
var base = time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC)

// hash stands in for the gateway's id hashing (policy.HashID).
func hash(v string) string {
	sum := sha256.Sum256([]byte(v))
	return hex.EncodeToString(sum[:16])
}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// newTest returns a Detector on a clock at base with o's other fields.
func newTest(t testing.TB, o Options) (*Detector, *clock) {
	t.Helper()
	c := &clock{t: base}
	o.Now = c.Now
	d, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return d, c
}

// run feeds events to d in batches of one second of event time, the
// clock following, and returns every batch's findings in order.
func run(d *Detector, c *clock, events []event.Exchange) [][]finding.Finding {
	var out [][]finding.Finding
	for start := 0; start < len(events); {
		end := start + 1
		sec := events[start].Time.Truncate(time.Second)
		for end < len(events) && events[end].Time.Truncate(time.Second).Equal(sec) {
			end++
		}
		c.Set(events[end-1].Time)
		out = append(out, d.Observe(events[start:end]))
		start = end
	}
	return out
}

// flat is every finding of every batch, in order.
func flat(batches [][]finding.Finding) []finding.Finding {
	var all []finding.Finding
	for _, b := range batches {
		all = append(all, b...)
	}
	return all
}

// ids is the set of finding ids.
func ids(fs []finding.Finding) map[string]finding.Finding {
	m := map[string]finding.Finding{}
	for _, f := range fs {
		m[f.ID] = f
	}
	return m
}

// objectGet is subject (at client) reading an account.
func objectGet(at time.Time, subject, client, account string, status int) event.Exchange {
	return event.Exchange{
		ID:          fmt.Sprintf("req-%s-%d", account, at.UnixNano()),
		Time:        at,
		API:         "bank",
		Method:      "GET",
		Path:        "/accounts/" + account,
		Operation:   "GET /accounts/{accountId}",
		Status:      status,
		Subject:     subject,
		Client:      client,
		ObjectIDs:   []string{hash(account)},
		ObjectParam: "accountId",
	}
}

// list is subject's account list returning accounts.
func list(at time.Time, subject, client string, accounts ...string) event.Exchange {
	e := event.Exchange{
		ID: fmt.Sprintf("req-list-%s-%d", subject, at.UnixNano()), Time: at, API: "bank",
		Method: "GET", Path: "/accounts", Operation: "GET /accounts", Status: 200,
		Subject: subject, Client: client,
	}
	for _, a := range accounts {
		e.ReturnedIDs = append(e.ReturnedIDs, hash(a))
	}
	return e
}

// login is a login attempt for username from client.
func login(at time.Time, username, client string, status int) event.Exchange {
	return event.Exchange{
		ID: fmt.Sprintf("req-login-%s-%s-%d", username, client, at.UnixNano()), Time: at, API: "bank",
		Method: "POST", Path: "/login", Operation: "POST /login", Status: status,
		Client: client, Username: hash(username),
	}
}

// checkInvariants verifies the internal state: window totals equal their
// buckets, no negative counts, sets within their caps, tables within
// their bounds.
func checkInvariants(t testing.TB, d *Detector) {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	total := 0
	for det, tab := range d.keys {
		total += tab.len()
		if tab.len() > tab.max {
			t.Fatalf("table %d holds %d > %d", det, tab.len(), tab.max)
		}
		limit := []int{
			setCap(d.o.MaxDistinctObjects), setCap(d.o.OwnershipMinSubjects),
			setCap(d.o.StuffingUsernames), setCap(d.o.DistributedClients),
		}[det]
		tab.each(func(n *lruNode[key, entry]) bool {
			w := &n.val.win
			var r, f, i, st int
			for s := range numBuckets {
				r += int(w.reqs[s])
				f += int(w.fails[s])
				i += int(w.ids[s])
				st += int(w.steps[s])
			}
			if r != w.totReqs || f != w.totFails || i != w.totIDs || w.totIDs < 0 || w.totFails > w.totReqs ||
				st != w.totSteps || w.totSteps > w.totIDs+w.totReqs {
				t.Fatalf("window totals %d/%d/%d/%d, buckets %d/%d/%d/%d", w.totReqs, w.totFails, w.totIDs, w.totSteps, r, f, i, st)
			}
			live := 0
			for _, b := range n.val.set.m {
				if w.live(b) {
					live++
				}
			}
			if live != w.totIDs || len(n.val.set.m) > limit {
				t.Fatalf("set of %d (%d live), window says %d, cap %d", len(n.val.set.m), live, w.totIDs, limit)
			}
			return true
		})
	}
	if total > d.o.MaxTracked {
		t.Fatalf("%d keys > MaxTracked %d", total, d.o.MaxTracked)
	}
	if d.reports.len() > d.o.MaxTracked || len(d.owners.m) > d.o.MaxOwners || len(d.owners.order) != len(d.owners.m) {
		t.Fatalf("reports %d, owners %d (order %d)", d.reports.len(), len(d.owners.m), len(d.owners.order))
	}
	if n := d.cool.len(); n > d.o.MaxTracked {
		t.Fatalf("cool-down table %d > %d", n, d.o.MaxTracked)
	}
}
