package gateway

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/bulwarkapi/bulwark/internal/demo/bank"
)

// startInspected runs the demo bank behind a gateway with validation,
// sensitive-data masking and the WAF.
func startInspected(t *testing.T, mode string) *gwEnv {
	t.Helper()
	b := httptest.NewServer(bank.New(bank.Options{Seed: 1}).Handler())
	t.Cleanup(b.Close)
	cfg := fmt.Sprintf(`
listeners:
  - addr: "127.0.0.1:0"
    tls: {cert_file: tls.crt, key_file: tls.key}
admin: {addr: "127.0.0.1:0", token: %q}
audit: {path: audit.log}
apis:
  - name: bank
    match: {path_prefix: /api/v1}
    upstream: {url: %q}
    spec: bank.yaml
    mode: %s
    validate: {requests: true, responses: true, unknown_operations: reject}
    data: {mask: [pan], block: [private_key]}
    waf: {crs: true, paranoia: 1}
`, testToken, b.URL, mode)
	return startGatewayWith(t, cfg, func(dir string) {
		if err := os.WriteFile(filepath.Join(dir, "bank.yaml"), bank.Spec(), 0o600); err != nil {
			t.Fatal(err)
		}
	})
}

var maskedPAN = regexp.MustCompile(`^[0-9]{6}\*+[0-9]{4}$`)

func TestInspectionEnforced(t *testing.T) {
	env := startInspected(t, "enforce")

	// Card numbers leave masked to first six and last four (PCI DSS 3.4.1),
	// in valid JSON with a right Content-Length.
	resp, err := env.client.Get(env.base + "/api/v1/cards")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var cards struct {
		Cards []struct {
			PAN string `json:"pan"`
		} `json:"cards"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(body, &cards) != nil || len(cards.Cards) == 0 {
		t.Fatalf("cards: %d %.300s", resp.StatusCode, body)
	}
	for _, c := range cards.Cards {
		if !maskedPAN.MatchString(c.PAN) {
			t.Fatalf("PAN not masked: %q", c.PAN)
		}
	}

	tests := []struct {
		name, method, path, body string
		hdr                      map[string]string
		status                   int
		reason                   string
		rule                     string
	}{
		{"mass assignment: readOnly and unknown property", "POST", "/api/v1/payments",
			`{"debtorAccountId":"acc_z4al6t3b7dqc","creditorIban":"GB33BUKB20201555555555","creditorName":"O'Brien & Sons","amount":"10.00","currency":"GBP","status":"Pending","isAdmin":true}`,
			map[string]string{"Content-Type": "application/json"}, 400, "request_invalid", "body.status: readOnly"},
		{"wrong type in a path parameter", "GET", "/api/v1/accounts/not-an-id", "", nil, 400, "request_invalid", "path.accountId"},
		{"unknown operation", "GET", "/api/v1/secret-admin-dump", "", nil, 404, "unknown_operation", ""},
		{"wrong content type", "POST", "/api/v1/payments", `a=b`, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415, "unsupported_media_type", ""},
		{"SQL injection in a header", "GET", "/api/v1/accounts", "", map[string]string{"Referer": "https://x.example/?q=1' UNION SELECT password FROM users--"}, 403, "waf_blocked", ""},
		{"XSS in a JSON body field", "POST", "/api/v1/payments",
			`{"debtorAccountId":"acc_z4al6t3b7dqc","creditorIban":"GB33BUKB20201555555555","creditorName":"<script>alert(1)</script>","amount":"10.00","currency":"GBP"}`,
			map[string]string{"Content-Type": "application/json"}, 403, "waf_blocked", ""},
		{"benign payment with an apostrophe", "POST", "/api/v1/payments",
			`{"debtorAccountId":"acc_z4al6t3b7dqc","creditorIban":"GB33BUKB20201555555555","creditorName":"O'Brien & Sons","amount":"10.00","currency":"GBP","reference":"Rent - Flat 2, Queen's Rd"}`,
			map[string]string{"Content-Type": "application/json"}, 201, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rb io.Reader
			if tt.body != "" {
				rb = strings.NewReader(tt.body)
			}
			req, _ := http.NewRequest(tt.method, env.base+tt.path, rb)
			for k, v := range tt.hdr {
				req.Header.Set(k, v)
			}
			resp, err := env.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tt.status {
				b, _ := io.ReadAll(resp.Body)
				t.Fatalf("status %d, want %d: %.400s", resp.StatusCode, tt.status, b)
			}
			if tt.reason == "" {
				return
			}
			p := decodeProblem(t, resp)
			if p.Reason != tt.reason {
				t.Fatalf("reason %q, want %q (%s)", p.Reason, tt.reason, p.Detail)
			}
			if strings.Contains(p.Detail, "<script>") || strings.Contains(p.Detail, "UNION") || strings.Contains(p.Detail, "isAdmin") {
				t.Fatalf("problem echoes hostile input: %q", p.Detail)
			}
		})
	}

	if err := env.g.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	log, _ := os.ReadFile(filepath.Join(env.dir, "audit.log"))
	for _, want := range []string{`"response_data":["pan"]`, `"reason":"sensitive_data_masked"`, `"reason":"waf_blocked"`, `"body.status: readOnly"`} {
		if !strings.Contains(string(log), want) {
			t.Errorf("audit log lacks %s", want)
		}
	}
	for _, c := range bank.New(bank.Options{Seed: 1}).Cards("") {
		if strings.Contains(string(log), c.PAN) {
			t.Errorf("audit log contains card number %s…", c.PAN[:6])
		}
	}
}

// TestInspectionMonitored: in monitor mode the same requests pass, with
// the decisions recorded, and nothing is masked.
func TestInspectionMonitored(t *testing.T) {
	env := startInspected(t, "monitor")
	req, _ := http.NewRequest("GET", env.base+"/api/v1/accounts", nil)
	req.Header.Set("Referer", "https://x.example/?q=1' UNION SELECT password FROM users--")
	resp, err := env.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("monitored WAF hit: %d", resp.StatusCode)
	}
	resp, err = env.client.Get(env.base + "/api/v1/cards")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !regexp.MustCompile(`"pan":"[0-9]{16}"`).Match(body) {
		t.Fatalf("monitor mode must not mask: %.200s", body)
	}
	_ = env.g.Shutdown(t.Context())
	log, _ := os.ReadFile(filepath.Join(env.dir, "audit.log"))
	if !strings.Contains(string(log), `"stage":"waf","action":"stop","reason":"waf_blocked","status":403,"enforced":false`) {
		t.Errorf("monitored WAF decision not recorded:\n%s", log)
	}
}
