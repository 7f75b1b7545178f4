package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// coolDownSpec is the API the cluster cool-down test walks: one object
// operation, so that the authorize stage reads accountId as the object id.
const coolDownSpec = `openapi: 3.0.3
info: {title: e2e accounts, version: "1"}
paths:
  /accounts/{accountId}:
    get:
      operationId: getAccount
      parameters:
        - {name: accountId, in: path, required: true, schema: {type: string}}
      responses:
        "200": {description: the account}
`

// TestClusterCoolDownEnforcedAcrossGateways: two gateway processes and one
// `bulwark collector` share NATS and PostgreSQL, with detect.mode enforce.
// An identity enumerating account ids through gateway A is put on
// cool-down by the collector, and gateway B refuses that identity with
// 429 cool_down and Retry-After within seconds, while another identity
// is still served at B.
func TestClusterCoolDownEnforcedAcrossGateways(t *testing.T) {
	pgURL, natsURL := os.Getenv("BULWARK_TEST_POSTGRES_URL"), os.Getenv("BULWARK_TEST_NATS_URL")
	if pgURL == "" || natsURL == "" {
		t.Skip("BULWARK_TEST_POSTGRES_URL and BULWARK_TEST_NATS_URL not set: skipping the cluster cool-down test")
	}
	run := strconv.FormatInt(time.Now().UnixNano(), 10)

	// A schema and a stream of this run's own.
	u := pgSchema(t, pgURL, "bulwark_e2e_cd_"+run)
	stream := "E2E_CD_" + run
	t.Cleanup(func() { deleteStream(t, natsURL, stream) })

	dir := t.TempDir()
	specPath := filepath.Join(dir, "accounts.yaml")
	must(t, os.WriteFile(specPath, []byte(coolDownSpec), 0o600))
	keyDigest := func(k string) string { s := sha256.Sum256([]byte(k)); return hex.EncodeToString(s[:]) }
	const walkerKey, normalKey = "walker-key-0123456789abcdef", "normal-key-0123456789abcdef"
	api := fmt.Sprintf(`    spec: %q
    authenticate: [keys]
    objects:
      - {operation: "GET /accounts/{accountId}", allow: "params.accountId.startsWith('own-')"}
identity:
  - name: keys
    api_key:
      header: X-API-Key
      keys:
        - {id: walker, sha256: %q}
        - {id: normal, sha256: %q}
cluster: {nats_url: %q, nats_stream: %s, nats_subject: e2ecd.%s, nats_durable: e2ecd-%s, nats_cooldown_subject: e2ecd.%s.cooldowns}
store: {url: %q}
inventory: {flush_interval: 200ms}
detect: {mode: enforce, max_distinct_objects: 5, cool_down: 2m}
`, specPath, keyDigest(walkerKey), keyDigest(normalKey), natsURL, stream, run, run, run, u.String())

	up := namedUpstream(t, "bank")
	cfg := func(listen, admin string) string { return gatewayConfig(listen, admin, up) + api }
	colCfg := filepath.Join(dir, "collector.yaml")
	must(t, os.WriteFile(colCfg, []byte(cfg(freePort(t), freePort(t))), 0o600))
	writeCert(t, dir)
	startCollector(t, colCfg)
	var adminB string
	a := startGatewayProcess(t, cfg)
	b := startGatewayProcess(t, func(listen, admin string) string { adminB = admin; return cfg(listen, admin) })

	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // test cert
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	call := func(addr, key, account string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "https://"+addr+"/accounts/"+account, nil)
		req.Header.Set("X-API-Key", key)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	status := func(addr, key, account string) int {
		t.Helper()
		resp := call(addr, key, account)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}

	// Both identities are served at B to begin with.
	for _, key := range []string{walkerKey, normalKey} {
		if got := status(b, key, "own-1"); got != 200 {
			t.Fatalf("before the walk, B answered %d", got)
		}
	}
	// The walker enumerates twelve accounts through A: more than
	// max_distinct_objects, all refused by the object rule.
	for i := range 12 {
		if got := status(a, walkerKey, fmt.Sprintf("acc-%04d", i)); got != http.StatusForbidden && got != http.StatusTooManyRequests {
			t.Fatalf("walk request %d at A: %d", i, got)
		}
	}
	start := time.Now()
	deadline := start.Add(15 * time.Second)
	var resp *http.Response
	for {
		resp = call(b, walkerKey, "own-1")
		if resp.StatusCode == http.StatusTooManyRequests {
			break
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("walker at B while waiting: %d", resp.StatusCode)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the walker is not refused at B 15s after the walk at A; B's cool-down metrics:\n%s",
				metricLines(adminGet(t, "http://"+adminB+"/metrics"), "bulwark_cooldowns_"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("gateway B refused the walker %s after the walk at A", time.Since(start).Round(time.Millisecond))
	var p struct {
		Status int
		Reason string
	}
	ct := resp.Header.Get("Content-Type")
	err := json.NewDecoder(resp.Body).Decode(&p)
	resp.Body.Close()
	if ct != "application/problem+json" || err != nil || p.Status != 429 || p.Reason != "cool_down" {
		t.Fatalf("refusal at B: %s %+v %v", ct, p, err)
	}
	if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || secs < 1 || secs > 121 {
		t.Fatalf("Retry-After %q, want 1..121 seconds", resp.Header.Get("Retry-After"))
	}
	if got := status(b, normalKey, "own-1"); got != 200 {
		t.Fatalf("another identity at B: %d, want 200", got)
	}
	metrics := adminGet(t, "http://"+adminB+"/metrics")
	if !strings.Contains(metrics, "bulwark_cooldowns_active 1") || strings.Contains(metrics, "bulwark_cooldowns_received_total 0") {
		t.Errorf("B's cool-down metrics:\n%s", metricLines(metrics, "bulwark_cooldowns_"))
	}
}

// deleteStream removes a test's JetStream stream.
func deleteStream(t *testing.T, natsURL, stream string) {
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Errorf("connect to delete stream %s: %v", stream, err)
		return
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Error(err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := js.DeleteStream(ctx, stream); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("delete stream %s: %v", stream, err)
	}
}

// metricLines returns the lines of a metrics page starting with prefix.
func metricLines(page, prefix string) string {
	var out []string
	for _, l := range strings.Split(page, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
