package demo

import (
	"context"
	"crypto/tls"
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
)

// TestDemoEndToEnd runs the demo as `bulwark demo` does and uses it as a
// client would: through the gateway over HTTPS, and the admin listener.
func TestDemoEndToEnd(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan Addrs, 1)
	var out strings.Builder
	done := make(chan error, 1)
	go func() { done <- Run(ctx, Options{Out: &out, Dir: dir, Ready: func(a Addrs) { ready <- a }}) }()
	var a Addrs
	select {
	case a = <-ready:
	case err := <-done:
		t.Fatalf("demo ended early: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("demo not ready")
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true}} //nolint:gosec // demo cert

	resp, err := client.Get(a.Gateway + "/api/v1/accounts?limit=2")
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Accounts []map[string]any `json:"accounts"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(body.Accounts) != 2 || resp.ProtoMajor != 2 {
		t.Fatalf("accounts through the gateway: %d %s %d accounts", resp.StatusCode, resp.Proto, len(body.Accounts))
	}

	resp, err = client.Get(a.Gateway + "/elsewhere")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("unrouted path: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}

	req, _ := http.NewRequest("GET", a.Admin+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+a.AdminToken)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), `bulwark_requests_total{api="bank",outcome="passed",status="200"}`) {
		t.Fatalf("metrics lack the bank's requests:\n%.2000s", metrics)
	}
	if !strings.Contains(out.String(), "self-check: GET /api/v1/health -> 200 over HTTP/2.0") {
		t.Fatalf("banner lacks a passing self-check:\n%s", out.String())
	}

	// The generated config is one a user can check and run.
	cfgPath := filepath.Join(dir, "bulwark.yaml")
	data, _ := os.ReadFile(cfgPath)
	if _, err := config.Parse(data, cfgPath, func(k string) (string, bool) { return "demo-token-0123456789abcdef", k == "BULWARK_ADMIN_TOKEN" }); err != nil {
		t.Fatalf("generated config does not validate:\n%v", err)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := audit.Verify(f)
	if err != nil || res.FirstBroken != 0 || res.Records < 3 {
		t.Fatalf("demo audit log: %+v %v", res, err)
	}
}
