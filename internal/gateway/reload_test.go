package gateway

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func upstreamOf(t *testing.T, env *gwEnv) string {
	t.Helper()
	resp, err := env.client.Get(env.base + "/x")
	if err != nil {
		return "error: " + err.Error()
	}
	defer resp.Body.Close()
	return resp.Header.Get("X-Upstream")
}

// TestReloadOnFileChange: editing the config file reroutes without SIGHUP;
// an invalid edit is rejected and the previous config keeps serving.
func TestReloadOnFileChange(t *testing.T) {
	a, b := newEcho(t, "a"), newEcho(t, "b")
	env := startGatewayWatch(t, baseConfig(a.srv.URL, ""))
	if got := upstreamOf(t, env); got != "a" {
		t.Fatalf("before: %q", got)
	}
	if err := os.WriteFile(env.cfgPath, []byte(baseConfig(b.srv.URL, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "routing to b", func() bool { return upstreamOf(t, env) == "b" || strings.Contains(env.logs.String(), "rejected") })
	if upstreamOf(t, env) != "b" {
		t.Fatalf("not rerouted; log: %s", env.logs.String())
	}

	bad := strings.Replace(baseConfig(a.srv.URL, ""), "audit:", "audti:", 1)
	if err := os.WriteFile(env.cfgPath, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "rejection logged", func() bool { return strings.Contains(env.logs.String(), "config reload rejected") })
	if got := upstreamOf(t, env); got != "b" {
		t.Fatalf("after invalid edit: %q, want b", got)
	}
	if !strings.Contains(env.logs.String(), `unknown key \"audti\"`) {
		t.Errorf("rejection does not name the problem: %s", env.logs.String())
	}
}

// TestCertificateRotation: replacing the certificate files is picked up
// by new handshakes without a restart.
func TestCertificateRotation(t *testing.T) {
	up := newEcho(t, "a")
	env := startGatewayWatch(t, baseConfig(up.srv.URL, ""))
	fingerprint := func() [32]byte {
		c, err := tls.Dial("tcp", env.g.Addrs()[0].String(), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // test
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return sha256.Sum256(c.ConnectionState().PeerCertificates[0].Raw)
	}
	before := fingerprint()
	dir := t.TempDir()
	writePEM(t, filepath.Join(dir, "n.crt"), filepath.Join(dir, "n.key"), newCert(t))
	// Write the key first, then the certificate: the watcher must not
	// reload a half-written pair it cannot use (it would be rejected and
	// retried on the next change).
	for _, f := range []string{"key", "crt"} {
		data, _ := os.ReadFile(filepath.Join(dir, "n."+f))
		if err := os.WriteFile(filepath.Join(env.dir, "tls."+f), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "new certificate served", func() bool { return fingerprint() != before })
	rotated := fingerprint()
	// A broken key file is rejected and the old certificate keeps serving.
	if err := os.WriteFile(filepath.Join(env.dir, "tls.key"), []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := env.g.Reload(context.Background(), "test"); err == nil {
		t.Fatal("a broken key was accepted")
	}
	if fingerprint() != rotated {
		t.Fatal("a rejected reload changed the served certificate")
	}
}

func startGatewayWatch(t *testing.T, cfg string) *gwEnv {
	t.Helper()
	env := startGateway(t, cfg)
	// startGateway does not watch; restart the watcher on this gateway.
	w, err := newWatcher(env.g)
	if err != nil {
		t.Fatal(err)
	}
	env.g.watcher = w
	return env
}
