package jwtauth

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// The second Verify of a token does no signature check.
func TestCacheHit(t *testing.T) {
	k := testKeys(t)
	clk := newClock(t0)
	obs := &recObserver{}
	p := fileProvider(t, baseConfig(), standardJWKS(t), clk, obs)
	tok := sign(t, "ES256", k.ec256, map[string]any{"kid": "ec1"}, claimsAt(t0))
	id1, err := p.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		id2, err := p.Verify(context.Background(), tok)
		if err != nil || id2 != id1 {
			t.Fatalf("cached identity %p %p %v", id1, id2, err)
		}
	}
	if n := p.sigChecks.Load(); n != 1 {
		t.Fatalf("%d signature checks, want 1", n)
	}
	if obs.hits != 5 || obs.misses != 1 {
		t.Fatalf("hits %d misses %d", obs.hits, obs.misses)
	}
	// A failed verification is not cached.
	bad := tok[:len(tok)-4] + "AAAA"
	for range 2 {
		_, err := p.Verify(context.Background(), bad)
		wantReason(t, err, reasonBadSignature)
	}
	if n := p.sigChecks.Load(); n != 3 {
		t.Fatalf("%d signature checks, want 3", n)
	}
}

// A cached token is refused once expired; within the leeway after exp it
// is re-verified (and passes), never served from the cache past exp.
func TestCacheExpiry(t *testing.T) {
	k := testKeys(t)
	clk := newClock(t0)
	p := fileProvider(t, baseConfig(), standardJWKS(t), clk, nil)
	tok := sign(t, "ES256", k.ec256, map[string]any{"kid": "ec1"}, with(claimsAt(t0), "exp", t0.Add(10*time.Second).Unix()))
	ctx := context.Background()
	if _, err := p.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
	clk.Advance(9 * time.Second)
	if _, err := p.Verify(ctx, tok); err != nil || p.sigChecks.Load() != 1 {
		t.Fatalf("%v, %d checks", err, p.sigChecks.Load())
	}
	clk.Advance(2 * time.Second) // past exp, within leeway
	if _, err := p.Verify(ctx, tok); err != nil || p.sigChecks.Load() != 2 {
		t.Fatalf("%v, %d checks", err, p.sigChecks.Load())
	}
	if p.cache.len() != 0 {
		t.Fatal("an expired identity was cached")
	}
	clk.Advance(30 * time.Second) // past exp + leeway
	_, err := p.Verify(ctx, tok)
	wantReason(t, err, reasonExpired)
}

// The cache stays within its bound under 3x CacheSize distinct tokens,
// from concurrent goroutines.
func TestCacheBound(t *testing.T) {
	k := testKeys(t)
	for _, size := range []int{1, 10, 50, 100} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			clk := newClock(t0)
			cfg := baseConfig()
			cfg.CacheSize = size
			p := fileProvider(t, cfg, standardJWKS(t), clk, nil)
			toks := make([]string, 3*size)
			for i := range toks {
				toks[i] = sign(t, "EdDSA", k.ed, map[string]any{"kid": "ed1"}, with(claimsAt(t0), "jti", fmt.Sprint(i)))
			}
			var wg sync.WaitGroup
			for w := range 4 {
				wg.Go(func() {
					for i := w; i < len(toks); i += 4 {
						if _, err := p.Verify(context.Background(), toks[i]); err != nil {
							t.Error(err)
						}
						if n := p.cache.len(); n > size {
							t.Errorf("cache holds %d > %d", n, size)
						}
					}
				})
			}
			wg.Wait()
			if n := p.cache.len(); n > size || n == 0 {
				t.Fatalf("cache holds %d, bound %d", n, size)
			}
		})
	}
}

// CacheSize 0 disables the cache.
func TestCacheDisabled(t *testing.T) {
	k := testKeys(t)
	clk := newClock(t0)
	cfg := baseConfig()
	cfg.CacheSize = 0
	obs := &recObserver{}
	p := fileProvider(t, cfg, standardJWKS(t), clk, obs)
	tok := sign(t, "ES256", k.ec256, map[string]any{"kid": "ec1"}, claimsAt(t0))
	for range 3 {
		if _, err := p.Verify(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
	}
	if p.sigChecks.Load() != 3 || obs.hits+obs.misses != 0 {
		t.Fatalf("%d checks, %d lookups", p.sigChecks.Load(), obs.hits+obs.misses)
	}
}

// Many goroutines verifying a mix of valid, repeated and hostile tokens
// while the key set is refreshed: no race, no wrong answer.
func TestConcurrentVerify(t *testing.T) {
	k := testKeys(t)
	clk := newClock(t0)
	srv := newKeyServer(t, standardJWKS(t))
	p := urlProvider(t, baseConfig(), srv.URL, clk.Now, nil)
	good := []string{
		sign(t, "ES256", k.ec256, map[string]any{"kid": "ec1"}, claimsAt(t0)),
		sign(t, "EdDSA", k.ed, map[string]any{"kid": "ed1"}, claimsAt(t0)),
		sign(t, "RS256", k.rsa1, map[string]any{"kid": "rsa1"}, claimsAt(t0)),
	}
	bad := []string{
		sign(t, "ES256", k.ec256b, map[string]any{"kid": "ec1"}, claimsAt(t0)),
		sign(t, "ES256", k.ec256, map[string]any{"kid": "unknown"}, claimsAt(t0)),
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 50 {
				if w == 0 && i%10 == 0 {
					clk.Advance(31 * time.Second)
					p.refreshKeys(context.Background(), false)
				}
				if _, err := p.Verify(context.Background(), good[(w+i)%len(good)]); err != nil {
					t.Error(err)
				}
				if id, err := p.Verify(context.Background(), bad[(w+i)%len(bad)]); err == nil {
					t.Errorf("accepted %v", id)
				}
			}
		})
	}
	wg.Wait()
}

// The stale-if-error warning is rate-limited to one per 30s.
func TestStaleWarningRateLimited(t *testing.T) {
	clk := newClock(t0)
	var buf syncBuffer
	srv := newKeyServer(t, standardJWKS(t))
	cfg := baseConfig()
	cfg.JWKSURL = srv.URL
	p, err := New(context.Background(), Options{Name: "x", Config: cfg, Now: clk.Now, Logger: buf.logger()})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	srv.setDown(true)
	for range 5 { // five failed refreshes within 25s (forced past the rate limit)
		clk.Advance(5 * time.Second)
		p.refreshKeys(context.Background(), true)
	}
	if n := strings.Count(buf.String(), "stale-if-error"); n != 1 {
		t.Fatalf("%d warnings in 25s:\n%s", n, buf.String())
	}
	clk.Advance(30 * time.Second)
	p.refreshKeys(context.Background(), true)
	if n := strings.Count(buf.String(), "stale-if-error"); n != 2 {
		t.Fatalf("%d warnings after 55s", n)
	}
}
