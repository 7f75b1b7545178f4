package inventory

import (
	"context"
	"testing"
	"time"

	"github.com/bulwarkapi/bulwark/internal/event"
	"github.com/bulwarkapi/bulwark/internal/spec"
)

// bankAPI is the API name of testdata/bank.yaml in tests.
const bankAPI = "bank"

// t0 is the time of the first synthetic event.
var t0 = time.Date(2026, 1, 28, 9, 0, 0, 0, time.UTC)

func loadBank(t testing.TB) *spec.Document {
	t.Helper()
	doc, err := spec.Load(context.Background(), "testdata/bank.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// newBank returns an inventory over the bank spec, started at t0.
func newBank(t testing.TB) *Inventory {
	t.Helper()
	inv, err := New(Options{Specs: map[string]*spec.Document{bankAPI: loadBank(t)}, Start: t0})
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

// ex builds an authenticated external exchange; opts adjust it.
func ex(i int, method, path string, opts ...func(*event.Exchange)) event.Exchange {
	e := event.Exchange{
		ID:          "req-" + path,
		Time:        t0.Add(time.Duration(i) * time.Second),
		API:         bankAPI,
		Host:        "api.bank.example",
		Method:      method,
		Path:        path,
		Status:      200,
		LatencyMS:   12,
		Auth:        event.AuthJWT,
		Subject:     "subj-1",
		ClientClass: event.ClientExternal,
	}
	for _, o := range opts {
		o(&e)
	}
	return e
}

func anonymous(e *event.Exchange) { e.Auth, e.Subject = event.AuthNone, "" }

func withClasses(resp ...string) func(*event.Exchange) {
	return func(e *event.Exchange) { e.ResponseClasses = resp }
}

func withParams(ps ...event.Param) func(*event.Exchange) {
	return func(e *event.Exchange) { e.Params = ps }
}

// bankTraffic is a small day of traffic: documented, shadow (path and
// method), zombie, unauthenticated PAN, undocumented parameters.
func bankTraffic() []event.Exchange {
	var evs []event.Exchange
	for i := range 20 {
		evs = append(evs,
			ex(i, "GET", "/api/v1/accounts", withParams(
				event.Param{Name: "limit", In: "query", Type: "integer"},
				event.Param{Name: "debug", In: "query", Type: "boolean"},
				event.Param{Name: "X-Request-ID", In: "header", Type: "string"},
				event.Param{Name: "Accept", In: "header", Type: "string"},
			)),
			ex(i, "GET", "/api/v1/accounts/acc_8f3a29c1d7e4"),
			ex(i, "POST", "/api/v1/accounts", withParams(
				event.Param{Name: "name", In: "body", Type: "string"},
				event.Param{Name: "isAdmin", In: "body", Type: "boolean"},
			)),
		)
	}
	evs = append(evs,
		ex(30, "DELETE", "/api/v1/accounts/acc_8f3a29c1d7e4"),
		ex(31, "GET", "/api/v1/internal/debug/42"),
		ex(32, "GET", "/api/v1/legacy/statements/7781"),
		ex(33, "GET", "/api/v1/accounts/acc_8f3a29c1d7e4/cards", anonymous, withClasses("pan", "email")),
		ex(34, "GET", "/api/v1/accounts/current", anonymous, withClasses("email")),
	)
	return evs
}
