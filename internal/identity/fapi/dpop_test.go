package fapi

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkapi/bulwark/internal/identity"
)

func TestVerifyValidProofs(t *testing.T) {
	for _, s := range []*proofSigner{es256Signer(t), ps256Signer(t), eddsaSigner(t)} {
		t.Run(s.alg, func(t *testing.T) {
			clock := newFakeClock(testNow)
			v := newTestVerifier(t, clock, DPoPOptions{})
			jkt, err := v.Verify(testRequest(s.proof(t, testNow, nil)), testToken)
			if err != nil {
				t.Fatalf("valid %s proof refused: %v", s.alg, err)
			}
			if want := rfc7638(t, s.jwk); jkt != want {
				t.Fatalf("jkt %q, independent RFC 7638 thumbprint %q", jkt, want)
			}
			id := &identity.Identity{Confirmation: identity.Confirmation{JKT: jkt}}
			if err := CheckDPoPBinding(id, jkt); err != nil {
				t.Fatalf("binding to own key refused: %v", err)
			}
		})
	}
}

// The RFC 7638 §3.1 example key and its published thumbprint.
const (
	rfc7638Key        = `{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"}`
	rfc7638Thumbprint = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
)

func TestThumbprintRFC7638Example(t *testing.T) {
	var m map[string]any
	if err := json.Unmarshal([]byte(rfc7638Key), &m); err != nil {
		t.Fatal(err)
	}
	if got := rfc7638(t, m); got != rfc7638Thumbprint {
		t.Fatalf("test helper thumbprint %q, RFC 7638 says %q", got, rfc7638Thumbprint)
	}
	_, jkt, ferr := proofKey(json.RawMessage(rfc7638Key), "RS256")
	if ferr != nil {
		t.Fatal(ferr)
	}
	if jkt != rfc7638Thumbprint {
		t.Fatalf("verifier thumbprint %q, RFC 7638 says %q", jkt, rfc7638Thumbprint)
	}
}

// TestVerifyHostileProofs: every proof here is refused with its reason.
func TestVerifyHostileProofs(t *testing.T) {
	es := es256Signer(t)
	other := newProofSigner(t, "ES256", ecKey2())
	p384 := newProofSigner(t, "ES256", ec384()) // P-384 key claiming ES256
	ps := ps256Signer(t)

	valid := func(t *testing.T) string { return es.proof(t, testNow, nil) }
	edit := func(f func(*proofParts)) func(*testing.T) string {
		return func(t *testing.T) string { return es.proof(t, testNow, f) }
	}
	unsigned := func(alg string) func(*testing.T) string {
		return func(t *testing.T) string {
			p := es.parts(testNow)
			p.hdr["alg"] = alg
			return encodeSegment(t, p.hdr) + "." + encodeSegment(t, p.claims) + "."
		}
	}
	rawHeader := func(hdr string) func(*testing.T) string {
		// A proof whose header JSON is exactly hdr (JWK: es's key), signed by es.
		return func(t *testing.T) string {
			p := es.parts(testNow)
			jwkJSON, _ := json.Marshal(p.hdr["jwk"])
			hdr := strings.ReplaceAll(hdr, "JWK", string(jwkJSON))
			return es.signInput(t, base64.RawURLEncoding.EncodeToString([]byte(hdr))+"."+encodeSegment(t, p.claims))
		}
	}

	tests := []struct {
		name    string
		method  string // default testMethod
		url     string // default testURL
		token   string // default testToken
		headers func(t *testing.T) []string
		proof   func(t *testing.T) string
		reason  string
	}{
		{name: "no DPoP header", headers: func(*testing.T) []string { return nil }, reason: "dpop_proof_missing"},
		{name: "empty DPoP header", proof: func(*testing.T) string { return "" }, reason: "dpop_proof_missing"},
		{name: "two DPoP headers", headers: func(t *testing.T) []string { return []string{valid(t), valid(t)} }, reason: "dpop_proof_multiple"},
		{name: "two proofs in one header", proof: func(t *testing.T) string { return valid(t) + ", " + valid(t) }, reason: "dpop_proof_multiple"},
		{name: "oversized", proof: edit(func(p *proofParts) { p.claims["pad"] = strings.Repeat("a", MaxDPoPProofBytes) }), reason: "dpop_proof_too_large"},
		{name: "garbage", proof: func(*testing.T) string { return "not a jwt" }, reason: "dpop_malformed"},
		{name: "four segments", proof: func(t *testing.T) string { return valid(t) + ".x" }, reason: "dpop_malformed"},
		{name: "header not base64", proof: func(t *testing.T) string { return "!!" + valid(t) }, reason: "dpop_malformed"},
		{name: "header not an object", proof: func(t *testing.T) string { return "WzFd" + valid(t)[strings.IndexByte(valid(t), '.'):] }, reason: "dpop_malformed"},
		{name: "duplicate alg member", proof: rawHeader(`{"typ":"dpop+jwt","alg":"ES256","alg":"none","jwk":JWK}`), reason: "dpop_malformed"},

		{name: "alg none", proof: unsigned("none"), reason: "dpop_alg_none"},
		{name: "alg None", proof: unsigned("None"), reason: "dpop_alg_none"},
		{name: "alg NONE", proof: unsigned("NONE"), reason: "dpop_alg_none"},
		{name: "alg nOnE", proof: unsigned("nOnE"), reason: "dpop_alg_none"},
		{name: "HS256 proof", proof: func(t *testing.T) string {
			p := es.parts(testNow)
			p.hdr["alg"] = "HS256"
			return hmacProof(t, p, []byte("a shared secret of 32 bytes ....."))
		}, reason: "dpop_alg_not_allowed"},
		{name: "alg missing", proof: edit(func(p *proofParts) { delete(p.hdr, "alg") }), reason: "dpop_alg_not_allowed"},
		{name: "alg lower-case es256", proof: edit(func(p *proofParts) { p.hdr["alg"] = "es256" }), reason: "dpop_alg_not_allowed"},
		{name: "alg not in allow-list (RS256)", proof: edit(func(p *proofParts) { p.hdr["alg"] = "RS256" }), reason: "dpop_alg_not_allowed"},

		{name: "typ JWT", proof: edit(func(p *proofParts) { p.hdr["typ"] = "JWT" }), reason: "dpop_bad_typ"},
		{name: "typ at+jwt", proof: edit(func(p *proofParts) { p.hdr["typ"] = "at+jwt" }), reason: "dpop_bad_typ"},
		{name: "typ missing", proof: edit(func(p *proofParts) { delete(p.hdr, "typ") }), reason: "dpop_bad_typ"},
		{name: "crit", proof: edit(func(p *proofParts) { p.hdr["crit"] = []string{"exp"}; p.hdr["exp"] = 1 }), reason: "dpop_unknown_crit"},
		{name: "crit b64", proof: edit(func(p *proofParts) { p.hdr["crit"] = []string{"b64"}; p.hdr["b64"] = false }), reason: "dpop_unknown_crit"},
		{name: "jku", proof: edit(func(p *proofParts) { p.hdr["jku"] = "https://attacker.example/jwks" }), reason: "dpop_key_reference"},
		{name: "x5u", proof: edit(func(p *proofParts) { p.hdr["x5u"] = "https://attacker.example/cert" }), reason: "dpop_key_reference"},
		{name: "x5c", proof: edit(func(p *proofParts) { p.hdr["x5c"] = []string{"MIIB"} }), reason: "dpop_key_reference"},
		{name: "kid instead of jwk", proof: edit(func(p *proofParts) { delete(p.hdr, "jwk"); p.hdr["kid"] = "k1" }), reason: "dpop_jwk_missing"},
		{name: "jwk null", proof: edit(func(p *proofParts) { p.hdr["jwk"] = nil }), reason: "dpop_jwk_missing"},
		{name: "jwk with private d", proof: edit(func(p *proofParts) {
			p.hdr["jwk"].(map[string]any)["d"] = base64.RawURLEncoding.EncodeToString(ecKey().D.Bytes())
		}), reason: "dpop_jwk_private"},
		{name: "jwk with private D (upper case)", proof: edit(func(p *proofParts) {
			p.hdr["jwk"].(map[string]any)["D"] = base64.RawURLEncoding.EncodeToString(ecKey().D.Bytes())
		}), reason: "dpop_jwk_private"},
		{name: "symmetric jwk", proof: edit(func(p *proofParts) { p.hdr["jwk"] = map[string]any{"kty": "oct", "k": "c2VjcmV0"} }), reason: "dpop_jwk_private"},
		{name: "RSA jwk for ES256", proof: edit(func(p *proofParts) { p.hdr["jwk"] = ps.jwk }), reason: "dpop_jwk_alg_mismatch"},
		{name: "P-384 jwk for ES256", proof: func(t *testing.T) string { return p384.proof(t, testNow, nil) }, reason: "dpop_jwk_alg_mismatch"},
		{name: "jwk alg differs", proof: edit(func(p *proofParts) { p.hdr["jwk"].(map[string]any)["alg"] = "ES384" }), reason: "dpop_jwk_alg_mismatch"},
		{name: "jwk point not on curve", proof: edit(func(p *proofParts) {
			p.hdr["jwk"].(map[string]any)["y"] = p.hdr["jwk"].(map[string]any)["x"]
		}), reason: "dpop_jwk_invalid"},

		{name: "signature by another key than the jwk", proof: edit(func(p *proofParts) { p.hdr["jwk"] = other.jwk }), reason: "dpop_bad_signature"},
		{name: "signature stripped", proof: func(t *testing.T) string {
			s := valid(t)
			return s[:strings.LastIndexByte(s, '.')+1]
		}, reason: "dpop_bad_signature"},
		{name: "payload altered after signing", proof: func(t *testing.T) string {
			s := valid(t)
			parts := strings.Split(s, ".")
			p := es.parts(testNow)
			p.claims["htm"] = "DELETE"
			return parts[0] + "." + encodeSegment(t, p.claims) + "." + parts[2]
		}, reason: "dpop_bad_signature"},
		{name: "ECDSA r = s = 0", proof: func(t *testing.T) string {
			s := valid(t)
			return s[:strings.LastIndexByte(s, '.')+1] + base64.RawURLEncoding.EncodeToString(make([]byte, 64))
		}, reason: "dpop_bad_signature"},

		{name: "another method", method: "GET", proof: valid, reason: "dpop_htm_mismatch"},
		{name: "method case differs", proof: edit(func(p *proofParts) { p.claims["htm"] = "post" }), reason: "dpop_htm_mismatch"},
		{name: "htm missing", proof: edit(func(p *proofParts) { delete(p.claims, "htm") }), reason: "dpop_htm_mismatch"},
		{name: "another path", url: "https://api.bank.example/v1/accounts", proof: valid, reason: "dpop_htu_mismatch"},
		{name: "path case differs", url: "https://api.bank.example/v1/Payments", proof: valid, reason: "dpop_htu_mismatch"},
		{name: "another host", url: "https://other.bank.example/v1/payments", proof: valid, reason: "dpop_htu_mismatch"},
		{name: "http vs https", url: "http://api.bank.example/v1/payments", proof: valid, reason: "dpop_htu_mismatch"},
		{name: "another port", url: "https://api.bank.example:8443/v1/payments", proof: valid, reason: "dpop_htu_mismatch"},
		{name: "htu missing", proof: edit(func(p *proofParts) { delete(p.claims, "htu") }), reason: "dpop_htu_mismatch"},
		{name: "htu relative", proof: edit(func(p *proofParts) { p.claims["htu"] = "/v1/payments" }), reason: "dpop_htu_mismatch"},
		{name: "request URL not absolute", url: "/v1/payments", proof: valid, reason: "dpop_htu_mismatch"},

		{name: "older than MaxAge", proof: func(t *testing.T) string { return es.proof(t, testNow.Add(-61*time.Second), nil) }, reason: "dpop_iat_out_of_window"},
		{name: "from the future", proof: func(t *testing.T) string { return es.proof(t, testNow.Add(61*time.Second), nil) }, reason: "dpop_iat_out_of_window"},
		{name: "iat missing", proof: edit(func(p *proofParts) { delete(p.claims, "iat") }), reason: "dpop_iat_out_of_window"},
		{name: "iat a string", proof: edit(func(p *proofParts) { p.claims["iat"] = "1750000000" }), reason: "dpop_iat_out_of_window"},
		{name: "jti missing", proof: edit(func(p *proofParts) { delete(p.claims, "jti") }), reason: "dpop_jti_missing"},
		{name: "jti empty", proof: edit(func(p *proofParts) { p.claims["jti"] = "" }), reason: "dpop_jti_missing"},
		{name: "jti a number", proof: edit(func(p *proofParts) { p.claims["jti"] = 42 }), reason: "dpop_jti_missing"},
		{name: "jti too long", proof: edit(func(p *proofParts) { p.claims["jti"] = strings.Repeat("j", 257) }), reason: "dpop_jti_too_long"},
		{name: "ath of another token", proof: edit(func(p *proofParts) { p.claims["ath"] = athOf("another-token") }), reason: "dpop_ath_mismatch"},
		{name: "proof presented with another token", token: "another-token", proof: valid, reason: "dpop_ath_mismatch"},
		{name: "ath missing", proof: edit(func(p *proofParts) { delete(p.claims, "ath") }), reason: "dpop_ath_missing"},
		{name: "no access token given", token: "-", proof: valid, reason: "dpop_ath_missing"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := newTestVerifier(t, newFakeClock(testNow), DPoPOptions{})
			var proofs []string
			if tc.headers != nil {
				proofs = tc.headers(t)
			} else {
				proofs = []string{tc.proof(t)}
			}
			r := testRequest(proofs...)
			if tc.method != "" {
				r.Method = tc.method
			}
			if tc.url != "" {
				r.URL = tc.url
			}
			token := testToken
			switch tc.token {
			case "":
			case "-":
				token = ""
			default:
				token = tc.token
			}
			jkt, err := v.Verify(r, token)
			if jkt != "" {
				t.Errorf("jkt %q returned with an error", jkt)
			}
			wantReason(t, err, identity.CodeInvalidDPoPProof, tc.reason)
			for _, p := range proofs {
				if len(p) > 20 && strings.Contains(err.Error(), p) {
					t.Fatalf("error text contains the proof")
				}
			}
		})
	}
}

func TestVerifyReplay(t *testing.T) {
	es := es256Signer(t)
	clock := newFakeClock(testNow)
	v := newTestVerifier(t, clock, DPoPOptions{MaxAge: 60 * time.Second})
	proof := es.proof(t, testNow, nil)
	if _, err := v.Verify(testRequest(proof), testToken); err != nil {
		t.Fatalf("first use refused: %v", err)
	}
	// Replayed at once, and at the far edge of the proof's iat window.
	_, err := v.Verify(testRequest(proof), testToken)
	wantReason(t, err, identity.CodeInvalidDPoPProof, "dpop_replay")
	clock.Advance(60 * time.Second)
	_, err = v.Verify(testRequest(proof), testToken)
	wantReason(t, err, identity.CodeInvalidDPoPProof, "dpop_replay")
	// Past its window the proof is refused for its age.
	clock.Advance(time.Second)
	_, err = v.Verify(testRequest(proof), testToken)
	wantReason(t, err, identity.CodeInvalidDPoPProof, "dpop_iat_out_of_window")

	// A refused proof does not consume its jti.
	v2 := newTestVerifier(t, newFakeClock(testNow), DPoPOptions{})
	bad := es.proof(t, testNow, func(q *proofParts) { q.claims["jti"] = "shared-jti"; q.claims["htm"] = "GET" })
	good := es.proof(t, testNow, func(q *proofParts) { q.claims["jti"] = "shared-jti" })
	_, err = v2.Verify(testRequest(bad), testToken)
	wantReason(t, err, identity.CodeInvalidDPoPProof, "dpop_htm_mismatch")
	if _, err := v2.Verify(testRequest(good), testToken); err != nil {
		t.Fatalf("proof refused after a failed proof with its jti: %v", err)
	}
	sameJTI := newProofSigner(t, "ES256", ecKey2()).proof(t, testNow, func(q *proofParts) { q.claims["jti"] = "shared-jti" })
	_, err = v2.Verify(testRequest(sameJTI), testToken)
	wantReason(t, err, identity.CodeInvalidDPoPProof, "dpop_replay")
}

// TestVerifyConcurrentReplay: one proof sent at once on many connections
// is accepted exactly once.
func TestVerifyConcurrentReplay(t *testing.T) {
	es := es256Signer(t)
	v := newTestVerifier(t, newFakeClock(testNow), DPoPOptions{})
	proof := es.proof(t, testNow, nil)
	const n = 8
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			_, err := v.Verify(testRequest(proof), testToken)
			errs <- err
		}()
	}
	accepted := 0
	for i := 0; i < n; i++ {
		if err := <-errs; err == nil {
			accepted++
		} else {
			wantReason(t, err, identity.CodeInvalidDPoPProof, "dpop_replay")
		}
	}
	if accepted != 1 {
		t.Fatalf("proof accepted %d times, want once", accepted)
	}
}

func TestVerifyIATWindowEdges(t *testing.T) {
	es := es256Signer(t)
	for _, off := range []time.Duration{-60 * time.Second, 0, 60 * time.Second} {
		v := newTestVerifier(t, newFakeClock(testNow), DPoPOptions{MaxAge: 60 * time.Second})
		if _, err := v.Verify(testRequest(es.proof(t, testNow.Add(off), nil)), testToken); err != nil {
			t.Errorf("iat now%+v refused: %v", off, err)
		}
	}
}

func TestVerifyAcceptsEquivalentHTU(t *testing.T) {
	es := es256Signer(t)
	for _, htu := range []string{
		"https://API.Bank.Example/v1/payments",
		"https://api.bank.example:443/v1/payments",
		"HTTPS://api.bank.example/v1/payments?x=1#frag",
		"https://api.bank.example/v1/%70ayments",
	} {
		v := newTestVerifier(t, newFakeClock(testNow), DPoPOptions{})
		proof := es.proof(t, testNow, func(p *proofParts) { p.claims["htu"] = htu })
		if _, err := v.Verify(testRequest(proof), testToken); err != nil {
			t.Errorf("htu %q refused for %s: %v", htu, testURL, err)
		}
	}
}

func TestNewDPoPVerifier(t *testing.T) {
	tests := []struct {
		name string
		o    DPoPOptions
		ok   bool
	}{
		{"defaults", DPoPOptions{}, true},
		{"all asymmetric", DPoPOptions{Algorithms: asymmetricAlgs}, true},
		{"HS256", DPoPOptions{Algorithms: []string{"ES256", "HS256"}}, false},
		{"none", DPoPOptions{Algorithms: []string{"none"}}, false},
		{"negative max age", DPoPOptions{MaxAge: -time.Second}, false},
		{"negative cache", DPoPOptions{ReplayCacheSize: -1}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := NewDPoPVerifier(tc.o)
			if (err == nil) != tc.ok {
				t.Fatalf("err %v, want ok=%v", err, tc.ok)
			}
			if tc.ok && (v.maxAge <= 0 || v.replay.max <= 0 || len(v.algs) == 0) {
				t.Fatalf("defaults not applied: %+v", v)
			}
		})
	}
	_, err := NewDPoPVerifier(DPoPOptions{Algorithms: []string{"HS256"}, MaxAge: -1, ReplayCacheSize: -1})
	if err == nil || strings.Count(err.Error(), "\n") != 2 {
		t.Fatalf("want all three problems reported, got %v", err)
	}
}

func BenchmarkDPoPVerify(b *testing.B) {
	es := es256Signer(b)
	clock := newFakeClock(testNow)
	proofs := make([]string, b.N)
	for i := range proofs {
		proofs[i] = es.proof(b, testNow, nil)
	}
	v := newTestVerifier(b, clock, DPoPOptions{ReplayCacheSize: b.N + 1})
	reqs := make([]*identity.Request, b.N)
	for i := range reqs {
		reqs[i] = testRequest(proofs[i])
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := v.Verify(reqs[i], testToken); err != nil {
			b.Fatal(err)
		}
	}
}
