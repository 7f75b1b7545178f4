package introspect

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwarkapi/bulwark/internal/config"
	"github.com/bulwarkapi/bulwark/internal/identity"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// Test credentials: never real. The id and secret hold characters that
// RFC 6749 §2.3.1 form-encoding changes.
const (
	testClientID = "gateway:prod"
	testSecret   = "s3cr+t/=%x y"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// authServer is an RFC 7662 endpoint on loopback.
type authServer struct {
	t        testing.TB
	srv      *httptest.Server
	post     bool // expects client_secret_post
	requests atomic.Int64
	badAuth  atomic.Int64

	mu      sync.Mutex
	answers map[string]map[string]any // token -> response
	// override, when set, answers instead.
	override http.HandlerFunc
}

func newAuthServer(t testing.TB, post bool) *authServer {
	s := &authServer{t: t, post: post, answers: map[string]map[string]any{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *authServer) set(token string, resp map[string]any) {
	s.mu.Lock()
	s.answers[token] = resp
	s.mu.Unlock()
}

func (s *authServer) serve(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	s.mu.Lock()
	override := s.override
	s.mu.Unlock()
	if override != nil {
		override(w, r)
		return
	}
	s.answer(w, r)
}

// answer is the RFC 7662 endpoint proper.
func (s *authServer) answer(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	if err := r.ParseForm(); err != nil || r.PostForm.Get("token_type_hint") != "access_token" {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	var id, secret string
	if s.post {
		if r.Header.Get("Authorization") != "" {
			http.Error(w, "two client authentication methods", http.StatusBadRequest)
			return
		}
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	} else {
		if r.PostForm.Has("client_secret") {
			http.Error(w, "two client authentication methods", http.StatusBadRequest)
			return
		}
		var ok bool
		id, secret, ok = r.BasicAuth()
		var err1, err2 error
		id, err1 = url.QueryUnescape(id)
		secret, err2 = url.QueryUnescape(secret)
		if !ok || err1 != nil || err2 != nil {
			id = ""
		}
	}
	if id != testClientID || secret != testSecret {
		s.badAuth.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":"invalid_client"}`))
		return
	}
	s.mu.Lock()
	resp, ok := s.answers[r.PostForm.Get("token")]
	s.mu.Unlock()
	if !ok {
		resp = map[string]any{"active": false}
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_ = json.NewEncoder(w).Encode(resp)
}

type observer struct {
	hits, misses, depErrors atomic.Int64
}

func (o *observer) KeySetFetch(string, string) {}
func (o *observer) CacheLookup(_ string, hit bool) {
	if hit {
		o.hits.Add(1)
	} else {
		o.misses.Add(1)
	}
}
func (o *observer) DependencyError(string) { o.depErrors.Add(1) }

type fixture struct {
	p   *Provider
	srv *authServer
	clk *clock
	obs *observer
	log *bytes.Buffer
}

func newFixture(t testing.TB, post bool, mod func(*config.IntrospectionProvider)) *fixture {
	t.Helper()
	f := &fixture{srv: newAuthServer(t, post), clk: &clock{t: t0}, obs: &observer{}, log: &bytes.Buffer{}}
	c := config.IntrospectionProvider{
		URL:              f.srv.srv.URL + "/introspect",
		ClientID:         testClientID,
		ClientSecret:     testSecret,
		AuthMethod:       AuthBasic,
		Timeout:          config.Duration(2 * time.Second),
		CacheTTL:         config.Duration(5 * time.Minute),
		NegativeCacheTTL: config.Duration(10 * time.Second),
		CacheSize:        1000,
		Claims:           config.ClaimMapping{Subject: "sub", Scopes: "scope", Roles: "realm_access.roles", Tenant: "tenant"},
	}
	if post {
		c.AuthMethod = AuthPost
	}
	if mod != nil {
		mod(&c)
	}
	p, err := New(Options{Name: "as", Config: c, Observer: f.obs, Logger: slog.New(slog.NewTextHandler(&syncWriter{w: f.log}, nil)), Now: f.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	f.p = p
	return f
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}

func active(extra map[string]any) map[string]any {
	m := map[string]any{"active": true, "sub": "user-1", "exp": t0.Add(time.Hour).Unix()}
	for k, v := range extra {
		if v == nil {
			delete(m, k)
			continue
		}
		m[k] = v
	}
	return m
}

func bearer(tok string) *identity.Request {
	return &identity.Request{Method: "GET", Header: http.Header{"Authorization": {"Bearer " + tok}}}
}

func wantReason(t *testing.T, err error, reason string) {
	t.Helper()
	var ie *identity.Error
	if !errors.As(err, &ie) || ie.Reason != reason {
		t.Fatalf("err = %v (%T), want reason %s", err, err, reason)
	}
}

func wantUnavailable(t *testing.T, err error) {
	t.Helper()
	var ue *identity.Unavailable
	if !errors.As(err, &ue) || ue.Provider != "as" {
		t.Fatalf("err = %v (%T), want *identity.Unavailable", err, err)
	}
}

func TestActiveIdentity(t *testing.T) {
	f := newFixture(t, false, nil)
	f.srv.set("tok-active", active(map[string]any{
		"scope":        "accounts:read payments:write",
		"client_id":    "tpp-42",
		"tenant":       "bank-a",
		"realm_access": map[string]any{"roles": []any{"teller", "auditor", 7}},
		"cnf":          map[string]any{"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2", "jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"},
	}))
	id, err := f.p.Authenticate(context.Background(), bearer("tok-active"))
	if err != nil {
		t.Fatal(err)
	}
	if id.Subject != "user-1" || id.Provider != "as" || id.Kind != identity.KindIntrospection || id.ClientID != "tpp-42" || id.Tenant != "bank-a" {
		t.Errorf("identity = %+v", id)
	}
	if !slices.Equal(id.Scopes, []string{"accounts:read", "payments:write"}) || !slices.Equal(id.Roles, []string{"teller", "auditor"}) {
		t.Errorf("scopes %q roles %q", id.Scopes, id.Roles)
	}
	if !id.Expiry.Equal(t0.Add(time.Hour)) {
		t.Errorf("expiry %v", id.Expiry)
	}
	if id.Confirmation.X5tS256 != "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2" || id.Confirmation.JKT != "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I" {
		t.Errorf("cnf %+v", id.Confirmation)
	}
	if id.Claims["client_id"] != "tpp-42" || id.Claims["active"] != true {
		t.Errorf("claims %v", id.Claims)
	}
	if f.p.Name() != "as" || f.p.Kind() != identity.KindIntrospection {
		t.Error("accessors")
	}
}

func TestSubjectFallback(t *testing.T) {
	f := newFixture(t, false, nil)
	f.srv.set("u", active(map[string]any{"sub": nil, "username": "jdoe", "client_id": "c"}))
	f.srv.set("c", active(map[string]any{"sub": nil, "client_id": "svc-batch"}))
	f.srv.set("none", active(map[string]any{"sub": nil}))
	for tok, want := range map[string]string{"u": "jdoe", "c": "svc-batch"} {
		id, err := f.p.Introspect(context.Background(), tok)
		if err != nil || id.Subject != want {
			t.Errorf("%s: %v %v", tok, id, err)
		}
	}
	_, err := f.p.Introspect(context.Background(), "none")
	wantReason(t, err, ReasonNoSubject)
}

func TestInactive(t *testing.T) {
	f := newFixture(t, false, nil)
	_, err := f.p.Authenticate(context.Background(), bearer("tok-unknown"))
	wantReason(t, err, ReasonInactive)
	var ie *identity.Error
	errors.As(err, &ie)
	if ie.Code != identity.CodeInvalidToken || strings.Contains(ie.Error()+ie.Detail, "tok-unknown") {
		t.Errorf("error %+v", ie)
	}
}

func TestClientAuthentication(t *testing.T) {
	for _, post := range []bool{false, true} {
		t.Run(fmt.Sprintf("post=%v", post), func(t *testing.T) {
			f := newFixture(t, post, nil)
			f.srv.set("tok", active(nil))
			if _, err := f.p.Introspect(context.Background(), "tok"); err != nil {
				t.Fatalf("right credentials: %v", err)
			}
			if f.srv.badAuth.Load() != 0 {
				t.Fatal("server refused the right credentials")
			}
			for name, mod := range map[string]func(*config.IntrospectionProvider){
				"wrong secret": func(c *config.IntrospectionProvider) { c.ClientSecret = "wrong" },
				"wrong method": func(c *config.IntrospectionProvider) {
					c.AuthMethod = map[bool]string{true: AuthBasic, false: AuthPost}[post]
				},
			} {
				bad := newFixture(t, post, mod)
				bad.srv.set("tok", active(nil))
				_, err := bad.p.Introspect(context.Background(), "tok")
				wantUnavailable(t, err)
				if name == "wrong secret" && bad.srv.badAuth.Load() != 1 {
					t.Errorf("%s: server saw %d bad authentications", name, bad.srv.badAuth.Load())
				}
			}
		})
	}
}

func TestBasicAuthEncoding(t *testing.T) {
	got := basicAuth("a:b c", "p+/=")
	raw, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(got, "Basic "))
	if string(raw) != "a%3Ab+c:p%2B%2F%3D" {
		t.Errorf("basic credentials %q", raw)
	}
}

func TestPositiveCacheNeverOutlivesExp(t *testing.T) {
	f := newFixture(t, false, nil) // CacheTTL 5m
	f.srv.set("tok", active(map[string]any{"exp": t0.Add(30 * time.Second).Unix()}))
	ctx := context.Background()
	for range 3 {
		if _, err := f.p.Introspect(ctx, "tok"); err != nil {
			t.Fatal(err)
		}
	}
	f.clk.Add(29 * time.Second)
	if _, err := f.p.Introspect(ctx, "tok"); err != nil {
		t.Fatal(err)
	}
	if n := f.srv.requests.Load(); n != 1 {
		t.Fatalf("%d requests before exp, want 1", n)
	}
	if f.obs.hits.Load() != 3 || f.obs.misses.Load() != 1 {
		t.Errorf("observer hits %d misses %d", f.obs.hits.Load(), f.obs.misses.Load())
	}
	// Past exp the cached identity is gone: the endpoint is asked again
	// (and its answer, the same exp, is now refused).
	f.clk.Add(2 * time.Second)
	_, err := f.p.Introspect(ctx, "tok")
	wantReason(t, err, ReasonExpired)
	if n := f.srv.requests.Load(); n != 2 {
		t.Fatalf("%d requests after exp, want 2", n)
	}
}

func TestPositiveCacheTTLWithoutExp(t *testing.T) {
	f := newFixture(t, false, func(c *config.IntrospectionProvider) { c.CacheTTL = config.Duration(time.Minute) })
	f.srv.set("tok", active(map[string]any{"exp": nil}))
	ctx := context.Background()
	if _, err := f.p.Introspect(ctx, "tok"); err != nil {
		t.Fatal(err)
	}
	f.clk.Add(59 * time.Second)
	_, _ = f.p.Introspect(ctx, "tok")
	if n := f.srv.requests.Load(); n != 1 {
		t.Fatalf("%d requests within CacheTTL", n)
	}
	// Revoked at the server: seen once CacheTTL has passed.
	f.srv.set("tok", map[string]any{"active": false})
	f.clk.Add(2 * time.Second)
	_, err := f.p.Introspect(ctx, "tok")
	wantReason(t, err, ReasonInactive)
}

func TestNegativeCache(t *testing.T) {
	f := newFixture(t, false, nil) // NegativeCacheTTL 10s
	ctx := context.Background()
	for range 5 {
		_, err := f.p.Introspect(ctx, "tok")
		wantReason(t, err, ReasonInactive)
	}
	if n := f.srv.requests.Load(); n != 1 {
		t.Fatalf("%d requests, want 1", n)
	}
	f.srv.set("tok", active(nil))
	f.clk.Add(9 * time.Second)
	_, err := f.p.Introspect(ctx, "tok")
	wantReason(t, err, ReasonInactive)
	f.clk.Add(2 * time.Second)
	if _, err := f.p.Introspect(ctx, "tok"); err != nil {
		t.Fatalf("after negative TTL: %v", err)
	}
	if n := f.srv.requests.Load(); n != 2 {
		t.Fatalf("%d requests, want 2", n)
	}
}

func TestNoCaching(t *testing.T) {
	f := newFixture(t, false, func(c *config.IntrospectionProvider) {
		c.CacheTTL, c.NegativeCacheTTL = 0, 0
	})
	f.srv.set("tok", active(nil))
	for range 3 {
		_, _ = f.p.Introspect(context.Background(), "tok")
		_, _ = f.p.Introspect(context.Background(), "inactive")
	}
	if n := f.srv.requests.Load(); n != 6 {
		t.Fatalf("%d requests, want 6", n)
	}
}

func TestTimeout(t *testing.T) {
	f := newFixture(t, false, func(c *config.IntrospectionProvider) { c.Timeout = config.Duration(100 * time.Millisecond) })
	f.srv.override = func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm() // the server notices the client leaving only once the body is read
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"active":true,"sub":"late"}`))
	}
	start := time.Now()
	_, err := f.p.Introspect(context.Background(), "tok")
	wantUnavailable(t, err)
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("took %v with a 100ms timeout", el)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("cause %v", err)
	}
}

func TestEndpointFailuresFailClosed(t *testing.T) {
	huge := `{"active":true,"sub":"x","pad":"` + strings.Repeat("a", MaxResponseBytes) + `"}`
	cases := map[string]http.HandlerFunc{
		"500": func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, `{"active":true}`, http.StatusInternalServerError)
		},
		"garbage JSON":    jsonBody(`{"active":tru`),
		"not an object":   jsonBody(`[{"active":true}]`),
		"trailing data":   jsonBody(`{"active":true,"sub":"x"} {"active":true}`),
		"active a string": jsonBody(`{"active":"true","sub":"x"}`),
		"active missing":  jsonBody(`{"sub":"x"}`),
		"exp a string":    jsonBody(`{"active":true,"sub":"x","exp":"soon"}`),
		"too large":       jsonBody(huge),
		"not JSON": func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			_, _ = w.Write([]byte(`{"active":true,"sub":"x"}`))
		},
		"redirect": func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
		},
	}
	for name, h := range cases {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, false, nil)
			f.srv.override = h
			for range 3 {
				_, err := f.p.Authenticate(context.Background(), bearer("opaque-7f3a9c"))
				wantUnavailable(t, err)
			}
			// Not cached: every request asks again. Counted every time,
			// logged once per 30s.
			if n := f.srv.requests.Load(); n != 3 {
				t.Errorf("%d requests, want 3", n)
			}
			if n := f.obs.depErrors.Load(); n != 3 {
				t.Errorf("%d dependency errors, want 3", n)
			}
			if n := strings.Count(f.log.String(), "level=WARN"); n != 1 {
				t.Errorf("%d warnings, want 1:\n%s", n, f.log)
			}
			if strings.Contains(f.log.String(), "opaque-7f3a9c") || strings.Contains(f.log.String(), testSecret) {
				t.Errorf("log leaks a credential:\n%s", f.log)
			}
		})
	}
}

func jsonBody(s string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(s))
	}
}

func TestWarningRateLimit(t *testing.T) {
	f := newFixture(t, false, nil)
	f.srv.override = func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadGateway) }
	for range 3 {
		_, _ = f.p.Introspect(context.Background(), "tok")
	}
	f.clk.Add(29 * time.Second)
	_, _ = f.p.Introspect(context.Background(), "tok")
	if n := strings.Count(f.log.String(), "level=WARN"); n != 1 {
		t.Fatalf("%d warnings within 30s", n)
	}
	f.clk.Add(2 * time.Second)
	_, _ = f.p.Introspect(context.Background(), "tok")
	if n := strings.Count(f.log.String(), "level=WARN"); n != 2 || !strings.Contains(f.log.String(), "suppressed=3") {
		t.Fatalf("after 30s:\n%s", f.log)
	}
}

func TestConcurrentLookupsCoalesce(t *testing.T) {
	f := newFixture(t, false, nil)
	release := make(chan struct{})
	f.srv.override = func(w http.ResponseWriter, r *http.Request) {
		<-release
		f.srv.answer(w, r)
	}
	f.srv.set("tok", active(nil))
	const n = 100
	var wg sync.WaitGroup
	errs := make(chan error, n)
	ids := make(chan *identity.Identity, n)
	for range n {
		wg.Go(func() {
			id, err := f.p.Authenticate(context.Background(), bearer("tok"))
			errs <- err
			ids <- id
		})
	}
	// Let the callers pile up on the one request, then answer it.
	deadline := time.Now().Add(5 * time.Second)
	for f.srv.requests.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	close(release)
	wg.Wait()
	close(errs)
	close(ids)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var first *identity.Identity
	for id := range ids {
		if first == nil {
			first = id
		}
		if id.Subject != "user-1" {
			t.Fatalf("identity %+v", id)
		}
	}
	if got := f.srv.requests.Load(); got != 1 {
		t.Fatalf("%d endpoint requests for %d concurrent lookups, want 1", got, n)
	}
}

func TestWaiterContextCancelled(t *testing.T) {
	f := newFixture(t, false, nil)
	release := make(chan struct{})
	defer close(release)
	f.srv.override = func(w http.ResponseWriter, _ *http.Request) {
		select {
		case <-release:
		case <-time.After(5 * time.Second):
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := f.p.Introspect(ctx, "tok")
	wantUnavailable(t, err)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("cause %v", err)
	}
}

func TestTokenChecks(t *testing.T) {
	withIssAud := func(c *config.IntrospectionProvider) {
		c.Issuer = "https://as.bank.example"
		c.Audiences = []string{"https://api.bank.example", "payments"}
	}
	tests := []struct {
		name   string
		resp   map[string]any
		reason string
	}{
		{"ok string aud", active(map[string]any{"iss": "https://as.bank.example", "aud": "payments"}), ""},
		{"ok array aud", active(map[string]any{"iss": "https://as.bank.example", "aud": []any{"other", "https://api.bank.example"}}), ""},
		{"wrong issuer", active(map[string]any{"iss": "https://evil.example", "aud": "payments"}), ReasonWrongIssuer},
		{"missing issuer", active(map[string]any{"aud": "payments"}), ReasonWrongIssuer},
		{"issuer not a string", active(map[string]any{"iss": []any{"https://as.bank.example"}, "aud": "payments"}), ReasonWrongIssuer},
		{"wrong audience", active(map[string]any{"iss": "https://as.bank.example", "aud": []any{"other"}}), ReasonWrongAudience},
		{"missing audience", active(map[string]any{"iss": "https://as.bank.example"}), ReasonWrongAudience},
		{"expired", active(map[string]any{"iss": "https://as.bank.example", "aud": "payments", "exp": t0.Add(-time.Second).Unix()}), ReasonExpired},
		{"exp now", active(map[string]any{"iss": "https://as.bank.example", "aud": "payments", "exp": t0.Unix()}), ReasonExpired},
		{"not yet valid", active(map[string]any{"iss": "https://as.bank.example", "aud": "payments", "nbf": t0.Add(time.Minute).Unix()}), ReasonNotYetValid},
		{"nbf passed", active(map[string]any{"iss": "https://as.bank.example", "aud": "payments", "nbf": t0.Add(-time.Minute).Unix()}), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, false, withIssAud)
			f.srv.set("tok", tt.resp)
			id, err := f.p.Introspect(context.Background(), "tok")
			if tt.reason == "" {
				if err != nil || id.Subject != "user-1" {
					t.Fatalf("%v %v", id, err)
				}
				return
			}
			wantReason(t, err, tt.reason)
		})
	}
	// Without iss/aud configured, neither is checked.
	f := newFixture(t, false, nil)
	f.srv.set("tok", active(map[string]any{"iss": "anyone", "aud": "anything"}))
	if _, err := f.p.Introspect(context.Background(), "tok"); err != nil {
		t.Fatal(err)
	}
}

func TestNotYetValidCachedOnlyUntilNbf(t *testing.T) {
	f := newFixture(t, false, func(c *config.IntrospectionProvider) { c.NegativeCacheTTL = config.Duration(time.Minute) })
	f.srv.set("tok", active(map[string]any{"nbf": t0.Add(5 * time.Second).Unix()}))
	_, err := f.p.Introspect(context.Background(), "tok")
	wantReason(t, err, ReasonNotYetValid)
	f.clk.Add(5 * time.Second)
	if _, err := f.p.Introspect(context.Background(), "tok"); err != nil {
		t.Fatalf("at nbf: %v", err)
	}
}

func TestAuthenticateCredentials(t *testing.T) {
	f := newFixture(t, false, nil)
	f.srv.set("tok", active(nil))
	tests := []struct {
		name   string
		header http.Header
		reason string // "" and ok false: ErrNoCredential
		ok     bool
	}{
		{"none", http.Header{}, "", false},
		{"basic scheme", http.Header{"Authorization": {"Basic dXNlcjpwdw=="}}, "", false},
		{"bearer", http.Header{"Authorization": {"Bearer tok"}}, "", true},
		{"bearer lower-case", http.Header{"Authorization": {"bearer tok"}}, "", true},
		{"dpop", http.Header{"Authorization": {"DPoP tok"}}, "", true},
		{"two headers", http.Header{"Authorization": {"Bearer tok", "Bearer tok"}}, ReasonAuthMultiple, false},
		{"empty bearer", http.Header{"Authorization": {"Bearer "}}, ReasonMalformedHeader, false},
		{"bearer alone", http.Header{"Authorization": {"Bearer"}}, ReasonMalformedHeader, false},
		{"two tokens", http.Header{"Authorization": {"Bearer a b"}}, ReasonMalformedHeader, false},
		{"oversized header", http.Header{"Authorization": {"Bearer " + strings.Repeat("a", 64<<10)}}, ReasonAuthTooLarge, false},
		{"oversized token", http.Header{"Authorization": {"Bearer " + strings.Repeat("a", MaxTokenBytes+1)}}, ReasonTokenTooLarge, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := f.p.Authenticate(context.Background(), &identity.Request{Header: tt.header})
			switch {
			case tt.ok:
				if err != nil || id == nil {
					t.Fatalf("%v", err)
				}
			case tt.reason == "":
				if !errors.Is(err, identity.ErrNoCredential) {
					t.Fatalf("err = %v", err)
				}
			default:
				wantReason(t, err, tt.reason)
			}
		})
	}
	if n := f.srv.requests.Load(); n != 1 {
		t.Errorf("%d endpoint requests, want 1 (the valid token, cached)", n)
	}
}

func TestCacheBounded(t *testing.T) {
	f := newFixture(t, false, func(c *config.IntrospectionProvider) { c.CacheSize = 32 })
	for i := range 200 {
		tok := fmt.Sprintf("tok-%d", i)
		f.srv.set(tok, active(nil))
		if _, err := f.p.Introspect(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.p.cache.len(); n > 32 {
		t.Fatalf("cache holds %d entries, bound 32", n)
	}
}

func TestCacheEvictsExpiredFirst(t *testing.T) {
	c := newCache(1) // one shard of one entry
	var a, b cacheKey
	a[0], b[0] = 1, 2
	c.put(a, entry{expires: t0.Add(time.Second)}, t0)
	c.put(b, entry{expires: t0.Add(time.Hour)}, t0.Add(2*time.Second))
	if _, ok := c.get(b, t0.Add(3*time.Second)); !ok || c.len() != 1 {
		t.Fatal("expired entry not evicted first")
	}
	c.put(a, entry{expires: t0}, t0) // already expired: not stored
	if _, ok := c.get(a, t0); ok {
		t.Fatal("expired entry stored")
	}
	var nilCache *cache
	nilCache.put(a, entry{expires: t0.Add(time.Hour)}, t0)
	if _, ok := nilCache.get(a, t0); ok || newCache(0) != nil {
		t.Fatal("disabled cache")
	}
}

func TestNewErrors(t *testing.T) {
	if _, err := New(Options{Name: "x", Config: config.IntrospectionProvider{URL: "https://as.example/i", AuthMethod: "private_key_jwt"}}); err == nil {
		t.Error("unknown auth method accepted")
	}
	if _, err := New(Options{Name: "x", Config: config.IntrospectionProvider{URL: "https://as.example/i", CAFile: "testdata/missing.pem"}}); err == nil {
		t.Error("missing CA file accepted")
	}
	if _, err := New(Options{Name: "x", Config: config.IntrospectionProvider{URL: "https://as.example/i", CAFile: "testdata/not-a-cert.pem"}}); err == nil {
		t.Error("CA file without certificates accepted")
	}
}

func TestDefaultClient(t *testing.T) {
	var _ interface{ Close() } = (*Provider)(nil) // the gateway closes dropped providers
	f := newFixture(t, false, nil)
	tr, ok := f.p.client.Transport.(*http.Transport)
	if !ok || tr.Proxy != nil {
		t.Fatal("the default client must not take a proxy from the environment")
	}
	if tr.TLSClientConfig == nil || tr.TLSClientConfig.MinVersion < tls.VersionTLS12 {
		t.Error("TLS minimum version")
	}
	if f.p.client.CheckRedirect == nil || f.p.client.Timeout != 2*time.Second {
		t.Error("redirects or timeout")
	}
}

func TestCAFile(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"active":true,"sub":"tls-user"}`))
	}))
	t.Cleanup(srv.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, ca := range []string{caFile, ""} {
		p, err := New(Options{Name: "as", Config: config.IntrospectionProvider{
			URL: srv.URL, ClientID: "c", ClientSecret: "s", Timeout: config.Duration(time.Second), CAFile: ca,
		}})
		if err != nil {
			t.Fatal(err)
		}
		id, err := p.Introspect(context.Background(), "tok")
		p.Close()
		if ca != "" && (err != nil || id.Subject != "tls-user") {
			t.Fatalf("with ca_file: %v", err)
		}
		if ca == "" {
			wantUnavailable(t, err) // system roots do not trust the test CA
		}
	}
}
