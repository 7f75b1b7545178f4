package spec

import (
	"path/filepath"
	"testing"
)

// BenchmarkMatch routes a mix of concrete paths over the largest shared
// spec (payment initiation). Hits use a caller-provided buffer and must not
// allocate.
func BenchmarkMatch(b *testing.B) {
	file := filepath.Join(sharedSpecDir, "uk-open-banking-payment-initiation-v4.yaml")
	doc, err := Load(b.Context(), file)
	if err != nil {
		b.Skipf("shared spec %s not available: %v", file, err)
	}
	r, err := NewRouter(doc)
	if err != nil {
		b.Fatal(err)
	}
	const base = "/open-banking/v4.0/pisp"
	reqs := []struct{ method, path string }{
		{"POST", base + "/domestic-payment-consents"},
		{"GET", base + "/domestic-payment-consents/cns_8f3a29c1d7e40b5a"},
		{"GET", base + "/domestic-payment-consents/cns_8f3a29c1d7e40b5a/funds-confirmation"},
		{"GET", base + "/domestic-payments/pmt_41c07be2a9d3f618/payment-details"},
		{"GET", base + "/international-scheduled-payments/pmt_b2e9d04f7a1c6e35"},
		{"GET", base + "/file-payment-consents/cns_0d5f8a3b2c9e7f14/file"},
		{"GET", base + "/international-standing-orders/ord_8f3a29c1d7e40b5a/payment-details"},
		{"POST", base + "/file-payments"},
	}
	for _, q := range reqs {
		if m := r.Match(q.method, q.path, nil); m.Status != Matched {
			b.Fatalf("%s %s: %v", q.method, q.path, m.Status)
		}
	}
	buf := make([]string, 0, 4)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		q := reqs[i%len(reqs)]
		if m := r.Match(q.method, q.path, buf); m.Status != Matched {
			b.Fatal("no match")
		}
	}
}

// BenchmarkMatchMiss measures the NotFound and MethodNotAllowed paths.
func BenchmarkMatchMiss(b *testing.B) {
	r := mustRouter(b, "testdata/router.yaml")
	reqs := []struct{ method, path string }{
		{"GET", "/api/v3/accounts/42"},
		{"PUT", "/api/v1/accounts/42"},
		{"GET", "/open-banking/v4.0/aisp/accounts/42/nothing/here"},
	}
	buf := make([]string, 0, 4)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		q := reqs[i%len(reqs)]
		_ = r.Match(q.method, q.path, buf)
	}
}

// BenchmarkLoad measures loading the largest shared spec.
func BenchmarkLoad(b *testing.B) {
	file := filepath.Join(sharedSpecDir, "uk-open-banking-payment-initiation-v4.yaml")
	if _, err := Load(b.Context(), file); err != nil {
		b.Skipf("shared spec %s not available: %v", file, err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Load(b.Context(), file); err != nil {
			b.Fatal(err)
		}
	}
}
