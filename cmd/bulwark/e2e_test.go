package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

var binPath string

// TestMain builds the real binary once: these tests run bulwark as a user
// would, with signals and files.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "bulwark-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "bulwark")
	out, err := exec.Command("go", "build", "-race", "-o", binPath, ".").CombinedOutput()
	if err != nil {
		// -race needs cgo; fall back to a plain build.
		out, err = exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "build bulwark: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func writeCert(t *testing.T, dir string) {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	srv.StartTLS()
	c := srv.TLS.Certificates[0]
	srv.Close()
	var crt []byte
	for _, der := range c.Certificate {
		crt = append(crt, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	must(t, os.WriteFile(filepath.Join(dir, "tls.crt"), crt, 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "tls.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func namedUpstream(t *testing.T, name string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Upstream", name)
		_, _ = io.WriteString(w, `{"upstream":"`+name+`"}`)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

const e2eToken = "e2e-admin-token-0123456789"

func gatewayConfig(listen, admin, upstream string) string {
	return fmt.Sprintf(`listeners:
  - addr: %q
    tls: {cert_file: tls.crt, key_file: tls.key}
admin: {addr: %q, token: "${E2E_ADMIN_TOKEN}"}
audit: {path: audit.log}
log: {level: info}
apis:
  - name: bank
    upstream: {url: %q}
`, listen, admin, upstream)
}

// TestSIGHUPReloadUnderLoad is issue #2's acceptance test: under
// concurrent load, SIGHUP with a valid new config changes routing with
// zero failed requests, and an invalid file leaves the old config serving.
func TestSIGHUPReloadUnderLoad(t *testing.T) {
	dir := t.TempDir()
	writeCert(t, dir)
	a, b := namedUpstream(t, "A"), namedUpstream(t, "B")
	listen, admin := freePort(t), freePort(t)
	cfgPath := filepath.Join(dir, "bulwark.yaml")
	must(t, os.WriteFile(cfgPath, []byte(gatewayConfig(listen, admin, a)), 0o600))

	var stderr lockedBuffer
	cmd := exec.Command(binPath, "gateway", "-c", cfgPath, "--no-watch")
	cmd.Env = append(os.Environ(), "E2E_ADMIN_TOKEN="+e2eToken)
	cmd.Stderr = &stderr
	must(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
	})
	waitReady(t, "http://"+admin+"/readyz", exited, &stderr)

	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 32} //nolint:gosec // test cert
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	var okA, okB, failed atomic.Int64
	var lastErr atomic.Value
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ctx.Err() == nil && n < 100000; n++ {
				resp, err := client.Get("https://" + listen + "/accounts")
				if err != nil {
					failed.Add(1)
					lastErr.Store(err.Error())
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch {
				case resp.StatusCode != 200:
					failed.Add(1)
					lastErr.Store(resp.Status)
				case resp.Header.Get("X-Upstream") == "A":
					okA.Add(1)
				case resp.Header.Get("X-Upstream") == "B":
					okB.Add(1)
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)

	// A valid new config: route to B.
	must(t, os.WriteFile(cfgPath, []byte(gatewayConfig(listen, admin, b)), 0o600))
	must(t, cmd.Process.Signal(syscall.SIGHUP))
	deadline := time.Now().Add(10 * time.Second)
	for okB.Load() < 200 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if okB.Load() == 0 {
		stop()
		wg.Wait()
		t.Fatalf("routing never changed to B after SIGHUP; log:\n%s", stderr.String())
	}

	// An invalid config: the old one (B) must keep serving.
	must(t, os.WriteFile(cfgPath, []byte(gatewayConfig(listen, admin, b)+"    colour: blue\n"), 0o600))
	must(t, cmd.Process.Signal(syscall.SIGHUP))
	time.Sleep(500 * time.Millisecond)
	bBefore, aBefore := okB.Load(), okA.Load()
	time.Sleep(300 * time.Millisecond)
	stop()
	wg.Wait()

	if f := failed.Load(); f != 0 {
		t.Fatalf("%d requests failed during reloads (last: %v)", f, lastErr.Load())
	}
	if okA.Load() == 0 || okB.Load() <= bBefore || okA.Load() != aBefore {
		t.Fatalf("A=%d B=%d (B before invalid reload %d): the invalid config must leave B serving", okA.Load(), okB.Load(), bBefore)
	}
	t.Logf("served %d by A, %d by B, 0 failed", okA.Load(), okB.Load())

	metrics := adminGet(t, "http://"+admin+"/metrics")
	for _, want := range []string{`bulwark_config_reloads_total{outcome="success"} 1`, `bulwark_config_reloads_total{outcome="failure"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if !strings.Contains(stderr.String(), "config reload rejected") || !strings.Contains(stderr.String(), `unknown key \"colour\"`) {
		t.Errorf("the rejected reload was not logged with its problem:\n%s", stderr.String())
	}

	// Graceful stop on SIGTERM, then the audit log verifies.
	must(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no exit 15s after SIGTERM")
	}
	out, code := runBin(t, "audit", "verify", filepath.Join(dir, "audit.log"))
	if code != 0 || !strings.Contains(out, "intact") {
		t.Fatalf("audit verify: %d %s", code, out)
	}
}

func waitReady(t *testing.T, url string, exited chan error, stderr *lockedBuffer) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			t.Fatalf("gateway exited: %v\n%s", err, stderr.String())
		default:
		}
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("gateway not ready; log:\n%s", stderr.String())
}

// lockedBuffer collects a child process's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func adminGet(t *testing.T, url string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+e2eToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func runBin(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

// TestAuditVerifyDetectsEdit runs the binary against a log it wrote and
// then against the same log with one line edited.
func TestAuditVerifyDetectsEdit(t *testing.T) {
	dir := t.TempDir()
	writeCert(t, dir)
	listen, admin := freePort(t), freePort(t)
	cfgPath := filepath.Join(dir, "bulwark.yaml")
	must(t, os.WriteFile(cfgPath, []byte(gatewayConfig(listen, admin, namedUpstream(t, "A"))), 0o600))
	var stderr lockedBuffer
	cmd := exec.Command(binPath, "gateway", "-c", cfgPath)
	cmd.Env = append(os.Environ(), "E2E_ADMIN_TOKEN="+e2eToken)
	cmd.Stderr = &stderr
	must(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	waitReady(t, "http://"+admin+"/readyz", exited, &stderr)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // test cert
	for i := 0; i < 5; i++ {
		resp, err := client.Get(fmt.Sprintf("https://%s/accounts/%d", listen, i))
		must(t, err)
		resp.Body.Close()
	}
	must(t, cmd.Process.Signal(syscall.SIGTERM))
	<-exited

	logPath := filepath.Join(dir, "audit.log")
	if out, code := runBin(t, "audit", "verify", logPath); code != 0 || !strings.Contains(out, "intact, 5 records") {
		t.Fatalf("fresh log: %d %s", code, out)
	}
	data, _ := os.ReadFile(logPath)
	edited := strings.Replace(string(data), `"path":"/accounts/3"`, `"path":"/accounts/9"`, 1)
	if edited == string(data) {
		t.Fatal("test could not find the line to edit")
	}
	must(t, os.WriteFile(logPath, []byte(edited), 0o600))
	out, code := runBin(t, "audit", "verify", logPath)
	if code != 2 || !strings.Contains(out, "audit.log:4: broken") {
		t.Fatalf("edited log: exit %d, output %q; want exit 2 naming line 4", code, out)
	}
}

// TestCheckCommand covers the exit codes of bulwark check.
func TestCheckCommand(t *testing.T) {
	out, code := runBin(t, "check", "-c", "../../internal/config/testdata/invalid/must_show.yaml")
	if code != 2 {
		t.Fatalf("exit %d, want 2\n%s", code, out)
	}
	for _, want := range []string{"must_show.yaml:8:", "must_show.yaml:10:", "must_show.yaml:14:"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	files, _ := filepath.Glob("../../examples/*.yaml")
	for _, f := range files {
		cmd := exec.Command(binPath, "check", "-c", f)
		cmd.Env = append(os.Environ(), "BULWARK_ADMIN_TOKEN=example-admin-token-0123456789",
			"BULWARK_PSEUDONYM_SECRET=example-pseudonym-secret-0123456789abcdef")
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("%s: %v\n%s", f, err, b)
		}
	}
	if out, code := runBin(t, "check", "-c", "/nonexistent.yaml"); code != 2 {
		t.Errorf("missing file: exit %d %s", code, out)
	}
	if out, code := runBin(t, "version"); code != 0 || !strings.HasPrefix(out, "bulwark ") {
		t.Errorf("version: %d %s", code, out)
	}
}
