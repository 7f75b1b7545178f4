package fapi

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws/jwsbb"

	"github.com/bulwarkapi/bulwark/internal/identity"
)

// The request every proof is made for unless a test says otherwise.
const (
	testMethod = "POST"
	testURL    = "https://api.bank.example/v1/payments"
	testToken  = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln"
)

// testNow is the fixed time of the tests' clocks.
var testNow = time.Unix(1_750_000_000, 0)

// fakeClock is an injectable clock that tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock(t time.Time) *fakeClock { return &fakeClock{t: t} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// proofSigner holds a key pair and makes DPoP proofs with it.
type proofSigner struct {
	alg  string
	priv crypto.Signer
	jwk  map[string]any // the public JWK as sent in the header
}

func newProofSigner(tb testing.TB, alg string, priv crypto.Signer) *proofSigner {
	tb.Helper()
	k, err := jwk.Import(priv.Public())
	if err != nil {
		tb.Fatal(err)
	}
	buf, err := json.Marshal(k)
	if err != nil {
		tb.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(buf, &m); err != nil {
		tb.Fatal(err)
	}
	return &proofSigner{alg: alg, priv: priv, jwk: m}
}

// Keys are generated once per test binary: RSA generation is slow.
var (
	ecKey  = sync.OnceValue(func() *ecdsa.PrivateKey { return must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader)) })
	ecKey2 = sync.OnceValue(func() *ecdsa.PrivateKey { return must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader)) })
	ec384  = sync.OnceValue(func() *ecdsa.PrivateKey { return must(ecdsa.GenerateKey(elliptic.P384(), rand.Reader)) })
	rsaKey = sync.OnceValue(func() *rsa.PrivateKey { return must(rsa.GenerateKey(rand.Reader, 2048)) })
	edKey  = sync.OnceValue(func() ed25519.PrivateKey {
		_, k := must2(ed25519.GenerateKey(rand.Reader))
		return k
	})
)

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func must2[A, B any](a A, b B, err error) (A, B) {
	if err != nil {
		panic(err)
	}
	return a, b
}

func es256Signer(tb testing.TB) *proofSigner { return newProofSigner(tb, "ES256", ecKey()) }
func ps256Signer(tb testing.TB) *proofSigner { return newProofSigner(tb, "PS256", rsaKey()) }
func eddsaSigner(tb testing.TB) *proofSigner { return newProofSigner(tb, "EdDSA", edKey()) }

func athOf(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func randomJTI() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// proofParts are the header and claims of a proof before signing; tests
// edit them to make hostile proofs.
type proofParts struct {
	hdr    map[string]any
	claims map[string]any
}

func (s *proofSigner) parts(now time.Time) proofParts {
	jwkCopy := make(map[string]any, len(s.jwk))
	for k, v := range s.jwk {
		jwkCopy[k] = v
	}
	return proofParts{
		hdr: map[string]any{"typ": "dpop+jwt", "alg": s.alg, "jwk": jwkCopy},
		claims: map[string]any{
			"jti": randomJTI(),
			"htm": testMethod,
			"htu": testURL,
			"iat": now.Unix(),
			"ath": athOf(testToken),
		},
	}
}

// sign serialises and signs p with s's key and alg (whatever p's alg says).
func (s *proofSigner) sign(tb testing.TB, p proofParts) string {
	tb.Helper()
	return s.signInput(tb, encodeSegment(tb, p.hdr)+"."+encodeSegment(tb, p.claims))
}

// signInput signs an encoded "header.payload" with s's key and alg.
func (s *proofSigner) signInput(tb testing.TB, input string) string {
	tb.Helper()
	sig, err := jwsbb.Sign(s.priv, s.alg, []byte(input), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// proof is a valid proof for the test request at now.
func (s *proofSigner) proof(tb testing.TB, now time.Time, edit func(*proofParts)) string {
	tb.Helper()
	p := s.parts(now)
	if edit != nil {
		edit(&p)
	}
	return s.sign(tb, p)
}

func encodeSegment(tb testing.TB, v any) string {
	tb.Helper()
	buf, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(buf)
}

// hmacProof signs p with HS256 (a symmetric algorithm DPoP forbids).
func hmacProof(tb testing.TB, p proofParts, secret []byte) string {
	input := encodeSegment(tb, p.hdr) + "." + encodeSegment(tb, p.claims)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(input))
	return input + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func testRequest(proofs ...string) *identity.Request {
	h := http.Header{}
	for _, p := range proofs {
		h.Add("DPoP", p)
	}
	return &identity.Request{Method: testMethod, URL: testURL, Header: h}
}

func newTestVerifier(tb testing.TB, clock *fakeClock, o DPoPOptions) *DPoPVerifier {
	tb.Helper()
	if o.Now == nil {
		o.Now = clock.Now
	}
	if len(o.Algorithms) == 0 {
		o.Algorithms = []string{"ES256", "PS256", "EdDSA"}
	}
	if o.MaxAge == 0 {
		o.MaxAge = 60 * time.Second
	}
	v, err := NewDPoPVerifier(o)
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

// rfc7638 computes a JWK SHA-256 thumbprint independently of jwx: the
// required members in lexicographic order, no whitespace (RFC 7638 §3).
func rfc7638(tb testing.TB, key map[string]any) string {
	tb.Helper()
	var required []string
	switch key["kty"] {
	case "EC":
		required = []string{"crv", "kty", "x", "y"}
	case "RSA":
		required = []string{"e", "kty", "n"}
	case "OKP":
		required = []string{"crv", "kty", "x"}
	default:
		tb.Fatalf("kty %v", key["kty"])
	}
	sort.Strings(required)
	var b strings.Builder
	b.WriteByte('{')
	for i, m := range required {
		if i > 0 {
			b.WriteByte(',')
		}
		s, ok := key[m].(string)
		if !ok {
			tb.Fatalf("member %s missing", m)
		}
		b.WriteString(`"` + m + `":"` + s + `"`)
	}
	b.WriteByte('}')
	sum := sha256.Sum256([]byte(b.String()))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// wantReason asserts that err is an invalid_dpop_proof (or, for code,
// another) *identity.Error with the reason.
func wantReason(tb testing.TB, err error, code, reason string) {
	tb.Helper()
	var ie *identity.Error
	if !errors.As(err, &ie) {
		tb.Fatalf("error %v (%T), want *identity.Error %s", err, err, reason)
	}
	if ie.Code != code || ie.Reason != reason {
		tb.Fatalf("error code %q reason %q (%v), want %q %q", ie.Code, ie.Reason, ie.Err, code, reason)
	}
	if ie.Detail == "" {
		tb.Fatalf("reason %s: empty Detail", reason)
	}
}
