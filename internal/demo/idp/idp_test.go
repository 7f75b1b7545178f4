package idp

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/bulwarkapi/bulwark/internal/config"
	"github.com/bulwarkapi/bulwark/internal/identity"
	"github.com/bulwarkapi/bulwark/internal/identity/jwtauth"
)

// provider is the gateway's own JWT provider, configured as the demo
// configures it, reading the IdP's JWKS file.
func provider(t *testing.T, p *IdP) *jwtauth.Provider {
	t.Helper()
	dir := t.TempDir()
	if err := p.WriteJWKS(filepath.Join(dir, "jwks.json")); err != nil {
		t.Fatal(err)
	}
	yaml := fmt.Sprintf(`
listeners: [{addr: "127.0.0.1:0", insecure: true}]
admin: {disabled: true}
identity:
  - name: demo-idp
    jwt: {issuer: %q, audiences: [%s], jwks_file: jwks.json, algorithms: [ES256], required_claims: [sub]}
apis:
  - {name: bank, upstream: {url: "http://127.0.0.1:1"}, authenticate: [demo-idp]}
`, Issuer, Audience)
	cfg, err := config.Parse([]byte(yaml), filepath.Join(dir, "bulwark.yaml"), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	prov, err := jwtauth.New(t.Context(), jwtauth.Options{Name: "demo-idp", Config: *cfg.Identity[0].JWT})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prov.Close)
	return prov
}

func TestIssuedTokensVerifyWithTheGatewayProvider(t *testing.T) {
	p, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	prov := provider(t, p)
	tok := p.Issue("cus_abcdefgh2345", []string{"acc_aaaaaaaaaaaa", "acc_bbbbbbbbbbbb"}, []string{"card_cccccccccccc"}, []string{"customer"})
	id, err := prov.Verify(context.Background(), tok)
	if err != nil {
		t.Fatalf("the gateway refuses the IdP's token: %v", err)
	}
	if id.Subject != "cus_abcdefgh2345" || !slices.Equal(id.Scopes, []string{"accounts", "payments", "cards"}) || !slices.Equal(id.Roles, []string{"customer"}) {
		t.Fatalf("identity: %+v", id)
	}
	if ids, _ := id.Claims["account_ids"].([]any); len(ids) != 2 || ids[1] != "acc_bbbbbbbbbbbb" {
		t.Fatalf("account_ids: %#v", id.Claims["account_ids"])
	}
	if ids, _ := id.Claims["card_ids"].([]any); len(ids) != 1 || ids[0] != "card_cccccccccccc" {
		t.Fatalf("card_ids: %#v", id.Claims["card_ids"])
	}
	if until := time.Until(id.Expiry); until < DefaultLifetime-time.Minute || until > DefaultLifetime {
		t.Fatalf("expiry in %s, want about %s", until, DefaultLifetime)
	}
	// No roles and no cards are empty lists, not null claims.
	if _, err := prov.Verify(context.Background(), p.Issue("cus_abcdefgh2346", []string{"acc_aaaaaaaaaaaa"}, nil, nil)); err != nil {
		t.Fatal(err)
	}
}

// TestIssuedTokensVerifyWithJWX checks the tokens and the JWKS with an
// independent implementation.
func TestIssuedTokensVerifyWithJWX(t *testing.T) {
	p, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	set, err := jwk.Parse(p.JWKS())
	if err != nil {
		t.Fatal(err)
	}
	key, ok := set.Key(0)
	if !ok || set.Len() != 1 {
		t.Fatal("want one key in the JWKS")
	}
	if kid, _ := key.KeyID(); kid != p.KeyID() {
		t.Fatalf("kid %q, want %q", kid, p.KeyID())
	}
	if alg, _ := key.Algorithm(); alg.String() != "ES256" {
		t.Fatalf("alg %v", alg)
	}
	if _, isPrivate := key.(jwk.ECDSAPrivateKey); isPrivate || strings.Contains(string(p.JWKS()), `"d"`) {
		t.Fatal("the JWKS carries the private key")
	}
	tok, err := jwt.Parse([]byte(p.Issue("cus_abcdefgh2345", []string{"acc_aaaaaaaaaaaa"}, nil, []string{"customer"})),
		jwt.WithKeySet(set), jwt.WithIssuer(Issuer), jwt.WithAudience(Audience), jwt.WithValidate(true))
	if err != nil {
		t.Fatal(err)
	}
	if sub, _ := tok.Subject(); sub != "cus_abcdefgh2345" {
		t.Fatalf("sub %q", sub)
	}
	var scope string
	if err := tok.Get("scope", &scope); err != nil || scope != Scope {
		t.Fatalf("scope %q %v", scope, err)
	}
}

// TestForgeriesAreRefused: what the demo's attackers present is refused
// by the gateway's provider for the reason the demo expects.
func TestForgeriesAreRefused(t *testing.T) {
	p, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	prov := provider(t, p)
	claims := p.Claims("cus_abcdefgh2345", []string{"acc_aaaaaaaaaaaa"}, nil, []string{"bank-admin"})
	hs := Segment(map[string]any{"alg": "HS256", "typ": "JWT", "kid": p.KeyID()}) + "." + Segment(claims)
	m := hmac.New(sha256.New, p.PublicKeyPEM())
	m.Write([]byte(hs))
	other, _ := New(Options{})
	expired := p.Claims("cus_abcdefgh2345", nil, nil, nil)
	expired["exp"] = time.Now().Add(-time.Hour).Unix()
	wrongAud := p.Claims("cus_abcdefgh2345", nil, nil, nil)
	wrongAud["aud"] = "another-api"
	tests := []struct {
		name, token, reason string
	}{
		{"alg none", Segment(map[string]any{"alg": "none", "typ": "JWT"}) + "." + Segment(claims) + ".", "alg_none"},
		{"HS256 with the public key", hs + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil)), "alg_not_allowed"},
		{"another IdP's key", other.Sign(claims), "unknown_kid"},
		{"expired", p.Sign(expired), "expired"},
		{"wrong audience", p.Sign(wrongAud), "wrong_audience"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := prov.Verify(context.Background(), tt.token)
			var ie *identity.Error
			if !errors.As(err, &ie) || ie.Reason != tt.reason {
				t.Fatalf("Verify = %v, want reason %s", err, tt.reason)
			}
		})
	}
}

func TestClaimsAndHeader(t *testing.T) {
	now := time.Date(2025, 6, 30, 12, 0, 0, 0, time.UTC)
	p, err := New(Options{Lifetime: time.Minute, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	tok := p.Issue("cus_x", []string{"acc_1"}, []string{"card_1"}, []string{"customer"})
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %s", tok)
	}
	var hdr, c map[string]any
	for i, dst := range []*map[string]any{&hdr, &c} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil || json.Unmarshal(b, dst) != nil {
			t.Fatalf("segment %d: %v", i, err)
		}
	}
	if hdr["alg"] != "ES256" || hdr["kid"] != p.KeyID() || hdr["typ"] != "JWT" {
		t.Fatalf("header %v", hdr)
	}
	want := map[string]any{"iss": Issuer, "aud": Audience, "sub": "cus_x", "scope": Scope,
		"iat": float64(now.Unix()), "exp": float64(now.Add(time.Minute).Unix()), "nbf": float64(now.Add(-nbfSkew).Unix())}
	for k, v := range want {
		if c[k] != v {
			t.Errorf("claim %s = %v, want %v", k, c[k], v)
		}
	}
	for _, k := range []string{"jti", "account_ids", "card_ids", "roles"} {
		if c[k] == nil {
			t.Errorf("claim %s missing", k)
		}
	}
	if sig, _ := base64.RawURLEncoding.DecodeString(parts[2]); len(sig) != 64 {
		t.Fatalf("ES256 signature of %d bytes, want 64 (r||s)", len(sig))
	}
	if !strings.HasPrefix(string(p.PublicKeyPEM()), "-----BEGIN PUBLIC KEY-----") {
		t.Fatal("public key PEM")
	}
}
