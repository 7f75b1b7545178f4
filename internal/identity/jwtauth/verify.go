package jwtauth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/bulwarkapi/bulwark/internal/identity"
)

// Reasons: the stable slugs of identity.Error.Reason this package returns.
const (
	reasonTooLarge      = "token_too_large"
	reasonMalformed     = "malformed"
	reasonAlgNone       = "alg_none"
	reasonAlgNotAllowed = "alg_not_allowed"
	reasonEmbeddedKey   = "embedded_key_rejected"
	reasonUnknownCrit   = "unknown_crit"
	reasonB64           = "unencoded_payload"
	reasonBadTyp        = "bad_typ"
	reasonUnknownKid    = "unknown_kid"
	reasonNoKey         = "no_matching_key"
	reasonKeyMismatch   = "key_mismatch"
	reasonBadSignature  = "bad_signature"
	reasonWrongIssuer   = "wrong_issuer"
	reasonWrongAudience = "wrong_audience"
	reasonExpired       = "expired"
	reasonNotYetValid   = "not_yet_valid"
	reasonIssuedFuture  = "issued_in_future"
	reasonMissingClaim  = "missing_claim"
	reasonInvalidClaim  = "invalid_claim"
)

// Client-safe details: generic on purpose, never echoing the token.
const (
	detailInvalid = "The access token is invalid."
	detailExpired = "The access token has expired."
	detailNotYet  = "The access token is not yet valid."
)

func fail(reason string, cause error) *identity.Error {
	detail := detailInvalid
	switch reason {
	case reasonExpired:
		detail = detailExpired
	case reasonNotYetValid:
		detail = detailNotYet
	}
	return identity.Fail(reason, detail, cause)
}

// maxKidlessCandidates bounds the signature checks for a token without a
// kid: a set rarely has more than two keys of one type, and each check of
// an attacker's token costs CPU.
const maxKidlessCandidates = 4

// header is the part of the JOSE header verification looks at.
type header struct {
	alg string
	kid string
}

// embeddedKeyHeaders carry a key (or a pointer to one) chosen by whoever
// made the token: trusting any of them lets anyone sign.
var embeddedKeyHeaders = []string{"jku", "x5u", "x5c", "jwk"}

var b64url = base64.RawURLEncoding.Strict()

// parseHeader decodes and vets the protected header, in the order: alg
// none, alg allow-list, embedded keys, crit, b64, typ.
func (p *Provider) parseHeader(seg string) (header, *identity.Error) {
	var h header
	raw, err := b64url.DecodeString(seg)
	if err != nil {
		return h, fail(reasonMalformed, fmt.Errorf("header: %w", err))
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		if err == nil {
			err = errors.New("not a JSON object")
		}
		return h, fail(reasonMalformed, fmt.Errorf("header: %w", err))
	}
	algRaw, ok := m["alg"]
	if !ok || json.Unmarshal(algRaw, &h.alg) != nil {
		return h, fail(reasonMalformed, errors.New("header: alg missing or not a string"))
	}
	if strings.EqualFold(h.alg, "none") {
		return h, fail(reasonAlgNone, errors.New("unsigned token (alg none)"))
	}
	if _, ok := p.allowed[h.alg]; !ok {
		return h, fail(reasonAlgNotAllowed, fmt.Errorf("alg %.32q is not allowed", h.alg))
	}
	for _, k := range embeddedKeyHeaders {
		if _, ok := m[k]; ok {
			return h, fail(reasonEmbeddedKey, fmt.Errorf("header carries %s", k))
		}
	}
	if _, ok := m["crit"]; ok {
		// No extension is understood, so any crit (even an empty, invalid,
		// one) is refused (RFC 7515 §4.1.11).
		return h, fail(reasonUnknownCrit, errors.New("header has crit"))
	}
	if v, ok := m["b64"]; ok && string(v) != "true" {
		return h, fail(reasonB64, errors.New("header has b64 other than true (RFC 7797)"))
	}
	if v, ok := m["typ"]; ok {
		var typ string
		if json.Unmarshal(v, &typ) != nil || !goodTyp(typ) {
			return h, fail(reasonBadTyp, fmt.Errorf("typ %.32s is not JWT or at+jwt", v))
		}
	}
	if v, ok := m["kid"]; ok {
		if json.Unmarshal(v, &h.kid) != nil {
			return h, fail(reasonMalformed, errors.New("header: kid is not a string"))
		}
	}
	return h, nil
}

// goodTyp accepts JWT and at+jwt (RFC 9068), with or without the
// "application/" prefix RFC 7515 §4.1.9 lets producers omit.
func goodTyp(t string) bool {
	t = strings.ToLower(t)
	t = strings.TrimPrefix(t, "application/")
	return t == "jwt" || t == "at+jwt"
}

// verify does the full check of one token: structure, header, key,
// signature, claims.
func (p *Provider) verify(ctx context.Context, token string, now time.Time) (*identity.Identity, error) {
	hseg, rest, ok1 := strings.Cut(token, ".")
	pseg, sseg, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || hseg == "" || pseg == "" || strings.IndexByte(sseg, '.') >= 0 {
		return nil, fail(reasonMalformed, errors.New("not a compact JWS (three base64url parts)"))
	}
	h, ferr := p.parseHeader(hseg)
	if ferr != nil {
		return nil, ferr
	}
	alg := p.allowed[h.alg]
	if sseg == "" {
		return nil, fail(reasonBadSignature, errors.New("signature missing"))
	}
	var payload []byte
	if isHMAC(h.alg) {
		if p.hmacSecret == nil {
			// Key confusion: an HS* alg must never meet a JWKS key.
			return nil, fail(reasonKeyMismatch, fmt.Errorf("%s needs hmac_secret; JWKS keys are never used as HMAC secrets", h.alg))
		}
		var err error
		if payload, err = p.checkSig(token, alg, p.hmacSecret); err != nil {
			return nil, fail(reasonBadSignature, err)
		}
	} else {
		var err error
		if payload, err = p.verifyWithKeys(ctx, token, h); err != nil {
			return nil, err
		}
	}
	return p.identity(payload, now)
}

func (p *Provider) checkSig(token string, alg jwa.SignatureAlgorithm, key any) ([]byte, error) {
	p.sigChecks.Add(1)
	return jws.Verify([]byte(token), jws.WithKey(alg, key))
}

// verifyWithKeys selects the JWKS keys for the token and checks the
// signature, refreshing the key set (rate-limited) once when the kid is
// unknown or no key fits.
func (p *Provider) verifyWithKeys(ctx context.Context, token string, h header) ([]byte, error) {
	ks := p.keys.Load()
	if ks == nil {
		p.refreshKeys(ctx, false)
		if ks = p.keys.Load(); ks == nil {
			return nil, p.unavailable()
		}
	}
	cands, ferr := ks.candidates(h)
	if ferr != nil && (ferr.Reason == reasonUnknownKid || ferr.Reason == reasonNoKey) {
		p.refreshKeys(ctx, false)
		if fresh := p.keys.Load(); fresh != ks {
			cands, ferr = fresh.candidates(h)
		}
	}
	if ferr != nil {
		return nil, ferr
	}
	alg := p.allowed[h.alg]
	var last error
	for _, k := range cands {
		payload, err := p.checkSig(token, alg, k.jwk)
		if err == nil {
			return payload, nil
		}
		last = err
	}
	return nil, fail(reasonBadSignature, last)
}

func (p *Provider) unavailable() error {
	p.fmu.Lock()
	cause := p.fetch.lastErr
	p.fmu.Unlock()
	if cause == nil {
		cause = errors.New("no key set loaded yet")
	}
	return &identity.Unavailable{Provider: p.name, Err: fmt.Errorf("no JWKS has ever loaded: %w", cause)}
}

// candidates picks the keys a token with header h may be verified with.
func (ks *keySet) candidates(h header) ([]*pubKey, *identity.Error) {
	if h.kid != "" {
		byKid := ks.byKID[h.kid]
		if len(byKid) == 0 {
			return nil, fail(reasonUnknownKid, fmt.Errorf("no key with kid %.64q", h.kid))
		}
		var out []*pubKey
		var mismatch error
		for _, k := range byKid {
			if err := k.fits(h.alg); err != nil {
				mismatch = err
				continue
			}
			out = append(out, k)
			if len(out) == maxKidlessCandidates {
				break
			}
		}
		if len(out) == 0 {
			return nil, fail(reasonKeyMismatch, mismatch)
		}
		return out, nil
	}
	var out []*pubKey
	for _, k := range ks.keys {
		if k.fits(h.alg) == nil {
			out = append(out, k)
			if len(out) == maxKidlessCandidates {
				break
			}
		}
	}
	if len(out) == 0 {
		return nil, fail(reasonNoKey, fmt.Errorf("no key without kid fits %s", h.alg))
	}
	return out, nil
}

// fits reports why key k cannot verify alg, or nil.
func (k *pubKey) fits(alg string) error {
	kty, crv := algKeyType(alg), algCurve(alg)
	switch {
	case kty != k.kty:
		return fmt.Errorf("key %.64q is %s, %s needs %s", k.kid, k.kty, alg, kty)
	case crv != "" && crv != k.crv:
		return fmt.Errorf("key %.64q is on %s, %s needs %s", k.kid, k.crv, alg, crv)
	case k.alg != "" && k.alg != alg:
		return fmt.Errorf("key %.64q is for %s, not %s", k.kid, k.alg, alg)
	case k.use != "" && k.use != "sig":
		return fmt.Errorf("key %.64q has use %q", k.kid, k.use)
	case k.ops != nil && !k.verifyOp:
		return fmt.Errorf("key %.64q key_ops lacks verify", k.kid)
	}
	return nil
}

func isHMAC(alg string) bool { return alg == "HS256" || alg == "HS384" || alg == "HS512" }

// algKeyType is the JWK kty an algorithm needs ("" when unsupported).
func algKeyType(alg string) string {
	switch alg {
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		return "RSA"
	case "ES256", "ES384", "ES512":
		return "EC"
	case "EdDSA":
		return "OKP"
	case "HS256", "HS384", "HS512":
		return "oct"
	}
	return ""
}

// algCurve is the curve an algorithm needs ("" when it needs none).
func algCurve(alg string) string {
	switch alg {
	case "ES256":
		return "P-256"
	case "ES384":
		return "P-384"
	case "ES512":
		return "P-521"
	case "EdDSA":
		return "Ed25519"
	}
	return ""
}
