package dashboard

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulwarkapi/bulwark/internal/config"
	"github.com/bulwarkapi/bulwark/internal/event"
	"github.com/bulwarkapi/bulwark/internal/finding"
	"github.com/bulwarkapi/bulwark/internal/inventory"
	"github.com/bulwarkapi/bulwark/internal/spec"
	"github.com/bulwarkapi/bulwark/internal/store"
)

// testToken is the admin token of the test dashboards.
const testToken = "test-admin-token-0123456789abcdef"

// now is the fixed clock of the tests.
var now = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

// fixture is a dashboard behind a loopback test server.
type fixture struct {
	t     *testing.T
	srv   *httptest.Server
	d     *dashboard
	mu    sync.Mutex
	token string
	clock time.Time
}

func (f *fixture) setToken(tok string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.token = tok
}

func (f *fixture) advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.clock = f.clock.Add(d)
}

// newFixture serves a dashboard built from o (Token and Now are the
// fixture's).
func newFixture(t *testing.T, o Options) *fixture {
	t.Helper()
	f := &fixture{t: t, token: testToken, clock: now}
	o.Token = func() string { f.mu.Lock(); defer f.mu.Unlock(); return f.token }
	o.Now = func() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.clock }
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	d, h, err := build(o)
	if err != nil {
		t.Fatal(err)
	}
	f.d = d
	f.srv = httptest.NewServer(h)
	t.Cleanup(f.srv.Close)
	return f
}

// client returns a browser-like client: a cookie jar, no redirects
// followed.
func (f *fixture) client() *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		f.t.Fatal(err)
	}
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// get fetches a path and returns the response and its body.
func (f *fixture) get(c *http.Client, path string) (*http.Response, string) {
	f.t.Helper()
	resp, err := c.Get(f.srv.URL + path)
	if err != nil {
		f.t.Fatal(err)
	}
	return resp, readBody(f.t, resp)
}

// post sends a form with optional extra headers.
func (f *fixture) post(c *http.Client, path string, form url.Values, hdr map[string]string) (*http.Response, string) {
	f.t.Helper()
	req, err := http.NewRequest(http.MethodPost, f.srv.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		f.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	return resp, readBody(f.t, resp)
}

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// loginCSRF loads the sign-in page and returns the form's CSRF token.
func (f *fixture) loginCSRF(c *http.Client) string {
	f.t.Helper()
	resp, body := f.get(c, "/ui/login")
	if resp.StatusCode != http.StatusOK {
		f.t.Fatalf("GET /ui/login: %d", resp.StatusCode)
	}
	return hiddenCSRF(f.t, body)
}

// hiddenCSRF extracts the value of the csrf hidden field.
func hiddenCSRF(t *testing.T, body string) string {
	t.Helper()
	const marker = `name="csrf" value="`
	i := strings.Index(body, marker)
	if i < 0 {
		t.Fatalf("no csrf field in page:\n%s", body)
	}
	rest := body[i+len(marker):]
	return rest[:strings.IndexByte(rest, '"')]
}

// signIn signs a new client in and returns it with the session's CSRF
// token.
func (f *fixture) signIn() (*http.Client, string) {
	f.t.Helper()
	c := f.client()
	csrf := f.loginCSRF(c)
	resp, body := f.post(c, "/ui/login", url.Values{"token": {testToken}, "csrf": {csrf}}, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/" {
		f.t.Fatalf("sign in: %d %s\n%s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	resp, body = f.get(c, "/ui/")
	if resp.StatusCode != http.StatusOK {
		f.t.Fatalf("overview after sign-in: %d", resp.StatusCode)
	}
	return c, hiddenCSRF(f.t, body)
}

// bankInventory returns an inventory over testdata/bank.yaml fed with a
// little traffic: documented, zombie and shadow endpoints, an
// unauthenticated one returning card numbers, an east-west one.
func bankInventory(t testing.TB) *inventory.Inventory {
	t.Helper()
	doc, err := spec.Load(context.Background(), "testdata/bank.yaml")
	if err != nil {
		t.Fatal(err)
	}
	inv, err := inventory.New(inventory.Options{Specs: map[string]*spec.Document{"bank": doc}, Start: now.Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	inv.Ingest(bankTraffic())
	return inv
}

func bankTraffic() []event.Exchange {
	ex := func(i int, method, path string, opts ...func(*event.Exchange)) event.Exchange {
		e := event.Exchange{
			ID: fmt.Sprintf("req-%d", i), Time: now.Add(-time.Duration(30-i) * time.Minute),
			API: "bank", Host: "api.bank.example", Method: method, Path: path,
			Status: 200, LatencyMS: float64(5 + i), Auth: event.AuthJWT, Subject: fmt.Sprintf("subj-%d", i%3),
			ClientClass: event.ClientExternal,
		}
		for _, o := range opts {
			o(&e)
		}
		return e
	}
	var evs []event.Exchange
	for i := range 10 {
		evs = append(evs,
			ex(i, "GET", "/api/v1/accounts", func(e *event.Exchange) {
				e.Params = []event.Param{{Name: "limit", In: "query", Type: "integer"}, {Name: "debug", In: "query", Type: "boolean"}}
			}),
			ex(i, "GET", fmt.Sprintf("/api/v1/accounts/acc_%08d", i), func(e *event.Exchange) {
				e.ResponseClasses = []string{"iban"}
				e.ResponseSchema = map[string]any{"type": "object", "properties": map[string]any{
					"accountId": map[string]any{"type": "string"},
					"balance":   map[string]any{"type": "object", "properties": map[string]any{"amount": map[string]any{"type": "string"}}},
					"tags":      map[string]any{"type": "array", "items": map[string]any{"type": "string"}},
				}}
				if i%4 == 0 {
					e.Status = 404
				}
			}),
		)
	}
	evs = append(evs,
		ex(20, "GET", "/api/v1/legacy/statements/7781"),
		ex(21, "GET", "/api/v1/internal/debug", func(e *event.Exchange) {
			e.Auth, e.Subject, e.ResponseClasses = event.AuthNone, "", []string{"pan", "email"}
		}),
		ex(22, "POST", "/api/v1/payments", func(e *event.Exchange) {
			e.ClientClass, e.Status, e.Blocked, e.Reasons = event.ClientInternal, 403, true, []string{"authz:bola"}
		}),
	)
	return evs
}

// testFindings are a few findings of different kinds and severities.
func testFindings() []finding.Finding {
	return []finding.Finding{
		{
			ID: "bola_enumeration-0123456789abcdef", Kind: finding.KindEnumeration, Severity: finding.High,
			Title: "Object enumeration on GET /accounts/{AccountId}", Detail: "One identity walked 40 account ids in a minute.",
			API: "bank", Endpoint: "GET /accounts/{AccountId}", Subject: "5f0c1d2e3a4b5c6d7e8f90a1b2c3d4e5",
			Evidence:  map[string]any{"distinct_objects": 40, "window": "1m", "sample_request_ids": []string{"req-1", "req-2"}},
			Tags:      []string{"owasp-api:API1:2023", "pci-dss:6.4.1"},
			FirstSeen: now.Add(-20 * time.Minute), LastSeen: now.Add(-2 * time.Minute), Count: 3,
		},
		{
			ID: "shadow_endpoint-fedcba9876543210", Kind: finding.KindShadow, Severity: finding.Medium,
			Title: "Shadow endpoint GET /internal/debug", API: "bank", Endpoint: "GET /api/v1/internal/debug",
			Evidence:  map[string]any{"calls": 1},
			FirstSeen: now.Add(-9 * time.Minute), LastSeen: now.Add(-9 * time.Minute), Count: 1,
		},
		{
			ID: "unauthenticated_sensitive_data-00aa11bb22cc33dd", Kind: finding.KindUnauthSensitive, Severity: finding.Critical,
			Title: "Card numbers returned without authentication <script>alert(1)</script>", API: "bank",
			Evidence:  map[string]any{"classes": "pan"},
			FirstSeen: now.Add(-9 * time.Minute), LastSeen: now.Add(-9 * time.Minute), Count: 1,
		},
	}
}

// findingsFunc filters fs like a store would (kind, minimum severity,
// limit).
func findingsFunc(fs []finding.Finding) func(context.Context, store.FindingFilter) ([]finding.Finding, error) {
	return func(_ context.Context, f store.FindingFilter) ([]finding.Finding, error) {
		var out []finding.Finding
		for _, x := range fs {
			if (f.Kind == "" || x.Kind == f.Kind) && x.Severity >= f.MinSeverity {
				out = append(out, x)
			}
			if f.Limit > 0 && len(out) == f.Limit {
				break
			}
		}
		return out, nil
	}
}

func failingFindings(context.Context, store.FindingFilter) ([]finding.Finding, error) {
	return nil, errors.New("database is locked")
}

// populated returns options with every data source filled.
func populated(t testing.TB) Options {
	inv := bankInventory(t)
	tl := NewTimeline(10*time.Second, 360)
	tl.now = func() time.Time { return now }
	tl.Add(timelineTraffic())
	cfg := testConfig()
	return Options{
		Inventory: func() *inventory.Inventory { return inv },
		Findings:  findingsFunc(testFindings()),
		Config:    func() *config.Config { return cfg },
		Timeline:  tl,
	}
}

// timelineTraffic is a quarter hour of passed and blocked exchanges.
func timelineTraffic() []event.Exchange {
	var evs []event.Exchange
	for i := range 900 {
		e := event.Exchange{Time: now.Add(-time.Duration(i) * time.Second)}
		switch i % 10 {
		case 0:
			e.Blocked, e.Reasons = true, []string{"ratelimit:rate_limited"}
		case 3:
			e.Blocked, e.Reasons = true, []string{"waf:sql_injection"}
		case 7:
			if i%20 == 7 {
				e.Blocked, e.Reasons = true, []string{"authn:token_expired"}
			}
		}
		evs = append(evs, e)
	}
	return evs
}

func httptestRequest(method, target, body string) *http.Request {
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	if body != "" {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	return r
}

func recorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }
