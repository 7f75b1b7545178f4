package detect

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/bulwarkapi/bulwark/internal/event"
)

// benchEvents is a realistic mix at 200k events/s of event time: 20,000
// customers reading their own accounts (list, detail, transactions), a
// few logins (one in ten failing), and a handful of attackers walking
// account ids and stuffing credentials.
func benchEvents(n int) []event.Exchange {
	rng := rand.New(rand.NewPCG(1, 2))
	const customers, attackers = 20_000, 5
	subjects := make([]string, customers)
	accounts := make([][]string, customers)
	for i := range subjects {
		subjects[i] = hash(fmt.Sprint("customer", i))
		for j := range 2 + i%2 {
			accounts[i] = append(accounts[i], hash(fmt.Sprint("account", i, j)))
		}
	}
	evs := make([]event.Exchange, n)
	for i := range evs {
		at := base.Add(time.Duration(i) * 5 * time.Microsecond)
		c := rng.IntN(customers)
		e := event.Exchange{ID: fmt.Sprint("req-", i), Time: at, API: "bank", Status: 200,
			Subject: subjects[c], Client: fmt.Sprintf("203.0.%d.%d", c/250, c%250)}
		switch r := rng.IntN(100); {
		case r < 15:
			e.Method, e.Operation, e.ReturnedIDs = "GET", "GET /accounts", accounts[c]
		case r < 60:
			a := accounts[c][rng.IntN(len(accounts[c]))]
			e.Method, e.Operation, e.ObjectParam = "GET", "GET /accounts/{accountId}", "accountId"
			e.ObjectIDs, e.ReturnedIDs = []string{a}, []string{a}
		case r < 90:
			e.Method, e.Operation, e.ObjectParam = "GET", "GET /accounts/{accountId}/transactions", "accountId"
			e.ObjectIDs = []string{accounts[c][rng.IntN(len(accounts[c]))]}
		case r < 95:
			e.Method, e.Operation, e.Subject, e.Username = "POST", "POST /login", "", hash(fmt.Sprint("user", c))
			if rng.IntN(10) == 0 {
				e.Status = 401
			}
		case r < 98: // enumerators
			a := rng.IntN(attackers)
			e.Subject, e.Client = hash(fmt.Sprint("attacker", a)), fmt.Sprintf("198.51.100.%d", a)
			e.Method, e.Operation, e.ObjectParam, e.Status = "GET", "GET /accounts/{accountId}", "accountId", 403
			e.ObjectIDs = []string{accounts[rng.IntN(customers)][0]}
		default: // stuffers
			a := rng.IntN(attackers)
			e.Method, e.Operation, e.Subject, e.Status = "POST", "POST /login", "", 401
			e.Client, e.Username = fmt.Sprintf("192.0.2.%d", a), hash(fmt.Sprint("user", rng.IntN(customers)))
		}
		evs[i] = e
	}
	return evs
}

func BenchmarkObserve(b *testing.B) {
	const batch = event.DefaultBatch
	evs := benchEvents(1 << 18)
	span := time.Duration(len(evs)) * 5 * time.Microsecond
	d, c := newTest(b, Options{})
	// replay moves the mix later, as fresh traffic of the same customers.
	replay := func() {
		for j := range evs {
			evs[j].Time = evs[j].Time.Add(span)
		}
	}
	// Warm up: one pass creates the keys and owners of the steady state.
	for i := 0; i+batch <= len(evs); i += batch {
		c.Set(evs[i+batch-1].Time)
		d.Observe(evs[i : i+batch])
	}
	replay()
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		if i+batch > len(evs) {
			b.StopTimer()
			replay()
			i = 0
			b.StartTimer()
		}
		c.Set(evs[i+batch-1].Time)
		d.Observe(evs[i : i+batch])
		i += batch
	}
	b.StopTimer()
	perEvent := float64(b.Elapsed().Nanoseconds()) / float64(b.N*batch)
	b.ReportMetric(perEvent, "ns/event")
	b.ReportMetric(1e9/perEvent, "events/s")
}
