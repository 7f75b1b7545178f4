package authn

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/bulwarkapi/bulwark/internal/identity"
	"github.com/bulwarkapi/bulwark/internal/pipeline"
	"github.com/bulwarkapi/bulwark/internal/spec"
)

// fake is a provider that answers from a table keyed by the credential it reads.
type fake struct {
	name   string
	kind   identity.Kind
	header string // header carrying its credential
	ids    map[string]*identity.Identity
	fail   map[string]error
	calls  int
}

func (f *fake) Name() string        { return f.name }
func (f *fake) Kind() identity.Kind { return f.kind }
func (f *fake) Authenticate(_ context.Context, r *identity.Request) (*identity.Identity, error) {
	f.calls++
	var cred string
	if f.kind == identity.KindJWT {
		t, _, ok := identity.BearerToken(r.Header)
		if !ok {
			return nil, identity.ErrNoCredential
		}
		cred = t
	} else {
		cred = r.Header.Get(f.header)
	}
	if cred == "" {
		return nil, identity.ErrNoCredential
	}
	if err, ok := f.fail[cred]; ok {
		return nil, err
	}
	if id, ok := f.ids[cred]; ok {
		return id, nil
	}
	return nil, identity.Fail("bad_signature", "The access token is not valid.", nil)
}

func fixtures(t *testing.T) (*Stage, *fake, *fake, *fake) {
	t.Helper()
	jwt := &fake{name: "idp", kind: identity.KindJWT, ids: map[string]*identity.Identity{
		"tok-all":      {Subject: "alice", Provider: "idp", Kind: identity.KindJWT, Scopes: []string{"accounts", "payments", "partners"}},
		"tok-accounts": {Subject: "bob", Provider: "idp", Kind: identity.KindJWT, Scopes: []string{"accounts"}},
	}, fail: map[string]error{
		"tok-expired": identity.Fail("expired", "The access token has expired.", nil),
		"tok-down":    &identity.Unavailable{Provider: "idp", Err: errors.New("jwks unreachable")},
	}}
	key := &fake{name: "partners", kind: identity.KindAPIKey, header: "X-API-Key", ids: map[string]*identity.Identity{
		"key-acme": {Subject: "acme", Provider: "partners", Kind: identity.KindAPIKey},
	}}
	mesh := &fake{name: "mesh", kind: identity.KindMTLS, header: "X-Test-Cert", ids: map[string]*identity.Identity{
		"svc-a": {Subject: "spiffe://bank/a", Provider: "mesh", Kind: identity.KindMTLS},
	}}
	doc, err := spec.Load(context.Background(), "testdata/api.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{API: "bank", Providers: []identity.Provider{jwt, key, mesh}, Spec: doc, Anonymous: []string{"GET /accounts/legacy"}})
	if err != nil {
		t.Fatal(err)
	}
	return s, jwt, key, mesh
}

func TestRequirements(t *testing.T) {
	s, _, _, _ := fixtures(t)
	tests := []struct {
		name      string
		op        string
		headers   map[string]string
		status    int // 0: allowed
		reason    string
		subject   string
		challenge string
	}{
		{"anonymous by spec", "GET /health", nil, 0, "", "", ""},
		{"anonymous by config", "GET /accounts/legacy", nil, 0, "", "", ""},
		{"no credentials", "GET /accounts", nil, 401, "credentials_missing", "", `Bearer realm="bank"`},
		{"valid token", "GET /accounts", map[string]string{"Authorization": "Bearer tok-accounts"}, 0, "", "bob", ""},
		{"lowercase scheme", "GET /accounts", map[string]string{"Authorization": "bearer tok-accounts"}, 0, "", "bob", ""},
		{"expired token", "GET /accounts", map[string]string{"Authorization": "Bearer tok-expired"}, 401, "expired", "", `error="invalid_token"`},
		{"forged token", "GET /accounts", map[string]string{"Authorization": "Bearer forged"}, 401, "bad_signature", "", `error="invalid_token"`},
		{"insufficient scope", "POST /payments", map[string]string{"Authorization": "Bearer tok-accounts"}, 403, "insufficient_scope", "", `scope="payments accounts"`},
		{"all scopes", "POST /payments", map[string]string{"Authorization": "Bearer tok-all"}, 0, "", "alice", ""},
		{"idp down fails closed", "GET /accounts", map[string]string{"Authorization": "Bearer tok-down"}, 503, "identity_provider_unavailable", "", ""},
		{"alternative: api key", "GET /partners", map[string]string{"X-API-Key": "key-acme"}, 0, "", "acme", ""},
		{"alternative: token", "GET /partners", map[string]string{"Authorization": "Bearer tok-all"}, 0, "", "alice", ""},
		{"alternative: wrong key", "GET /partners", map[string]string{"X-API-Key": "nope"}, 401, "bad_signature", "", ""},
		{"and: cert and token", "GET /mesh", map[string]string{"X-Test-Cert": "svc-a", "Authorization": "Bearer tok-accounts"}, 0, "", "bob", ""},
		{"and: token without cert", "GET /mesh", map[string]string{"Authorization": "Bearer tok-accounts"}, 401, "credentials_missing", "", ""},
		{"optional: none", "GET /optional", nil, 0, "", "", ""},
		{"unknown op needs any provider", "GET /not-in-spec", map[string]string{"X-API-Key": "key-acme"}, 0, "", "acme", ""},
		{"unknown op without credentials", "GET /not-in-spec", nil, 401, "credentials_missing", "", ""},
		{"api key for oauth op is not enough", "GET /accounts", map[string]string{"X-API-Key": "key-acme"}, 401, "credentials_missing", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method, path, _ := strings.Cut(tt.op, " ")
			r := httptest.NewRequest(method, "https://bank.example/api"+path, nil)
			for k, v := range tt.headers {
				r.Header.Set(k, v)
			}
			x := &pipeline.Exchange{Request: r, API: "bank", Operation: tt.op}
			if tt.op == "GET /not-in-spec" {
				x.Operation = ""
			}
			d := s.Handle(context.Background(), x)
			if tt.status == 0 {
				if d.Action == pipeline.Stop {
					t.Fatalf("stopped: %+v", d)
				}
				if tt.subject != "" && (x.Identity == nil || x.Identity.Subject != tt.subject) {
					t.Fatalf("identity %+v, want subject %s", x.Identity, tt.subject)
				}
				if tt.subject == "" && x.Identity != nil {
					t.Fatalf("anonymous request got identity %+v", x.Identity)
				}
				return
			}
			if d.Action != pipeline.Stop || d.Status != tt.status || d.Reason != tt.reason {
				t.Fatalf("decision %d %q, want %d %q", d.Status, d.Reason, tt.status, tt.reason)
			}
			if d.Status == 401 || d.Status == 403 {
				got := strings.Join(d.Headers.Values("Www-Authenticate"), " | ")
				if !strings.Contains(got, tt.challenge) {
					t.Fatalf("WWW-Authenticate %q lacks %q", got, tt.challenge)
				}
			}
			if d.Status == 503 && d.Headers.Get("Retry-After") == "" {
				t.Fatal("503 without Retry-After")
			}
			if strings.Contains(d.Detail, "tok-") {
				t.Fatalf("detail echoes the credential: %q", d.Detail)
			}
		})
	}
}

func TestEachProviderOncePerRequest(t *testing.T) {
	s, jwt, key, _ := fixtures(t)
	r := httptest.NewRequest("GET", "https://bank.example/api/partners", nil)
	r.Header.Set("Authorization", "Bearer forged")
	x := &pipeline.Exchange{Request: r, API: "bank", Operation: "GET /partners"}
	s.Handle(context.Background(), x)
	if jwt.calls != 1 || key.calls != 1 {
		t.Fatalf("calls jwt=%d key=%d, want 1 each", jwt.calls, key.calls)
	}
}

func TestTwoAuthorizationHeaders(t *testing.T) {
	s, _, _, _ := fixtures(t)
	r := httptest.NewRequest("GET", "https://bank.example/api/accounts", nil)
	r.Header.Add("Authorization", "Bearer tok-all")
	r.Header.Add("Authorization", "Bearer tok-accounts")
	d := s.Handle(context.Background(), &pipeline.Exchange{Request: r, API: "bank", Operation: "GET /accounts"})
	if d.Status != http.StatusBadRequest || d.Reason != "authorization_multiple" {
		t.Fatalf("%+v", d)
	}
}

func TestUnmappableSchemeIsConfigError(t *testing.T) {
	doc, err := spec.Load(context.Background(), "testdata/api.yaml")
	if err != nil {
		t.Fatal(err)
	}
	only := &fake{name: "idp", kind: identity.KindJWT}
	_, err = New(Options{API: "bank", Providers: []identity.Provider{only}, Spec: doc})
	if err == nil || !strings.Contains(err.Error(), `"partnerKey"`) || !strings.Contains(err.Error(), `"mesh"`) {
		t.Fatalf("want errors naming partnerKey and mesh, got %v", err)
	}
	// An explicit mapping closes the gap.
	_, err = New(Options{API: "bank", Providers: []identity.Provider{only}, Spec: doc,
		ByName: map[string]identity.Provider{"idp": only}, SecuritySchemes: map[string][]string{"partnerKey": {"idp"}, "mesh": {"idp"}}})
	if err != nil {
		t.Fatal(err)
	}
}

// TestSharedSpecsBuild: the real Open Banking specs' security
// requirements map onto a JWT provider, and every operation has one.
func TestSharedSpecsBuild(t *testing.T) {
	for _, name := range []string{"uk-open-banking-account-info-v4.yaml", "uk-open-banking-payment-initiation-v4.yaml"} {
		path := "../../../../shared/testdata/specs/" + name
		doc, err := spec.Load(context.Background(), path)
		if err != nil {
			t.Skipf("shared specs not available (%v): run from a checkout beside ../shared", err)
		}
		jwt := &fake{name: "idp", kind: identity.KindJWT}
		s, err := New(Options{API: "ob", Providers: []identity.Provider{jwt}, Spec: doc})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, op := range doc.Operations {
			req, ok := s.byOp[op.Key]
			if !ok || req.anonymous || len(req.alternatives) == 0 {
				t.Errorf("%s %s: requirement %+v", name, op.Key, req)
			}
		}
		// A token without the spec's scope is refused with 403.
		jwt.ids = map[string]*identity.Identity{"t": {Subject: "tpp", Kind: identity.KindJWT, Scopes: []string{"openid"}}}
		op := doc.Operations[0]
		r := httptest.NewRequest(op.Method, "https://ob.example/x", nil)
		r.Header.Set("Authorization", "Bearer t")
		d := s.Handle(context.Background(), &pipeline.Exchange{Request: r, API: "ob", Operation: op.Key})
		if d.Status != 403 || d.Reason != "insufficient_scope" {
			t.Errorf("%s %s without scopes: %d %s", name, op.Key, d.Status, d.Reason)
		}
	}
}
