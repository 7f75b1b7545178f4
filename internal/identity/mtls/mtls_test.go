package mtls

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"math/big"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/bulwarkapi/bulwark/internal/config"
	"github.com/bulwarkapi/bulwark/internal/identity"
)

var (
	t0      = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	keyOnce sync.Once
	caKey   *ecdsa.PrivateKey
	leafKey *ecdsa.PrivateKey
	caCert  *x509.Certificate
)

func keys(t testing.TB) {
	t.Helper()
	keyOnce.Do(func() {
		var err error
		if caKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			panic(err)
		}
		if leafKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			panic(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber:          big.NewInt(1),
			Subject:               pkix.Name{CommonName: "Test Client CA", Organization: []string{"Bank Test"}},
			NotBefore:             t0.Add(-24 * time.Hour),
			NotAfter:              t0.Add(365 * 24 * time.Hour),
			IsCA:                  true,
			BasicConstraintsValid: true,
			KeyUsage:              x509.KeyUsageCertSign,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &caKey.PublicKey, caKey)
		if err != nil {
			panic(err)
		}
		if caCert, err = x509.ParseCertificate(der); err != nil {
			panic(err)
		}
	})
}

type certSpec struct {
	cn        string
	dns       []string
	uris      []string
	notBefore time.Time
	notAfter  time.Time
}

func makeCert(t testing.TB, s certSpec) *x509.Certificate {
	t.Helper()
	keys(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(0xbeef),
		Subject:      pkix.Name{CommonName: s.cn},
		DNSNames:     s.dns,
		NotBefore:    s.notBefore,
		NotAfter:     s.notAfter,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if s.cn != "" {
		tmpl.Subject.Organization = []string{"Bank Test"}
	}
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = t0.Add(-time.Hour)
	}
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = t0.Add(24 * time.Hour)
	}
	for _, u := range s.uris {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newProvider(t testing.TB, c config.MTLSProvider) *Provider {
	t.Helper()
	p, err := New("mtls", c)
	if err != nil {
		t.Fatal(err)
	}
	p.now = func() time.Time { return t0 }
	return p
}

func TestNewRejectsUnknownSubject(t *testing.T) {
	if _, err := New("m", config.MTLSProvider{Subject: "email"}); err == nil {
		t.Error("unknown subject accepted")
	}
	p, err := New("m", config.MTLSProvider{})
	if err != nil || p.subject != SubjectSPIFFE || p.Name() != "m" || p.Kind() != identity.KindMTLS {
		t.Errorf("default: %+v %v", p, err)
	}
}

func TestAuthenticate(t *testing.T) {
	const svc = "spiffe://bank.example/ns/payments/sa/api"
	full := makeCert(t, certSpec{cn: "payments-api", dns: []string{"payments.bank.example", "api.bank.example"}, uris: []string{"https://bank.example/client/7", svc}})
	noSAN := makeCert(t, certSpec{cn: "legacy-client"})
	noSubject := makeCert(t, certSpec{})
	twoSPIFFE := makeCert(t, certSpec{cn: "two", uris: []string{svc, "spiffe://bank.example/other"}})
	badSPIFFE := makeCert(t, certSpec{cn: "bad", uris: []string{"spiffe://Bank.Example/x"}})
	otherTD := makeCert(t, certSpec{cn: "partner", uris: []string{"spiffe://partner.example/svc"}})
	expired := makeCert(t, certSpec{cn: "old", notBefore: t0.Add(-48 * time.Hour), notAfter: t0.Add(-time.Second)})
	future := makeCert(t, certSpec{cn: "new", notBefore: t0.Add(time.Minute)})

	tests := []struct {
		name       string
		cfg        config.MTLSProvider
		certs      []*x509.Certificate
		wantSub    string
		wantReason string // "" with wantSub "": ErrNoCredential
	}{
		{name: "no certificate", cfg: config.MTLSProvider{}, certs: nil},
		{name: "spiffe", cfg: config.MTLSProvider{Subject: "spiffe"}, certs: []*x509.Certificate{full, caCert}, wantSub: svc},
		{name: "spiffe falls back to DN", cfg: config.MTLSProvider{Subject: "spiffe"}, certs: []*x509.Certificate{noSAN}, wantSub: "CN=legacy-client,O=Bank Test"},
		{name: "dns", cfg: config.MTLSProvider{Subject: "dns"}, certs: []*x509.Certificate{full}, wantSub: "payments.bank.example"},
		{name: "dns missing", cfg: config.MTLSProvider{Subject: "dns"}, certs: []*x509.Certificate{noSAN}, wantReason: ReasonNoDNSSAN},
		{name: "uri", cfg: config.MTLSProvider{Subject: "uri"}, certs: []*x509.Certificate{full}, wantSub: "https://bank.example/client/7"},
		{name: "uri missing", cfg: config.MTLSProvider{Subject: "uri"}, certs: []*x509.Certificate{noSAN}, wantReason: ReasonNoURISAN},
		{name: "dn", cfg: config.MTLSProvider{Subject: "dn"}, certs: []*x509.Certificate{full}, wantSub: "CN=payments-api,O=Bank Test"},
		{name: "dn empty", cfg: config.MTLSProvider{Subject: "dn"}, certs: []*x509.Certificate{noSubject}, wantReason: ReasonNoSubject},
		{name: "trust domain allowed", cfg: config.MTLSProvider{Subject: "dn", TrustDomains: []string{"partner.example", "Bank.Example"}}, certs: []*x509.Certificate{full}, wantSub: "CN=payments-api,O=Bank Test"},
		{name: "trust domain not allowed", cfg: config.MTLSProvider{TrustDomains: []string{"bank.example"}}, certs: []*x509.Certificate{otherTD}, wantReason: ReasonTrustDomainNotAllowed},
		{name: "trust domains need spiffe", cfg: config.MTLSProvider{TrustDomains: []string{"bank.example"}}, certs: []*x509.Certificate{noSAN}, wantReason: ReasonSPIFFEMissing},
		{name: "two spiffe ids", cfg: config.MTLSProvider{}, certs: []*x509.Certificate{twoSPIFFE}, wantReason: ReasonSPIFFEInvalid},
		{name: "malformed spiffe id", cfg: config.MTLSProvider{Subject: "dn"}, certs: []*x509.Certificate{badSPIFFE}, wantReason: ReasonSPIFFEInvalid},
		{name: "expired", cfg: config.MTLSProvider{}, certs: []*x509.Certificate{expired}, wantReason: ReasonExpired},
		{name: "not yet valid", cfg: config.MTLSProvider{}, certs: []*x509.Certificate{future}, wantReason: ReasonNotYetValid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newProvider(t, tt.cfg)
			id, err := p.Authenticate(context.Background(), &identity.Request{PeerCertificates: tt.certs})
			switch {
			case tt.wantSub != "":
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				if id.Subject != tt.wantSub || id.Kind != identity.KindMTLS || id.Provider != "mtls" || id.Certificate == nil || !id.Expiry.Equal(tt.certs[0].NotAfter) {
					t.Errorf("identity = %+v", id)
				}
			case tt.wantReason == "":
				if !errors.Is(err, identity.ErrNoCredential) {
					t.Fatalf("err = %v, want ErrNoCredential", err)
				}
			default:
				var ie *identity.Error
				if !errors.As(err, &ie) || ie.Reason != tt.wantReason || ie.Code != identity.CodeInvalidToken {
					t.Fatalf("err = %v, want %s", err, tt.wantReason)
				}
			}
		})
	}
}

func TestDescribe(t *testing.T) {
	const svc = "spiffe://bank.example/ns/payments/sa/api"
	c := makeCert(t, certSpec{cn: "payments-api", dns: []string{"payments.bank.example"}, uris: []string{"https://bank.example/c", svc}})
	info := Describe(c)
	sum := sha256.Sum256(c.Raw)
	want := identity.CertInfo{
		Subject:  "CN=payments-api,O=Bank Test",
		DNSNames: []string{"payments.bank.example"},
		URIs:     []string{"https://bank.example/c", svc},
		SPIFFEID: svc,
		Issuer:   "CN=Test Client CA,O=Bank Test",
		Serial:   "beef",
		NotAfter: c.NotAfter,
		X5tS256:  base64.RawURLEncoding.EncodeToString(sum[:]),
	}
	if info.Subject != want.Subject || !slices.Equal(info.DNSNames, want.DNSNames) || !slices.Equal(info.URIs, want.URIs) ||
		info.SPIFFEID != want.SPIFFEID || info.Issuer != want.Issuer || info.Serial != want.Serial ||
		!info.NotAfter.Equal(want.NotAfter) || info.X5tS256 != want.X5tS256 {
		t.Errorf("Describe =\n%+v\nwant\n%+v", info, want)
	}
	if len(info.X5tS256) != 43 {
		t.Errorf("x5t#S256 length %d", len(info.X5tS256))
	}
	two := Describe(makeCert(t, certSpec{cn: "two", uris: []string{svc, svc + "2"}}))
	if two.SPIFFEID != "" || len(two.URIs) != 2 {
		t.Errorf("two spiffe URIs: %+v", two)
	}
}

func TestParseSPIFFEID(t *testing.T) {
	valid := map[string][2]string{
		"spiffe://bank.example":                    {"bank.example", ""},
		"spiffe://bank.example/ns/payments/sa/api": {"bank.example", "/ns/payments/sa/api"},
		"spiffe://td-1_x.y/A.b-c_D":                {"td-1_x.y", "/A.b-c_D"},
		"spiffe://bank.example/..x/x..":            {"bank.example", "/..x/x.."},
		"spiffe://0/1":                             {"0", "/1"},
	}
	for s, want := range valid {
		td, path, err := ParseSPIFFEID(s)
		if err != nil || td != want[0] || path != want[1] {
			t.Errorf("%q: %q %q %v", s, td, path, err)
		}
	}
	invalid := []string{
		"", "spiffe://", "spiffe:///path", "SPIFFE://bank.example/x", "spiffe:bank.example/x", "https://bank.example/x",
		"spiffe://Bank.example/x", "spiffe://bank.example:443/x", "spiffe://user@bank.example/x",
		"spiffe://bank.example/", "spiffe://bank.example//x", "spiffe://bank.example/x/", "spiffe://bank.example/./x",
		"spiffe://bank.example/x/..", "spiffe://bank.example/x?y=1", "spiffe://bank.example/x#f", "spiffe://bank.example/a%2Fb",
		"spiffe://bank.example/a b", "spiffe://bank.example/é", "spiffe://bank.example\x00/x",
		"spiffe://" + string(make([]byte, 256)),
		"spiffe://bank.example/" + string(make([]byte, 2048)),
	}
	for _, s := range invalid {
		if td, path, err := ParseSPIFFEID(s); err == nil {
			t.Errorf("%q accepted as %q %q", s, td, path)
		}
	}
	long := "spiffe://" + string(slices.Repeat([]byte("a"), 255))
	if _, _, err := ParseSPIFFEID(long); err != nil {
		t.Errorf("255-byte trust domain refused: %v", err)
	}
	if _, _, err := ParseSPIFFEID(long + "a"); err == nil {
		t.Error("256-byte trust domain accepted")
	}
}

// FuzzSPIFFEID: arbitrary strings never panic; what is accepted is exactly
// the prefix, the trust domain and the path it reports, with only allowed
// bytes.
func FuzzSPIFFEID(f *testing.F) {
	for _, s := range []string{"spiffe://bank.example/ns/a/sa/b", "spiffe://bank.example", "spiffe://b/..", "spiffe://b:1/x", "spiffe://b/x?q#f", "SPIFFE://B/x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		td, path, err := ParseSPIFFEID(s)
		if err != nil {
			if td != "" || path != "" {
				t.Fatal("values returned with an error")
			}
			return
		}
		if "spiffe://"+td+path != s {
			t.Fatalf("%q split into %q %q", s, td, path)
		}
		if td == "" || len(s) > maxSPIFFEIDBytes {
			t.Fatalf("%q accepted", s)
		}
		for i := 0; i < len(td); i++ {
			if !tdChar(td[i]) {
				t.Fatalf("%q: trust domain byte %q", s, td[i])
			}
		}
		if path != "" {
			u, perr := url.Parse(s)
			if perr != nil || u.Host != td || u.Path != path || u.RawQuery != "" || u.Fragment != "" || u.User != nil || u.Port() != "" {
				t.Fatalf("%q accepted, but url.Parse reads it differently: %+v %v", s, u, perr)
			}
		}
	})
}
