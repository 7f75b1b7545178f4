package route

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/bulwarkapi/bulwark/internal/pipeline"
)

func table() *Stage {
	return New([]*API{
		{Name: "any-root", PathPrefix: "/"},
		{Name: "any-api", PathPrefix: "/api"},
		{Name: "bank-aisp", Hosts: []string{"api.bank.example"}, PathPrefix: "/open-banking/v4.0/aisp"},
		{Name: "bank-root", Hosts: []string{"api.bank.example"}, PathPrefix: "/"},
		{Name: "wild", Hosts: []string{"*.partners.example"}, PathPrefix: "/"},
		{Name: "wild-deep", Hosts: []string{"*.eu.partners.example"}, PathPrefix: "/v2"},
		{Name: "monitor", Hosts: []string{"mon.example"}, PathPrefix: "/", Mode: pipeline.Monitor},
	})
}

func TestLookup(t *testing.T) {
	s := table()
	tests := []struct{ host, path, want string }{
		{"api.bank.example", "/open-banking/v4.0/aisp/accounts", "bank-aisp"},
		{"API.Bank.Example:8443", "/open-banking/v4.0/aisp", "bank-aisp"},
		{"api.bank.example.", "/open-banking/v4.0/aisp/x", "bank-aisp"},
		{"api.bank.example", "/open-banking/v4.0/aispx", "bank-root"},
		{"api.bank.example", "/", "bank-root"},
		{"x.partners.example", "/anything", "wild"},
		{"a.eu.partners.example", "/v2/x", "wild-deep"},
		{"a.eu.partners.example", "/v1/x", "wild"},
		{"partners.example", "/api/x", "any-api"},
		{"other.example", "/api", "any-api"},
		{"other.example", "/apix", "any-root"},
		{"[::1]:443", "/api/v1", "any-api"},
		{"", "/x", "any-root"},
	}
	for _, tt := range tests {
		a := s.Lookup(tt.host, tt.path)
		if a == nil || a.Name != tt.want {
			got := "<nil>"
			if a != nil {
				got = a.Name
			}
			t.Errorf("Lookup(%q, %q) = %s, want %s", tt.host, tt.path, got, tt.want)
		}
	}
}

func TestNoMatch(t *testing.T) {
	s := New([]*API{{Name: "a", Hosts: []string{"a.example"}, PathPrefix: "/api"}})
	for _, c := range [][2]string{{"b.example", "/api"}, {"a.example", "/ap"}, {"a.example", "/apis"}, {"xa.example", "/api"}} {
		if a := s.Lookup(c[0], c[1]); a != nil {
			t.Errorf("Lookup(%q, %q) = %s, want none", c[0], c[1], a.Name)
		}
	}
	x := &pipeline.Exchange{Request: httptest.NewRequest("GET", "https://b.example/api", nil)}
	d := s.Handle(context.Background(), x)
	if d.Action != pipeline.Stop || d.Status != http.StatusNotFound || d.Reason != "no_route" {
		t.Fatalf("decision %+v", d)
	}
}

func TestHandleSetsModeAndTarget(t *testing.T) {
	s := table()
	x := &pipeline.Exchange{Request: httptest.NewRequest("GET", "https://mon.example/x", nil)}
	if d := s.Handle(context.Background(), x); d.Action != pipeline.Allow {
		t.Fatalf("decision %+v", d)
	}
	if x.API != "monitor" || x.Mode != pipeline.Monitor {
		t.Fatalf("api %q mode %v", x.API, x.Mode)
	}
}

func TestHasPathPrefix(t *testing.T) {
	tests := []struct {
		path, prefix string
		want         bool
	}{
		{"/a/b", "/a", true}, {"/a", "/a", true}, {"/a/", "/a/", true}, {"/ab", "/a", false},
		{"/", "/", true}, {"/x", "/", true}, {"", "/", true}, {"/a", "/a/b", false}, {"/a/b/c", "/a/b/", true},
	}
	for _, tt := range tests {
		if got := HasPathPrefix(tt.path, tt.prefix); got != tt.want {
			t.Errorf("HasPathPrefix(%q, %q) = %v", tt.path, tt.prefix, got)
		}
	}
}

// FuzzLookup: arbitrary hosts and paths never panic, and a match always
// honours segment boundaries.
func FuzzLookup(f *testing.F) {
	for _, s := range [][2]string{{"api.bank.example", "/open-banking/v4.0/aisp/accounts"}, {"[::1]:8443", "/api"}, {"X.PARTNERS.EXAMPLE.", "/v2"}, {":", ""}, {"]:[", "//"}} {
		f.Add(s[0], s[1])
	}
	s := table()
	f.Fuzz(func(t *testing.T, host, path string) {
		a := s.Lookup(host, path)
		if a != nil && !HasPathPrefix(path, a.PathPrefix) {
			t.Fatalf("%q matched %s with prefix %q", path, a.Name, a.PathPrefix)
		}
	})
}
