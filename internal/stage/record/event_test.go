package record

import (
	"encoding/json"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/bulwarkapi/bulwark/internal/event"
	"github.com/bulwarkapi/bulwark/internal/identity"
	"github.com/bulwarkapi/bulwark/internal/pipeline"
)

func TestEventCarriesNoValues(t *testing.T) {
	internal := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	tests := []struct {
		name       string
		client     string
		id         *identity.Identity
		authHeader string
		wantAuth   string
		wantClass  string
	}{
		{"external jwt", "203.0.113.9", &identity.Identity{Subject: "alice@example.com", Provider: "idp", Kind: identity.KindJWT}, "", event.AuthJWT, event.ClientExternal},
		{"internal mtls", "10.1.2.3", &identity.Identity{Subject: "spiffe://bank/payments", Provider: "mesh", Kind: identity.KindMTLS}, "", event.AuthMTLS, event.ClientInternal},
		{"unverified basic", "203.0.113.9", nil, "Basic YWxpY2U6c2VjcmV0", event.AuthBasic, event.ClientExternal},
		{"anonymous", "203.0.113.9", nil, "", event.AuthNone, event.ClientExternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/accounts/acc-123?limit=10&token=s3cr3t", nil)
			if tt.authHeader != "" {
				r.Header.Set("Authorization", tt.authHeader)
			}
			x := &pipeline.Exchange{RequestID: "rid", Request: r, Identity: tt.id, ClientAddr: netip.MustParseAddr(tt.client),
				Params: pipeline.Params{{Name: "accountId", Value: "acc-123"}}, Operation: "GET /accounts/{accountId}", Status: 200}
			e := Event(x, &EventOptions{Internal: internal})
			if e.Auth != tt.wantAuth || e.ClientClass != tt.wantClass {
				t.Fatalf("auth %q class %q, want %q %q", e.Auth, e.ClientClass, tt.wantAuth, tt.wantClass)
			}
			b, _ := json.Marshal(e)
			for _, secret := range []string{"alice@example.com", "s3cr3t", "YWxpY2U6c2VjcmV0"} {
				if strings.Contains(string(b), secret) {
					t.Fatalf("event carries %q: %s", secret, b)
				}
			}
			if tt.id != nil && tt.id.Kind == identity.KindJWT && (e.Subject == "" || e.Subject == tt.id.Subject) {
				t.Fatalf("subject not hashed: %q", e.Subject)
			}
			want := map[string]string{"path:accountId": "string", "query:limit": "integer", "query:token": "string"}
			for _, p := range e.Params {
				if want[p.In+":"+p.Name] != p.Type {
					t.Fatalf("param %+v unexpected", p)
				}
			}
		})
	}
}
