// Package identity defines the verified identity every stage after
// authentication sees, the Provider interface the authentication methods
// implement, and the typed errors they return. The providers live in
// sub-packages (jwtauth, introspect, apikey, mtls; fapi holds the
// FAPI binding checks). This package imports nothing else of Bulwark and
// does no HTTP plumbing: the authenticate stage extracts the credentials
// from the request into a Request and renders the errors.
package identity

import (
	"context"
	"crypto/x509"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Kind is how an identity was established.
type Kind string

// The kinds of identity.
const (
	KindJWT           Kind = "jwt"
	KindIntrospection Kind = "introspection"
	KindAPIKey        Kind = "api_key"
	KindMTLS          Kind = "mtls"
)

// Identity is one verified caller. It is immutable once returned by a
// provider: providers may share one Identity between requests (from a
// cache), so callers must not modify it.
type Identity struct {
	// Subject identifies the caller (the token's sub, the API key's id, the
	// certificate's SPIFFE ID or subject).
	Subject string
	// Provider is the name of the configured provider that verified it.
	Provider string
	Kind     Kind
	// Claims are the verified token claims (JWT, introspection); nil otherwise.
	Claims map[string]any
	Scopes []string
	Roles  []string
	Tenant string
	// ClientID is the OAuth client (azp / client_id), when the token says.
	ClientID string
	// Expiry is when the credential stops being valid (zero: no expiry).
	Expiry time.Time
	// Confirmation is the token's cnf claim (RFC 7800): the key or
	// certificate the token is bound to.
	Confirmation Confirmation
	// Certificate describes the client certificate for mTLS identities.
	Certificate *CertInfo
}

// HasScope reports whether the identity holds scope s.
func (id *Identity) HasScope(s string) bool {
	for _, have := range id.Scopes {
		if have == s {
			return true
		}
	}
	return false
}

// Confirmation is the proof-of-possession binding of a token.
type Confirmation struct {
	// X5tS256 is cnf."x5t#S256": base64url SHA-256 of the client
	// certificate the token is bound to (RFC 8705).
	X5tS256 string
	// JKT is cnf.jkt: base64url SHA-256 JWK thumbprint of the DPoP key the
	// token is bound to (RFC 9449).
	JKT string
}

// CertInfo is what an mTLS identity knows of its certificate.
type CertInfo struct {
	Subject  string   // RFC 2253 distinguished name
	DNSNames []string // DNS SANs
	URIs     []string // URI SANs
	SPIFFEID string   // the spiffe:// URI SAN, if exactly one
	Issuer   string
	Serial   string
	NotAfter time.Time
	X5tS256  string // base64url SHA-256 of the DER certificate
}

// Request is the part of an HTTP request the providers may look at.
type Request struct {
	Method string
	// URL is the absolute request URL as the client addressed it (scheme,
	// host, path; no query), for DPoP's htu.
	URL    string
	Header http.Header
	Query  url.Values
	// PeerCertificates is the client's verified certificate chain, leaf
	// first; empty when the client presented none.
	PeerCertificates []*x509.Certificate
}

// Provider is one configured authentication method.
type Provider interface {
	Name() string
	Kind() Kind
	// Authenticate verifies the credential of this provider's kind in r.
	// It returns ErrNoCredential when r carries no such credential, so the
	// caller can try the next provider; any other failure is an *Error.
	Authenticate(ctx context.Context, r *Request) (*Identity, error)
}

// ErrNoCredential says a request carries no credential for a provider.
var ErrNoCredential = errors.New("no credential presented")

// RFC 6750 §3.1 error codes (and RFC 9470's step-up code).
const (
	CodeInvalidRequest    = "invalid_request"
	CodeInvalidToken      = "invalid_token"
	CodeInsufficientScope = "insufficient_scope"
	// CodeInvalidDPoPProof is RFC 9449 §7.1.
	CodeInvalidDPoPProof = "invalid_dpop_proof"
)

// Error is an authentication failure. Reason is a stable machine-readable
// slug recorded in the audit log and metrics ("alg_none", "expired",
// "bad_signature", "unknown_kid", ...); it never contains the credential.
// Detail is safe to show the client. Err, if set, is the internal cause
// for the operator's log.
type Error struct {
	Code   string
	Reason string
	Detail string
	Err    error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Reason + ": " + e.Err.Error()
	}
	return e.Reason
}

func (e *Error) Unwrap() error { return e.Err }

// Fail returns an invalid_token *Error.
func Fail(reason, detail string, cause error) *Error {
	return &Error{Code: CodeInvalidToken, Reason: reason, Detail: detail, Err: cause}
}

// Unavailable marks a failure of a dependency (JWKS or introspection
// endpoint down with nothing cached): authentication fails closed, and the
// stage answers 503 rather than 401, because the client did nothing wrong.
type Unavailable struct {
	Provider string
	Err      error
}

func (e *Unavailable) Error() string { return e.Provider + " unavailable: " + e.Err.Error() }
func (e *Unavailable) Unwrap() error { return e.Err }

// Observer receives the providers' events for metrics. Implementations
// must be safe for concurrent use; a nil Observer is allowed everywhere.
type Observer interface {
	// KeySetFetch reports a JWKS fetch: outcome is "ok", "unchanged" or
	// "error" (then the last good key set, if any, keeps serving).
	KeySetFetch(provider, outcome string)
	// CacheLookup reports a verified-token or introspection cache lookup.
	CacheLookup(provider string, hit bool)
	// DependencyError reports that an endpoint the provider needs (JWKS,
	// introspection) failed or timed out.
	DependencyError(provider string)
}

// maxAuthorizationBytes bounds the Authorization header a provider looks
// at; a longer one is refused before any parsing.
const maxAuthorizationBytes = 64 << 10

// BearerToken returns the access token of an "Authorization: Bearer" or
// "Authorization: DPoP" header (RFC 6750 §2.1, RFC 9449 §7.1) and the
// scheme as sent, canonicalised to "Bearer" or "DPoP". ok is false when
// there is no such header; an Authorization header with two values or an
// oversized one is treated as absent by this function and must be refused
// by the caller with invalid_request.
func BearerToken(h http.Header) (token, scheme string, ok bool) {
	vals := h.Values("Authorization")
	if len(vals) != 1 || len(vals[0]) > maxAuthorizationBytes {
		return "", "", false
	}
	v := vals[0]
	sp := strings.IndexByte(v, ' ')
	if sp <= 0 {
		return "", "", false
	}
	switch {
	case strings.EqualFold(v[:sp], "Bearer"):
		scheme = "Bearer"
	case strings.EqualFold(v[:sp], "DPoP"):
		scheme = "DPoP"
	default:
		return "", "", false
	}
	token = strings.TrimLeft(v[sp+1:], " ")
	if token == "" || strings.ContainsAny(token, " \t") {
		return "", "", false
	}
	return token, scheme, true
}
