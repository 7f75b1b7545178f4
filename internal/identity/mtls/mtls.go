// Package mtls takes the caller's identity from the client certificate of
// the connection: its subject, DNS and URI SANs and SPIFFE ID. The TLS layer
// has already verified the chain against the listener's client CA; this
// package only reads the verified leaf.
package mtls

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/bulwarkapi/bulwark/internal/config"
	"github.com/bulwarkapi/bulwark/internal/identity"
)

// Subject modes (config.MTLSProvider.Subject).
const (
	SubjectSPIFFE = "spiffe"
	SubjectDNS    = "dns"
	SubjectURI    = "uri"
	SubjectDN     = "dn"
)

// Reasons recorded in the audit log.
const (
	ReasonExpired               = "certificate_expired"
	ReasonNotYetValid           = "certificate_not_yet_valid"
	ReasonNoDNSSAN              = "certificate_no_dns_san"
	ReasonNoURISAN              = "certificate_no_uri_san"
	ReasonNoSubject             = "certificate_no_subject"
	ReasonSPIFFEMissing         = "spiffe_id_missing"
	ReasonSPIFFEInvalid         = "spiffe_id_invalid"
	ReasonTrustDomainNotAllowed = "spiffe_trust_domain_not_allowed"
)

// Provider is one configured mTLS identity method. It is immutable after New
// and safe for concurrent use.
type Provider struct {
	name         string
	subject      string
	trustDomains []string // lower-cased
	now          func() time.Time
}

var _ identity.Provider = (*Provider)(nil)

// New builds a provider from validated configuration.
func New(name string, c config.MTLSProvider) (*Provider, error) {
	p := &Provider{name: name, subject: c.Subject, now: time.Now}
	switch p.subject {
	case "":
		p.subject = SubjectSPIFFE
	case SubjectSPIFFE, SubjectDNS, SubjectURI, SubjectDN:
	default:
		return nil, fmt.Errorf("mtls provider %s: unknown subject %q", name, c.Subject)
	}
	for _, td := range c.TrustDomains {
		p.trustDomains = append(p.trustDomains, strings.ToLower(td))
	}
	return p, nil
}

// Name is the configured provider name.
func (p *Provider) Name() string { return p.name }

// Kind is identity.KindMTLS.
func (p *Provider) Kind() identity.Kind { return identity.KindMTLS }

// Authenticate builds the identity of the verified client certificate of r.
// It returns identity.ErrNoCredential when the client presented none.
func (p *Provider) Authenticate(_ context.Context, r *identity.Request) (*identity.Identity, error) {
	if len(r.PeerCertificates) == 0 || r.PeerCertificates[0] == nil {
		return nil, identity.ErrNoCredential
	}
	leaf := r.PeerCertificates[0]
	// Go's TLS verification already refuses certificates outside their
	// validity; this is a second line for other ways a chain may arrive.
	now := p.now()
	if now.After(leaf.NotAfter) {
		return nil, identity.Fail(ReasonExpired, "client certificate expired", nil)
	}
	if now.Before(leaf.NotBefore) {
		return nil, identity.Fail(ReasonNotYetValid, "client certificate not yet valid", nil)
	}

	info := Describe(leaf)
	spiffeURIs := countSPIFFE(leaf)
	// A certificate that tries to carry a SPIFFE ID but carries no valid one
	// (malformed, or two) is refused rather than identified by another name.
	if spiffeURIs > 0 && info.SPIFFEID == "" {
		return nil, identity.Fail(ReasonSPIFFEInvalid, "client certificate SPIFFE ID is invalid", nil)
	}
	if len(p.trustDomains) > 0 {
		if info.SPIFFEID == "" {
			return nil, identity.Fail(ReasonSPIFFEMissing, "client certificate has no SPIFFE ID", nil)
		}
		td, _, _ := ParseSPIFFEID(info.SPIFFEID)
		if !slices.Contains(p.trustDomains, td) {
			return nil, identity.Fail(ReasonTrustDomainNotAllowed, "SPIFFE trust domain not allowed", nil)
		}
	}

	var sub string
	switch p.subject {
	case SubjectSPIFFE:
		sub = info.SPIFFEID
		if sub == "" {
			sub = info.Subject
		}
	case SubjectDNS:
		if len(info.DNSNames) == 0 {
			return nil, identity.Fail(ReasonNoDNSSAN, "client certificate has no DNS name", nil)
		}
		sub = info.DNSNames[0]
	case SubjectURI:
		if len(info.URIs) == 0 {
			return nil, identity.Fail(ReasonNoURISAN, "client certificate has no URI", nil)
		}
		sub = info.URIs[0]
	case SubjectDN:
		sub = info.Subject
	}
	if sub == "" {
		return nil, identity.Fail(ReasonNoSubject, "client certificate has no subject", nil)
	}
	return &identity.Identity{
		Subject:     sub,
		Provider:    p.name,
		Kind:        identity.KindMTLS,
		Expiry:      leaf.NotAfter,
		Certificate: &info,
	}, nil
}

// Describe summarises a certificate for identities, the audit log and the
// inventory. SPIFFEID is set only when the certificate has exactly one URI
// SAN with the spiffe scheme and it is a valid SPIFFE ID.
func Describe(cert *x509.Certificate) identity.CertInfo {
	sum := sha256.Sum256(cert.Raw)
	info := identity.CertInfo{
		Subject:  cert.Subject.String(),
		DNSNames: slices.Clone(cert.DNSNames),
		Issuer:   cert.Issuer.String(),
		NotAfter: cert.NotAfter,
		X5tS256:  base64.RawURLEncoding.EncodeToString(sum[:]),
	}
	if cert.SerialNumber != nil {
		info.Serial = cert.SerialNumber.Text(16)
	}
	var spiffe []string
	for _, u := range cert.URIs {
		if u == nil {
			continue
		}
		s := u.String()
		info.URIs = append(info.URIs, s)
		if strings.EqualFold(u.Scheme, "spiffe") {
			spiffe = append(spiffe, s)
		}
	}
	if len(spiffe) == 1 {
		if _, _, err := ParseSPIFFEID(spiffe[0]); err == nil {
			info.SPIFFEID = spiffe[0]
		}
	}
	return info
}

func countSPIFFE(cert *x509.Certificate) int {
	n := 0
	for _, u := range cert.URIs {
		if u != nil && strings.EqualFold(u.Scheme, "spiffe") {
			n++
		}
	}
	return n
}
