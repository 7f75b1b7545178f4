package fapi

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"math/big"
	"testing"
	"time"

	"github.com/bulwarkapi/bulwark/internal/identity"
)

func selfSigned(t *testing.T, cn string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    testNow.Add(-time.Hour),
		NotAfter:     testNow.Add(time.Hour),
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func TestCertThumbprint(t *testing.T) {
	c := selfSigned(t, "client-a")
	sum := sha256.Sum256(c.Raw)
	if got, want := CertThumbprint(c), base64.RawURLEncoding.EncodeToString(sum[:]); got != want {
		t.Fatalf("thumbprint %q, want %q", got, want)
	}
	if got := CertThumbprint(c); len(got) != 43 {
		t.Fatalf("thumbprint %q: want 43 base64url characters, no padding", got)
	}
}

func TestCheckCertificateBinding(t *testing.T) {
	a, b := selfSigned(t, "client-a"), selfSigned(t, "client-b")
	boundToA := &identity.Identity{Subject: "alice", Confirmation: identity.Confirmation{X5tS256: CertThumbprint(a)}}
	sumA := sha256.Sum256(a.Raw)
	padded := &identity.Identity{Confirmation: identity.Confirmation{X5tS256: base64.URLEncoding.EncodeToString(sumA[:])}}
	tests := []struct {
		name   string
		id     *identity.Identity
		peer   []*x509.Certificate
		reason string // "" accepted
	}{
		{"matching certificate", boundToA, []*x509.Certificate{a}, ""},
		{"matching leaf with chain", boundToA, []*x509.Certificate{a, b}, ""},
		{"token bound to A on connection with B", boundToA, []*x509.Certificate{b}, "certificate_binding_mismatch"},
		{"bound cert only deeper in chain", boundToA, []*x509.Certificate{b, a}, "certificate_binding_mismatch"},
		{"padded thumbprint in token", padded, []*x509.Certificate{a}, "certificate_binding_mismatch"},
		{"no client certificate", boundToA, nil, "no_client_certificate"},
		{"nil leaf", boundToA, []*x509.Certificate{nil}, "no_client_certificate"},
		{"token not certificate-bound", &identity.Identity{Subject: "alice"}, []*x509.Certificate{a}, "token_not_certificate_bound"},
		{"nil identity", nil, []*x509.Certificate{a}, "token_not_certificate_bound"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckCertificateBinding(tc.id, tc.peer)
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			wantReason(t, err, identity.CodeInvalidToken, tc.reason)
		})
	}
}

func TestCheckDPoPBinding(t *testing.T) {
	bound := &identity.Identity{Confirmation: identity.Confirmation{JKT: rfc7638Thumbprint}}
	tests := []struct {
		name   string
		id     *identity.Identity
		jkt    string
		reason string
	}{
		{"matching key", bound, rfc7638Thumbprint, ""},
		{"another key", bound, "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I", "dpop_binding_mismatch"},
		{"prefix of the key", bound, rfc7638Thumbprint[:20], "dpop_binding_mismatch"},
		{"no proof key", bound, "", "dpop_binding_mismatch"},
		{"token not DPoP-bound", &identity.Identity{}, rfc7638Thumbprint, "token_not_dpop_bound"},
		{"nil identity", nil, rfc7638Thumbprint, "token_not_dpop_bound"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckDPoPBinding(tc.id, tc.jkt)
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			wantReason(t, err, identity.CodeInvalidToken, tc.reason)
		})
	}
}
