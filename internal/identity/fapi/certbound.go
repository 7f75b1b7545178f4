package fapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"

	"github.com/bulwarkapi/bulwark/internal/identity"
)

// CertThumbprint returns the base64url (unpadded) SHA-256 of the DER
// certificate, the form of cnf."x5t#S256" (RFC 8705 §3.1).
func CertThumbprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// CheckCertificateBinding checks that the token of id is bound to the
// client certificate of this connection (RFC 8705 §3): cnf."x5t#S256" must
// equal the thumbprint of the leaf certificate peer[0]. The comparison is
// of the encoded strings, in constant time; a padded or otherwise
// non-canonical encoding in the token does not match.
func CheckCertificateBinding(id *identity.Identity, peer []*x509.Certificate) error {
	if id == nil || id.Confirmation.X5tS256 == "" {
		return identity.Fail("token_not_certificate_bound",
			"the access token is not bound to a client certificate", nil)
	}
	if len(peer) == 0 || peer[0] == nil || len(peer[0].Raw) == 0 {
		return identity.Fail("no_client_certificate",
			"the access token is certificate-bound but no client certificate was presented", nil)
	}
	got := CertThumbprint(peer[0])
	if subtle.ConstantTimeCompare([]byte(got), []byte(id.Confirmation.X5tS256)) != 1 {
		return identity.Fail("certificate_binding_mismatch",
			"the access token is bound to another client certificate", nil)
	}
	return nil
}

// CheckDPoPBinding checks that the token of id is bound to the DPoP key
// whose thumbprint jkt DPoPVerifier.Verify returned (RFC 9449 §6.1),
// comparing in constant time.
func CheckDPoPBinding(id *identity.Identity, jkt string) error {
	if id == nil || id.Confirmation.JKT == "" {
		return identity.Fail("token_not_dpop_bound",
			"the access token is not bound to a DPoP key", nil)
	}
	if jkt == "" || subtle.ConstantTimeCompare([]byte(jkt), []byte(id.Confirmation.JKT)) != 1 {
		return identity.Fail("dpop_binding_mismatch",
			"the access token is bound to another DPoP key", nil)
	}
	return nil
}
