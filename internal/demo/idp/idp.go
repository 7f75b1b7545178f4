// Package idp is the demo's local identity provider: it holds one ES256
// signing key, generated at start and never written to disk, publishes the
// public half as a JWKS (which the gateway's jwt provider reads through
// jwks_file) and issues the access tokens that the demo's customers
// present to the gateway.
//
// A token carries what the demo gateway's rules need: iss, aud, sub (the
// bank's customer id), iat, nbf, exp, jti, scope, account_ids, card_ids
// and roles. It is a demo-only provider: there is no consent, no refresh
// token and no revocation, and it must never sign anything outside the
// demo.
package idp

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
)

const (
	// Issuer is the iss of every token; the demo gateway's jwt provider
	// requires it. The .localhost name never resolves off the machine.
	Issuer = "https://idp.bulwark-demo.localhost"
	// Audience is the aud of every token: the sample bank API.
	Audience = "bank-api"
	// Scope is what a customer's token may do: read accounts and cards,
	// and make payments.
	Scope = "accounts payments cards"
	// Algorithm is the only signing algorithm: ECDSA P-256, small keys and
	// signatures, the FAPI-recommended choice.
	Algorithm = "ES256"
	// DefaultLifetime is a token's validity: as long as a typical
	// access token at a bank, short enough that a leaked one soon expires.
	DefaultLifetime = 15 * time.Minute
	// nbfSkew backdates nbf so that a verifier whose clock is a little
	// behind accepts a fresh token.
	nbfSkew = 5 * time.Second
)

// Options configure an IdP.
type Options struct {
	// Lifetime of issued tokens; zero means DefaultLifetime.
	Lifetime time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// IdP issues ES256 JWTs. It is safe for concurrent use.
type IdP struct {
	key      *ecdsa.PrivateKey
	kid      string
	jwks     []byte
	pubPEM   []byte
	lifetime time.Duration
	now      func() time.Time
}

// New generates a fresh signing key.
func New(o Options) (*IdP, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("idp: %w", err)
	}
	p := &IdP{key: key, lifetime: o.Lifetime, now: o.Now}
	if p.lifetime <= 0 {
		p.lifetime = DefaultLifetime
	}
	if p.now == nil {
		p.now = time.Now
	}
	pub, err := jwk.Import(&key.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("idp: %w", err)
	}
	thumb, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("idp: %w", err)
	}
	// The RFC 7638 thumbprint as kid: stable for the key, unique across keys.
	p.kid = base64.RawURLEncoding.EncodeToString(thumb)
	for k, v := range map[string]any{jwk.KeyIDKey: p.kid, jwk.AlgorithmKey: jwa.ES256(), jwk.KeyUsageKey: "sig"} {
		if err := pub.Set(k, v); err != nil {
			return nil, fmt.Errorf("idp: %w", err)
		}
	}
	set := jwk.NewSet()
	if err := set.AddKey(pub); err != nil {
		return nil, fmt.Errorf("idp: %w", err)
	}
	if p.jwks, err = json.MarshalIndent(set, "", "  "); err != nil {
		return nil, fmt.Errorf("idp: %w", err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("idp: %w", err)
	}
	p.pubPEM = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	return p, nil
}

// KeyID is the kid of the signing key, as published in the JWKS.
func (p *IdP) KeyID() string { return p.kid }

// JWKS is the public key set as JSON: what a gateway's jwks_file holds.
func (p *IdP) JWKS() []byte { return append([]byte(nil), p.jwks...) }

// WriteJWKS writes the public key set to path (mode 0644: it is public).
func (p *IdP) WriteJWKS(path string) error {
	if err := os.WriteFile(path, p.jwks, 0o644); err != nil {
		return fmt.Errorf("idp: %w", err)
	}
	return nil
}

// PublicKeyPEM is the verification key as a PEM "PUBLIC KEY" block. It is
// public; the demo's key-confusion attacker uses it as an HMAC secret.
func (p *IdP) PublicKeyPEM() []byte { return append([]byte(nil), p.pubPEM...) }

// Claims are the claims Issue would sign for a customer, with times from
// the IdP's clock. Attack code uses them to forge look-alike tokens.
func (p *IdP) Claims(customerID string, accountIDs, cardIDs, roles []string) map[string]any {
	now := p.now()
	return map[string]any{
		"iss":         Issuer,
		"aud":         Audience,
		"sub":         customerID,
		"iat":         now.Unix(),
		"nbf":         now.Add(-nbfSkew).Unix(),
		"exp":         now.Add(p.lifetime).Unix(),
		"jti":         randomID(),
		"scope":       Scope,
		"account_ids": nonNil(accountIDs),
		"card_ids":    nonNil(cardIDs),
		"roles":       nonNil(roles),
	}
}

// Issue signs an access token for a customer: sub is customerID and the
// token lists the accounts and cards the customer may use, and its roles.
func (p *IdP) Issue(customerID string, accountIDs, cardIDs, roles []string) string {
	return p.Sign(p.Claims(customerID, accountIDs, cardIDs, roles))
}

// Sign signs arbitrary claims with the IdP's key (ES256, with its kid).
func (p *IdP) Sign(claims map[string]any) string {
	input := Segment(map[string]any{"alg": Algorithm, "typ": "JWT", "kid": p.kid}) + "." + Segment(claims)
	h := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, p.key, h[:])
	if err != nil {
		// crypto/rand does not fail on supported platforms; a signer that
		// cannot sign must not hand out an unsigned token.
		panic("idp: signing failed: " + err.Error())
	}
	// JWS uses the fixed-size r||s form, not ASN.1 (RFC 7518 §3.4).
	sig := append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...)
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// Segment is the base64url (unpadded) JSON encoding of v: one part of a
// compact JWS.
func Segment(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic("idp: claims do not encode: " + err.Error()) // only maps of strings, numbers and string lists are used
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func randomID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}
