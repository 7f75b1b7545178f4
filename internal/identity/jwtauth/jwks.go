package jwtauth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/lestrrat-go/jwx/v3/jwk"
)

// Limits of a JWKS document.
const (
	// maxJWKSBytes bounds a JWKS body: real sets are a few KiB; 1 MiB stops
	// a broken or hostile endpoint from costing memory and parse time.
	maxJWKSBytes = 1 << 20
	// maxJWKSKeys bounds the keys of a set: identity providers publish a
	// handful; each key costs parsing and may be a kid-less candidate.
	maxJWKSKeys = 100
)

// pubKey is one usable verification key of a set.
type pubKey struct {
	kid      string
	kty      string // RSA, EC, OKP
	crv      string // P-256, P-384, P-521, Ed25519; "" for RSA
	alg      string // the JWK's alg member, "" when absent
	use      string // the JWK's use member, "" when absent
	ops      []string
	verifyOp bool    // key_ops lists verify
	jwk      jwk.Key // public only
	// id is kid + RFC 7638 thumbprint: how a removed key is recognised.
	id string
}

// keySet is an immutable parsed JWKS, swapped atomically on refresh.
type keySet struct {
	keys  []*pubKey
	byKID map[string][]*pubKey
}

// skippedKey is a JWKS member that is not used, with the reason (logged
// once per provider).
type skippedKey struct {
	index  int
	kid    string
	reason string
}

// parseJWKS parses a JWKS document. Keys that are private, symmetric,
// unsupported or malformed are skipped and reported; a document that is
// too large, has too many keys, is not a JWKS, or has no usable key is an
// error.
func parseJWKS(body []byte) (*keySet, []skippedKey, error) {
	if len(body) > maxJWKSBytes {
		return nil, nil, fmt.Errorf("jwks of %d bytes exceeds %d", len(body), maxJWKSBytes)
	}
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, nil, fmt.Errorf("jwks is not a JSON key set: %w", err)
	}
	if doc.Keys == nil {
		return nil, nil, errors.New("jwks has no keys array")
	}
	if len(doc.Keys) > maxJWKSKeys {
		return nil, nil, fmt.Errorf("jwks has %d keys, more than %d", len(doc.Keys), maxJWKSKeys)
	}
	ks := &keySet{byKID: map[string][]*pubKey{}}
	var skipped []skippedKey
	for i, raw := range doc.Keys {
		k, kid, err := parseKey(raw)
		if err != nil {
			skipped = append(skipped, skippedKey{index: i, kid: kid, reason: err.Error()})
			continue
		}
		ks.keys = append(ks.keys, k)
		if k.kid != "" {
			ks.byKID[k.kid] = append(ks.byKID[k.kid], k)
		}
	}
	if len(ks.keys) == 0 {
		return nil, skipped, fmt.Errorf("jwks has no usable key (%d skipped)", len(skipped))
	}
	return ks, skipped, nil
}

// parseKey parses one JWK into a public verification key; kid is returned
// even on error, for the log.
func parseKey(raw json.RawMessage) (*pubKey, string, error) {
	var peek struct {
		Kty any `json:"kty"`
		Kid any `json:"kid"`
	}
	if err := json.Unmarshal(raw, &peek); err != nil {
		return nil, "", fmt.Errorf("not a JSON object: %w", err)
	}
	kid, _ := peek.Kid.(string)
	kty, _ := peek.Kty.(string)
	switch {
	case peek.Kid != nil && kid == "":
		return nil, kid, errors.New("kid is not a non-empty string")
	case kty == "":
		return nil, kid, errors.New("kty missing")
	case kty == "oct":
		return nil, kid, errors.New("symmetric key: never used from a JWKS")
	case kty != "RSA" && kty != "EC" && kty != "OKP":
		return nil, kid, fmt.Errorf("unsupported kty %.16q", kty)
	}
	key, err := jwk.ParseKey(raw)
	if err != nil {
		return nil, kid, fmt.Errorf("invalid key: %w", err)
	}
	if priv, err := jwk.IsPrivateKey(key); err != nil || priv {
		return nil, kid, errors.New("private key published in a JWKS: not used")
	}
	k := &pubKey{kid: kid, kty: kty, jwk: key}
	var pub any
	if err := jwk.Export(key, &pub); err != nil {
		return nil, kid, fmt.Errorf("unusable key: %w", err)
	}
	switch pk := pub.(type) {
	case *rsa.PublicKey:
		if n := pk.N.BitLen(); n < minRSABits || n > maxRSABits {
			return nil, kid, fmt.Errorf("RSA key of %d bits, not between %d and %d", n, minRSABits, maxRSABits)
		}
	case *ecdsa.PublicKey:
		k.crv = pk.Curve.Params().Name
	case ed25519.PublicKey:
		k.crv = "Ed25519"
	default:
		return nil, kid, fmt.Errorf("unsupported key type %T", pub)
	}
	if a, ok := key.Algorithm(); ok {
		k.alg = a.String()
	}
	if u, ok := key.KeyUsage(); ok {
		k.use = u
	}
	if ops, ok := key.KeyOps(); ok {
		k.ops = make([]string, 0, len(ops))
		for _, op := range ops {
			k.ops = append(k.ops, string(op))
			k.verifyOp = k.verifyOp || op == jwk.KeyOpVerify
		}
	}
	tp, err := key.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, kid, fmt.Errorf("thumbprint: %w", err)
	}
	k.id = kid + "/" + base64.RawURLEncoding.EncodeToString(tp)
	return k, kid, nil
}

// RSA key sizes accepted from a JWKS.
const (
	// minRSABits: shorter keys are factorable or close to it (NIST SP
	// 800-131A disallows them for signatures).
	minRSABits = 2048
	// maxRSABits bounds the cost of each verification: a 16384-bit key
	// makes every token an order of magnitude dearer to check.
	maxRSABits = 8192
)

// removedFrom reports whether any key of old is missing from ks.
func (ks *keySet) removedFrom(old *keySet) (removed []string) {
	have := make(map[string]bool, len(ks.keys))
	for _, k := range ks.keys {
		have[k.id] = true
	}
	for _, k := range old.keys {
		if !have[k.id] {
			removed = append(removed, k.kid)
		}
	}
	return removed
}

func (ks *keySet) kids() []string {
	out := make([]string, 0, len(ks.keys))
	for _, k := range ks.keys {
		out = append(out, k.kid)
	}
	return out
}
