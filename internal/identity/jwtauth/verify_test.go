package jwtauth

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkapi/bulwark/internal/config"
	"github.com/bulwarkapi/bulwark/internal/identity"
)

// TestHostileTokens is the suite of attacks every JWT verifier must refuse,
// each with its exact audit reason.
func TestHostileTokens(t *testing.T) {
	k := testKeys(t)
	clk := newClock(t0)
	p := fileProvider(t, baseConfig(), standardJWKS(t), clk, nil)
	c := claimsAt(t0)
	good := sign(t, "RS256", k.rsa1, map[string]any{"kid": "rsa1"}, c)
	goodParts := strings.Split(good, ".")
	hdrPart := func(h map[string]any) string { return jsonB64(t, h) }
	payload := jsonB64(t, c)

	type tc struct {
		name, token, reason string
	}
	var cases []tc
	for _, none := range []string{"none", "None", "NONE", "nOnE"} {
		h := hdrPart(map[string]any{"alg": none, "typ": "JWT"})
		cases = append(cases,
			tc{"alg " + none + " empty signature", h + "." + payload + ".", reasonAlgNone},
			tc{"alg " + none + " with signature", h + "." + payload + "." + goodParts[2], reasonAlgNone},
		)
	}
	cases = append(cases, []tc{
		{"key confusion: HS256 with the RSA public key PEM", sign(t, "HS256", k.rsaPEM, map[string]any{"kid": "rsa1"}, c), reasonAlgNotAllowed},
		{"key confusion: HS256 with the RSA public key DER", sign(t, "HS256", k.rsaDER, map[string]any{"kid": "rsa1"}, c), reasonAlgNotAllowed},
		{"key confusion: HS512 without kid", sign(t, "HS512", k.rsaPEM, map[string]any{"kid": nil}, c), reasonAlgNotAllowed},
		{"alg not in allow-list (RS384)", sign(t, "RS384", k.rsa1, map[string]any{"kid": "rsa1"}, c), reasonAlgNotAllowed},
		{"alg in wrong case (rs256)", hdrPart(map[string]any{"alg": "rs256", "kid": "rsa1"}) + "." + payload + "." + goodParts[2], reasonAlgNotAllowed},
		{"signature stripped", goodParts[0] + "." + goodParts[1] + ".", reasonBadSignature},
		{"signature of another key", sign(t, "RS256", k.rsa2, map[string]any{"kid": "rsa1"}, c), reasonBadSignature},
		{"signature of another EC key", sign(t, "ES256", k.ec256b, map[string]any{"kid": "ec1"}, c), reasonBadSignature},
		{"payload altered after signing", goodParts[0] + "." + jsonB64(t, with(c, "sub", "admin")) + "." + goodParts[2], reasonBadSignature},
		{"header altered after signing", hdrPart(map[string]any{"alg": "RS256", "kid": "rsa1", "typ": "at+jwt"}) + "." + goodParts[1] + "." + goodParts[2], reasonBadSignature},
		{"ECDSA r=s=0 (psychic signature)", hdrPart(map[string]any{"alg": "ES256", "kid": "ec1"}) + "." + payload + "." + b64(make([]byte, 64)), reasonBadSignature},
		{"ECDSA r=s=0 without kid", hdrPart(map[string]any{"alg": "ES256"}) + "." + payload + "." + b64(make([]byte, 64)), reasonBadSignature},
		{"Ed25519 zero signature", hdrPart(map[string]any{"alg": "EdDSA", "kid": "ed1"}) + "." + payload + "." + b64(make([]byte, 64)), reasonBadSignature},
		{"expired", sign(t, "ES256", k.ec256, map[string]any{"kid": "ec1"}, with(c, "exp", t0.Add(-time.Minute).Unix())), reasonExpired},
		{"expired exactly at leeway", sign(t, "ES256", k.ec256, map[string]any{"kid": "ec1"}, with(c, "exp", t0.Add(-30*time.Second).Unix())), reasonExpired},
		{"not yet valid", sign(t, "ES256", k.ec256, map[string]any{"kid": "ec1"}, with(c, "nbf", t0.Add(time.Hour).Unix())), reasonNotYetValid},
		{"issued in the future", sign(t, "ES256", k.ec256, map[string]any{"kid": "ec1"}, with(c, "iat", t0.Add(time.Hour).Unix())), reasonIssuedFuture},
		{"wrong issuer", sign(t, "ES256", k.ec256, map[string]any{"kid": "ec1"}, with(c, "iss", "https://evil.test")), reasonWrongIssuer},
		{"issuer not a string", sign(t, "ES256", k.ec256, map[string]any{"kid": "ec1"}, with(c, "iss", []any{testIssuer})), reasonWrongIssuer},
		{"wrong audience", sign(t, "ES256", k.ec256, map[string]any{"kid": "ec1"}, with(c, "aud", "other-api")), reasonWrongAudience},
		{"wrong audience array", sign(t, "ES256", k.ec256, map[string]any{"kid": "ec1"}, with(c, "aud", []any{"a", "b"})), reasonWrongAudience},
		{"missing audience", sign(t, "ES256", k.ec256, map[string]any{"kid": "ec1"}, with(c, "aud", nil)), reasonMissingClaim},
		{"missing issuer", sign(t, "ES256", k.ec256, map[string]any{"kid": "ec1"}, with(c, "iss", nil)), reasonMissingClaim},
		{"missing exp", sign(t, "ES256", k.ec256, map[string]any{"kid": "ec1"}, with(c, "exp", nil)), reasonMissingClaim},
		{"exp not a number", sign(t, "ES256", k.ec256, map[string]any{"kid": "ec1"}, with(c, "exp", "tomorrow")), reasonInvalidClaim},
		{"missing subject", sign(t, "ES256", k.ec256, map[string]any{"kid": "ec1"}, with(c, "sub", nil)), reasonMissingClaim},
		{"empty subject", sign(t, "ES256", k.ec256, map[string]any{"kid": "ec1"}, with(c, "sub", "")), reasonMissingClaim},
		{"unknown kid", sign(t, "ES256", k.ec256, map[string]any{"kid": "nope"}, c), reasonUnknownKid},
		{"kid of a key of another type", sign(t, "RS256", k.rsa1, map[string]any{"kid": "ec1"}, c), reasonKeyMismatch},
		{"kid of a key for another alg", sign(t, "ES384", k.ec384, map[string]any{"kid": "ec1"}, c), reasonKeyMismatch},
		{"kid of an encryption key", sign(t, "ES256", k.ec256b, map[string]any{"kid": "enc1"}, c), reasonKeyMismatch},
		{"kid not a string", hdrPart(map[string]any{"alg": "RS256", "kid": 7}) + "." + payload + "." + goodParts[2], reasonMalformed},
		{"jku header injection", sign(t, "RS256", k.rsa1, map[string]any{"kid": "rsa1", "jku": "https://evil.test/jwks"}, c), reasonEmbeddedKey},
		{"x5u header injection", sign(t, "RS256", k.rsa1, map[string]any{"kid": "rsa1", "x5u": "https://evil.test/cert.pem"}, c), reasonEmbeddedKey},
		{"x5c header injection", sign(t, "RS256", k.rsa1, map[string]any{"kid": "rsa1", "x5c": []any{b64(k.rsaDER)}}, c), reasonEmbeddedKey},
		{"jwk header injection", sign(t, "ES256", k.ec256b, map[string]any{"jwk": map[string]any{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}}, c), reasonEmbeddedKey},
		{"unknown crit", sign(t, "RS256", k.rsa1, map[string]any{"kid": "rsa1", "crit": []any{"exp"}, "exp": 1}, c), reasonUnknownCrit},
		{"empty crit", sign(t, "RS256", k.rsa1, map[string]any{"kid": "rsa1", "crit": []any{}}, c), reasonUnknownCrit},
		{"b64 false with crit", sign(t, "RS256", k.rsa1, map[string]any{"kid": "rsa1", "b64": false, "crit": []any{"b64"}}, c), reasonUnknownCrit},
		{"b64 false without crit", sign(t, "RS256", k.rsa1, map[string]any{"kid": "rsa1", "b64": false}, c), reasonB64},
		{"wrong typ (DPoP proof as access token)", sign(t, "ES256", k.ec256, map[string]any{"kid": "ec1", "typ": "dpop+jwt"}, c), reasonBadTyp},
		{"wrong typ (JWE-ish)", sign(t, "ES256", k.ec256, map[string]any{"kid": "ec1", "typ": "JOSE"}, c), reasonBadTyp},
		{"oversized token", sign(t, "ES256", k.ec256, map[string]any{"kid": "ec1"}, with(c, "pad", strings.Repeat("A", 9000))), reasonTooLarge},
		{"two parts", goodParts[0] + "." + goodParts[1], reasonMalformed},
		{"four parts", good + ".x", reasonMalformed},
		{"JWE-like five parts", "a.b.c.d.e", reasonMalformed},
		{"header not base64url", "!!!." + payload + "." + goodParts[2], reasonMalformed},
		{"header padded base64", goodParts[0] + "==." + payload + "." + goodParts[2], reasonMalformed},
		{"header not JSON", b64([]byte("alg=RS256")) + "." + payload + "." + goodParts[2], reasonMalformed},
		{"header JSON null", b64([]byte("null")) + "." + payload + "." + goodParts[2], reasonMalformed},
		{"header without alg", hdrPart(map[string]any{"kid": "rsa1"}) + "." + payload + "." + goodParts[2], reasonMalformed},
		{"claims not JSON", signRawToken(t, "ES256", k.ec256, `{"alg":"ES256","kid":"ec1"}`, "not json"), reasonMalformed},
		{"claims an array", signRawToken(t, "ES256", k.ec256, `{"alg":"ES256","kid":"ec1"}`, `[1,2]`), reasonMalformed},
		{"empty", "", reasonMalformed},
	}...)

	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			id, err := p.Verify(context.Background(), tt.token)
			if id != nil {
				t.Fatalf("accepted: %+v", id)
			}
			wantReason(t, err, tt.reason)
			ie := err.(*identity.Error)
			if ie.Detail == "" {
				t.Error("no client-safe detail")
			}
			// Never echo the token: not its parts, not in Detail, not in Error().
			for _, part := range strings.Split(tt.token, ".") {
				if len(part) > 16 && (strings.Contains(ie.Detail, part) || strings.Contains(ie.Error(), part)) {
					t.Errorf("error echoes the token: %q", ie.Error())
				}
			}
		})
	}
}

// signRawToken signs a header and payload given verbatim.
func signRawToken(t *testing.T, alg string, key any, hdr, payload string) string {
	input := b64([]byte(hdr)) + "." + b64([]byte(payload))
	return input + "." + b64(signRaw(t, alg, key, []byte(input)))
}

func TestValidTokens(t *testing.T) {
	k := testKeys(t)
	clk := newClock(t0)
	cfg := baseConfig()
	cfg.RequiredClaims = []string{"jti"}
	p := fileProvider(t, cfg, standardJWKS(t), clk, nil)
	c := with(claimsAt(t0), "jti", "j-1")
	cases := []struct {
		name  string
		token string
	}{
		{"RS256", sign(t, "RS256", k.rsa1, map[string]any{"kid": "rsa1"}, c)},
		{"RS512", sign(t, "RS512", k.rsa1, map[string]any{"kid": "rsa1"}, c)},
		{"PS256", sign(t, "PS256", k.rsa1, map[string]any{"kid": "rsa1"}, c)},
		{"ES256", sign(t, "ES256", k.ec256, map[string]any{"kid": "ec1"}, c)},
		{"ES384", sign(t, "ES384", k.ec384, map[string]any{"kid": "ec384"}, c)},
		{"EdDSA", sign(t, "EdDSA", k.ed, map[string]any{"kid": "ed1"}, c)},
		{"ES256 without kid", sign(t, "ES256", k.ec256, map[string]any{"kid": nil}, c)},
		{"EdDSA without kid or typ", sign(t, "EdDSA", k.ed, map[string]any{"typ": nil}, c)},
		{"typ at+jwt", sign(t, "ES256", k.ec256, map[string]any{"kid": "ec1", "typ": "at+jwt"}, c)},
		{"typ application/at+JWT", sign(t, "ES256", k.ec256, map[string]any{"kid": "ec1", "typ": "application/at+JWT"}, c)},
		{"expired but within leeway", sign(t, "ES256", k.ec256, map[string]any{"kid": "ec1"}, with(c, "exp", t0.Add(-29*time.Second).Unix()))},
		{"nbf within leeway", sign(t, "ES256", k.ec256, map[string]any{"kid": "ec1"}, with(c, "nbf", t0.Add(29*time.Second).Unix()))},
		{"float dates", sign(t, "ES256", k.ec256, map[string]any{"kid": "ec1"}, with(c, "exp", float64(t0.Unix())+3600.5, "iat", float64(t0.Unix())-0.25, "nbf", float64(t0.Unix())-1.5))},
		{"aud as string", sign(t, "ES256", k.ec256, map[string]any{"kid": "ec1"}, with(c, "aud", testAudience))},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			id, err := p.Verify(context.Background(), tt.token)
			if err != nil {
				t.Fatal(err)
			}
			if id.Subject != "user-42" || id.Provider != "test-jwt" || id.Kind != identity.KindJWT {
				t.Fatalf("identity %+v", id)
			}
			if !slices.Equal(id.Scopes, []string{"accounts:read", "payments:write"}) {
				t.Errorf("scopes %q", id.Scopes)
			}
			if id.Expiry.IsZero() || id.Claims["jti"] != "j-1" {
				t.Errorf("expiry %v claims %v", id.Expiry, id.Claims)
			}
		})
	}
}

func TestIdentityMapping(t *testing.T) {
	k := testKeys(t)
	clk := newClock(t0)
	p := fileProvider(t, baseConfig(), standardJWKS(t), clk, nil)
	c := with(claimsAt(t0),
		"scope", nil,
		"scp", []any{"a", "b", 3},
		"realm_access", map[string]any{"roles": []any{"teller", "auditor"}},
		"tenant", "bank-7",
		"azp", "mobile-app",
		"client_id", "ignored",
		"cnf", map[string]any{"x5t#S256": "thumb", "jkt": "jkt-1"},
		"exp", float64(t0.Unix())+600.5,
	)
	id, err := p.Verify(context.Background(), sign(t, "ES256", k.ec256, map[string]any{"kid": "ec1"}, c))
	if err != nil {
		t.Fatal(err)
	}
	want := identity.Identity{Subject: "user-42", Scopes: []string{"a", "b"}, Roles: []string{"teller", "auditor"}, Tenant: "bank-7", ClientID: "mobile-app",
		Confirmation: identity.Confirmation{X5tS256: "thumb", JKT: "jkt-1"}}
	if id.Subject != want.Subject || !slices.Equal(id.Scopes, want.Scopes) || !slices.Equal(id.Roles, want.Roles) ||
		id.Tenant != want.Tenant || id.ClientID != want.ClientID || id.Confirmation != want.Confirmation {
		t.Fatalf("got %+v", id)
	}
	if got := id.Expiry; !got.Equal(t0.Add(600*time.Second + 500*time.Millisecond)) {
		t.Errorf("expiry %v", got)
	}

	// Other mappings: a custom subject, namespaced roles claim, client_id.
	cfg := baseConfig()
	cfg.Claims = config.ClaimMapping{Subject: "uid", Scopes: "scp", Roles: "https://bank.test/roles", Tenant: "org"}
	p2 := fileProvider(t, cfg, standardJWKS(t), clk, nil)
	c2 := with(claimsAt(t0), "uid", "u-9", "scp", "x y", "https://bank.test/roles", []any{"admin"}, "org", "o-1", "client_id", "cli")
	id, err = p2.Verify(context.Background(), sign(t, "ES256", k.ec256, map[string]any{"kid": "ec1"}, c2))
	if err != nil {
		t.Fatal(err)
	}
	if id.Subject != "u-9" || !slices.Equal(id.Scopes, []string{"x", "y"}) || !slices.Equal(id.Roles, []string{"admin"}) || id.Tenant != "o-1" || id.ClientID != "cli" {
		t.Fatalf("got %+v", id)
	}
}

// An HMAC provider verifies only with its secret; even a provider
// misconfigured with HS256 next to a JWKS never uses a JWKS key as a secret.
func TestHMAC(t *testing.T) {
	k := testKeys(t)
	clk := newClock(t0)
	secret := []byte("0123456789abcdef0123456789abcdef")
	cfg := baseConfig()
	cfg.Algorithms = []string{"HS256"}
	cfg.HMACSecret = string(secret)
	p, err := New(context.Background(), Options{Name: "hs", Config: cfg, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c := claimsAt(t0)
	if _, err := p.Verify(context.Background(), sign(t, "HS256", secret, nil, c)); err != nil {
		t.Fatal(err)
	}
	_, err = p.Verify(context.Background(), sign(t, "HS256", []byte("another secret of 32 bytes......"), nil, c))
	wantReason(t, err, reasonBadSignature)
	_, err = p.Verify(context.Background(), sign(t, "HS384", secret, nil, c))
	wantReason(t, err, reasonAlgNotAllowed)
	_, err = p.Verify(context.Background(), sign(t, "RS256", k.rsa1, nil, c))
	wantReason(t, err, reasonAlgNotAllowed)
	if n, _, stale := p.KeySetInfo(); n != 1 || stale {
		t.Errorf("KeySetInfo %d %v", n, stale)
	}

	// Misconfigured (the config package refuses this): HS256 and a JWKS.
	bad := baseConfig()
	bad.Algorithms = []string{"RS256", "HS256"}
	bad.HMACSecret = string(secret)
	p2 := fileProvider(t, bad, standardJWKS(t), clk, nil)
	_, err = p2.Verify(context.Background(), sign(t, "HS256", k.rsaPEM, map[string]any{"kid": "rsa1"}, c))
	wantReason(t, err, reasonBadSignature)

	// And without a secret, HS* with JWKS keys is a key mismatch, never a check.
	p3 := fileProvider(t, baseConfig(), standardJWKS(t), clk, nil)
	p3.allowed["HS256"] = p2.allowed["HS256"]
	_, err = p3.Verify(context.Background(), sign(t, "HS256", k.rsaPEM, map[string]any{"kid": "rsa1"}, c))
	wantReason(t, err, reasonKeyMismatch)
}

func TestAuthenticate(t *testing.T) {
	k := testKeys(t)
	clk := newClock(t0)
	p := fileProvider(t, baseConfig(), standardJWKS(t), clk, nil)
	good := sign(t, "ES256", k.ec256, map[string]any{"kid": "ec1"}, claimsAt(t0))
	req := func(auth ...string) *identity.Request {
		h := http.Header{}
		for _, a := range auth {
			h.Add("Authorization", a)
		}
		return &identity.Request{Method: "GET", URL: "https://api.test/x", Header: h}
	}
	cases := []struct {
		name    string
		r       *identity.Request
		noCred  bool
		reason  string
		subject string
	}{
		{"no header", req(), true, "", ""},
		{"basic auth", req("Basic dXNlcjpwYXNz"), true, "", ""},
		{"opaque token", req("Bearer 2YotnFZFEjr1zCsicMWpAA"), true, "", ""},
		{"two headers", req("Bearer "+good, "Bearer "+good), true, "", ""},
		{"dotted non-JWT", req("Bearer abc.def"), false, reasonMalformed, ""},
		{"valid bearer", req("Bearer " + good), false, "", "user-42"},
		{"valid DPoP scheme", req("DPoP " + good), false, "", "user-42"},
		{"lower-case scheme", req("bearer " + good), false, "", "user-42"},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			id, err := p.Authenticate(context.Background(), tt.r)
			switch {
			case tt.noCred:
				if !errors.Is(err, identity.ErrNoCredential) {
					t.Fatalf("got %v, want ErrNoCredential", err)
				}
			case tt.reason != "":
				wantReason(t, err, tt.reason)
			default:
				if err != nil || id.Subject != tt.subject {
					t.Fatalf("got %v %v", id, err)
				}
			}
		})
	}
	if p.Name() != "test-jwt" || p.Kind() != identity.KindJWT {
		t.Error("name/kind")
	}
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name string
		mod  func(*config.JWTProvider)
	}{
		{"no key source", func(c *config.JWTProvider) {}},
		{"missing file", func(c *config.JWTProvider) { c.JWKSFile = dir + "/none.json" }},
		{"invalid file", func(c *config.JWTProvider) { c.JWKSFile = writeFile(t, dir, "bad.json", []byte(`{"keys":"x"}`)) }},
		{"file with no usable key", func(c *config.JWTProvider) {
			c.JWKSFile = writeFile(t, dir, "oct.json", []byte(`{"keys":[{"kty":"oct","k":"AAAA"}]}`))
		}},
		{"alg none", func(c *config.JWTProvider) { c.Algorithms = []string{"none"} }},
		{"unknown alg", func(c *config.JWTProvider) { c.Algorithms = []string{"XS256"} }},
		{"no algs", func(c *config.JWTProvider) { c.Algorithms = nil }},
		{"HS without secret", func(c *config.JWTProvider) { c.Algorithms = []string{"HS256"} }},
		{"bad ca_file", func(c *config.JWTProvider) {
			c.JWKSURL = "https://127.0.0.1:1/jwks"
			c.CAFile = writeFile(t, dir, "ca.pem", []byte("not pem"))
		}},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			cfg := baseConfig()
			tt.mod(&cfg)
			p, err := New(context.Background(), Options{Name: "x", Config: cfg})
			if err == nil {
				p.Close()
				t.Fatal("New succeeded")
			}
		})
	}
}
