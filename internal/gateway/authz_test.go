package gateway

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"net/http/httptest"

	"github.com/bulwarkapi/bulwark/internal/config"
	"github.com/bulwarkapi/bulwark/internal/demo/bank"
)

// bankAuthzConfig puts the demo bank behind a JWT provider and BOLA/BFLA rules.
func bankAuthzConfig(bankURL, mode string) string {
	return bankAPIConfig(bankURL, `
    objects:
      - {operation: "GET /accounts/{accountId}", allow: "params.accountId in identity.claims.account_ids"}
      - {operation: "PATCH /accounts/{accountId}", allow: "params.accountId in identity.claims.account_ids"}
      - {operation: "GET /accounts", allow: "!('customerId' in request.query) || request.query.customerId == identity.subject"}
      - {operation: "POST /payments", allow: "request.body.debtorAccountId in identity.claims.account_ids"}
      - {operation: "POST /transfers", allow: "request.body.debtor.accountId in identity.claims.account_ids"}
      - {operation: "GET /cards/{cardId}", owner: "response.body.customerId == identity.subject"}
    authorize: {admin_roles: [bank-admin], mode: `+mode+`}
`)
}

// bankAPIConfig is a gateway in front of upstream with the demo bank's
// spec and JWT identity provider (files written by bankFiles), plus the
// API keys in api (objects, authorize, ...).
func bankAPIConfig(upstream, api string) string {
	return fmt.Sprintf(`
listeners:
  - addr: "127.0.0.1:0"
    tls: {cert_file: tls.crt, key_file: tls.key}
admin: {addr: "127.0.0.1:0", token: %q}
audit: {path: audit.log}
identity:
  - name: idp
    jwt: {issuer: %q, audiences: [bank-api], jwks_file: jwks.json, algorithms: [ES256]}
apis:
  - name: bank
    match: {path_prefix: /api/v1}
    upstream: {url: %q}
    spec: bank.yaml
    authenticate: [idp]`, testToken, testIssuer, upstream) + api
}

// bankFiles writes what bankAPIConfig names: the JWKS of k and the bank's spec.
func bankFiles(t *testing.T, k *keys) func(dir string) {
	return func(dir string) {
		k.jwks(t, filepath.Join(dir, "jwks.json"))
		if err := os.WriteFile(filepath.Join(dir, "bank.yaml"), bank.Spec(), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

type bankFixture struct {
	env        *gwEnv
	k          *keys
	a, b       bank.Customer
	aAcc, bAcc string
	aCard      string
	bCard      string
}

func startBankAuthz(t *testing.T, mode string) *bankFixture {
	t.Helper()
	return startBankAuthzWith(t, mode, "", "")
}

// startBankAuthzWith adds top-level config (inventory, detect) and keys
// of the API (rate_limits) to the fixture.
func startBankAuthzWith(t *testing.T, mode, top, api string) *bankFixture {
	t.Helper()
	bk := bank.New(bank.Options{Seed: 1})
	srv := httptest.NewServer(bk.Handler())
	t.Cleanup(srv.Close)
	k := newKeys(t)
	env := startGatewayWith(t, top+bankAuthzConfig(srv.URL, mode)+api, bankFiles(t, k))
	cs := bk.Customers()
	f := &bankFixture{env: env, k: k, a: cs[0], b: cs[1]}
	f.aAcc = bk.Accounts(f.a.CustomerID)[0].AccountID
	f.bAcc = bk.Accounts(f.b.CustomerID)[0].AccountID
	f.aCard = bk.Cards(f.a.CustomerID)[0].CardID
	f.bCard = bk.Cards(f.b.CustomerID)[0].CardID
	return f
}

// token for customer c: their account ids in a claim.
func (f *bankFixture) token(t *testing.T, c bank.Customer, roles ...string) string {
	var ids []string
	for _, a := range bank.New(bank.Options{Seed: 1}).Accounts(c.CustomerID) {
		ids = append(ids, a.AccountID)
	}
	return f.k.sign(t, map[string]any{"alg": "ES256", "kid": "ec-1"}, claims(c.CustomerID, "accounts payments",
		map[string]any{"aud": "bank-api", "account_ids": ids, "roles": roles}))
}

func (f *bankFixture) call(t *testing.T, tok, method, path, body string) (int, string) {
	t.Helper()
	var rb io.Reader
	if body != "" {
		rb = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, f.env.base+path, rb)
	req.Header.Set("Authorization", "Bearer "+tok)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := f.env.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func payment(from string) string {
	return `{"debtorAccountId":"` + from + `","creditorIban":"GB33BUKB20201555555555","creditorName":"Ann","amount":"1.00","currency":"GBP"}`
}

func transfer(from string) string {
	return `{"debtor":{"accountId":"` + from + `"},"creditor":{"iban":"GB33BUKB20201555555555","name":"Ann"},"amount":"1.00","currency":"GBP"}`
}

// TestBOLAAgainstDemoBank is issue #5's acceptance test, in enforce mode.
func TestBOLAAgainstDemoBank(t *testing.T) {
	f := startBankAuthz(t, "enforce")
	tokA := f.token(t, f.a)
	tests := []struct {
		name, method, path, body string
		status                   int
		reason                   string
	}{
		{"own account by path id", "GET", "/api/v1/accounts/" + f.aAcc, "", 200, ""},
		{"other's account by path id", "GET", "/api/v1/accounts/" + f.bAcc, "", 403, "object_denied"},
		{"update other's account", "PATCH", "/api/v1/accounts/" + f.bAcc, `{"nickname":"mine now"}`, 403, "object_denied"},
		{"own accounts by query id", "GET", "/api/v1/accounts?customerId=" + f.a.CustomerID, "", 200, ""},
		{"other's accounts by query id", "GET", "/api/v1/accounts?customerId=" + f.b.CustomerID, "", 403, "object_denied"},
		{"payment from own account (body id)", "POST", "/api/v1/payments", payment(f.aAcc), 201, ""},
		{"payment from other's account (body id)", "POST", "/api/v1/payments", payment(f.bAcc), 403, "object_denied"},
		{"transfer from own account (nested body id)", "POST", "/api/v1/transfers", transfer(f.aAcc), 201, ""},
		{"transfer from other's account (nested body id)", "POST", "/api/v1/transfers", transfer(f.bAcc), 403, "object_denied"},
		{"own card (response owner)", "GET", "/api/v1/cards/" + f.aCard, "", 200, ""},
		{"other's card (response owner)", "GET", "/api/v1/cards/" + f.bCard, "", 403, "object_owner_mismatch"},
		{"customer on an admin operation", "GET", "/api/v1/admin/customers", "", 403, "admin_operation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := f.call(t, tokA, tt.method, tt.path, tt.body)
			if status != tt.status {
				t.Fatalf("status %d, want %d: %.300s", status, tt.status, body)
			}
			if tt.reason != "" && !strings.Contains(body, `"reason":"`+tt.reason+`"`) {
				t.Fatalf("want reason %s: %.300s", tt.reason, body)
			}
			if status == 403 && (strings.Contains(body, f.bAcc) || strings.Contains(body, f.b.CustomerID)) {
				t.Fatalf("403 leaks the object: %s", body)
			}
		})
	}
	if status, _ := f.call(t, f.token(t, f.a, "bank-admin"), "GET", "/api/v1/admin/customers", ""); status != 200 {
		t.Fatalf("admin role on the admin operation: %d", status)
	}
	_ = f.env.g.Shutdown(t.Context())
	log, _ := os.ReadFile(filepath.Join(f.env.dir, "audit.log"))
	if !strings.Contains(string(log), `"stage":"authorize","action":"stop","reason":"object_denied"`) {
		t.Error("audit log lacks the object decision")
	}
	if strings.Contains(string(log), `"`+f.bAcc+`"`) && !strings.Contains(string(log), `"path":"/api/v1/accounts/`+f.bAcc+`"`) {
		t.Error("audit log carries the raw object id outside the request path")
	}
}

// TestBOLAMonitor: the same cross-customer requests pass in monitor mode,
// with the decisions recorded.
func TestBOLAMonitor(t *testing.T) {
	f := startBankAuthz(t, "monitor")
	tokA := f.token(t, f.a)
	if status, body := f.call(t, tokA, "GET", "/api/v1/accounts/"+f.bAcc, ""); status != 200 {
		t.Fatalf("monitor mode: %d %.200s", status, body)
	}
	if status, _ := f.call(t, tokA, "POST", "/api/v1/payments", payment(f.bAcc)); status != 201 {
		t.Fatalf("monitor mode payment: %d", status)
	}
	_ = f.env.g.Shutdown(t.Context())
	log, _ := os.ReadFile(filepath.Join(f.env.dir, "audit.log"))
	if strings.Count(string(log), `"reason":"object_denied","status":403,"enforced":false`) < 2 {
		t.Errorf("monitored decisions not recorded:\n%s", log)
	}
}

// TestCELErrorsAreConfigErrors: a syntax error and a type error are
// reported with the config file's line and CEL's message.
func TestCELErrorsAreConfigErrors(t *testing.T) {
	dir := t.TempDir()
	testCerts(t, dir)
	k := newKeys(t)
	k.jwks(t, filepath.Join(dir, "jwks.json"))
	_ = os.WriteFile(filepath.Join(dir, "bank.yaml"), bank.Spec(), 0o600)
	cfg := bankAuthzConfig("http://127.0.0.1:1", "enforce")
	cfg = strings.Replace(cfg, `allow: "params.accountId in identity.claims.account_ids"}`, `allow: "params.accountId in identity.claims.account_ids &&"}`, 1)
	cfg = strings.Replace(cfg, `{operation: "POST /payments", allow: "request.body.debtorAccountId in identity.claims.account_ids"}`, `{operation: "POST /payments", allow: "params.accountId + 1 > 2"}`, 1)
	path := filepath.Join(dir, "bulwark.yaml")
	_ = os.WriteFile(path, []byte(cfg), 0o600)
	c, err := config.Load(path)
	if err != nil {
		t.Fatalf("the YAML itself is valid: %v", err)
	}
	_, err = New(t.Context(), c, Options{NoAudit: true})
	var ce config.Errors
	if !errors.As(err, &ce) || len(ce) != 2 {
		t.Fatalf("want two located errors, got %v", err)
	}
	text := err.Error()
	for _, want := range []string{"bulwark.yaml:17: apis[0].objects[0].allow", "bulwark.yaml:20: apis[0].objects[3].allow", "Syntax error", "no matching overload"} {
		if !strings.Contains(text, want) {
			t.Errorf("errors lack %q:\n%s", want, text)
		}
	}
}
