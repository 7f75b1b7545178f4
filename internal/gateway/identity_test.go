package gateway

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
)

// keys are the identity provider's signing keys in these tests.
type keys struct {
	rsa *rsa.PrivateKey
	ec  *ecdsa.PrivateKey
	ed  ed25519.PrivateKey
}

func newKeys(t *testing.T) *keys {
	t.Helper()
	r, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	e, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, d, _ := ed25519.GenerateKey(rand.Reader)
	return &keys{rsa: r, ec: e, ed: d}
}

// jwks writes the public keys as a JWKS file.
func (k *keys) jwks(t *testing.T, path string) {
	t.Helper()
	set := jwk.NewSet()
	for kid, pub := range map[string]any{"rsa-1": &k.rsa.PublicKey, "ec-1": &k.ec.PublicKey, "ed-1": k.ed.Public()} {
		key, err := jwk.Import(pub)
		if err != nil {
			t.Fatal(err)
		}
		_ = key.Set(jwk.KeyIDKey, kid)
		_ = set.AddKey(key)
	}
	b, _ := json.Marshal(set)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func b64json(v any) string {
	b, _ := json.Marshal(v)
	return b64(b)
}

// sign makes a compact JWS with any header, signed as the header's alg says.
func (k *keys) sign(t *testing.T, header, claims map[string]any) string {
	t.Helper()
	input := b64json(header) + "." + b64json(claims)
	h := sha256.Sum256([]byte(input))
	var sig []byte
	switch header["alg"] {
	case "RS256":
		sig, _ = rsa.SignPKCS1v15(rand.Reader, k.rsa, crypto.SHA256, h[:])
	case "PS256":
		sig, _ = rsa.SignPSS(rand.Reader, k.rsa, crypto.SHA256, h[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	case "ES256":
		r, s, err := ecdsa.Sign(rand.Reader, k.ec, h[:])
		if err != nil {
			t.Fatal(err)
		}
		sig = append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...)
	case "EdDSA":
		sig = ed25519.Sign(k.ed, []byte(input))
	default:
		t.Fatalf("sign: unsupported alg %v", header["alg"])
	}
	return input + "." + b64(sig)
}

const testIssuer = "https://idp.test"

func claims(sub string, scopes string, extra map[string]any) map[string]any {
	now := time.Now().Unix()
	c := map[string]any{"iss": testIssuer, "aud": "bank-api", "sub": sub, "iat": now, "nbf": now - 10, "exp": now + 600, "scope": scopes}
	for k, v := range extra {
		c[k] = v
	}
	return c
}

// identityConfig is a gateway with a JWT provider, an authenticated API
// with identity headers, a certificate-bound API and a DPoP API.
func identityConfig(upstream, caFile string) string {
	return fmt.Sprintf(`
listeners:
  - addr: "127.0.0.1:0"
    tls: {cert_file: tls.crt, key_file: tls.key, client_ca_file: %q, client_auth: optional}
admin: {addr: "127.0.0.1:0", token: %q}
audit: {path: audit.log}
identity:
  - name: idp
    jwt: {issuer: %q, audiences: [bank-api], jwks_file: jwks.json, algorithms: [RS256, PS256, ES256, EdDSA], max_token_bytes: 4KiB}
apis:
  - name: fapi
    match: {path_prefix: /fapi}
    upstream: {url: %q}
    authenticate: [idp]
    fapi: {certificate_bound_tokens: true}
  - name: dpop
    match: {path_prefix: /dpop}
    upstream: {url: %q}
    authenticate: [idp]
    fapi: {dpop: true}
  - name: bank
    upstream: {url: %q}
    authenticate: [idp]
    anonymous: ["GET /health"]
    identity_headers: {subject: X-User-Id, scopes: X-User-Scopes}
`, caFile, testToken, testIssuer, upstream, upstream, upstream)
}

type authEnv struct {
	*gwEnv
	k  *keys
	up *upstreamEcho
	ca *testCA
}

func startAuth(t *testing.T) *authEnv {
	t.Helper()
	k := newKeys(t)
	up := newEcho(t, "bank")
	ca := newTestCA(t)
	dir := t.TempDir()
	caFile := filepath.Join(dir, "client-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	// startGateway writes the config into its own directory; the JWKS
	// must be there too, so write it through a hook on the config text.
	cfg := identityConfig(up.srv.URL, caFile)
	env := startGatewayWith(t, cfg, func(d string) { k.jwks(t, filepath.Join(d, "jwks.json")) })
	return &authEnv{gwEnv: env, k: k, up: up, ca: ca}
}

func (e *authEnv) do(t *testing.T, client *http.Client, method, path string, hdr map[string]string) (*http.Response, problem) {
	t.Helper()
	if client == nil {
		client = e.client
	}
	req, _ := http.NewRequest(method, e.base+path, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p problem
	if resp.StatusCode >= 400 {
		p = decodeProblem(t, resp)
	}
	return resp, p
}

// TestHostileTokens is issue #3's suite: every hostile token is refused
// with 401, and its reason is in the audit log; valid tokens of every
// supported algorithm are accepted.
func TestHostileTokens(t *testing.T) {
	e := startAuth(t)
	k := e.k
	good := claims("alice", "accounts", nil)
	es := map[string]any{"alg": "ES256", "kid": "ec-1", "typ": "JWT"}
	valid := k.sign(t, es, good)
	parts := strings.Split(valid, ".")
	otherKeys := newKeys(t)
	pubDER, _ := x509.MarshalPKIXPublicKey(&k.rsa.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	hsInput := b64json(map[string]any{"alg": "HS256", "kid": "rsa-1", "typ": "JWT"}) + "." + b64json(good)
	hsConfused := hsInput + "." + b64(hmacSHA256(pubPEM, []byte(hsInput)))
	tampered := map[string]any{}
	for k, v := range good {
		tampered[k] = v
	}
	tampered["sub"] = "mallory"
	now := time.Now().Unix()

	hostile := []struct {
		name, token string
		reasons     []string
	}{
		{"alg none", b64json(map[string]any{"alg": "none"}) + "." + b64json(good) + ".", []string{"alg_none"}},
		{"alg None", b64json(map[string]any{"alg": "None"}) + "." + b64json(good) + ".", []string{"alg_none"}},
		{"alg NONE with signature", b64json(map[string]any{"alg": "NONE"}) + "." + b64json(good) + "." + parts[2], []string{"alg_none"}},
		{"alg nOnE", b64json(map[string]any{"alg": "nOnE", "kid": "ec-1"}) + "." + b64json(good) + ".", []string{"alg_none"}},
		{"HS256 with the RSA public key", hsConfused, []string{"alg_not_allowed"}},
		{"signature stripped", parts[0] + "." + parts[1] + ".", []string{"bad_signature", "malformed"}},
		{"signature of another key", otherKeys.sign(t, es, good), []string{"bad_signature"}},
		{"payload altered", parts[0] + "." + b64json(tampered) + "." + parts[2], []string{"bad_signature"}},
		{"expired", k.sign(t, es, claims("alice", "accounts", map[string]any{"exp": now - 3600, "iat": now - 7200, "nbf": now - 7200})), []string{"expired"}},
		{"not yet valid", k.sign(t, es, claims("alice", "accounts", map[string]any{"nbf": now + 3600})), []string{"not_yet_valid"}},
		{"wrong issuer", k.sign(t, es, claims("alice", "accounts", map[string]any{"iss": "https://evil.example"})), []string{"wrong_issuer"}},
		{"wrong audience", k.sign(t, es, claims("alice", "accounts", map[string]any{"aud": "other-api"})), []string{"wrong_audience"}},
		{"unknown kid", k.sign(t, map[string]any{"alg": "ES256", "kid": "nope"}, good), []string{"unknown_kid"}},
		{"jku injection", k.sign(t, map[string]any{"alg": "ES256", "kid": "ec-1", "jku": "https://evil.example/jwks"}, good), []string{"embedded_key_rejected"}},
		{"x5u injection", k.sign(t, map[string]any{"alg": "ES256", "kid": "ec-1", "x5u": "https://evil.example/cert"}, good), []string{"embedded_key_rejected"}},
		{"jwk injection", otherKeys.sign(t, map[string]any{"alg": "ES256", "jwk": map[string]any{"kty": "EC", "crv": "P-256", "x": b64(otherKeys.ec.X.FillBytes(make([]byte, 32))), "y": b64(otherKeys.ec.Y.FillBytes(make([]byte, 32)))}}, good), []string{"embedded_key_rejected"}},
		{"oversized", k.sign(t, es, claims("alice", strings.Repeat("scope ", 1000), nil)), []string{"token_too_large"}},
		{"psychic signature r=s=0", parts[0] + "." + parts[1] + "." + b64(make([]byte, 64)), []string{"bad_signature"}},
		{"unknown crit", k.sign(t, map[string]any{"alg": "ES256", "kid": "ec-1", "crit": []string{"exp-ext"}, "exp-ext": 1}, good), []string{"unknown_crit"}},
	}
	for _, h := range hostile {
		t.Run(h.name, func(t *testing.T) {
			resp, p := e.do(t, nil, "GET", "/accounts", map[string]string{"Authorization": "Bearer " + h.token})
			if resp.StatusCode != 401 {
				t.Fatalf("status %d, want 401", resp.StatusCode)
			}
			if !containsStr(h.reasons, p.Reason) {
				t.Fatalf("reason %q, want one of %v", p.Reason, h.reasons)
			}
			if !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
				t.Fatalf("WWW-Authenticate %q", resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
	for _, v := range []struct{ name, token string }{
		{"RS256", k.sign(t, map[string]any{"alg": "RS256", "kid": "rsa-1"}, good)},
		{"PS256", k.sign(t, map[string]any{"alg": "PS256", "kid": "rsa-1"}, good)},
		{"ES256", valid},
		{"EdDSA", k.sign(t, map[string]any{"alg": "EdDSA", "kid": "ed-1"}, good)},
	} {
		resp, p := e.do(t, nil, "GET", "/accounts", map[string]string{"Authorization": "Bearer " + v.token})
		if resp.StatusCode != 200 {
			t.Errorf("valid %s token: %d %s", v.name, resp.StatusCode, p.Reason)
		}
	}

	// Every refusal is in the audit log with its reason; no token is.
	if err := e.g.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(e.dir, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	log := string(data)
	for _, h := range hostile {
		found := false
		for _, r := range h.reasons {
			if strings.Contains(log, `"stage":"authenticate","action":"stop","reason":"`+r+`"`) {
				found = true
			}
		}
		if !found {
			t.Errorf("audit log lacks the reason of %q (%v)", h.name, h.reasons)
		}
		if sig := h.token[strings.LastIndexByte(h.token, '.')+1:]; len(sig) > 20 && strings.Contains(log, sig) {
			t.Errorf("audit log contains a token (%s)", h.name)
		}
	}
	if !strings.Contains(log, `"subject":"alice","provider":"idp","auth":"jwt"`) {
		t.Error("audit log lacks the authenticated subject")
	}
}

func containsStr(l []string, s string) bool {
	for _, v := range l {
		if v == s {
			return true
		}
	}
	return false
}

func TestIdentityHeadersAndAnonymous(t *testing.T) {
	e := startAuth(t)
	tok := e.k.sign(t, map[string]any{"alg": "ES256", "kid": "ec-1"}, claims("alice", "accounts payments", nil))
	resp, _ := e.do(t, nil, "GET", "/accounts", map[string]string{"Authorization": "Bearer " + tok, "X-User-Id": "admin", "X-User-Scopes": "everything"})
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	h := e.up.header()
	if h.Get("X-User-Id") != "alice" || h.Get("X-User-Scopes") != "accounts payments" {
		t.Fatalf("identity headers upstream: %q %q", h.Get("X-User-Id"), h.Get("X-User-Scopes"))
	}
	// Anonymous operation: the client's forged identity header is stripped.
	resp, _ = e.do(t, nil, "GET", "/health", map[string]string{"X-User-Id": "admin"})
	if resp.StatusCode != 200 {
		t.Fatalf("anonymous /health: %d", resp.StatusCode)
	}
	if v := e.up.header().Get("X-User-Id"); v != "" {
		t.Fatalf("forged X-User-Id reached the upstream: %q", v)
	}
	resp, p := e.do(t, nil, "GET", "/accounts", nil)
	if resp.StatusCode != 401 || p.Reason != "credentials_missing" || resp.Header.Get("WWW-Authenticate") != `Bearer realm="bank"` {
		t.Fatalf("no token: %d %s %q", resp.StatusCode, p.Reason, resp.Header.Get("WWW-Authenticate"))
	}
}

// TestCertificateBoundToken: RFC 8705 — a token bound to client
// certificate A is refused on a connection with certificate B.
func TestCertificateBoundToken(t *testing.T) {
	e := startAuth(t)
	certA, certB := e.ca.client(t, "client-a"), e.ca.client(t, "client-b")
	thumb := sha256.Sum256(certA.Certificate[0])
	bound := e.k.sign(t, map[string]any{"alg": "ES256", "kid": "ec-1"}, claims("tpp-a", "accounts", map[string]any{"cnf": map[string]any{"x5t#S256": b64(thumb[:])}}))
	unbound := e.k.sign(t, map[string]any{"alg": "ES256", "kid": "ec-1"}, claims("tpp-a", "accounts", nil))
	withCert := func(c tls.Certificate) *http.Client {
		tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{c}}} //nolint:gosec // test
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr}
	}
	tests := []struct {
		name   string
		client *http.Client
		token  string
		status int
		reason string
	}{
		{"bound token, right cert", withCert(certA), bound, 200, ""},
		{"bound token, other cert", withCert(certB), bound, 401, "certificate_binding_mismatch"},
		{"bound token, no cert", nil, bound, 401, "no_client_certificate"},
		{"unbound token where binding is required", withCert(certA), unbound, 401, "token_not_certificate_bound"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, p := e.do(t, tt.client, "GET", "/fapi/accounts", map[string]string{"Authorization": "Bearer " + tt.token})
			if resp.StatusCode != tt.status || p.Reason != tt.reason {
				t.Fatalf("%d %q, want %d %q", resp.StatusCode, p.Reason, tt.status, tt.reason)
			}
		})
	}
	// A bound token is checked even on an API that does not require binding.
	resp, p := e.do(t, withCert(certB), "GET", "/accounts", map[string]string{"Authorization": "Bearer " + bound})
	if resp.StatusCode != 401 || p.Reason != "certificate_binding_mismatch" {
		t.Fatalf("bound token on a plain API with the wrong cert: %d %s", resp.StatusCode, p.Reason)
	}
}

// TestDPoP: RFC 9449 — replay, other method and other URL are refused.
func TestDPoP(t *testing.T) {
	e := startAuth(t)
	holder, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub := map[string]any{"kty": "EC", "crv": "P-256", "x": b64(holder.X.FillBytes(make([]byte, 32))), "y": b64(holder.Y.FillBytes(make([]byte, 32)))}
	// RFC 7638 thumbprint: members in lexicographic order.
	tp := sha256.Sum256([]byte(`{"crv":"P-256","kty":"EC","x":"` + pub["x"].(string) + `","y":"` + pub["y"].(string) + `"}`))
	token := e.k.sign(t, map[string]any{"alg": "ES256", "kid": "ec-1"}, claims("tpp-d", "accounts", map[string]any{"cnf": map[string]any{"jkt": b64(tp[:])}}))
	ath := sha256.Sum256([]byte(token))
	proof := func(method, url, jti string) string {
		input := b64json(map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": pub}) + "." +
			b64json(map[string]any{"htm": method, "htu": url, "iat": time.Now().Unix(), "jti": jti, "ath": b64(ath[:])})
		h := sha256.Sum256([]byte(input))
		r, s, _ := ecdsa.Sign(rand.Reader, holder, h[:])
		return input + "." + b64(append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...))
	}
	url := e.base + "/dpop/accounts"
	first := proof("GET", url, "jti-1")
	tests := []struct {
		name   string
		method string
		hdr    map[string]string
		status int
		reason string
	}{
		{"valid proof", "GET", map[string]string{"Authorization": "DPoP " + token, "DPoP": first}, 200, ""},
		{"replayed proof", "GET", map[string]string{"Authorization": "DPoP " + token, "DPoP": first}, 401, "dpop_replay"},
		{"proof for another method", "DELETE", map[string]string{"Authorization": "DPoP " + token, "DPoP": proof("GET", url, "jti-2")}, 401, "dpop_htm_mismatch"},
		{"proof for another URL", "GET", map[string]string{"Authorization": "DPoP " + token, "DPoP": proof("GET", e.base+"/dpop/payments", "jti-3")}, 401, "dpop_htu_mismatch"},
		{"no proof", "GET", map[string]string{"Authorization": "DPoP " + token}, 401, "dpop_proof_missing"},
		{"bound token as Bearer", "GET", map[string]string{"Authorization": "Bearer " + token, "DPoP": proof("GET", url, "jti-4")}, 401, "dpop_scheme_required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, p := e.do(t, nil, tt.method, "/dpop/accounts", tt.hdr)
			if resp.StatusCode != tt.status || p.Reason != tt.reason {
				t.Fatalf("%d %q, want %d %q", resp.StatusCode, p.Reason, tt.status, tt.reason)
			}
			if tt.status == 401 && !strings.Contains(strings.Join(resp.Header.Values("WWW-Authenticate"), ","), "DPoP") {
				t.Fatalf("no DPoP challenge: %v", resp.Header.Values("WWW-Authenticate"))
			}
		})
	}
}

// testCA issues client certificates.
type testCA struct {
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test client CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{key: key, cert: cert}
}

func (ca *testCA) client(t *testing.T, cn string) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func hmacSHA256(key, msg []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return m.Sum(nil)
}
