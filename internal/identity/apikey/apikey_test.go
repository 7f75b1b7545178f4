package apikey

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/bulwarkapi/bulwark/internal/config"
	"github.com/bulwarkapi/bulwark/internal/identity"
)

// Test keys: never real.
const (
	keyAlice = "ak_test_alice_0123456789abcdef"
	keyBob   = "ak_test_bob_fedcba9876543210"
)

func digest(s string) string {
	d := sha256.Sum256([]byte(s))
	return hex.EncodeToString(d[:])
}

func testConfig() config.APIKeyProvider {
	return config.APIKeyProvider{
		Header: "X-API-Key",
		Query:  "api_key",
		Keys: []config.APIKey{
			{ID: "alice", SHA256: digest(keyAlice), Scopes: []string{"accounts:read"}, Roles: []string{"partner"}, Tenant: "bank-a"},
			// Upper-case hex is accepted, as by config validation.
			{ID: "bob", SHA256: strings.ToUpper(digest(keyBob)), Scopes: []string{"payments:write"}},
		},
	}
}

func newProvider(t testing.TB, c config.APIKeyProvider) *Provider {
	t.Helper()
	p, err := New("keys", c)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestNewRejectsBadDigest(t *testing.T) {
	for _, d := range []string{"zz", "abcd", ""} {
		c := testConfig()
		c.Keys[1].SHA256 = d
		if _, err := New("keys", c); err == nil {
			t.Errorf("digest %q accepted", d)
		}
	}
}

func TestAuthenticate(t *testing.T) {
	p := newProvider(t, testConfig())
	headerOnly := testConfig()
	headerOnly.Query = ""
	ph := newProvider(t, headerOnly)

	type tc struct {
		name       string
		p          *Provider
		header     http.Header
		query      url.Values
		wantSub    string
		wantReason string // "" with wantSub "": ErrNoCredential
		wantCode   string
		fromQuery  bool
	}
	h := func(kv ...string) http.Header {
		out := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			out.Add(kv[i], kv[i+1])
		}
		return out
	}
	tests := []tc{
		{name: "header alice", p: p, header: h("X-API-Key", keyAlice), wantSub: "alice"},
		{name: "header bob upper-case digest", p: p, header: h("X-API-Key", keyBob), wantSub: "bob"},
		{name: "header name case-insensitive", p: p, header: http.Header{"X-Api-Key": {keyAlice}}, wantSub: "alice"},
		{name: "query", p: p, query: url.Values{"api_key": {keyBob}}, wantSub: "bob", fromQuery: true},
		{name: "query not configured", p: ph, query: url.Values{"api_key": {keyBob}}},
		{name: "nothing", p: p, header: h("Authorization", "Bearer x")},
		{name: "two headers", p: p, header: h("X-API-Key", keyAlice, "X-API-Key", keyBob), wantReason: ReasonMultiple, wantCode: identity.CodeInvalidRequest},
		{name: "same key twice", p: p, header: h("X-API-Key", keyAlice, "X-API-Key", keyAlice), wantReason: ReasonMultiple, wantCode: identity.CodeInvalidRequest},
		{name: "two query values", p: p, query: url.Values{"api_key": {keyAlice, keyBob}}, wantReason: ReasonMultiple, wantCode: identity.CodeInvalidRequest, fromQuery: true},
		{name: "header and query", p: p, header: h("X-API-Key", keyAlice), query: url.Values{"api_key": {keyAlice}}, wantReason: ReasonMultiple, wantCode: identity.CodeInvalidRequest},
		{name: "unknown", p: p, header: h("X-API-Key", "ak_test_mallory"), wantReason: ReasonUnknown, wantCode: identity.CodeInvalidToken},
		{name: "digest instead of key", p: p, header: h("X-API-Key", digest(keyAlice)), wantReason: ReasonUnknown, wantCode: identity.CodeInvalidToken},
		{name: "prefix of key", p: p, header: h("X-API-Key", keyAlice[:len(keyAlice)-1]), wantReason: ReasonUnknown, wantCode: identity.CodeInvalidToken},
		{name: "empty", p: p, header: h("X-API-Key", ""), wantReason: ReasonEmpty, wantCode: identity.CodeInvalidRequest},
		{name: "too large", p: p, header: h("X-API-Key", strings.Repeat("k", MaxKeyBytes+1)), wantReason: ReasonTooLarge, wantCode: identity.CodeInvalidRequest},
		{name: "max size unknown", p: p, header: h("X-API-Key", strings.Repeat("k", MaxKeyBytes)), wantReason: ReasonUnknown, wantCode: identity.CodeInvalidToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &identity.Request{Method: "GET", Header: tt.header, Query: tt.query}
			if r.Header == nil {
				r.Header = http.Header{}
			}
			before := r.Header.Clone()
			id, err := tt.p.Authenticate(context.Background(), r)
			if got := tt.p.FromQuery(r); got != tt.fromQuery {
				t.Errorf("FromQuery = %v, want %v", got, tt.fromQuery)
			}
			// Authenticate must not modify the request's header slices.
			for k, v := range before {
				if !slices.Equal(r.Header[k], v) {
					t.Errorf("header %s modified: %q", k, r.Header[k])
				}
			}
			switch {
			case tt.wantSub != "":
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				if id.Subject != tt.wantSub || id.Provider != "keys" || id.Kind != identity.KindAPIKey || id.Claims != nil {
					t.Errorf("identity = %+v", id)
				}
			case tt.wantReason == "":
				if !errors.Is(err, identity.ErrNoCredential) {
					t.Fatalf("err = %v, want ErrNoCredential", err)
				}
			default:
				var ie *identity.Error
				if !errors.As(err, &ie) {
					t.Fatalf("err = %v (%T), want *identity.Error", err, err)
				}
				if ie.Reason != tt.wantReason || ie.Code != tt.wantCode {
					t.Errorf("got %s/%s, want %s/%s", ie.Code, ie.Reason, tt.wantCode, tt.wantReason)
				}
				if id != nil {
					t.Errorf("identity returned with error")
				}
				if strings.Contains(ie.Error()+ie.Detail, tt.header.Get("X-API-Key")) && tt.header.Get("X-API-Key") != "" {
					t.Errorf("error mentions the key: %q", ie.Error())
				}
			}
		})
	}
}

func TestIdentityFromKey(t *testing.T) {
	p := newProvider(t, testConfig())
	r := &identity.Request{Header: http.Header{"X-Api-Key": {keyAlice}}}
	id, err := p.Authenticate(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(id.Scopes, []string{"accounts:read"}) || !slices.Equal(id.Roles, []string{"partner"}) || id.Tenant != "bank-a" {
		t.Errorf("identity = %+v", id)
	}
	// Pre-built once and shared.
	id2, _ := p.Authenticate(context.Background(), r)
	if id != id2 {
		t.Error("identity not shared between requests")
	}
	if p.Name() != "keys" || p.Kind() != identity.KindAPIKey || p.Header() != "X-API-Key" || p.QueryParam() != "api_key" {
		t.Error("accessors")
	}
}

func TestQueryOnlyProvider(t *testing.T) {
	c := testConfig()
	c.Header = ""
	p := newProvider(t, c)
	r := &identity.Request{Header: http.Header{"X-Api-Key": {keyAlice}}}
	if _, err := p.Authenticate(context.Background(), r); !errors.Is(err, identity.ErrNoCredential) {
		t.Errorf("header used by a query-only provider: %v", err)
	}
	r.Query = url.Values{"api_key": {keyAlice}}
	if id, err := p.Authenticate(context.Background(), r); err != nil || id.Subject != "alice" || !p.FromQuery(r) {
		t.Errorf("query: %v %v", id, err)
	}
}

// FuzzAPIKey: arbitrary header values never panic and never authenticate
// unless they equal a configured key.
func FuzzAPIKey(f *testing.F) {
	for _, s := range []string{keyAlice, keyBob, "", "x", digest(keyAlice), keyAlice + "\x00", strings.Repeat("a", MaxKeyBytes+1)} {
		f.Add(s)
	}
	p := newProvider(f, testConfig())
	f.Fuzz(func(t *testing.T, v string) {
		r := &identity.Request{Header: http.Header{"X-Api-Key": {v}}}
		id, err := p.Authenticate(context.Background(), r)
		if err == nil {
			if v != keyAlice && v != keyBob {
				t.Fatalf("authenticated %q as %s", v, id.Subject)
			}
			return
		}
		if v == keyAlice || v == keyBob {
			t.Fatalf("configured key refused: %v", err)
		}
		var ie *identity.Error
		if !errors.As(err, &ie) {
			t.Fatalf("err = %v (%T)", err, err)
		}
	})
}

func BenchmarkAuthenticate(b *testing.B) {
	c := testConfig()
	for i := range 100 {
		c.Keys = append(c.Keys, config.APIKey{ID: "k" + string(rune('a'+i%26)), SHA256: digest("key" + string(rune(i)))})
	}
	p := newProvider(b, c)
	r := &identity.Request{Header: http.Header{"X-Api-Key": {keyBob}}}
	for b.Loop() {
		if _, err := p.Authenticate(context.Background(), r); err != nil {
			b.Fatal(err)
		}
	}
}
