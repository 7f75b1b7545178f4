package gateway

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkapi/bulwark/internal/pseudo"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/bulwarkapi/bulwark/internal/demo/bank"
)

// startLoginGateway puts the demo bank behind a gateway whose login is
// protected; extra is added to the API block.
func startLoginGateway(t *testing.T, top, extra string) *gwEnv {
	t.Helper()
	bk := bank.New(bank.Options{Seed: 1})
	srv := httptest.NewServer(bk.Handler())
	t.Cleanup(srv.Close)
	cfg := fmt.Sprintf(`
listeners:
  - addr: "127.0.0.1:0"
    tls: {cert_file: tls.crt, key_file: tls.key}
admin: {addr: "127.0.0.1:0", token: %q}
audit: {path: audit.log}
%s
apis:
  - name: bank
    match: {path_prefix: /api/v1}
    upstream: {url: %q}
    spec: bank.yaml
    validate: {requests: true}
%s`, testToken, top, srv.URL, extra)
	return startGatewayWith(t, cfg, func(dir string) {
		if err := os.WriteFile(filepath.Join(dir, "bank.yaml"), bank.Spec(), 0o600); err != nil {
			t.Fatal(err)
		}
	})
}

func (e *gwEnv) login(t *testing.T, user, pass string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.base+"/api/v1/login", strings.NewReader(fmt.Sprintf(`{"username":%q,"password":%q}`, user, pass)))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	return resp, string(b)
}

// TestBruteForceLockout is issue #6's acceptance test: the 6th failed
// login for one username within the window is refused with 429
// problem+json; other users are unaffected; a spoofed X-Forwarded-For
// from an untrusted peer changes nothing; usernames are logged only as hashes.
func TestBruteForceLockout(t *testing.T) {
	for _, store := range []string{"local", "redis"} {
		t.Run(store, func(t *testing.T) {
			top := ""
			if store == "redis" {
				top = fmt.Sprintf("cluster: {redis_url: %q, redis_timeout: 5s}", redisURL(t))
			}
			env := startLoginGateway(t, top, `    brute_force: {operation: "POST /login", username: request.body.username, max_failures: 5, window: 1m, delay: 1ms, max_delay: 4ms}
`)
			// A fresh username per run: Redis outlives the test.
			victim := fmt.Sprintf("victim%d", time.Now().UnixNano()%1e9)
			for i := range 5 {
				// Each attempt claims another client address; none is believed.
				resp, _ := env.login(t, victim, "wrong", "X-Forwarded-For", fmt.Sprintf("203.0.113.%d", i+1))
				if resp.StatusCode != http.StatusUnauthorized {
					t.Fatalf("attempt %d: status %d, want the bank's 401", i+1, resp.StatusCode)
				}
			}
			req, _ := http.NewRequest(http.MethodPost, env.base+"/api/v1/login", strings.NewReader(fmt.Sprintf(`{"username":%q,"password":"password1"}`, victim)))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Forwarded-For", "198.51.100.77")
			resp, err := env.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			p := decodeProblem(t, resp)
			resp.Body.Close()
			if resp.StatusCode != http.StatusTooManyRequests || p.Reason != "login_username_locked" || resp.Header.Get("Retry-After") == "" {
				t.Fatalf("6th attempt: %d %+v Retry-After %q", resp.StatusCode, p, resp.Header.Get("Retry-After"))
			}
			// Another user logs in from the same address.
			user, pass := bank.Credentials(2)
			if resp, body := env.login(t, user, pass); resp.StatusCode != 200 {
				t.Fatalf("other user: %d %s", resp.StatusCode, body)
			}
			// Usernames appear in the audit log and logs only as hashes.
			deadline := time.Now().Add(3 * time.Second)
			var audit []byte
			for time.Now().Before(deadline) {
				audit, _ = os.ReadFile(filepath.Join(env.dir, "audit.log"))
				if strings.Count(string(audit), "\n") >= 7 {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if strings.Contains(string(audit), victim) || strings.Contains(env.logs.String(), victim) {
				t.Fatal("a username appears in clear in the audit log or the log")
			}
			if !strings.Contains(string(audit), `"username_hash"`) || !strings.Contains(string(audit), "login_failed") {
				t.Fatalf("the audit log lacks username hashes or login_failed decisions:\n%s", audit)
			}
			if !strings.Contains(env.logs.String(), `"msg":"login locked"`) {
				t.Fatalf("the lockout was not logged:\n%s", env.logs.String())
			}
		})
	}
}

// TestCredentialStuffingAlert: many usernames failing from one address
// raise an alert once and block that address.
func TestCredentialStuffingAlert(t *testing.T) {
	env := startLoginGateway(t, "", `    brute_force: {operation: "POST /login", username: request.body.username, max_failures: 5, max_client_failures: 100, window: 1m, delay: 0s, max_usernames_per_client: 3}
`)
	codes := []int{}
	for i := range 6 {
		resp, _ := env.login(t, fmt.Sprintf("someone%d", i), "guess")
		codes = append(codes, resp.StatusCode)
	}
	if fmt.Sprint(codes) != "[401 401 401 401 429 429]" {
		t.Fatalf("statuses %v: want the address blocked after the 4th distinct username", codes)
	}
	m := env.g.Metrics()
	if got := testutil.ToFloat64(m.BruteForceAlerts.WithLabelValues("bank", "credential_stuffing")); got != 1 {
		t.Fatalf("credential_stuffing alerts = %v, want exactly 1", got)
	}
	if !strings.Contains(env.logs.String(), "brute-force alert") {
		t.Fatal("no alert log line")
	}
}

// TestBruteForceTrustedProxy: behind a trusted proxy, two clients are
// told apart by the forwarded address.
func TestBruteForceTrustedProxy(t *testing.T) {
	env := startLoginGateway(t, "forwarding: {trusted_proxies: [127.0.0.0/8]}", `    brute_force: {operation: "POST /login", username: request.body.username, max_failures: 50, max_client_failures: 2, window: 1m, delay: 0s}
`)
	for i := range 2 {
		if resp, _ := env.login(t, fmt.Sprintf("u%d", i), "x", "X-Forwarded-For", "198.51.100.1"); resp.StatusCode != 401 {
			t.Fatalf("attempt %d: %d", i, resp.StatusCode)
		}
	}
	if resp, _ := env.login(t, "u9", "x", "X-Forwarded-For", "198.51.100.1"); resp.StatusCode != 429 {
		t.Fatalf("locked client: %d, want 429", resp.StatusCode)
	}
	user, pass := bank.Credentials(1)
	if resp, _ := env.login(t, user, pass, "X-Forwarded-For", "198.51.100.2"); resp.StatusCode != 200 {
		t.Fatalf("another client behind the same proxy: %d, want 200", resp.StatusCode)
	}
}

// TestPseudonymSecret: with privacy.pseudonym_secret the username in the
// audit log is HMAC-SHA256 under the secret, not the plain SHA-256
// anyone could recompute from a guessed username.
func TestPseudonymSecret(t *testing.T) {
	const secret = "test-pseudonym-secret-0123456789abcdef"
	t.Cleanup(func() { pseudo.SetKey("") })
	env := startLoginGateway(t, fmt.Sprintf("privacy: {pseudonym_secret: %q}\n", secret),
		`    brute_force: {operation: "POST /login", username: request.body.username, max_failures: 5, window: 1m}
`)
	const victim = "alice@example.com"
	if resp, _ := env.login(t, victim, "wrong-password"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(victim))
	keyed := hex.EncodeToString(m.Sum(nil)[:16])
	plain := sha256.Sum256([]byte(victim))
	var audit string
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(audit, "username_hash") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		b, _ := os.ReadFile(filepath.Join(env.dir, "audit.log"))
		audit = string(b)
	}
	if !strings.Contains(audit, `"username_hash":"`+keyed+`"`) || strings.Contains(audit, hex.EncodeToString(plain[:16])) {
		t.Fatalf("audit log lacks the keyed pseudonym %s (or holds the plain hash):\n%s", keyed, audit)
	}
}
