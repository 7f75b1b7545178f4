package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// startGatewayProcess runs the binary on cfg (written into its own
// directory, with a certificate) and returns its listen address.
func startGatewayProcess(t *testing.T, cfg func(listen, admin string) string) string {
	t.Helper()
	dir := t.TempDir()
	writeCert(t, dir)
	listen, admin := freePort(t), freePort(t)
	cfgPath := filepath.Join(dir, "bulwark.yaml")
	must(t, os.WriteFile(cfgPath, []byte(cfg(listen, admin)), 0o600))
	var stderr lockedBuffer
	cmd := exec.Command(binPath, "gateway", "-c", cfgPath, "--no-watch")
	cmd.Env = append(os.Environ(), "E2E_ADMIN_TOKEN="+e2eToken)
	cmd.Stderr = &stderr
	must(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	waitReady(t, "http://"+admin+"/readyz", exited, &stderr)
	return listen
}

// TestTwoProcessesShareOneLimit is issue #6's acceptance test: two gateway
// processes sharing the machine's Redis enforce one combined limit of 100
// per minute over 300 requests alternating between them; with the
// in-memory store each process allows its own 100.
func TestTwoProcessesShareOneLimit(t *testing.T) {
	for _, tc := range []struct {
		name     string
		redis    bool
		wantLow  int
		wantHigh int
	}{
		{name: "redis", redis: true, wantLow: 98, wantHigh: 102},
		{name: "in-memory", redis: false, wantLow: 198, wantHigh: 202},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cluster := ""
			if tc.redis {
				u := os.Getenv("BULWARK_TEST_REDIS_URL")
				if u == "" {
					t.Skip("BULWARK_TEST_REDIS_URL not set: skipping the shared-limit test")
				}
				cluster = fmt.Sprintf("cluster: {redis_url: %q, redis_timeout: 5s}\n", u)
			}
			up := namedUpstream(t, "bank")
			// A name unique to this run, so counts left in Redis by an
			// earlier run cannot leak in.
			limit := fmt.Sprintf("shared%d", time.Now().UnixNano())
			cfg := func(listen, admin string) string {
				return gatewayConfig(listen, admin, up) + fmt.Sprintf("    rate_limits: [{name: %s, key: ip, rate: 100/m}]\n", limit) + cluster
			}
			addrs := []string{startGatewayProcess(t, cfg), startGatewayProcess(t, cfg)}
			tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // test cert
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
			allowed, limited := 0, 0
			start := time.Now()
			for i := range 300 {
				resp, err := client.Get("https://" + addrs[i%2] + "/accounts")
				if err != nil {
					t.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch resp.StatusCode {
				case 200:
					allowed++
				case 429:
					limited++
				default:
					t.Fatalf("request %d: status %d", i, resp.StatusCode)
				}
			}
			t.Logf("%s: %d allowed, %d limited in %s", tc.name, allowed, limited, time.Since(start).Round(time.Millisecond))
			if allowed < tc.wantLow || allowed > tc.wantHigh {
				t.Fatalf("%d of 300 allowed; want %d..%d", allowed, tc.wantLow, tc.wantHigh)
			}
		})
	}
}
