package jwtauth

import (
	"context"
	"testing"
	"time"
)

// benchToken returns a provider and a valid token of alg for the
// benchmarks (real clock: tokens valid for an hour).
func benchToken(b *testing.B, alg string, cacheSize int) (*Provider, string) {
	k := testKeys(b)
	cfg := baseConfig()
	cfg.CacheSize = cacheSize
	clk := newClock(time.Now())
	p := fileProvider(b, cfg, standardJWKS(b), clk, nil)
	var tok string
	switch alg {
	case "ES256":
		tok = sign(b, "ES256", k.ec256, map[string]any{"kid": "ec1"}, claimsAt(clk.Now()))
	case "RS256":
		tok = sign(b, "RS256", k.rsa1, map[string]any{"kid": "rsa1"}, claimsAt(clk.Now()))
	}
	if _, err := p.Verify(context.Background(), tok); err != nil {
		b.Fatal(err)
	}
	return p, tok
}

// BenchmarkVerifyCached is the realistic case: tokens repeat, so a request
// costs a SHA-256 and a sharded map lookup.
func BenchmarkVerifyCached(b *testing.B) {
	for _, alg := range []string{"ES256", "RS256"} {
		b.Run(alg, func(b *testing.B) {
			p, tok := benchToken(b, alg, 10000)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := p.Verify(context.Background(), tok); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkVerifyUncached is the cost per distinct token: the full check
// (header, key selection, signature, claims), with the cache disabled.
func BenchmarkVerifyUncached(b *testing.B) {
	for _, alg := range []string{"ES256", "RS256"} {
		b.Run(alg, func(b *testing.B) {
			p, tok := benchToken(b, alg, 0)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := p.Verify(context.Background(), tok); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
