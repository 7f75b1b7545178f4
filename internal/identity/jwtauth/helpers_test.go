package jwtauth

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/bulwarkapi/bulwark/internal/config"
	"github.com/bulwarkapi/bulwark/internal/identity"
)

// Test keys are generated once per test run; no private key is committed.
type testKeySet struct {
	rsa1, rsa2     *rsa.PrivateKey
	ec256, ec256b  *ecdsa.PrivateKey
	ec384          *ecdsa.PrivateKey
	ed, ed2        ed25519.PrivateKey
	rsaPEM, rsaDER []byte // rsa1's public key, for key-confusion tokens
}

var (
	keysOnce sync.Once
	tkeys    testKeySet
)

func testKeys(tb testing.TB) *testKeySet {
	tb.Helper()
	keysOnce.Do(func() {
		must := func(err error) {
			if err != nil {
				panic(err)
			}
		}
		var err error
		tkeys.rsa1, err = rsa.GenerateKey(rand.Reader, 2048)
		must(err)
		tkeys.rsa2, err = rsa.GenerateKey(rand.Reader, 2048)
		must(err)
		tkeys.ec256, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		must(err)
		tkeys.ec256b, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		must(err)
		tkeys.ec384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		must(err)
		_, tkeys.ed, err = ed25519.GenerateKey(rand.Reader)
		must(err)
		_, tkeys.ed2, err = ed25519.GenerateKey(rand.Reader)
		must(err)
		k, err := jwk.Import(&tkeys.rsa1.PublicKey)
		must(err)
		tkeys.rsaPEM, err = jwk.Pem(k)
		must(err)
		tkeys.rsaDER, err = x509.MarshalPKIXPublicKey(&tkeys.rsa1.PublicKey)
		must(err)
	})
	return &tkeys
}

// jwkEntry describes one public key of a test JWKS.
type jwkEntry struct {
	kid, alg, use string
	pub           any
}

func jwksJSON(tb testing.TB, entries ...jwkEntry) []byte {
	tb.Helper()
	keys := make([]any, 0, len(entries))
	for _, e := range entries {
		k, err := jwk.Import(e.pub)
		if err != nil {
			tb.Fatal(err)
		}
		for name, v := range map[string]string{"kid": e.kid, "alg": e.alg, "use": e.use} {
			if v != "" {
				if err := k.Set(name, v); err != nil {
					tb.Fatal(err)
				}
			}
		}
		keys = append(keys, k)
	}
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func jsonB64(tb testing.TB, v any) string {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b64(b)
}

// signRaw signs input with the algorithm's primitive directly (the
// standard library, independently of jwx).
func signRaw(tb testing.TB, alg string, key any, input []byte) []byte {
	tb.Helper()
	hashFor := map[string]crypto.Hash{"256": crypto.SHA256, "384": crypto.SHA384, "512": crypto.SHA512}
	var h crypto.Hash
	if alg != "EdDSA" {
		h = hashFor[alg[2:]]
	}
	digest := func() []byte { d := h.New(); d.Write(input); return d.Sum(nil) }
	var (
		sig []byte
		err error
	)
	switch alg[:2] {
	case "RS":
		sig, err = rsa.SignPKCS1v15(rand.Reader, key.(*rsa.PrivateKey), h, digest())
	case "PS":
		sig, err = rsa.SignPSS(rand.Reader, key.(*rsa.PrivateKey), h, digest(), &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	case "ES":
		k := key.(*ecdsa.PrivateKey)
		var r, s *big.Int
		r, s, err = ecdsa.Sign(rand.Reader, k, digest())
		size := (k.Curve.Params().BitSize + 7) / 8
		sig = make([]byte, 2*size)
		r.FillBytes(sig[:size])
		s.FillBytes(sig[size:])
	case "Ed":
		sig = ed25519.Sign(key.(ed25519.PrivateKey), input)
	case "HS":
		m := hmac.New(h.New, key.([]byte))
		m.Write(input)
		sig = m.Sum(nil)
	default:
		tb.Fatalf("no signer for %s", alg)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return sig
}

// sign makes a compact JWS of claims with header hdr (alg set from alg
// unless hdr has one), signed by key with alg.
func sign(tb testing.TB, alg string, key any, hdr, claims map[string]any) string {
	tb.Helper()
	h := map[string]any{"alg": alg, "typ": "JWT"}
	for k, v := range hdr {
		if v == nil {
			delete(h, k)
			continue
		}
		h[k] = v
	}
	input := jsonB64(tb, h) + "." + jsonB64(tb, claims)
	return input + "." + b64(signRaw(tb, alg, key, []byte(input)))
}

// t0 is the fake "now" of the tests.
var t0 = time.Unix(1_800_000_000, 0)

type fakeClock struct{ ns atomic.Int64 }

func newClock(t time.Time) *fakeClock {
	c := &fakeClock{}
	c.ns.Store(t.UnixNano())
	return c
}
func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

const (
	testIssuer   = "https://idp.bank.test/realms/retail"
	testAudience = "payments-api"
)

func claimsAt(now time.Time) map[string]any {
	return map[string]any{
		"iss":   testIssuer,
		"aud":   []any{"other", testAudience},
		"sub":   "user-42",
		"exp":   now.Add(time.Hour).Unix(),
		"iat":   now.Unix(),
		"scope": "accounts:read payments:write",
	}
}

func with(m map[string]any, kv ...any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
			continue
		}
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

func baseConfig() config.JWTProvider {
	return config.JWTProvider{
		Issuer:             testIssuer,
		Audiences:          []string{testAudience},
		Algorithms:         []string{"RS256", "RS512", "PS256", "ES256", "ES384", "EdDSA"},
		Leeway:             config.Duration(30 * time.Second),
		MaxTokenBytes:      config.DefaultMaxTokenBytes,
		RefreshInterval:    config.Duration(5 * time.Minute),
		MinRefreshInterval: config.Duration(30 * time.Second),
		FetchTimeout:       config.Duration(2 * time.Second),
		CacheSize:          1000,
		Claims: config.ClaimMapping{
			Subject: "sub", Scopes: "scope", Roles: "realm_access.roles", Tenant: "tenant",
		},
	}
}

// standardJWKS is the key set of the hostile suite.
func standardJWKS(tb testing.TB) []byte {
	k := testKeys(tb)
	return jwksJSON(tb,
		jwkEntry{kid: "rsa1", pub: &k.rsa1.PublicKey, use: "sig"},
		jwkEntry{kid: "ec1", alg: "ES256", pub: &k.ec256.PublicKey},
		jwkEntry{kid: "ec384", pub: &k.ec384.PublicKey},
		jwkEntry{kid: "ed1", pub: k.ed.Public()},
		jwkEntry{kid: "enc1", use: "enc", pub: &k.ec256b.PublicKey},
	)
}

func writeFile(tb testing.TB, dir, name string, b []byte) string {
	tb.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		tb.Fatal(err)
	}
	return p
}

// fileProvider builds a provider over a JWKS file.
func fileProvider(tb testing.TB, cfg config.JWTProvider, jwks []byte, clk *fakeClock, obs identity.Observer) *Provider {
	tb.Helper()
	cfg.JWKSFile = writeFile(tb, tb.TempDir(), "jwks.json", jwks)
	p, err := New(context.Background(), Options{Name: "test-jwt", Config: cfg, Now: clk.Now, Observer: obs})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(p.Close)
	return p
}

// keyServer is a local JWKS endpoint counting its fetches.
type keyServer struct {
	*httptest.Server
	fetches atomic.Int64
	mu      sync.Mutex
	body    []byte
	etag    string
	cc      string
	down    bool
	gotINM  atomic.Int64 // requests carrying If-None-Match
	n304    atomic.Int64
}

func newKeyServer(tb testing.TB, body []byte) *keyServer {
	ks := &keyServer{}
	ks.set(body, "")
	ks.Server = httptest.NewServer(http.HandlerFunc(ks.serve))
	tb.Cleanup(ks.Close)
	return ks
}

func (ks *keyServer) set(body []byte, cacheControl string) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	ks.body = body
	ks.cc = cacheControl
	ks.etag = fmt.Sprintf(`"v%d-%d"`, len(body), time.Now().UnixNano())
}

func (ks *keyServer) setDown(down bool) {
	ks.mu.Lock()
	ks.down = down
	ks.mu.Unlock()
}

func (ks *keyServer) serve(w http.ResponseWriter, r *http.Request) {
	ks.fetches.Add(1)
	ks.mu.Lock()
	body, etag, cc, down := ks.body, ks.etag, ks.cc, ks.down
	ks.mu.Unlock()
	if down {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	if cc != "" {
		w.Header().Set("Cache-Control", cc)
	}
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		ks.gotINM.Add(1)
		if inm == etag {
			ks.n304.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	w.Header().Set("ETag", etag)
	w.Header().Set("Content-Type", "application/jwk-set+json")
	_, _ = w.Write(body)
}

func urlProvider(tb testing.TB, cfg config.JWTProvider, url string, clk func() time.Time, obs identity.Observer) *Provider {
	tb.Helper()
	cfg.JWKSURL = url
	p, err := New(context.Background(), Options{Name: "test-jwt", Config: cfg, Now: clk, Observer: obs})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(p.Close)
	return p
}

// recObserver records observer events.
type recObserver struct {
	mu       sync.Mutex
	fetches  map[string]int
	hits     int
	misses   int
	depError int
}

func (o *recObserver) KeySetFetch(_, outcome string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.fetches == nil {
		o.fetches = map[string]int{}
	}
	o.fetches[outcome]++
}

func (o *recObserver) CacheLookup(_ string, hit bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if hit {
		o.hits++
	} else {
		o.misses++
	}
}

func (o *recObserver) DependencyError(string) {
	o.mu.Lock()
	o.depError++
	o.mu.Unlock()
}

func (o *recObserver) fetched(outcome string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.fetches[outcome]
}

// wantReason asserts err is an invalid_token *identity.Error with reason.
func wantReason(tb testing.TB, err error, reason string) {
	tb.Helper()
	ie, ok := err.(*identity.Error)
	if !ok {
		tb.Fatalf("error %v (%T), want *identity.Error %s", err, err, reason)
	}
	if ie.Code != identity.CodeInvalidToken || ie.Reason != reason {
		tb.Fatalf("got code %s reason %s (%v), want invalid_token %s", ie.Code, ie.Reason, ie.Err, reason)
	}
}

func cfgDur(d time.Duration) config.Duration { return config.Duration(d) }

// blockingHandler never answers until block is closed.
func blockingHandler(block chan struct{}) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	})
}

// syncBuffer collects JSON log lines safely across goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *syncBuffer) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
