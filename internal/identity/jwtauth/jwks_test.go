package jwtauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulwarkapi/bulwark/internal/identity"
)

// A rotation is picked up without restart: a new kid verifies after the
// (early) refresh, and a removed kid stops verifying, even for a token
// whose identity was cached.
func TestJWKSRotation(t *testing.T) {
	k := testKeys(t)
	clk := newClock(t0)
	srv := newKeyServer(t, jwksJSON(t, jwkEntry{kid: "old", pub: &k.rsa1.PublicKey}))
	obs := &recObserver{}
	p := urlProvider(t, baseConfig(), srv.URL, clk.Now, obs)
	ctx := context.Background()
	c := claimsAt(t0)
	oldTok := sign(t, "RS256", k.rsa1, map[string]any{"kid": "old"}, c)
	newTok := sign(t, "ES256", k.ec256, map[string]any{"kid": "new"}, c)
	if _, err := p.Verify(ctx, oldTok); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Verify(ctx, oldTok); err != nil { // now cached
		t.Fatal(err)
	}

	// The IdP rotates: new key in, old key out.
	srv.set(jwksJSON(t, jwkEntry{kid: "new", pub: &k.ec256.PublicKey}), "")
	// Within MinRefreshInterval of the last fetch, the unknown kid does not
	// refetch.
	_, err := p.Verify(ctx, newTok)
	wantReason(t, err, reasonUnknownKid)
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches, want 1", n)
	}
	clk.Advance(31 * time.Second)
	if _, err := p.Verify(ctx, newTok); err != nil {
		t.Fatalf("new kid after rotation: %v", err)
	}
	if n := srv.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2", n)
	}
	_, err = p.Verify(ctx, oldTok)
	wantReason(t, err, reasonUnknownKid)
	if keys, _, stale := p.KeySetInfo(); keys != 1 || stale {
		t.Errorf("KeySetInfo %d %v", keys, stale)
	}
	if obs.fetched("ok") != 2 {
		t.Errorf("observer %v", obs.fetches)
	}
}

// The background refresh replaces the set on its own (real timers, short
// intervals).
func TestJWKSBackgroundRefresh(t *testing.T) {
	k := testKeys(t)
	srv := newKeyServer(t, jwksJSON(t, jwkEntry{kid: "a", pub: &k.ec256.PublicKey}))
	cfg := baseConfig()
	cfg.MinRefreshInterval = cfgDur(20 * time.Millisecond)
	cfg.RefreshInterval = cfgDur(20 * time.Millisecond)
	cfg.CacheSize = 0
	p := urlProvider(t, cfg, srv.URL, nil, nil)
	now := time.Now()
	tokA := sign(t, "ES256", k.ec256, map[string]any{"kid": "a"}, claimsAt(now))
	if _, err := p.Verify(context.Background(), tokA); err != nil {
		t.Fatal(err)
	}
	srv.set(jwksJSON(t, jwkEntry{kid: "b", pub: k.ed.Public()}), "")
	waitFor(t, func() bool { ks := p.keys.Load(); return len(ks.byKID["b"]) == 1 })
	// A removed kid: the early refresh may run again, but the key is gone.
	_, err := p.Verify(context.Background(), tokA)
	wantReason(t, err, reasonUnknownKid)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// With the key server down, the last good keys keep verifying, the failure
// is observed, and KeySetInfo says stale.
func TestJWKSStaleIfError(t *testing.T) {
	k := testKeys(t)
	clk := newClock(t0)
	srv := newKeyServer(t, jwksJSON(t, jwkEntry{kid: "a", pub: &k.ec256.PublicKey}))
	obs := &recObserver{}
	cfg := baseConfig()
	cfg.CacheSize = 0
	p := urlProvider(t, cfg, srv.URL, clk.Now, obs)
	ctx := context.Background()
	tok := sign(t, "ES256", k.ec256, map[string]any{"kid": "a"}, claimsAt(t0))
	srv.setDown(true)
	clk.Advance(time.Minute)
	// An unknown kid forces a refresh, which fails.
	_, err := p.Verify(ctx, sign(t, "ES256", k.ec256, map[string]any{"kid": "zz"}, claimsAt(t0)))
	wantReason(t, err, reasonUnknownKid)
	if obs.fetched("error") != 1 || obs.depError != 1 {
		t.Fatalf("observer %v dep %d", obs.fetches, obs.depError)
	}
	if _, err := p.Verify(ctx, tok); err != nil {
		t.Fatalf("last good key: %v", err)
	}
	keys, fetched, stale := p.KeySetInfo()
	if keys != 1 || !stale || !fetched.Equal(t0) {
		t.Errorf("KeySetInfo %d %v %v", keys, fetched, stale)
	}
	// Back up: the next refresh clears stale.
	srv.setDown(false)
	clk.Advance(time.Minute)
	p.refreshKeys(ctx, false)
	if _, _, stale := p.KeySetInfo(); stale {
		t.Error("still stale")
	}
}

// Never loaded and the key server down: New succeeds, tokens fail closed
// with *identity.Unavailable, and the provider recovers when the server
// does.
func TestJWKSNeverLoaded(t *testing.T) {
	k := testKeys(t)
	clk := newClock(t0)
	srv := newKeyServer(t, jwksJSON(t, jwkEntry{kid: "a", pub: &k.ec256.PublicKey}))
	srv.setDown(true)
	obs := &recObserver{}
	p := urlProvider(t, baseConfig(), srv.URL, clk.Now, obs)
	tok := sign(t, "ES256", k.ec256, map[string]any{"kid": "a"}, claimsAt(t0))
	_, err := p.Verify(context.Background(), tok)
	var un *identity.Unavailable
	if !errors.As(err, &un) || un.Provider != "test-jwt" {
		t.Fatalf("got %v, want *identity.Unavailable", err)
	}
	if n, _, stale := p.KeySetInfo(); n != 0 || !stale {
		t.Errorf("KeySetInfo %d %v", n, stale)
	}
	// Structural rejections need no keys.
	_, err = p.Verify(context.Background(), "eyJhbGciOiJub25lIn0.e30.")
	wantReason(t, err, reasonAlgNone)

	srv.setDown(false)
	clk.Advance(31 * time.Second)
	if _, err := p.Verify(context.Background(), tok); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
}

// A server that never answers: New returns after FetchTimeout.
func TestJWKSFetchTimeout(t *testing.T) {
	block := make(chan struct{})
	srv := newKeyServer(t, nil)
	srv.Config.Handler = blockingHandler(block)
	defer close(block)
	cfg := baseConfig()
	cfg.FetchTimeout = cfgDur(100 * time.Millisecond)
	start := time.Now()
	p := urlProvider(t, cfg, srv.URL, nil, nil)
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("New took %v", d)
	}
	if n, _, _ := p.KeySetInfo(); n != 0 {
		t.Fatal("keys loaded")
	}
}

// A burst of 1,000 tokens with random unknown kids causes at most one fetch
// beyond the initial one within MinRefreshInterval, counted at the server.
func TestJWKSUnknownKidBurst(t *testing.T) {
	k := testKeys(t)
	clk := newClock(t0)
	srv := newKeyServer(t, jwksJSON(t, jwkEntry{kid: "a", pub: &k.ec256.PublicKey}))
	p := urlProvider(t, baseConfig(), srv.URL, clk.Now, nil)
	sig := b64(make([]byte, 64))
	payload := jsonB64(t, claimsAt(t0))
	run := func() {
		var wg sync.WaitGroup
		errs := make(chan error, 1000)
		for i := range 1000 {
			wg.Go(func() {
				tok := jsonB64(t, map[string]any{"alg": "ES256", "kid": fmt.Sprintf("kid-%d-%x", i, randBytes(8))}) + "." + payload + "." + sig
				_, err := p.Verify(context.Background(), tok)
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			wantReason(t, err, reasonUnknownKid)
		}
	}
	clk.Advance(31 * time.Second) // the initial fetch no longer rate-limits
	run()
	if n := srv.fetches.Load(); n > 2 {
		t.Fatalf("%d fetches for a burst of 1,000 unknown kids, want at most 2", n)
	}
	// Still within the interval: none at all.
	before := srv.fetches.Load()
	clk.Advance(10 * time.Second)
	run()
	if n := srv.fetches.Load(); n != before {
		t.Fatalf("%d more fetches within MinRefreshInterval", n-before)
	}
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func TestCacheControl(t *testing.T) {
	p := &Provider{minRefresh: 30 * time.Second, refresh: 5 * time.Minute}
	cases := []struct {
		cc   []string
		want time.Duration
	}{
		{nil, 5 * time.Minute},
		{[]string{"public, max-age=120"}, 120 * time.Second},
		{[]string{`max-age="600"`}, 600 * time.Second},
		{[]string{"max-age=5"}, 30 * time.Second},
		{[]string{"max-age=0"}, 30 * time.Second},
		{[]string{"max-age=99999999"}, 24 * time.Hour},
		{[]string{"no-cache"}, 30 * time.Second},
		{[]string{"max-age=3600", "no-store"}, 30 * time.Second},
		{[]string{"Max-Age=900"}, 900 * time.Second},
		{[]string{"max-age=abc"}, 5 * time.Minute},
		{[]string{"s-maxage=100"}, 5 * time.Minute},
	}
	for _, tt := range cases {
		if got := p.intervalFrom(tt.cc); got != tt.want {
			t.Errorf("%q: %v, want %v", tt.cc, got, tt.want)
		}
	}

	// End to end: the server's max-age sets the schedule.
	k := testKeys(t)
	clk := newClock(t0)
	srv := newKeyServer(t, nil)
	srv.set(jwksJSON(t, jwkEntry{kid: "a", pub: &k.ec256.PublicKey}), "max-age=120")
	p2 := urlProvider(t, baseConfig(), srv.URL, clk.Now, nil)
	if d := p2.nextDelay(); d != 120*time.Second {
		t.Errorf("next refresh in %v, want 2m", d)
	}
	clk.Advance(100 * time.Second)
	if d := p2.nextDelay(); d != 20*time.Second {
		t.Errorf("next refresh in %v, want 20s", d)
	}
}

// The second fetch sends If-None-Match; a 304 keeps the set and counts as
// "unchanged".
func TestJWKSETag(t *testing.T) {
	k := testKeys(t)
	clk := newClock(t0)
	srv := newKeyServer(t, jwksJSON(t, jwkEntry{kid: "a", pub: &k.ec256.PublicKey}))
	obs := &recObserver{}
	p := urlProvider(t, baseConfig(), srv.URL, clk.Now, obs)
	before := p.keys.Load()
	clk.Advance(time.Minute)
	p.refreshKeys(context.Background(), false)
	if srv.gotINM.Load() != 1 || srv.n304.Load() != 1 {
		t.Fatalf("If-None-Match %d, 304s %d", srv.gotINM.Load(), srv.n304.Load())
	}
	if p.keys.Load() != before || obs.fetched("unchanged") != 1 {
		t.Fatalf("set replaced or not observed: %v", obs.fetches)
	}
	if _, fetched, _ := p.KeySetInfo(); !fetched.Equal(t0.Add(time.Minute)) {
		t.Errorf("fetched %v", fetched)
	}
}

// jwks_file: a changed file is picked up at the next refresh; an invalid
// one keeps the last good set.
func TestJWKSFileReload(t *testing.T) {
	k := testKeys(t)
	clk := newClock(t0)
	obs := &recObserver{}
	p := fileProvider(t, baseConfig(), jwksJSON(t, jwkEntry{kid: "a", pub: &k.ec256.PublicKey}), clk, obs)
	tokB := sign(t, "EdDSA", k.ed, map[string]any{"kid": "b"}, claimsAt(t0))
	clk.Advance(time.Minute)
	_, err := p.Verify(context.Background(), tokB)
	wantReason(t, err, reasonUnknownKid)
	if obs.fetched("unchanged") != 1 {
		t.Errorf("observer %v", obs.fetches)
	}
	if err := os.WriteFile(p.cfg.JWKSFile, jwksJSON(t, jwkEntry{kid: "b", pub: k.ed.Public()}), 0o600); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	if _, err := p.Verify(context.Background(), tokB); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.cfg.JWKSFile, []byte("{broken"), 0o600); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	p.refreshKeys(context.Background(), false)
	if _, err := p.Verify(context.Background(), tokB); err != nil {
		t.Fatal(err)
	}
	if obs.fetched("error") != 1 || obs.depError != 0 {
		t.Errorf("observer %v dep %d", obs.fetches, obs.depError)
	}
}

func TestParseJWKS(t *testing.T) {
	k := testKeys(t)
	good := string(jwksJSON(t, jwkEntry{kid: "a", pub: &k.ec256.PublicKey}))
	goodKey := good[len(`{"keys":[`) : len(good)-2]
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	privJWKS := string(jwksJSON(t, jwkEntry{kid: "p", pub: priv}))
	privKey := privJWKS[len(`{"keys":[`) : len(privJWKS)-2]
	many := `{"keys":[` + strings.Repeat(goodKey+",", 100) + goodKey + `]}`
	cases := []struct {
		name    string
		body    string
		keys    int
		skipped []string
		err     string
	}{
		{"one key", good, 1, nil, ""},
		{"private key skipped", `{"keys":[` + privKey + `,` + goodKey + `]}`, 1, []string{"private"}, ""},
		{"symmetric key skipped", `{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0"},` + goodKey + `]}`, 1, []string{"symmetric"}, ""},
		{"no kty skipped", `{"keys":[{"kid":"x","n":"AQAB"},` + goodKey + `]}`, 1, []string{"kty missing"}, ""},
		{"unknown kty skipped", `{"keys":[{"kty":"PQC","kid":"x"},` + goodKey + `]}`, 1, []string{"unsupported kty"}, ""},
		{"X25519 skipped", `{"keys":[{"kty":"OKP","crv":"X25519","kid":"x","x":"` + b64(make([]byte, 32)) + `"},` + goodKey + `]}`, 1, []string{"unsupported"}, ""},
		{"bad EC point skipped", `{"keys":[{"kty":"EC","crv":"P-256","kid":"x","x":"AA","y":"AA"},` + goodKey + `]}`, 1, []string{"invalid"}, ""},
		{"small RSA skipped", `{"keys":[{"kty":"RSA","kid":"r","n":"` + b64(make([]byte, 64)) + `","e":"AQAB"},` + goodKey + `]}`, 1, []string{""}, ""},
		{"kid not a string", `{"keys":[{"kty":"EC","kid":5},` + goodKey + `]}`, 1, []string{"kid"}, ""},
		{"only unusable keys", `{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`, 0, nil, "no usable key"},
		{"empty set", `{"keys":[]}`, 0, nil, "no usable key"},
		{"no keys member", `{"kty":"EC"}`, 0, nil, "no keys array"},
		{"not JSON", `<html>`, 0, nil, "not a JSON"},
		{"too many keys", many, 0, nil, "more than 100"},
		{"too large", `{"keys":[],"pad":"` + strings.Repeat("x", 1<<20) + `"}`, 0, nil, "exceeds"},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			ks, skipped, err := parseJWKS([]byte(tt.body))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(ks.keys) != tt.keys || len(skipped) != len(tt.skipped) {
				t.Fatalf("%d keys, skipped %+v", len(ks.keys), skipped)
			}
			for i, s := range tt.skipped {
				if !strings.Contains(skipped[i].reason, s) {
					t.Errorf("skip reason %q, want %q", skipped[i].reason, s)
				}
			}
		})
	}
}

// A skipped key is logged once, not at every refresh.
func TestSkippedKeyLoggedOnce(t *testing.T) {
	k := testKeys(t)
	clk := newClock(t0)
	var buf syncBuffer
	body := `{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0"},` + string(jwksJSON(t, jwkEntry{kid: "a", pub: &k.ec256.PublicKey}))[len(`{"keys":[`):]
	srv := newKeyServer(t, []byte(body))
	cfg := baseConfig()
	cfg.JWKSURL = srv.URL
	p, err := New(context.Background(), Options{Name: "x", Config: cfg, Now: clk.Now, Logger: buf.logger()})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	srv.set([]byte(body+" "), "") // new etag, same keys
	clk.Advance(time.Minute)
	p.refreshKeys(context.Background(), false)
	if n := strings.Count(buf.String(), "jwks key skipped"); n != 1 {
		t.Fatalf("logged %d times:\n%s", n, buf.String())
	}
	var m map[string]any
	_ = json.Unmarshal([]byte(strings.SplitN(buf.String(), "\n", 2)[0]), &m)
	if m["provider"] != "x" {
		t.Errorf("log line %v", m)
	}
}
