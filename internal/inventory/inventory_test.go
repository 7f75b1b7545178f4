package inventory

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/bulwarkapi/bulwark/internal/event"
	"github.com/bulwarkapi/bulwark/internal/spec"
)

func TestNewRejects(t *testing.T) {
	for name, o := range map[string]Options{
		"bad hint":     {Hints: []string{"customers/{id}"}},
		"nil spec":     {Specs: map[string]*spec.Document{"x": nil}},
		"negative min": {MinDistinct: -1},
		"negative max": {MaxEndpoints: -1},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%s: New accepted %+v", name, o)
		}
	}
}

func TestIngestAggregates(t *testing.T) {
	inv := newBank(t)
	var evs []event.Exchange
	for i := range 100 {
		evs = append(evs, ex(i, "get", fmt.Sprintf("/api/v1/accounts/acc_%08dxyz/", i%7), func(e *event.Exchange) {
			e.Subject = fmt.Sprintf("s%d", i%13)
			e.LatencyMS = float64(1 + i%50)
			if i%10 == 0 {
				e.Status = 404
			}
			if i%4 == 0 {
				e.ClientClass, e.Host = event.ClientInternal, "accounts.svc"
			}
			e.RequestClasses = []string{"iban"}
			e.ResponseClasses = []string{"pan"}
			e.ResponseSchema = map[string]any{"type": "object", "properties": map[string]any{
				fmt.Sprintf("f%d", i%3): map[string]any{"type": "string"},
			}}
		}))
	}
	inv.Ingest(evs)
	eps := inv.Endpoints()
	if len(eps) != 1 {
		t.Fatalf("%d endpoints: %+v", len(eps), eps)
	}
	ep := eps[0]
	if ep.Method != "GET" || ep.Template != "/api/v1/accounts/{AccountId}" || ep.Operation != "GET /accounts/{AccountId}" ||
		ep.SpecStatus != StatusDocumented || !slices.Equal(ep.PathParams, []string{"AccountId"}) {
		t.Errorf("endpoint %s %s op %q status %s params %q", ep.Method, ep.Template, ep.Operation, ep.SpecStatus, ep.PathParams)
	}
	if ep.Count != 100 || ep.Status[200] != 90 || ep.Status[404] != 10 {
		t.Errorf("count %d status %v", ep.Count, ep.Status)
	}
	if !ep.FirstSeen.Equal(t0) || !ep.LastSeen.Equal(t0.Add(99*time.Second)) {
		t.Errorf("first %v last %v", ep.FirstSeen, ep.LastSeen)
	}
	// Latencies 1..50 ms: p50 about 25, p99 about 50, within a bucket (±12%).
	if math.Abs(ep.Latency.P50MS-25)/25 > 0.15 || math.Abs(ep.Latency.P99MS-50)/50 > 0.15 {
		t.Errorf("latency p50 %.2f p99 %.2f", ep.Latency.P50MS, ep.Latency.P99MS)
	}
	if ep.Identities.Count != 13 || ep.Identities.Estimated {
		t.Errorf("identities %+v", ep.Identities)
	}
	if !slices.Equal(ep.Hosts, []string{"accounts.svc", "api.bank.example"}) || !slices.Equal(ep.Auth, []string{"jwt"}) {
		t.Errorf("hosts %q auth %q", ep.Hosts, ep.Auth)
	}
	if ep.Exposure != ExposureNorthSouth || !slices.Equal(ep.Clients, []string{"external", "internal"}) {
		t.Errorf("exposure %s clients %q", ep.Exposure, ep.Clients)
	}
	if !slices.Equal(ep.RequestClasses, []string{"iban"}) || !slices.Equal(ep.ResponseClasses, []string{"pan"}) || len(ep.UnauthenticatedClasses) != 0 {
		t.Errorf("classes %q %q %q", ep.RequestClasses, ep.ResponseClasses, ep.UnauthenticatedClasses)
	}
	props, _ := ep.ResponseSchema["properties"].(map[string]any)
	if len(props) != 3 {
		t.Errorf("response schema %v", ep.ResponseSchema)
	}
	got, ok := inv.Endpoint(ep.ID)
	if !ok || !reflect.DeepEqual(got, ep) || ep.ID != EndpointID(bankAPI, "GET", ep.Template) {
		t.Errorf("Endpoint(%s) = %v, %v", ep.ID, ok, got.Template)
	}
	if _, ok := inv.Endpoint("endpoint-nope"); ok {
		t.Error("Endpoint found an unknown id")
	}
	// A copy: changing it changes nothing.
	ep.Hosts[0] = "changed"
	props["f0"] = nil
	if again, _ := inv.Endpoint(ep.ID); again.Hosts[0] != "accounts.svc" || again.ResponseSchema["properties"].(map[string]any)["f0"] == nil {
		t.Error("Endpoints returned shared state")
	}
}

func TestExposureEastWest(t *testing.T) {
	inv := newBank(t)
	inv.Ingest([]event.Exchange{
		ex(0, "GET", "/api/v1/accounts", func(e *event.Exchange) { e.ClientClass = event.ClientInternal }),
		ex(1, "GET", "/api/v1/accounts/current", func(e *event.Exchange) {
			e.ClientClass, e.Auth, e.Subject, e.MTLSIdentity = "", event.AuthMTLS, "", "spiffe://bank/ledger"
		}),
		ex(2, "GET", "/api/v1/health", func(e *event.Exchange) { e.ClientClass = "" }),
	})
	want := map[string]string{"/api/v1/accounts": ExposureEastWest, "/api/v1/accounts/current": ExposureEastWest, "/api/v1/health": ""}
	for _, ep := range inv.Endpoints() {
		if ep.Exposure != want[ep.Template] {
			t.Errorf("%s: exposure %q, want %q", ep.Template, ep.Exposure, want[ep.Template])
		}
		if ep.Template == "/api/v1/accounts/current" && ep.Identities.Count != 1 {
			t.Errorf("mTLS identity not counted: %+v", ep.Identities)
		}
	}
}

func TestIdentitiesEstimate(t *testing.T) {
	inv := newBank(t)
	const distinct = 20_000
	evs := make([]event.Exchange, 0, distinct)
	for i := range distinct {
		evs = append(evs, ex(i, "GET", "/api/v1/accounts", func(e *event.Exchange) { e.Subject = fmt.Sprintf("subject-%d", i) }))
	}
	inv.Ingest(evs)
	ep := inv.Endpoints()[0]
	if !ep.Identities.Estimated || len(ep.Identities.Hashes) != 0 || len(ep.Identities.Sketch) != hllRegisters {
		t.Fatalf("identities %d estimated %v hashes %d sketch %d", ep.Identities.Count, ep.Identities.Estimated, len(ep.Identities.Hashes), len(ep.Identities.Sketch))
	}
	if rel := math.Abs(float64(ep.Identities.Count)-distinct) / distinct; rel > 0.07 { // 3 standard errors
		t.Errorf("estimate %d for %d distinct (%.1f%% off)", ep.Identities.Count, distinct, rel*100)
	}
	var exact identitySet
	for i := range exactIdentities {
		exact.add(hashIdentity(fmt.Sprint(i)))
	}
	if n, est := exact.count(); n != exactIdentities || est {
		t.Errorf("exact up to %d: got %d estimated %v", exactIdentities, n, est)
	}
}

func TestRestore(t *testing.T) {
	inv := newBank(t)
	inv.Ingest(bankTraffic())
	before := inv.Endpoints()
	data, err := json.Marshal(before)
	if err != nil {
		t.Fatal(err)
	}
	var persisted []Endpoint
	if err := json.Unmarshal(data, &persisted); err != nil {
		t.Fatal(err)
	}
	restored := newBank(t)
	restored.Restore(persisted)
	after := restored.Endpoints()
	a, _ := json.Marshal(after)
	if string(a) != string(data) {
		t.Errorf("restore changed the endpoints:\nbefore %s\nafter  %s", data, a)
	}
	// Traffic after restore lands on the restored endpoints.
	restored.Ingest(bankTraffic())
	for _, ep := range restored.Endpoints() {
		if old, ok := inv.Endpoint(ep.ID); !ok || ep.Count != 2*old.Count {
			t.Errorf("%s %s: count %d after restore and replay, want %d", ep.Method, ep.Template, ep.Count, 2*old.Count)
		}
	}
	if restored.Findings(t0.Add(time.Hour), 0) == nil {
		t.Error("no findings after restore")
	}
}

// TestRetemplate: endpoints first recorded under literal word values
// merge into one parameterised endpoint once the position collapses.
func TestRetemplate(t *testing.T) {
	inv, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	var evs []event.Exchange
	for _, a := range []string{"al", "bo", "ca", "da", "er", "fr", "gi"} {
		for _, b := range []string{"ice", "ob", "rol", "ve", "in", "ank", "ace", "idi", "an", "udy"} {
			evs = append(evs, event.Exchange{Method: "GET", Path: "/users/" + a + b + "/repos", Status: 200, Time: t0})
		}
	}
	for i := range evs {
		inv.Ingest(evs[i : i+1]) // one at a time: literal endpoints exist before the collapse
	}
	eps := inv.Endpoints()
	if len(eps) != 1 || eps[0].Template != "/users/{userId}/repos" || eps[0].Count != uint64(len(evs)) {
		for _, ep := range eps {
			t.Logf("%s %s %d", ep.Method, ep.Template, ep.Count)
		}
		t.Fatalf("%d endpoints, want one /users/{userId}/repos with %d calls", len(eps), len(evs))
	}
	if _, ok := inv.Endpoint(EndpointID("", "GET", "/users/{userId}/repos")); !ok {
		t.Error("merged endpoint not found by id")
	}
}

func TestEndpointCap(t *testing.T) {
	inv, err := New(Options{MaxEndpoints: 5})
	if err != nil {
		t.Fatal(err)
	}
	var evs []event.Exchange
	for i := range 10 {
		evs = append(evs, event.Exchange{Method: "GET", Path: fmt.Sprintf("/r%c/x", 'a'+i), Time: t0})
	}
	inv.Ingest(evs)
	if n := len(inv.Endpoints()); n != 5 || inv.Dropped() != 5 {
		t.Errorf("%d endpoints, %d dropped", n, inv.Dropped())
	}
}

// TestConcurrentIngestAndRead runs ingest and readers together (run with
// -race).
func TestConcurrentIngestAndRead(t *testing.T) {
	inv := newBank(t)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 50 {
			inv.Ingest(bankTraffic())
		}
	}()
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				for _, ep := range inv.Endpoints() {
					_, _ = inv.Endpoint(ep.ID)
				}
				_ = inv.Findings(t0.Add(time.Hour), time.Minute)
				if _, err := inv.OpenAPI("x"); err != nil {
					t.Error(err)
					return
				}
				_, _ = inv.Templater(bankAPI).Template("/api/v1/accounts/42")
			}
		}()
	}
	wg.Wait()
}

func TestMergeSchema(t *testing.T) {
	obj := func(props map[string]any) map[string]any {
		return map[string]any{"type": "object", "properties": props}
	}
	str := map[string]any{"type": "string", "format": "date"}
	var s map[string]any
	s = mergeSchema(s, obj(map[string]any{"a": str, "n": map[string]any{"type": "integer"}}), 0)
	s = mergeSchema(s, obj(map[string]any{"b": map[string]any{"type": "array", "items": str},
		"n": map[string]any{"type": "number"}, "a": map[string]any{"type": "string"}}), 0)
	s = mergeSchema(s, obj(map[string]any{"b": map[string]any{"type": "null"}}), 0)
	s = mergeSchema(s, map[string]any{"type": []any{"object", "null"}}, 0)
	want := map[string]any{"anyOf": []any{
		map[string]any{"type": "object", "properties": map[string]any{
			"a": map[string]any{"type": "string"},
			"n": map[string]any{"type": "number"},
			"b": map[string]any{"anyOf": []any{
				map[string]any{"type": "array", "items": map[string]any{"type": "string", "format": "date"}},
				map[string]any{"type": "null"},
			}},
		}},
		map[string]any{"type": "null"}, // the body itself was null once
	}}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("merged\n%v\nwant\n%v", s, want)
	}
	// Bounded depth.
	deep := map[string]any{"type": "string"}
	for range 50 {
		deep = map[string]any{"type": "array", "items": deep}
	}
	d := mergeSchema(nil, deep, 0)
	depth := 0
	for m := d; m != nil; depth++ {
		m, _ = m["items"].(map[string]any)
	}
	if depth > maxSchemaDepth+1 {
		t.Errorf("merged schema depth %d", depth)
	}
}

// TestBlockedRequestsTeachNoParameters: an attacker's refused request
// (here an injection in limit) neither fixes a parameter's type nor adds
// a parameter; the requests the gateway let through do.
func TestBlockedRequestsTeachNoParameters(t *testing.T) {
	inv := newBank(t)
	attack := ex(0, "GET", "/api/v1/accounts", withParams(
		event.Param{Name: "limit", In: "query", Type: "string"},
		event.Param{Name: "union", In: "query", Type: "string"},
	))
	attack.Blocked, attack.Status, attack.Reasons = true, 403, []string{"waf:waf_blocked"}
	normal := ex(1, "GET", "/api/v1/accounts", withParams(event.Param{Name: "limit", In: "query", Type: "integer"}))
	inv.Ingest([]event.Exchange{attack, normal})
	ep, ok := inv.Endpoint(EndpointID(bankAPI, "GET", "/api/v1/accounts"))
	if !ok {
		t.Fatal("endpoint not learned")
	}
	if len(ep.Params) != 1 || ep.Params[0].Name != "limit" || ep.Params[0].Type != "integer" || len(ep.UndocumentedParams) != 0 {
		t.Fatalf("params %+v, undocumented %+v", ep.Params, ep.UndocumentedParams)
	}
	if ep.Count != 2 {
		t.Fatalf("count %d: the blocked request is still counted", ep.Count)
	}
}
