package demo

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkapi/bulwark/internal/audit"
	"github.com/bulwarkapi/bulwark/internal/config"
	"github.com/bulwarkapi/bulwark/internal/demo/traffic"
)

// trafficRun is how long the end-to-end test lets the simulated traffic
// run: long enough for every attack kind to show itself and for the volume
// attacks to dwarf what their limiters let through at first.
const trafficRun = 10 * time.Second

// TestDemoEndToEnd runs the demo as `bulwark demo --report --ready` does,
// uses it as a client would (through the gateway over HTTPS, and the admin
// listener) while the simulated customers and attackers run, and holds the
// summary to the demo's bar: every attack kind blocked in at least 95% of
// its attempts, no legitimate request refused.
func TestDemoEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo for 10 seconds")
	}
	dir := t.TempDir()
	report := filepath.Join(t.TempDir(), "report.json")
	readyFile := filepath.Join(t.TempDir(), "ready.json")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan Addrs, 1)
	var out syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Out: &out, Dir: dir, Report: report, ReadyFile: readyFile, Ready: func(a Addrs) { ready <- a }})
	}()
	var a Addrs
	select {
	case a = <-ready:
	case err := <-done:
		t.Fatalf("demo ended early: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("demo not ready")
	}
	started := time.Now()

	var fromFile Addrs
	if b, err := os.ReadFile(readyFile); err != nil || json.Unmarshal(b, &fromFile) != nil || fromFile != a {
		t.Fatalf("ready file: %s %v, want %+v", b, err, a)
	}

	roots := x509.NewCertPool()
	pemCert, _ := os.ReadFile(filepath.Join(dir, "tls.crt"))
	roots.AppendCertsFromPEM(pemCert)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}}
	tok, err := os.ReadFile(filepath.Join(dir, visitorTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string, withToken bool) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest("GET", a.Gateway+path, nil)
		if withToken {
			req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}

	// The visitor's own accounts, over HTTP/2, with the token the demo wrote.
	banner := out.String()
	i := strings.Index(banner, "/accounts?customerId=")
	if i < 0 {
		t.Fatalf("banner lacks the visitor's accounts URL:\n%s", banner)
	}
	cus := banner[i+len("/accounts?customerId=") : i+len("/accounts?customerId=")+len("cus_abcdefghijkl")]
	resp, body := get("/api/v1/accounts?customerId="+cus, true)
	var list struct {
		Accounts []map[string]any `json:"accounts"`
	}
	_ = json.Unmarshal(body, &list)
	if resp.StatusCode != 200 || len(list.Accounts) == 0 || resp.ProtoMajor != 2 {
		t.Fatalf("own accounts through the gateway: %d %s %.300s", resp.StatusCode, resp.Proto, body)
	}
	for _, acc := range list.Accounts {
		if acc["customerId"] != cus {
			t.Fatalf("someone else's account in the list: %v", acc)
		}
	}
	if resp, body := get("/api/v1/accounts?customerId="+cus, false); resp.StatusCode != 401 || !strings.Contains(string(body), `"reason":"credentials_missing"`) {
		t.Fatalf("no token: %d %s", resp.StatusCode, body)
	}
	if resp, _ := get("/api/v1/health", false); resp.StatusCode != 200 {
		t.Fatalf("health is anonymous in the spec: %d", resp.StatusCode)
	}
	if resp, _ := get("/elsewhere", false); resp.StatusCode != 404 || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("unrouted path: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if !strings.Contains(banner, "self-check: GET /api/v1/health -> 200 over HTTP/2.0") {
		t.Fatalf("banner lacks a passing self-check:\n%s", banner)
	}

	// The generated config is one a user can check and run.
	cfgPath := filepath.Join(dir, configFile)
	data, _ := os.ReadFile(cfgPath)
	env := map[string]string{"BULWARK_ADMIN_TOKEN": "demo-token-0123456789abcdef", "BULWARK_PSEUDONYM_SECRET": "demo-pseudonym-secret-0123456789abcdef"}
	if c, err := config.Parse(data, cfgPath, func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatalf("generated config does not validate:\n%v", err)
	} else if len(c.Warnings) != 0 {
		t.Errorf("generated config warns: %v", c.Warnings)
	}

	// Let the traffic run, then stop the demo.
	select {
	case err := <-done:
		t.Fatalf("demo ended early: %v", err)
	case <-time.After(trafficRun - time.Since(started)):
	}
	metrics := adminGet(t, a, "/metrics")
	if !strings.Contains(metrics, `bulwark_requests_total{api="bank",outcome="passed",status="200"}`) ||
		!strings.Contains(metrics, `reason="object_denied"`) {
		t.Fatalf("metrics lack the bank's traffic:\n%.2000s", metrics)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("demo did not stop")
	}

	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatalf("no report: %v", err)
	}
	var s traffic.Summary
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	if len(s.Attacks) != len(traffic.AttackKinds) {
		t.Fatalf("report has %d attack kinds, want %d:\n%s", len(s.Attacks), len(traffic.AttackKinds), b)
	}
	for _, at := range s.Attacks {
		if at.Attempts == 0 || at.BlockedPercent < traffic.MinBlockedPercent {
			t.Errorf("%s: %d of %d blocked (%.1f%%): %v", at.Kind, at.Blocked, at.Attempts, at.BlockedPercent, at.Reasons)
		}
	}
	// Each attack meets the protection made for it (before any rate limit
	// or cool-down takes over).
	want := map[traffic.Kind][]string{
		traffic.BOLAEnumeration:    {"object_denied"},
		traffic.JWTAlgNone:         {"alg_none"},
		traffic.JWTKeyConfusion:    {"alg_not_allowed"},
		traffic.CredentialStuffing: {"rate_limited"},
		traffic.SQLInjection:       {"waf_blocked", "request_invalid"},
		traffic.CardHarvesting:     {"object_denied", "no_full_pan"},
		traffic.RequestFlood:       {"rate_limited"},
		traffic.MassAssignment:     {"request_invalid"},
		traffic.AdminAccess:        {"admin_operation"},
	}
	for _, at := range s.Attacks {
		for _, r := range want[at.Kind] {
			if at.Reasons[r] == 0 {
				t.Errorf("%s never stopped by %s: %v", at.Kind, r, at.Reasons)
			}
		}
	}
	if s.Benign.Requests < traffic.DefaultCustomers || s.Benign.Blocked != 0 || s.Benign.Errors != 0 || s.Benign.FullPANs != 0 {
		t.Errorf("benign: %+v", s.Benign)
	}
	if !s.OK {
		t.Errorf("report not ok:\n%s", b)
	}
	if !strings.Contains(out.String(), "PASS: every attack kind blocked") || !strings.Contains(out.String(), "credential_stuffing") {
		t.Errorf("summary table missing from the output:\n%s", out.String())
	}
	t.Logf("summary:\n%s", out.String()[strings.Index(out.String(), "ATTACK"):])

	f, err := os.Open(filepath.Join(dir, auditFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := audit.Verify(f)
	if err != nil || res.FirstBroken != 0 || res.Records < 100 {
		t.Fatalf("demo audit log: %+v %v", res, err)
	}
}

func adminGet(t *testing.T, a Addrs, path string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", a.Admin+path, nil)
	req.Header.Set("Authorization", "Bearer "+a.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
