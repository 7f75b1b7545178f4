package fapi

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/bulwarkapi/bulwark/internal/identity"
)

var update = flag.Bool("update", false, "rewrite the checked-in fuzz seed corpus under testdata/")

const fuzzCorpusDir = "testdata/fuzz/FuzzDPoPProof"

// fuzzSigner holds the fixed key of the checked-in seed corpus, derived
// from a constant so that the seeds verify on every run.
func fuzzSigner(tb testing.TB) *proofSigner {
	tb.Helper()
	scalar := sha256.Sum256([]byte("bulwark fapi DPoP fuzz fixture key"))
	priv, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), scalar[:])
	if err != nil {
		tb.Fatal(err)
	}
	return newProofSigner(tb, "ES256", priv)
}

// fuzzSeeds are the corpus entries: a valid proof for the test request at
// testNow, tampered variants, hostile headers and garbage.
func fuzzSeeds(tb testing.TB) map[string]string {
	s := fuzzSigner(tb)
	fixed := func(p *proofParts) { p.claims["jti"] = "fuzz-seed-valid" }
	valid := s.proof(tb, testNow, fixed)
	segs := strings.Split(valid, ".")
	altered := s.parts(testNow)
	fixed(&altered)
	altered.claims["htm"] = "GET"
	flip := []byte(segs[2])
	if flip[0] == 'A' {
		flip[0] = 'B'
	} else {
		flip[0] = 'A'
	}
	none := s.parts(testNow)
	none.hdr["alg"] = "none"
	return map[string]string{
		"valid_es256":        valid,
		"tampered_payload":   segs[0] + "." + encodeSegment(tb, altered.claims) + "." + segs[2],
		"tampered_signature": segs[0] + "." + segs[1] + "." + string(flip),
		"alg_none":           encodeSegment(tb, none.hdr) + "." + encodeSegment(tb, none.claims) + ".",
		"crit":               s.proof(tb, testNow, func(p *proofParts) { fixed(p); p.hdr["crit"] = []string{"x"} }),
		"private_jwk": s.proof(tb, testNow, func(p *proofParts) {
			fixed(p)
			p.hdr["jwk"].(map[string]any)["d"] = "AAAA"
		}),
		"garbage":        "eyJ.eyJ.!!",
		"garbage_json":   base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"ES256","typ":"dpop+jwt","jwk":{"kty":"EC","crv":"P-256","x":1}`)) + ".e30.",
		"garbage_binary": "\x00\xff.\x80.",
	}
}

// TestWriteFuzzCorpus rewrites the seed corpus with -update.
func TestWriteFuzzCorpus(t *testing.T) {
	if !*update {
		t.Skip("run with -update to rewrite " + fuzzCorpusDir)
	}
	if err := os.MkdirAll(fuzzCorpusDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, proof := range fuzzSeeds(t) {
		body := "go test fuzz v1\nstring(" + strconv.Quote(proof) + ")\n"
		if err := os.WriteFile(filepath.Join(fuzzCorpusDir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// readSeed reads one string entry of the checked-in corpus.
func readSeed(t *testing.T, name string) string {
	t.Helper()
	buf, err := os.ReadFile(filepath.Join(fuzzCorpusDir, name))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(buf)), "\n")
	if len(lines) != 2 || lines[0] != "go test fuzz v1" || !strings.HasPrefix(lines[1], "string(") {
		t.Fatalf("%s: not a one-string corpus entry", name)
	}
	s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "string("), ")"))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return s
}

// TestFuzzCorpusSeeds keeps the checked-in corpus meaningful: the valid
// seed verifies, and every other seed is refused.
func TestFuzzCorpusSeeds(t *testing.T) {
	entries, err := os.ReadDir(fuzzCorpusDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) < 3 {
		t.Fatalf("%d seeds in %s", len(entries), fuzzCorpusDir)
	}
	wantJKT := rfc7638(t, fuzzSigner(t).jwk)
	for _, e := range entries {
		v := newTestVerifier(t, newFakeClock(testNow), DPoPOptions{})
		jkt, err := v.Verify(testRequest(readSeed(t, e.Name())), testToken)
		if e.Name() == "valid_es256" {
			if err != nil || jkt != wantJKT {
				t.Errorf("valid seed: jkt %q, %v", jkt, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("seed %s verified", e.Name())
		}
	}
}

// FuzzDPoPProof feeds arbitrary DPoP header values to Verify: it must
// never panic, every refusal is an invalid_dpop_proof *identity.Error, and
// a fuzzer cannot forge a signature, so anything accepted must be signed by
// the corpus key.
func FuzzDPoPProof(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	wantJKT := rfc7638(f, fuzzSigner(f).jwk)
	clock := newFakeClock(testNow)
	f.Fuzz(func(t *testing.T, proof string) {
		v, err := NewDPoPVerifier(DPoPOptions{Now: clock.Now, ReplayCacheSize: 4})
		if err != nil {
			t.Fatal(err)
		}
		jkt, err := v.Verify(testRequest(proof), testToken)
		if err == nil {
			if jkt != wantJKT {
				t.Fatalf("proof accepted with jkt %q, not the corpus key's", jkt)
			}
			return
		}
		var ie *identity.Error
		if !errors.As(err, &ie) || ie.Code != identity.CodeInvalidDPoPProof || ie.Reason == "" || ie.Detail == "" || jkt != "" {
			t.Fatalf("refusal %#v (%T), jkt %q", err, err, jkt)
		}
	})
}
