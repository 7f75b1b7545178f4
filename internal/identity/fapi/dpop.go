package fapi

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws/jwsbb"

	"github.com/bulwarkapi/bulwark/internal/identity"
)

// DPoP limits and defaults. Each is explained where it is enforced.
const (
	// DefaultDPoPMaxAge is the accepted age, and clock skew, of a proof's
	// iat when DPoPOptions.MaxAge is zero (config.DefaultDPoPMaxAge).
	DefaultDPoPMaxAge = 60 * time.Second
	// DefaultReplayCacheSize bounds the replay cache when
	// DPoPOptions.ReplayCacheSize is zero: about 10 MB when full (measured:
	// map entry and queue slot, about 100 bytes each), and 800 DPoP
	// requests per second at the default MaxAge (see the package doc).
	DefaultReplayCacheSize = 100000
	// MaxDPoPProofBytes bounds the DPoP header: a proof with an RSA-4096
	// key is about 1.5 KiB, so 8 KiB leaves room and stops large headers
	// from costing decode and parse time.
	MaxDPoPProofBytes = 8 << 10
	// maxJTILength bounds the jti: RFC 9449 asks for 96 bits of
	// randomness, a few dozen characters; the cache stores its SHA-256.
	maxJTILength = 256
	// minRSABits refuses weak RSA proof keys (NIST SP 800-131A).
	minRSABits = 2048
	// maxRSABits bounds the cost of verifying an RSA proof.
	maxRSABits = 8192
	// dpopTyp is the required typ header (RFC 9449 §4.2), compared exactly.
	dpopTyp = "dpop+jwt"
)

// asymmetricAlgs are the JWS algorithms a DPoP proof may use: public-key
// algorithms only (RFC 9449 §4.2 forbids symmetric ones and none).
var asymmetricAlgs = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// defaultDPoPAlgorithms match config's default dpop_algorithms.
var defaultDPoPAlgorithms = []string{"ES256", "PS256", "EdDSA"}

// privateJWKMembers are the JWK members that carry private or secret key
// material (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2).
var privateJWKMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

// forbiddenHeaderMembers make a proof point at a key elsewhere; a DPoP
// proof carries its key in jwk, and Bulwark never fetches or chooses one.
var forbiddenHeaderMembers = []string{"jku", "x5u", "x5c"}

// Client-facing details: generic, never echoing the proof.
const (
	detailMissing   = "a DPoP proof is required"
	detailMultiple  = "exactly one DPoP proof is allowed"
	detailMalformed = "the DPoP proof is malformed"
	detailHeader    = "the DPoP proof header is not acceptable"
	detailSignature = "the DPoP proof signature is invalid"
	detailRequest   = "the DPoP proof does not match this request"
	detailTime      = "the DPoP proof is too old or from the future"
	detailJTI       = "the DPoP proof has no acceptable jti"
	detailToken     = "the DPoP proof is not bound to this access token"
	detailReplay    = "the DPoP proof has already been used"
	detailBusy      = "the DPoP proof cannot be checked for replay now"
)

// DPoPOptions configure a DPoPVerifier.
type DPoPOptions struct {
	// Algorithms are the accepted proof algorithms; asymmetric only.
	// Empty: ES256, PS256, EdDSA.
	Algorithms []string
	// MaxAge is the accepted age and clock skew of a proof's iat: a proof
	// is accepted while now-MaxAge <= iat <= now+MaxAge. Zero: 60s.
	MaxAge time.Duration
	// ReplayCacheSize bounds the replay cache (entries). Zero: 100000.
	ReplayCacheSize int
	// Now is the clock; nil: time.Now.
	Now func() time.Time
}

// DPoPVerifier verifies DPoP proofs (RFC 9449 §4.3) and remembers their
// jti to refuse replays. It is safe for concurrent use.
type DPoPVerifier struct {
	algs   []string
	maxAge time.Duration
	now    func() time.Time
	replay *replayCache
}

// NewDPoPVerifier checks o and builds a verifier, reporting every problem
// of o at once.
func NewDPoPVerifier(o DPoPOptions) (*DPoPVerifier, error) {
	var errs []error
	algs := o.Algorithms
	if len(algs) == 0 {
		algs = defaultDPoPAlgorithms
	}
	for _, a := range algs {
		if !slices.Contains(asymmetricAlgs, a) {
			errs = append(errs, fmt.Errorf("dpop algorithm %q: must be one of %s", a, strings.Join(asymmetricAlgs, ", ")))
		}
	}
	maxAge := o.MaxAge
	switch {
	case maxAge == 0:
		maxAge = DefaultDPoPMaxAge
	case maxAge < 0:
		errs = append(errs, fmt.Errorf("dpop max age %s: must be positive", maxAge))
	}
	size := o.ReplayCacheSize
	switch {
	case size == 0:
		size = DefaultReplayCacheSize
	case size < 0:
		errs = append(errs, fmt.Errorf("dpop replay cache size %d: must be positive", size))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	return &DPoPVerifier{
		algs:   slices.Clone(algs),
		maxAge: maxAge,
		now:    now,
		// A proof is acceptable for 2×MaxAge (iat±MaxAge) from the moment
		// it is first seen at the latest, so its jti is kept that long.
		replay: newReplayCache(size, 2*maxAge, now),
	}, nil
}

func dpopFail(reason, detail string, cause error) *identity.Error {
	return &identity.Error{Code: identity.CodeInvalidDPoPProof, Reason: reason, Detail: detail, Err: cause}
}

// b64 is the JOSE base64url encoding; Strict refuses non-zero padding
// bits, so a proof has exactly one encoding.
var b64 = base64.RawURLEncoding.Strict()

// Verify checks the DPoP proof in r's DPoP header against r and the access
// token (RFC 9449 §4.3, §7.1) and returns the base64url RFC 7638 SHA-256
// thumbprint of the proof's key, for CheckDPoPBinding. r.URL must be the
// request URL as the client addressed it (scheme://host[:port]/path); r's
// Header must be canonical (as net/http builds it).
//
// The proof's header must have typ dpop+jwt, an allowed asymmetric alg,
// and the public key in jwk (no jku, x5u, x5c; kid is ignored; no crit).
// After the signature, the claims must carry htm and htu matching the
// request, an iat within now±MaxAge, a jti of at most 256 characters not
// seen before, and ath, the hash of accessToken. Only a proof that passes
// every check is recorded in the replay cache.
//
// Every failure is an *identity.Error with Code invalid_dpop_proof.
func (v *DPoPVerifier) Verify(r *identity.Request, accessToken string) (jkt string, err error) {
	if r == nil {
		return "", dpopFail("dpop_proof_missing", detailMissing, nil)
	}
	vals := r.Header.Values("DPoP")
	switch {
	case len(vals) == 0:
		return "", dpopFail("dpop_proof_missing", detailMissing, nil)
	case len(vals) > 1:
		return "", dpopFail("dpop_proof_multiple", detailMultiple, fmt.Errorf("%d DPoP headers", len(vals)))
	}
	proof := vals[0]
	if len(proof) > MaxDPoPProofBytes {
		return "", dpopFail("dpop_proof_too_large", detailMalformed, fmt.Errorf("DPoP header of %d bytes, limit %d", len(proof), MaxDPoPProofBytes))
	}
	if proof == "" {
		return "", dpopFail("dpop_proof_missing", detailMissing, errors.New("empty DPoP header"))
	}
	if strings.IndexByte(proof, ',') >= 0 {
		// A compact JWS has no comma: this is a list of proofs in one field.
		return "", dpopFail("dpop_proof_multiple", detailMultiple, errors.New("comma in DPoP header"))
	}

	// Compact serialisation: header.payload.signature.
	d1 := strings.IndexByte(proof, '.')
	d2 := strings.LastIndexByte(proof, '.')
	if d1 < 0 || d1 == d2 || strings.IndexByte(proof[d1+1:d2], '.') >= 0 {
		return "", dpopFail("dpop_malformed", detailMalformed, errors.New("not a compact JWS"))
	}
	hdrB64, payloadB64, sigB64 := proof[:d1], proof[d1+1:d2], proof[d2+1:]

	hdrJSON, err := b64.DecodeString(hdrB64)
	if err != nil {
		return "", dpopFail("dpop_malformed", detailMalformed, fmt.Errorf("header: %w", err))
	}
	hdr, err := parseObject(hdrJSON)
	if err != nil {
		return "", dpopFail("dpop_malformed", detailMalformed, fmt.Errorf("header: %w", err))
	}

	alg, ok := jsonString(hdr["alg"])
	switch {
	case !ok:
		return "", dpopFail("dpop_alg_not_allowed", detailHeader, errors.New("no alg"))
	case strings.EqualFold(alg, "none"):
		return "", dpopFail("dpop_alg_none", detailHeader, nil)
	case !slices.Contains(v.algs, alg):
		return "", dpopFail("dpop_alg_not_allowed", detailHeader, fmt.Errorf("alg %q not allowed", clip(alg)))
	}
	if typ, _ := jsonString(hdr["typ"]); typ != dpopTyp {
		return "", dpopFail("dpop_bad_typ", detailHeader, fmt.Errorf("typ %q", clip(typ)))
	}
	if _, ok := hdr["crit"]; ok {
		// No extension is understood, so any crit is unknown (RFC 7515 §4.1.11).
		return "", dpopFail("dpop_unknown_crit", detailHeader, nil)
	}
	for _, m := range forbiddenHeaderMembers {
		if _, ok := hdr[m]; ok {
			return "", dpopFail("dpop_key_reference", detailHeader, fmt.Errorf("header member %s", m))
		}
	}

	pub, jkt, ferr := proofKey(hdr["jwk"], alg)
	if ferr != nil {
		return "", ferr
	}

	sig, err := b64.DecodeString(sigB64)
	if err != nil {
		return "", dpopFail("dpop_malformed", detailMalformed, fmt.Errorf("signature: %w", err))
	}
	// The signing input is the encoded header and payload as received.
	if err := jwsbb.Verify(pub, alg, []byte(proof[:d2]), sig); err != nil {
		return "", dpopFail("dpop_bad_signature", detailSignature, err)
	}

	payloadJSON, err := b64.DecodeString(payloadB64)
	if err != nil {
		return "", dpopFail("dpop_malformed", detailMalformed, fmt.Errorf("payload: %w", err))
	}
	claims, err := parseObject(payloadJSON)
	if err != nil {
		return "", dpopFail("dpop_malformed", detailMalformed, fmt.Errorf("payload: %w", err))
	}
	if ferr := v.checkClaims(claims, r, accessToken); ferr != nil {
		return "", ferr
	}

	jti, _ := jsonString(claims["jti"])
	switch err := v.replay.add(sha256.Sum256([]byte(jti))); {
	case errors.Is(err, errReplayed):
		return "", dpopFail("dpop_replay", detailReplay, nil)
	case err != nil:
		return "", dpopFail("dpop_replay_cache_full", detailBusy, err)
	}
	return jkt, nil
}

// checkClaims checks the proof's claims other than the replay of its jti.
func (v *DPoPVerifier) checkClaims(claims map[string]json.RawMessage, r *identity.Request, accessToken string) *identity.Error {
	htm, ok := jsonString(claims["htm"])
	if !ok || htm != r.Method {
		return dpopFail("dpop_htm_mismatch", detailRequest, fmt.Errorf("htm %q, request method %q", clip(htm), clip(r.Method)))
	}

	htu, ok := jsonString(claims["htu"])
	if !ok {
		return dpopFail("dpop_htu_mismatch", detailRequest, errors.New("no htu"))
	}
	want, err := normalizeHTU(r.URL)
	if err != nil {
		// The stage built a request URL that is not absolute http(s).
		return dpopFail("dpop_htu_mismatch", detailRequest, fmt.Errorf("request URL: %w", err))
	}
	got, err := normalizeHTU(htu)
	if err != nil {
		return dpopFail("dpop_htu_mismatch", detailRequest, fmt.Errorf("htu: %w", err))
	}
	if got != want {
		return dpopFail("dpop_htu_mismatch", detailRequest, fmt.Errorf("htu %q, request %q", clip(got), clip(want)))
	}

	iat, ok := jsonNumber(claims["iat"])
	if !ok {
		return dpopFail("dpop_iat_out_of_window", detailTime, errors.New("no numeric iat"))
	}
	now := float64(v.now().UnixNano()) / 1e9
	if w := v.maxAge.Seconds(); iat < now-w || iat > now+w {
		return dpopFail("dpop_iat_out_of_window", detailTime, fmt.Errorf("iat %.0f is %.0fs from now, window ±%s", iat, iat-now, v.maxAge))
	}

	jti, ok := jsonString(claims["jti"])
	switch {
	case !ok || jti == "":
		return dpopFail("dpop_jti_missing", detailJTI, nil)
	case len(jti) > maxJTILength:
		return dpopFail("dpop_jti_too_long", detailJTI, fmt.Errorf("jti of %d bytes, limit %d", len(jti), maxJTILength))
	}

	if accessToken == "" {
		// A resource server always has the token; checking no ath would
		// let a proof travel with any token.
		return dpopFail("dpop_ath_missing", detailToken, errors.New("no access token to bind the proof to"))
	}
	ath, ok := jsonString(claims["ath"])
	if !ok || ath == "" {
		return dpopFail("dpop_ath_missing", detailToken, nil)
	}
	sum := sha256.Sum256([]byte(accessToken))
	if subtle.ConstantTimeCompare([]byte(ath), []byte(b64.EncodeToString(sum[:]))) != 1 {
		return dpopFail("dpop_ath_mismatch", detailToken, nil)
	}
	return nil
}

// proofKey parses the public key of the header's jwk member, checks that
// it fits alg, and returns it with its RFC 7638 SHA-256 thumbprint.
func proofKey(raw json.RawMessage, alg string) (any, string, *identity.Error) {
	if len(raw) == 0 {
		return nil, "", dpopFail("dpop_jwk_missing", detailHeader, nil)
	}
	members, err := parseObject(raw)
	if err != nil {
		return nil, "", dpopFail("dpop_jwk_missing", detailHeader, fmt.Errorf("jwk: %w", err))
	}
	for name := range members {
		// Lower-cased: a lenient parser may take "D" for "d".
		if slices.Contains(privateJWKMembers, strings.ToLower(name)) {
			return nil, "", dpopFail("dpop_jwk_private", detailHeader, fmt.Errorf("jwk member %s", name))
		}
	}
	kty, _ := jsonString(members["kty"])
	if kty != ktyFor(alg) {
		return nil, "", dpopFail("dpop_jwk_alg_mismatch", detailHeader, fmt.Errorf("kty %q for alg %s", clip(kty), alg))
	}
	if a, ok := members["alg"]; ok {
		if s, _ := jsonString(a); s != alg {
			return nil, "", dpopFail("dpop_jwk_alg_mismatch", detailHeader, fmt.Errorf("jwk alg %q for alg %s", clip(s), alg))
		}
	}

	key, err := jwk.ParseKey(raw)
	if err != nil {
		return nil, "", dpopFail("dpop_jwk_invalid", detailHeader, err)
	}
	if priv, err := jwk.IsPrivateKey(key); err != nil || priv {
		return nil, "", dpopFail("dpop_jwk_private", detailHeader, err)
	}
	if err := key.Validate(); err != nil {
		return nil, "", dpopFail("dpop_jwk_invalid", detailHeader, err)
	}
	var pub any
	if err := jwk.Export(key, &pub); err != nil {
		return nil, "", dpopFail("dpop_jwk_invalid", detailHeader, err)
	}
	if err := keyFits(pub, alg); err != nil {
		return nil, "", dpopFail("dpop_jwk_alg_mismatch", detailHeader, err)
	}
	tp, err := key.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, "", dpopFail("dpop_jwk_invalid", detailHeader, err)
	}
	return pub, b64.EncodeToString(tp), nil
}

// ktyFor is the JWK key type of a signature algorithm.
func ktyFor(alg string) string {
	switch alg[:2] {
	case "RS", "PS":
		return "RSA"
	case "ES":
		return "EC"
	default: // EdDSA
		return "OKP"
	}
}

// keyFits checks the parsed key's type, curve and size against alg, after
// parsing: it is what the signature is verified with.
func keyFits(pub any, alg string) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		var want elliptic.Curve
		switch alg {
		case "ES256":
			want = elliptic.P256()
		case "ES384":
			want = elliptic.P384()
		case "ES512":
			want = elliptic.P521()
		}
		if want == nil || k.Curve != want {
			return fmt.Errorf("EC key on curve %s for alg %s", k.Curve.Params().Name, alg)
		}
	case *rsa.PublicKey:
		if ktyFor(alg) != "RSA" {
			return fmt.Errorf("RSA key for alg %s", alg)
		}
		if bits := k.N.BitLen(); bits < minRSABits || bits > maxRSABits {
			return fmt.Errorf("RSA key of %d bits, accepted %d to %d", bits, minRSABits, maxRSABits)
		}
	case ed25519.PublicKey:
		if alg != "EdDSA" || len(k) != ed25519.PublicKeySize {
			return fmt.Errorf("Ed25519 key for alg %s", alg)
		}
	default:
		return fmt.Errorf("key type %T for alg %s", pub, alg)
	}
	return nil
}

// parseObject decodes a JSON object into its members, exactly as named.
// Duplicate members and trailing data are refused: two readers of the
// same proof must never see different values.
func parseObject(data []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	m := make(map[string]json.RawMessage, 8)
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		name, ok := t.(string)
		if !ok {
			return nil, errors.New("bad member name")
		}
		if _, dup := m[name]; dup {
			return nil, fmt.Errorf("duplicate member %q", clip(name))
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		m[name] = v
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON object")
	}
	return m, nil
}

// jsonString returns the value of a JSON string member.
func jsonString(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

// jsonNumber returns the value of a JSON number member.
func jsonNumber(raw json.RawMessage) (float64, bool) {
	if len(raw) == 0 || (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil {
		return 0, false
	}
	return f, true
}

// clip shortens a value from the proof for an error message.
func clip(s string) string {
	const max = 128
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
