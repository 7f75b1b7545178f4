package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// startCollector runs `bulwark collector` on cfg and returns a stop function
// that sends SIGTERM and waits for a clean exit.
func startCollector(t *testing.T, cfgPath string) func() {
	t.Helper()
	var stderr lockedBuffer
	cmd := exec.Command(binPath, "collector", "-c", cfgPath)
	cmd.Env = append(os.Environ(), "E2E_ADMIN_TOKEN="+e2eToken)
	cmd.Stderr = &stderr
	must(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("collector exit: %v\n%s", err, stderr.String())
			}
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("collector did not stop on SIGTERM\n%s", stderr.String())
		}
	}
	t.Cleanup(stop)
	return stop
}

// TestTwoGatewaysNATSPostgres is issue #7's multi-node acceptance test: two
// gateway processes publish to NATS JetStream, `bulwark collector` consumes
// into PostgreSQL; the inventory holds both gateways' traffic, and a
// collector restart adds no duplicates (every request counted once).
func TestTwoGatewaysNATSPostgres(t *testing.T) {
	pgURL, natsURL := os.Getenv("BULWARK_TEST_POSTGRES_URL"), os.Getenv("BULWARK_TEST_NATS_URL")
	if pgURL == "" || natsURL == "" {
		t.Skip("BULWARK_TEST_POSTGRES_URL and BULWARK_TEST_NATS_URL not set: skipping the multi-node inventory test")
	}
	ctx := context.Background()
	run := fmt.Sprintf("%d", time.Now().UnixNano())
	schema := "bulwark_e2e_" + run
	u := pgSchema(t, pgURL, schema)
	conn, err := pgx.Connect(ctx, pgURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	cluster := fmt.Sprintf("cluster: {nats_url: %q, nats_stream: E2E_%s, nats_subject: e2e.%s, nats_durable: e2e-%s}\nstore: {url: %q}\ninventory: {flush_interval: 200ms}\n",
		natsURL, run, run, run, u.String())

	up := namedUpstream(t, "bank")
	cfg := func(listen, admin string) string { return gatewayConfig(listen, admin, up) + cluster }
	dir := t.TempDir()
	colCfg := filepath.Join(dir, "collector.yaml")
	colAdmin := freePort(t) // the collector serves the cluster's inventory there
	must(t, os.WriteFile(colCfg, []byte(cfg(freePort(t), colAdmin)), 0o600))
	writeCert(t, dir)
	stopCollector := startCollector(t, colCfg)
	a, b := startGatewayProcess(t, cfg), startGatewayProcess(t, cfg)

	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // test cert
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	send := func(addr, prefix string, n int) {
		for i := range n {
			resp, err := client.Get(fmt.Sprintf("https://%s/%s/%d", addr, prefix, 100000+i))
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	// counts reads the inventory from PostgreSQL: total requests per
	// template prefix, and how many endpoint rows there are.
	counts := func() (map[string]int, int) {
		rows, err := conn.Query(ctx, "SELECT doc FROM "+schema+".endpoints")
		if err != nil {
			return nil, 0
		}
		defer rows.Close()
		out, n := map[string]int{}, 0
		for rows.Next() {
			var doc []byte
			if err := rows.Scan(&doc); err != nil {
				t.Fatal(err)
			}
			var ep struct {
				Template string
				Count    int
			}
			_ = json.Unmarshal(doc, &ep)
			out[strings.Split(strings.TrimPrefix(ep.Template, "/"), "/")[0]] += ep.Count
			n++
		}
		return out, n
	}
	waitCounts := func(want map[string]int) int {
		deadline := time.Now().Add(30 * time.Second)
		for {
			got, rows := counts()
			ok := true
			for k, v := range want {
				if got[k] != v {
					ok = false
				}
			}
			if ok {
				return rows
			}
			if time.Now().After(deadline) {
				t.Fatalf("inventory in PostgreSQL: %v, want %v", got, want)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	send(a, "alpha", 60)
	send(b, "beta", 40)
	rows := waitCounts(map[string]int{"alpha": 60, "beta": 40})
	t.Logf("both gateways' traffic in the inventory: %d endpoint rows", rows)

	// The collector's admin listener shows the cluster's inventory and
	// its counters, behind the admin token.
	adminGet := func(path string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+colAdmin+path, nil)
		req.Header.Set("Authorization", "Bearer "+e2eToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := adminGet("/api/v1/inventory")
	if code != 200 || !strings.Contains(body, `"/alpha/{`) || !strings.Contains(body, `"/beta/{`) {
		t.Fatalf("collector admin inventory: %d %.300s", code, body)
	}
	if code, body := adminGet("/metrics"); code != 200 || !strings.Contains(body, "bulwark_collector_nats_handled_total") ||
		strings.Contains(body, "bulwark_inventory_events_total 0\n") {
		t.Fatalf("collector metrics: %d %.300s", code, body)
	}

	stopCollector()
	send(a, "alpha", 25) // published while no collector runs
	startCollector(t, colCfg)
	rows2 := waitCounts(map[string]int{"alpha": 85, "beta": 40})
	time.Sleep(time.Second) // any redelivery would land now
	got, rows3 := counts()
	if got["alpha"] != 85 || got["beta"] != 40 || rows3 != rows2 {
		t.Fatalf("after a collector restart: %v in %d rows (was %d rows): duplicates", got, rows3, rows2)
	}
}

// TestInventoryImportExportCLI runs `bulwark inventory import` twice on
// the same traffic (the second adds nothing) and `bulwark inventory
// export`, as a user would.
func TestInventoryImportExportCLI(t *testing.T) {
	dir := t.TempDir()
	writeCert(t, dir)
	cfgPath := filepath.Join(dir, "bulwark.yaml")
	must(t, os.WriteFile(cfgPath, []byte(gatewayConfig(freePort(t), freePort(t), "http://127.0.0.1:9")+"store: {url: \"sqlite://inv.db\"}\n"), 0o600))
	var log strings.Builder
	for i := range 30 {
		fmt.Fprintf(&log, "198.51.100.%d - - [29/Nov/2026:10:00:%02d +0000] \"GET /accounts/%d/transactions?limit=10 HTTP/1.1\" 200 512 \"-\" \"curl/8\"\n", i%200, i%60, 700000+i)
		fmt.Fprintf(&log, "198.51.100.%d - - [29/Nov/2026:10:01:%02d +0000] \"GET /customers/cus_%08dAbC HTTP/1.1\" 200 128 \"-\" \"curl/8\"\n", i%200, i%60, 4000+i)
	}
	logPath := filepath.Join(dir, "access.log")
	must(t, os.WriteFile(logPath, []byte(log.String()), 0o600))
	t.Setenv("E2E_ADMIN_TOKEN", e2eToken)

	out, code := runBin(t, "inventory", "import", "-c", cfgPath, logPath)
	if code != 0 || !strings.Contains(out, "60 imported") {
		t.Fatalf("first import: %d\n%s", code, out)
	}
	out, code = runBin(t, "inventory", "import", "-c", cfgPath, logPath)
	if code != 0 || !strings.Contains(out, "0 events ingested, 60 already imported") {
		t.Fatalf("second import of the same file: %d\n%s", code, out)
	}
	out, code = runBin(t, "inventory", "export", "-c", cfgPath, "--format", "openapi")
	if code != 0 {
		t.Fatalf("export: %d\n%s", code, out)
	}
	var doc struct {
		OpenAPI string
		Paths   map[string]any
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("export is not JSON: %v\n%s", err, out)
	}
	var paths []string
	for p := range doc.Paths {
		paths = append(paths, p)
	}
	if doc.OpenAPI != "3.1.0" || len(paths) != 2 || doc.Paths["/accounts/{accountId}/transactions"] == nil {
		t.Fatalf("exported %s with paths %v", doc.OpenAPI, paths)
	}
	if _, code := runBin(t, "inventory", "export", "-c", cfgPath, "--format", "sarif"); code != exitInvalid {
		t.Fatalf("unknown format: exit %d, want %d", code, exitInvalid)
	}
}

// pgSchema creates a PostgreSQL schema of the test's own, dropped when the
// test ends, and returns pgURL with its search_path set to it.
func pgSchema(t *testing.T, pgURL, schema string) *url.URL {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgURL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		_ = conn.Close(ctx)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = conn.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		_ = conn.Close(context.Background())
	})
	u, err := url.Parse(pgURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u
}
