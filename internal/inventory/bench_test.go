package inventory

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/bulwarkapi/bulwark/internal/event"
	"github.com/bulwarkapi/bulwark/internal/spec"
)

// benchBatch is the events per Ingest call, like a bus consumer's batch.
const benchBatch = 256

// benchEvents builds realistic traffic: a spec-backed API (the bank spec)
// and an API without a spec whose templates are learned; ids of mixed
// styles, 5,000 subjects, a tenth of the events with sampled bodies,
// parameters, data classes, varied status and latency.
func benchEvents(n int) []event.Exchange {
	rng := rand.New(rand.NewPCG(1, 2))
	id := func() string {
		switch rng.IntN(4) {
		case 0:
			return fmt.Sprint(rng.IntN(1_000_000))
		case 1:
			return fmt.Sprintf("%08x-%04x-4%03x-a%03x-%012x", rng.Uint32(), rng.IntN(1<<16), rng.IntN(1<<12), rng.IntN(1<<12), rng.Uint64()&(1<<48-1))
		case 2:
			return fmt.Sprintf("acc_%014x", rng.Uint64()&(1<<56-1))
		}
		return fmt.Sprintf("%016x", rng.Uint64())
	}
	bank := []string{"/api/v1/accounts", "/api/v1/accounts/%s", "/api/v1/accounts/%s/cards", "/api/v1/accounts/current", "/api/v1/health", "/api/v1/legacy/statements/%s"}
	shop := []string{"/v2/orders", "/v2/orders/%s", "/v2/orders/%s/items", "/v2/orders/%s/items/%s", "/v2/customers/%s", "/v2/customers/%s/addresses",
		"/v2/customers/me", "/v2/products", "/v2/products/%s", "/v2/products/%s/reviews", "/v2/carts/%s", "/v2/carts/%s/checkout", "/v2/search"}
	methods := []string{"GET", "GET", "GET", "POST", "PUT", "DELETE"}
	schema := map[string]any{"type": "object", "properties": map[string]any{
		"id": map[string]any{"type": "string"}, "amount": map[string]any{"type": "number"},
		"currency": map[string]any{"type": "string"}, "created": map[string]any{"type": "string", "format": "date-time"},
		"lines": map[string]any{"type": "array", "items": map[string]any{"type": "object", "properties": map[string]any{
			"sku": map[string]any{"type": "string"}, "qty": map[string]any{"type": "integer"},
		}}},
	}}
	evs := make([]event.Exchange, n)
	t := time.Date(2026, 1, 28, 0, 0, 0, 0, time.UTC)
	for i := range evs {
		api, tmpls := "bank", bank
		if rng.IntN(3) > 0 {
			api, tmpls = "shop", shop
		}
		tmpl := tmpls[rng.IntN(len(tmpls))]
		var args []any
		for range countVerbs(tmpl) {
			args = append(args, id())
		}
		e := event.Exchange{
			ID:          fmt.Sprintf("req-%d", i),
			Time:        t.Add(time.Duration(i) * time.Millisecond),
			API:         api,
			Host:        api + ".example",
			Method:      methods[rng.IntN(len(methods))],
			Path:        fmt.Sprintf(tmpl, args...),
			Status:      []int{200, 200, 200, 201, 404, 401, 500}[rng.IntN(7)],
			LatencyMS:   rng.ExpFloat64() * 20,
			Auth:        event.AuthJWT,
			Subject:     fmt.Sprintf("sub-%d", rng.IntN(5000)),
			ClientClass: event.ClientExternal,
			Params: []event.Param{
				{Name: "limit", In: "query", Type: "integer"},
				{Name: "cursor", In: "query", Type: "string"},
			},
		}
		if rng.IntN(10) == 0 {
			e.Auth, e.Subject, e.ClientClass = event.AuthNone, "", event.ClientInternal
			e.ResponseClasses = []string{"email"}
		}
		if rng.IntN(10) == 0 {
			e.RequestSchema, e.ResponseSchema = schema, schema
		}
		evs[i] = e
	}
	return evs
}

func countVerbs(s string) int {
	n := 0
	for i := 0; i+1 < len(s); i++ {
		if s[i] == '%' && s[i+1] == 's' {
			n++
		}
	}
	return n
}

// BenchmarkIngest measures steady-state ingest on one goroutine, in
// batches of benchBatch; it reports events/s and ns/event.
func BenchmarkIngest(b *testing.B) {
	inv, err := New(Options{Specs: map[string]*spec.Document{"bank": loadBank(b)}})
	if err != nil {
		b.Fatal(err)
	}
	evs := benchEvents(1 << 16)
	inv.Ingest(evs) // warm: templates learned, endpoints created
	b.ReportAllocs()
	b.ResetTimer()
	batches := 0
	for i := 0; b.Loop(); i++ {
		start := (i * benchBatch) % len(evs)
		inv.Ingest(evs[start : start+benchBatch])
		batches++
	}
	events := float64(batches * benchBatch)
	b.ReportMetric(events/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/events, "ns/event")
	if n := len(inv.Endpoints()); n > 200 {
		b.Fatalf("%d endpoints: templating failed", n)
	}
}
