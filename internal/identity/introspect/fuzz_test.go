package introspect

import (
	"errors"
	"testing"
	"time"

	"github.com/bulwarkapi/bulwark/internal/config"
)

// FuzzParseIntrospection: arbitrary response bodies never panic; a parsed
// response either verifies to an identity with a subject or is refused
// with a reason, and an inactive one is never an identity.
func FuzzParseIntrospection(f *testing.F) {
	for _, s := range []string{
		`{"active":true,"sub":"u","exp":1893456000,"scope":"a b","cnf":{"x5t#S256":"x","jkt":"y"}}`,
		`{"active":false}`,
		`{"active":"true"}`,
		`{"active":true,"exp":1e400}`,
		`{"active":true,"exp":-1,"nbf":"x"}`,
		`{"active":true,"sub":"u","realm_access":{"roles":["a",1,null]},"aud":["x",{}]}`,
		`null`, `[]`, `{}`, `{"active":true} x`, ``,
	} {
		f.Add([]byte(s))
	}
	v := verifier{
		issuer:    "https://as.example",
		audiences: []string{"api"},
		claims:    config.ClaimMapping{Subject: "sub", Scopes: "scope", Roles: "realm_access.roles", Tenant: "org.tenant"},
	}
	open := verifier{claims: v.claims}
	now := time.Unix(1700000000, 0)
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := parseResponse(body)
		if err != nil {
			if !errors.Is(err, errBadResponse) {
				t.Fatalf("error %v is not errBadResponse", err)
			}
			return
		}
		for _, v := range []verifier{v, open} {
			id, fail := v.verify(r, now)
			if (id == nil) == (fail == nil) {
				t.Fatal("verify must return exactly one of identity and error")
			}
			if id != nil && (!r.active || id.Subject == "") {
				t.Fatalf("accepted: active=%v subject=%q", r.active, id.Subject)
			}
			if fail != nil && fail.Reason == "" {
				t.Fatal("refusal without reason")
			}
		}
	})
}
