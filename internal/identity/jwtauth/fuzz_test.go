package jwtauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/bulwarkapi/bulwark/internal/config"
	"github.com/bulwarkapi/bulwark/internal/identity"
)

var update = flag.Bool("update", false, "regenerate testdata/fuzz_jwks.json and the fuzz seed corpora")

// fuzzJWKS is a fixed public key set whose private keys were discarded when
// it was generated: no input can carry a signature it verifies.
const fuzzJWKS = "testdata/fuzz_jwks.json"

// fuzzProvider verifies against fuzzJWKS at a fixed time, with every
// asymmetric algorithm allowed, so fuzzed tokens reach the deepest checks.
func fuzzProvider(tb testing.TB) *Provider {
	cfg := baseConfig()
	cfg.Algorithms = config.AsymmetricAlgorithms
	cfg.JWKSFile = fuzzJWKS
	cfg.CacheSize = 0
	clk := newClock(t0)
	p, err := New(context.Background(), Options{Name: "fuzz", Config: cfg, Now: clk.Now})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(p.Close)
	return p
}

// fuzzSeedTokens are well-formed tokens for the fixture's kids, signed by
// other keys, plus hostile shapes.
func fuzzSeedTokens(tb testing.TB) []string {
	k := testKeys(tb)
	c := claimsAt(t0)
	return []string{
		sign(tb, "RS256", k.rsa1, map[string]any{"kid": "fz-rsa"}, c),
		sign(tb, "PS256", k.rsa1, map[string]any{"kid": "fz-rsa"}, c),
		sign(tb, "ES256", k.ec256, map[string]any{"kid": "fz-ec"}, c),
		sign(tb, "ES256", k.ec256, nil, c),
		sign(tb, "ES384", k.ec384, map[string]any{"kid": "fz-ec384"}, c),
		sign(tb, "EdDSA", k.ed, map[string]any{"kid": "fz-ed"}, with(c, "scp", []any{"a"}, "realm_access", map[string]any{"roles": []any{"r"}})),
		sign(tb, "HS256", k.rsaPEM, map[string]any{"kid": "fz-rsa"}, c),
		sign(tb, "ES256", k.ec256, map[string]any{"kid": "fz-ec", "jku": "https://x"}, c),
		sign(tb, "ES256", k.ec256, map[string]any{"kid": "fz-ec", "crit": []any{"b64"}, "b64": false}, c),
		jsonB64(tb, map[string]any{"alg": "ES256", "kid": "fz-ec"}) + "." + jsonB64(tb, c) + "." + b64(make([]byte, 64)),
		jsonB64(tb, map[string]any{"alg": "EdDSA"}) + "." + jsonB64(tb, c) + "." + b64(make([]byte, 64)),
		jsonB64(tb, map[string]any{"alg": "nOnE"}) + "." + jsonB64(tb, c) + ".",
		"eyJhbGciOiJSUzI1NiJ9.e30.",
		"a.b.c",
		"..",
		"",
	}
}

func FuzzVerify(f *testing.F) {
	for _, s := range fuzzSeedTokens(f) {
		f.Add(s)
	}
	p := fuzzProvider(f)
	f.Fuzz(func(t *testing.T, token string) {
		id, err := p.Verify(context.Background(), token)
		if err == nil {
			t.Fatalf("accepted a token without the private key: %+v", id)
		}
		if _, ok := err.(*identity.Error); !ok {
			t.Fatalf("error %T %v, want *identity.Error", err, err)
		}
		if len(token) > 16 && strings.Contains(err.Error(), token) {
			t.Fatalf("error echoes the token")
		}
	})
}

func FuzzParseJWKS(f *testing.F) {
	fixture, err := os.ReadFile(fuzzJWKS)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(fixture)
	f.Add([]byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + b64(make([]byte, 32)) + `","use":"sig","key_ops":["verify"]}]}`))
	f.Add([]byte(`{"keys":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		ks, skipped, err := parseJWKS(body)
		if err != nil {
			if ks != nil {
				t.Fatal("a set with an error")
			}
			return
		}
		if len(ks.keys) == 0 || len(ks.keys)+len(skipped) > maxJWKSKeys {
			t.Fatalf("%d keys, %d skipped", len(ks.keys), len(skipped))
		}
		for _, k := range ks.keys {
			if k.kty != "RSA" && k.kty != "EC" && k.kty != "OKP" {
				t.Fatalf("kty %q accepted", k.kty)
			}
			if priv, _ := jwk.IsPrivateKey(k.jwk); priv {
				t.Fatal("private key accepted")
			}
		}
	})
}

// TestUpdateFuzzCorpus regenerates the fixed public JWKS and the checked-in
// seed corpora: go test -run TestUpdateFuzzCorpus -update.
func TestUpdateFuzzCorpus(t *testing.T) {
	if !*update {
		t.Skip("run with -update to regenerate")
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	fixture := jwksJSON(t,
		jwkEntry{kid: "fz-rsa", pub: &rsaKey.PublicKey, use: "sig"},
		jwkEntry{kid: "fz-ec", alg: "ES256", pub: &ec.PublicKey},
		jwkEntry{kid: "fz-ec384", pub: &ec384.PublicKey},
		jwkEntry{kid: "fz-ed", pub: edPub},
	)
	if err := os.MkdirAll("testdata", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fuzzJWKS, append(fixture, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	// One private JWK (small, P-256) as a FuzzParseJWKS seed, to exercise
	// the "private key skipped" path. It signs nothing.
	priv := jwksJSON(t, jwkEntry{kid: "fz-private", pub: ec})
	writeCorpus(t, "FuzzParseJWKS", map[string]string{
		"fixture": string(fixture),
		"private": string(priv),
		"mixed":   `{"keys":[{"kty":"oct","k":"c2VjcmV0"},{"kty":"PQC"},{"n":"AQAB"},` + string(fixture)[len(`{"keys":[`):],
	})
	seeds := map[string]string{}
	for i, s := range fuzzSeedTokens(t) {
		seeds[fmt.Sprintf("seed-%02d", i)] = s
	}
	writeCorpus(t, "FuzzVerify", seeds)
}

func writeCorpus(t *testing.T, target string, seeds map[string]string) {
	dir := filepath.Join("testdata", "fuzz", target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, s := range seeds {
		typ := "string"
		if target == "FuzzParseJWKS" {
			typ = "[]byte"
		}
		body := "go test fuzz v1\n" + typ + "(" + strconv.Quote(s) + ")\n"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
