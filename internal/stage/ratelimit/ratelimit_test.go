package ratelimit

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkapi/bulwark/internal/config"
	"github.com/bulwarkapi/bulwark/internal/identity"
	"github.com/bulwarkapi/bulwark/internal/pipeline"
	"github.com/bulwarkapi/bulwark/internal/policy"
	rl "github.com/bulwarkapi/bulwark/internal/ratelimit"
)

func newStage(t *testing.T, limits ...config.RateLimit) *Stage {
	t.Helper()
	env, err := policy.NewEnv()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { return now }
	for i := range limits {
		if limits[i].Name == "" {
			limits[i].Name = limits[i].Key
		}
		if limits[i].Burst == 0 && limits[i].Rate != "" {
			n, _, _ := rl.ParseRate(limits[i].Rate)
			limits[i].Burst = n
		}
	}
	st, err := New(Options{API: "bank", Limits: limits, Env: env,
		Store: rl.NewLocal(rl.LocalOptions{Now: clock}), Quotas: rl.NewLocalQuotas(rl.LocalQuotaOptions{Now: clock})})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

type req struct {
	client string
	id     *identity.Identity
	op     string
	header string // x-tenant
}

func run(st *Stage, r req) pipeline.Decision {
	hr := httptest.NewRequest(http.MethodGet, "/x", nil)
	if r.header != "" {
		hr.Header.Set("X-Tenant", r.header)
	}
	x := &pipeline.Exchange{Request: hr, Identity: r.id, Operation: r.op, ClientAddr: netip.MustParseAddr(r.client)}
	return st.Handle(context.Background(), x)
}

func TestKeys(t *testing.T) {
	alice := &identity.Identity{Subject: "alice", Provider: "idp", Kind: identity.KindJWT}
	bob := &identity.Identity{Subject: "bob", Provider: "idp", Kind: identity.KindJWT}
	partner := &identity.Identity{Subject: "acme", Provider: "keys", Kind: identity.KindAPIKey}
	tests := []struct {
		name  string
		limit config.RateLimit
		reqs  []req
		want  string // one letter per request: a allowed, d denied
	}{
		{"ip counts one address", config.RateLimit{Key: "ip", Rate: "2/h"},
			[]req{{client: "192.0.2.1"}, {client: "192.0.2.1"}, {client: "192.0.2.1"}, {client: "192.0.2.2"}}, "aada"},
		{"ipv6 counted by /64", config.RateLimit{Key: "ip", Rate: "2/h"},
			[]req{{client: "2001:db8::1"}, {client: "2001:db8::2"}, {client: "2001:db8::ffff"}, {client: "2001:db8:0:1::1"}}, "aada"},
		{"identity per subject", config.RateLimit{Key: "identity", Rate: "1/h"},
			[]req{{client: "192.0.2.1", id: alice}, {client: "192.0.2.2", id: alice}, {client: "192.0.2.1", id: bob}}, "ada"},
		{"identity: anonymous by address", config.RateLimit{Key: "identity", Rate: "1/h"},
			[]req{{client: "192.0.2.1"}, {client: "192.0.2.1"}, {client: "192.0.2.2"}}, "ada"},
		{"api_key skips other credentials", config.RateLimit{Key: "api_key", Rate: "1/h"},
			[]req{{client: "192.0.2.1", id: alice}, {client: "192.0.2.1", id: alice}, {client: "192.0.2.1", id: partner}, {client: "192.0.2.9", id: partner}}, "aaad"},
		{"operation is global", config.RateLimit{Key: "operation", Rate: "2/h"},
			[]req{{client: "192.0.2.1", op: "GET /a"}, {client: "192.0.2.2", op: "GET /a"}, {client: "192.0.2.3", op: "GET /a"}, {client: "192.0.2.3", op: "GET /b"}}, "aada"},
		{"scoped to one operation", config.RateLimit{Key: "ip", Rate: "1/h", Operation: "POST /login"},
			[]req{{client: "192.0.2.1", op: "POST /login"}, {client: "192.0.2.1", op: "GET /a"}, {client: "192.0.2.1", op: "POST /login"}}, "aad"},
		{"cel key", config.RateLimit{Key: "request.headers['x-tenant']", Rate: "1/h"},
			[]req{{client: "192.0.2.1", header: "t1"}, {client: "192.0.2.2", header: "t1"}, {client: "192.0.2.2", header: "t2"}}, "ada"},
		{"cel key missing: by address", config.RateLimit{Key: "request.headers['x-tenant']", Rate: "1/h"},
			[]req{{client: "192.0.2.1"}, {client: "192.0.2.1"}, {client: "192.0.2.2"}}, "ada"},
		{"quota", config.RateLimit{Key: "ip", Quota: "2/day"},
			[]req{{client: "192.0.2.1"}, {client: "192.0.2.1"}, {client: "192.0.2.1"}}, "aad"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newStage(t, tt.limit)
			var got strings.Builder
			for _, r := range tt.reqs {
				d := run(st, r)
				switch {
				case d.Action == pipeline.Stop && d.Status == http.StatusTooManyRequests && d.Reason == "rate_limited":
					got.WriteByte('d')
				case d.Action == pipeline.Allow:
					got.WriteByte('a')
				default:
					t.Fatalf("unexpected decision %+v", d)
				}
			}
			if got.String() != tt.want {
				t.Fatalf("got %s, want %s", got.String(), tt.want)
			}
		})
	}
}

func TestMonitorRecordsAndCounts(t *testing.T) {
	st := newStage(t, config.RateLimit{Key: "ip", Rate: "1/h", Mode: "monitor"}, config.RateLimit{Name: "hard", Key: "ip", Rate: "3/h"})
	r := req{client: "192.0.2.1"}
	if d := run(st, r); d.Action != pipeline.Allow {
		t.Fatalf("first: %+v", d)
	}
	d := run(st, r)
	if d.Action != pipeline.Stop || !d.Monitor || d.Rules[0] != "ip" {
		t.Fatalf("second: want a monitored stop by ip, got %+v", d)
	}
	run(st, r)
	d = run(st, r)
	if d.Monitor || d.Rules[0] != "hard" {
		t.Fatalf("fourth: want the enforced limit to refuse, got %+v", d)
	}
}

func TestHeaders(t *testing.T) {
	st := newStage(t, config.RateLimit{Key: "ip", Rate: "10/m", Burst: 5})
	hr := httptest.NewRequest(http.MethodGet, "/x", nil)
	x := &pipeline.Exchange{Request: hr, ClientAddr: netip.MustParseAddr("192.0.2.1")}
	st.Handle(context.Background(), x)
	got := map[string]string{}
	for _, h := range x.ResponseHeaders {
		got[h.Name] = h.Value
	}
	// Burst 5 at one every 6s: 30s to earn the burst back.
	if got["RateLimit-Policy"] != `"ip";q=5;w=30` || got["RateLimit"] != `"ip";r=4;t=6` {
		t.Fatalf("headers %v", got)
	}
}

func TestConfigErrorsLocated(t *testing.T) {
	env, _ := policy.NewEnv()
	_, err := New(Options{API: "bank", Env: env, Store: rl.NewLocal(rl.LocalOptions{}), Quotas: rl.NewLocalQuotas(rl.LocalQuotaOptions{}),
		Limits: []config.RateLimit{{Name: "a", Key: "request.nope(", Rate: "1/s", Burst: 1}, {Name: "b", Key: "ip", Rate: "x"}}})
	if err == nil || !strings.Contains(err.Error(), "rate_limits[0].key") || !strings.Contains(err.Error(), "rate_limits[1].rate") {
		t.Fatalf("want located errors for both limits, got %v", err)
	}
}
