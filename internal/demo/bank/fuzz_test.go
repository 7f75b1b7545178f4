package bank

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzRequestBodies feeds arbitrary bodies to every operation that reads
// one: the bank must answer with a documented client error or success, never
// a 5xx or a non-JSON body.
func FuzzRequestBodies(f *testing.F) {
	b := New(Options{Seed: 1})
	h := b.Handler()
	acc := b.Accounts("")[0].AccountID
	for _, s := range []string{`{}`, `{"nickname":"x"}`, `{"username":"customer1","password":"password1"}`,
		`{"debtorAccountId":"` + acc + `","creditorIban":"GB82WEST12345698765432","creditorName":"A","amount":"1.00","currency":"GBP"}`,
		`[`, `null`, `{"amount":1e400}`, "\xff"} {
		f.Add(s)
	}
	targets := []struct{ method, path string }{
		{"POST", "/login"}, {"POST", "/payments"}, {"PATCH", "/accounts/" + acc},
	}
	f.Fuzz(func(t *testing.T, body string) {
		for _, tg := range targets {
			req := httptest.NewRequest(tg.method, BasePath+tg.path, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code >= 500 || rec.Code == 401 && tg.path != "/login" {
				t.Fatalf("%s %s %q: %d", tg.method, tg.path, body, rec.Code)
			}
			if !json.Valid(rec.Body.Bytes()) {
				t.Fatalf("%s %s %q: body is not JSON: %q", tg.method, tg.path, body, rec.Body)
			}
		}
	})
}
