package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulwarkapi/bulwark/internal/testkit/cutproxy"

	"github.com/bulwarkapi/bulwark/internal/demo/bank"
)

// adminJSON GETs an admin API path with the token and decodes the JSON.
func adminJSON(t *testing.T, env *gwEnv, path string, v any) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, env.admin+path, nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == 200 && v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s: %v\n%s", path, err, b)
		}
	}
	return resp.StatusCode
}

type findingsResp struct {
	Findings []struct {
		ID, Kind, Severity, Endpoint, Subject string
		Count                                 int
	}
}

// waitFindings polls the admin API until every wanted kind is there.
func waitFindings(t *testing.T, env *gwEnv, kinds ...string) findingsResp {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var fr findingsResp
		adminJSON(t, env, "/api/v1/findings", &fr)
		have := map[string]bool{}
		for _, f := range fr.Findings {
			have[f.Kind] = true
		}
		missing := []string{}
		for _, k := range kinds {
			if !have[k] {
				missing = append(missing, k)
			}
		}
		if len(missing) == 0 {
			return fr
		}
		if time.Now().After(deadline) {
			t.Fatalf("findings %v never appeared; have %+v", missing, fr.Findings)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestInventoryFindingsFromTraffic is issue #7's acceptance test: traffic
// to an undocumented endpoint, to a deprecated operation and to an
// unauthenticated endpoint returning card numbers produces the three
// findings, visible in the admin API and kept in the store.
func TestInventoryFindingsFromTraffic(t *testing.T) {
	up := httptestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if strings.HasSuffix(r.URL.Path, "/cards") {
			_, _ = io.WriteString(w, `{"cards":[{"pan":"4111111111111111","expiry":"12/29"}]}`)
			return
		}
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	// A SIEM's HTTP collector: the findings arrive there too, as OCSF.
	var siemMu sync.Mutex
	siemKinds := map[string]bool{}
	siem := httptestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var docs []struct {
			ClassUID    int `json:"class_uid"`
			FindingInfo struct {
				Types []string `json:"types"`
			} `json:"finding_info"`
		}
		if r.Header.Get("Authorization") != "Bearer siem-token" || json.NewDecoder(r.Body).Decode(&docs) != nil {
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		siemMu.Lock()
		defer siemMu.Unlock()
		for _, d := range docs {
			if d.ClassUID == 2004 && len(d.FindingInfo.Types) > 0 {
				siemKinds[d.FindingInfo.Types[0]] = true
			}
		}
	}))
	cfg := fmt.Sprintf(`
listeners:
  - addr: "127.0.0.1:0"
    tls: {cert_file: tls.crt, key_file: tls.key}
admin: {addr: "127.0.0.1:0", token: %q}
audit: {path: audit.log}
store: {url: "sqlite://inventory.db"}
inventory: {flush_interval: 100ms}
detect: {findings_webhook: {url: %q, token: siem-token}}
apis:
  - name: bank
    match: {path_prefix: /api/v1}
    upstream: {url: %q}
    spec: bank.yaml
    data: {observe: [pan]}
`, testToken, siem, up)
	env := startGatewayWith(t, cfg, func(dir string) {
		b, err := os.ReadFile("../inventory/testdata/bank.yaml")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "bank.yaml"), b, 0o600); err != nil {
			t.Fatal(err)
		}
	})
	for i := range 5 {
		env.get(t, "/api/v1/internal/debug")                            // undocumented
		env.get(t, fmt.Sprintf("/api/v1/legacy/statements/st%d", i))    // deprecated
		env.get(t, fmt.Sprintf("/api/v1/accounts/acc%d/cards", 1000+i)) // no credential, card numbers back
		env.get(t, fmt.Sprintf("/api/v1/accounts/acc%d", 1000+i))
	}
	fr := waitFindings(t, env, "shadow_endpoint", "zombie_endpoint", "unauthenticated_sensitive_data")
	deadline := time.Now().Add(10 * time.Second)
	for {
		siemMu.Lock()
		all := siemKinds["shadow_endpoint"] && siemKinds["zombie_endpoint"] && siemKinds["unauthenticated_sensitive_data"]
		got := fmt.Sprint(siemKinds)
		siemMu.Unlock()
		if all {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the SIEM webhook received %s, want the three findings", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, f := range fr.Findings {
		switch f.Kind {
		case "shadow_endpoint":
			if !strings.Contains(f.Endpoint, "/internal/debug") {
				t.Errorf("shadow finding on %q", f.Endpoint)
			}
		case "zombie_endpoint":
			if !strings.Contains(f.Endpoint, "/legacy/statements/") {
				t.Errorf("zombie finding on %q", f.Endpoint)
			}
		case "unauthenticated_sensitive_data":
			if !strings.Contains(f.Endpoint, "/cards") || (f.Severity != "critical" && f.Severity != "high") {
				t.Errorf("unauthenticated PAN finding %+v", f)
			}
		}
	}
	var inv struct {
		Endpoints []struct {
			ID, Method, Template string
			SpecStatus           string `json:"spec_status"`
			Count                int
		}
	}
	if code := adminJSON(t, env, "/api/v1/inventory?status=shadow", &inv); code != 200 || len(inv.Endpoints) == 0 {
		t.Fatalf("inventory filter status=shadow: %d %+v", code, inv)
	}
	var one map[string]any
	if code := adminJSON(t, env, "/api/v1/inventory/"+inv.Endpoints[0].ID, &one); code != 200 || one["template"] == nil {
		t.Fatalf("endpoint page: %d %v", code, one)
	}
	if code := adminJSON(t, env, "/api/v1/inventory/nope", nil); code != 404 {
		t.Fatalf("unknown endpoint id: %d, want 404", code)
	}
	req, _ := http.NewRequest(http.MethodGet, env.admin+"/api/v1/findings", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 401 {
		t.Fatalf("findings without the token: %v %v", resp, err)
	}
}

// TestEnumerationThroughTheGateway: one customer walking 50 account ids
// raises a BOLA enumeration finding within seconds; a customer reading
// their own account raises none; in enforce mode the walker is cooled down.
func TestEnumerationThroughTheGateway(t *testing.T) {
	f := startBankAuthzWith(t, "enforce", "inventory: {flush_interval: 100ms}\ndetect: {mode: enforce}\n", "")
	walker := f.token(t, f.a)
	normal := f.token(t, f.b)
	for i := range 30 {
		f.call(t, normal, http.MethodGet, "/api/v1/accounts/"+f.bAcc, "")
		_ = i
	}
	start := time.Now()
	cooled := false
	for i := range 50 {
		code, _ := f.call(t, walker, http.MethodGet, fmt.Sprintf("/api/v1/accounts/acc-%04d", i), "")
		if code == http.StatusTooManyRequests {
			cooled = true
			break
		}
	}
	fr := waitFindings(t, f.env, "bola_enumeration")
	t.Logf("enumeration finding after %s", time.Since(start).Round(time.Millisecond))
	n := 0
	for _, fd := range fr.Findings {
		if fd.Kind == "bola_enumeration" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d enumeration findings, want exactly 1 (the walker's): %+v", n, fr.Findings)
	}
	// The walker is on cool-down now; the normal customer is not.
	deadline := time.Now().Add(5 * time.Second)
	for !cooled && time.Now().Before(deadline) {
		if code, _ := f.call(t, walker, http.MethodGet, "/api/v1/accounts/"+f.aAcc, ""); code == http.StatusTooManyRequests {
			cooled = true
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !cooled {
		t.Fatal("the walker was never put on cool-down in enforce mode")
	}
	if code, _ := f.call(t, normal, http.MethodGet, "/api/v1/accounts/"+f.bAcc, ""); code != 200 {
		t.Fatalf("the normal customer got %d", code)
	}
}

// TestDashboardServedByAdmin: the admin listener serves the dashboard's
// sign-in page with a strict CSP, and its pages need a session.
func TestDashboardServedByAdmin(t *testing.T) {
	up := newEcho(t, "a")
	env := startGateway(t, baseConfig(up.srv.URL, ""))
	resp, err := http.Get(env.admin + "/ui/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Fatalf("/ui/login: %d CSP %q", resp.StatusCode, resp.Header.Get("Content-Security-Policy"))
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = c.Get(env.admin + "/ui/inventory")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther && resp.StatusCode != http.StatusFound {
		t.Fatalf("/ui/inventory without a session: %d, want a redirect to sign-in", resp.StatusCode)
	}
}

// TestOwnershipFromResponseBodies: the ids the bank returned to one
// customer's list calls (read from the JSON bodies, hashed) teach the
// ownership detector; another customer then asking for those objects by
// id raises an ownership anomaly, though the first customer never
// requested them by id. The same traffic also gives the inventory the
// shape of the list responses.
func TestOwnershipFromResponseBodies(t *testing.T) {
	f := startBankAuthzWith(t, "enforce", "inventory: {flush_interval: 100ms}\n", "")
	// alice: a customer with at least three accounts and cards, the
	// detector's threshold of foreign objects.
	bk := bank.New(bank.Options{Seed: 1})
	var paths []string
	var a bank.Customer
	for _, c := range bk.Customers()[2:] {
		paths = paths[:0]
		for _, acc := range bk.Accounts(c.CustomerID) {
			paths = append(paths, "/api/v1/accounts/"+acc.AccountID)
		}
		for _, card := range bk.Cards(c.CustomerID) {
			paths = append(paths, "/api/v1/cards/"+card.CardID)
		}
		if a = c; len(paths) >= 3 {
			break
		}
	}
	if len(paths) < 3 {
		t.Fatal("no customer of the demo bank has three objects")
	}
	alice, bob := f.token(t, a), f.token(t, f.b)
	for _, p := range []string{"/api/v1/accounts?customerId=" + a.CustomerID, "/api/v1/cards"} {
		if code, body := f.call(t, alice, http.MethodGet, p, ""); code != 200 {
			t.Fatalf("alice %s: %d %s", p, code, body)
		}
	}
	// Let alice's list events reach the detectors before bob's requests:
	// the detector learns owners in the order it sees events.
	waitEndpoint(t, f.env, "GET", "/api/v1/cards")
	for _, p := range paths {
		if code, _ := f.call(t, bob, http.MethodGet, p, ""); code != http.StatusForbidden {
			t.Fatalf("bob %s: %d, want 403", p, code)
		}
	}
	fr := waitFindings(t, f.env, "bola_ownership_anomaly")
	for _, fd := range fr.Findings {
		if fd.Kind == "bola_ownership_anomaly" && fd.Count < 1 {
			t.Errorf("finding %+v", fd)
		}
	}
	ep := waitEndpoint(t, f.env, "GET", "/api/v1/accounts")
	if ep["response_schema"] == nil {
		t.Fatalf("GET /accounts has no response schema: %v", ep)
	}
	b, _ := json.Marshal(ep["response_schema"])
	if !strings.Contains(string(b), `"accountId":{"type":"string"}`) {
		t.Errorf("response schema %s lacks accountId", b)
	}
}

// waitEndpoint polls the inventory until the endpoint is there and
// returns its admin API document.
func waitEndpoint(t *testing.T, env *gwEnv, method, template string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var inv struct {
			Endpoints []struct{ ID, Method, Template string }
		}
		adminJSON(t, env, "/api/v1/inventory", &inv)
		for _, e := range inv.Endpoints {
			if e.Method == method && e.Template == template {
				var one map[string]any
				if code := adminJSON(t, env, "/api/v1/inventory/"+e.ID, &one); code == 200 {
					return one
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s %s never appeared in %+v", method, template, inv.Endpoints)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestSequentialWalkThroughTheGateway: twelve adjacent account ids, all
// answered (no denial, below the distinct-objects threshold of twenty),
// raise enumeration as a sequential walk; as many scattered ids from
// another customer raise nothing.
func TestSequentialWalkThroughTheGateway(t *testing.T) {
	up := httptestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"Enabled"}`)
	}))
	k := newKeys(t)
	env := startGatewayWith(t, "inventory: {flush_interval: 100ms}\n"+bankAPIConfig(up, `
    objects:
      - {operation: "GET /accounts/{accountId}", allow: "true"}
`), bankFiles(t, k))
	f := &bankFixture{env: env, k: k}
	token := func(sub string) string {
		return k.sign(t, map[string]any{"alg": "ES256", "kid": "ec-1"}, claims(sub, "accounts", map[string]any{"aud": "bank-api"}))
	}
	walker, scatter := token("cus_walker"), token("cus_browser")
	for i := range 12 {
		if code, _ := f.call(t, scatter, http.MethodGet, fmt.Sprintf("/api/v1/accounts/acc-%04d", 1000+i*37), ""); code != 200 {
			t.Fatalf("status %d", code)
		}
		f.call(t, walker, http.MethodGet, fmt.Sprintf("/api/v1/accounts/acc-%04d", 5000+i), "")
	}
	waitFindings(t, env, "bola_enumeration")
	var fr struct {
		Findings []struct {
			Kind     string
			Evidence map[string]any
		}
	}
	adminJSON(t, env, "/api/v1/findings?kind=bola_enumeration", &fr)
	if len(fr.Findings) != 1 || fr.Findings[0].Evidence["trigger"] != "sequential_walk" ||
		fr.Findings[0].Evidence["distinct_objects"].(float64) > 12 || fr.Findings[0].Evidence["failures"] != float64(0) {
		t.Fatalf("findings %+v", fr.Findings)
	}
}

// TestGatewayServesWhileStoreIsDown: a gateway whose inventory store
// (PostgreSQL) does not answer at start serves anyway; the admin API says
// 503, events are dropped and counted, and once the database answers the
// inventory opens and records the traffic that follows.
func TestGatewayServesWhileStoreIsDown(t *testing.T) {
	pgURL := os.Getenv("BULWARK_TEST_POSTGRES_URL")
	if pgURL == "" {
		t.Skip("BULWARK_TEST_POSTGRES_URL not set: skipping the store outage test")
	}
	u, err := url.Parse(pgURL)
	if err != nil {
		t.Fatal(err)
	}
	// A schema of this test's own, so it shares no table with others.
	schema := "bulwark_gw_outage_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	conn, err := pgx.Connect(context.Background(), pgURL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(context.Background(), "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = conn.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		_ = conn.Close(context.Background())
	})
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	px := cutproxy.New(t, u.Host)
	px.Cut()
	u.Host = px.Addr()
	up := newEcho(t, "a")
	env := startGateway(t, baseConfig(up.srv.URL, fmt.Sprintf("store: {url: %q}\ninventory: {flush_interval: 100ms}\n", u.String())))
	get := func(path string) {
		t.Helper()
		resp, err := env.client.Get(env.base + path)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: status %d while the store is down", path, resp.StatusCode)
		}
	}
	get("/before/outage")
	if code := adminJSON(t, env, "/api/v1/inventory", nil); code != http.StatusServiceUnavailable {
		t.Fatalf("admin inventory while the store is down: %d, want 503", code)
	}
	if !strings.Contains(env.logs.String(), "the inventory store does not open") {
		t.Errorf("no log line for the store outage:\n%s", env.logs.String())
	}
	deadline := time.Now().Add(10 * time.Second)
	for metricValue(scrapeMetrics(t, env), "bulwark_events_dropped_total") < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the dropped event was never counted")
		}
		time.Sleep(50 * time.Millisecond)
	}

	px.Restore()
	deadline = time.Now().Add(20 * time.Second)
	for {
		get("/after/outage")
		var inv struct{ Endpoints []struct{ Template string } }
		if adminJSON(t, env, "/api/v1/inventory", &inv) == 200 {
			for _, e := range inv.Endpoints {
				if strings.HasPrefix(e.Template, "/after/") {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the inventory never recorded traffic after the store came back: %+v", inv)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
