package gateway

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwarkapi/bulwark/internal/audit"
	"github.com/bulwarkapi/bulwark/internal/config"
)

const testToken = "test-admin-token-0123456789"

// upstreamEcho is a test upstream that answers with what it received.
type upstreamEcho struct {
	srv  *httptest.Server
	name string
	mu   sync.Mutex
	last http.Header
}

func newEcho(t *testing.T, name string) *upstreamEcho {
	t.Helper()
	u := &upstreamEcho{name: name}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.last = r.Header.Clone()
		u.mu.Unlock()
		n, _ := io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Upstream", name)
		_ = json.NewEncoder(w).Encode(map[string]any{"upstream": name, "path": r.URL.Path, "host": r.Host, "body_bytes": n})
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *upstreamEcho) header() http.Header {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.last
}

// testCerts writes a self-signed certificate for 127.0.0.1 into dir.
func testCerts(t *testing.T, dir string) (crt, key string) {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	srv.StartTLS()
	c := srv.TLS.Certificates[0]
	srv.Close()
	crt, key = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	writePEM(t, crt, key, c)
	return crt, key
}

type gwEnv struct {
	g       *Gateway
	base    string // https://127.0.0.1:PORT
	admin   string
	dir     string
	cfgPath string
	client  *http.Client
	logs    *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startGateway writes cfgYAML (with %DIR% replaced) and runs a gateway on it.
func startGateway(t *testing.T, cfgYAML string) *gwEnv {
	t.Helper()
	return startGatewayWith(t, cfgYAML, nil)
}

// startGatewayWith is startGateway with a hook that writes more files
// into the config's directory before the config is loaded.
func startGatewayWith(t *testing.T, cfgYAML string, files func(dir string)) *gwEnv {
	t.Helper()
	dir := t.TempDir()
	testCerts(t, dir)
	if files != nil {
		files(dir)
	}
	path := filepath.Join(dir, "bulwark.yaml")
	if err := os.WriteFile(path, []byte(cfgYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("config:\n%v", err)
	}
	logs := &syncBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx := context.Background()
	g, err := New(ctx, cfg, Options{ConfigPath: path, Logger: logger, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Shutdown(context.Background()) })
	scheme := "https"
	if cfg.Listeners[0].TLS == nil {
		scheme = "http"
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 64} //nolint:gosec // test cert
	t.Cleanup(tr.CloseIdleConnections)
	env := &gwEnv{g: g, base: scheme + "://" + g.Addrs()[0].String(), dir: dir, cfgPath: path, client: &http.Client{Transport: tr, Timeout: 10 * time.Second}, logs: logs}
	if a := g.AdminAddr(); a != nil {
		env.admin = "http://" + a.String()
	}
	return env
}

func baseConfig(upstream string, extra string) string {
	return fmt.Sprintf(`
listeners:
  - addr: "127.0.0.1:0"
    tls: {cert_file: tls.crt, key_file: tls.key}
    hsts: {max_age: 1h}
admin: {addr: "127.0.0.1:0", token: %q}
limits:
  read_header_timeout: 10s
  max_body_bytes: 1KiB
  max_header_bytes: 4KiB
audit: {path: audit.log}
%s
apis:
  - name: echo
    upstream: {url: %q, retries: 1, circuit_breaker: {failures: 3, cooldown: 1s}}
`, testToken, extra, upstream)
}

type problem struct {
	Type, Title, Detail, Reason string
	Status                      int
	RequestID                   string `json:"request_id"`
}

func decodeProblem(t *testing.T, resp *http.Response) problem {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("content-type %q, want application/problem+json", ct)
	}
	var p problem
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		t.Fatal(err)
	}
	if p.RequestID == "" || p.RequestID != resp.Header.Get("X-Request-Id") {
		t.Fatalf("problem request_id %q does not match header %q", p.RequestID, resp.Header.Get("X-Request-Id"))
	}
	if p.Status != resp.StatusCode {
		t.Fatalf("problem status %d, response %d", p.Status, resp.StatusCode)
	}
	return p
}

func TestHTTPSWithHTTP2AndHeaders(t *testing.T) {
	up := newEcho(t, "a")
	env := startGateway(t, baseConfig(up.srv.URL, ""))
	resp, err := env.client.Get(env.base + "/accounts/42")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Errorf("proto %s, want HTTP/2", resp.Proto)
	}
	if resp.StatusCode != 200 || resp.Header.Get("X-Upstream") != "a" {
		t.Fatalf("status %d upstream %q", resp.StatusCode, resp.Header.Get("X-Upstream"))
	}
	if got := resp.Header.Get("Strict-Transport-Security"); got != "max-age=3600" {
		t.Errorf("HSTS = %q", got)
	}
	id := resp.Header.Get("X-Request-Id")
	if !validRequestID(id) || up.header().Get("X-Request-Id") != id {
		t.Errorf("request id %q not returned and forwarded (upstream saw %q)", id, up.header().Get("X-Request-Id"))
	}
}

func TestTLSVersions(t *testing.T) {
	up := newEcho(t, "a")
	env := startGateway(t, baseConfig(up.srv.URL, ""))
	addr := env.g.Addrs()[0].String()
	tests := []struct {
		name     string
		min, max uint16
		suites   []uint16
		ok       bool
	}{
		{"tls1.1 only", tls.VersionTLS10, tls.VersionTLS11, nil, false},
		{"tls1.2 cbc only", tls.VersionTLS12, tls.VersionTLS12, []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA}, false},
		{"tls1.2 aead", tls.VersionTLS12, tls.VersionTLS12, nil, true},
		{"tls1.3", tls.VersionTLS13, tls.VersionTLS13, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MinVersion: tt.min, MaxVersion: tt.max, CipherSuites: tt.suites}) //nolint:gosec // test
			if c != nil {
				defer c.Close()
			}
			if (err == nil) != tt.ok {
				t.Fatalf("handshake err = %v, want ok=%v", err, tt.ok)
			}
			if tt.ok && tt.max == tls.VersionTLS13 && c.ConnectionState().Version != tls.VersionTLS13 {
				t.Fatal("not TLS 1.3")
			}
		})
	}
	// A client offering both gets 1.3 (preferred).
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // test
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if v := c.ConnectionState().Version; v != tls.VersionTLS13 {
		t.Fatalf("negotiated %x, want TLS 1.3", v)
	}
}

func TestSlowlorisCut(t *testing.T) {
	up := newEcho(t, "a")
	// A short header timeout of this test's own: the shared one is long,
	// so that a loaded machine's slow TLS handshakes (the deadline covers
	// them too) never cut another test's connections.
	env := startGateway(t, strings.Replace(baseConfig(up.srv.URL, ""), "read_header_timeout: 10s", "read_header_timeout: 300ms", 1))
	conn, err := tls.Dial("tcp", env.g.Addrs()[0].String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}}) //nolint:gosec // test
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n"); err != nil {
		t.Fatal(err)
	}
	// Trickle one header byte every 100ms; the server must hang up at ~300ms.
	var werr error
	for i := 0; i < 50 && werr == nil; i++ {
		time.Sleep(100 * time.Millisecond)
		_, werr = io.WriteString(conn, "X")
		if werr == nil {
			_ = conn.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
			var b [1]byte
			if _, rerr := conn.Read(b[:]); rerr != nil && !isTimeoutErr(rerr) {
				werr = rerr
			}
		}
	}
	elapsed := time.Since(start)
	if werr == nil {
		t.Fatal("connection still open after 5s of trickled headers")
	}
	if elapsed > 3*time.Second {
		t.Fatalf("cut after %v, want about read_header_timeout (300ms)", elapsed)
	}
}

func isTimeoutErr(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

func TestBodyTooLarge(t *testing.T) {
	up := newEcho(t, "a")
	env := startGateway(t, baseConfig(up.srv.URL, ""))
	body := strings.Repeat("x", 2048)
	t.Run("content-length", func(t *testing.T) {
		resp, err := env.client.Post(env.base+"/upload", "text/plain", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 413 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if p := decodeProblem(t, resp); p.Reason != "body_too_large" {
			t.Fatalf("reason %q", p.Reason)
		}
	})
	t.Run("chunked", func(t *testing.T) {
		// An io.Reader of unknown length is sent chunked (HTTP/1.1) or
		// without content-length (HTTP/2).
		resp, err := env.client.Post(env.base+"/upload", "text/plain", io.MultiReader(strings.NewReader(body)))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 413 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		decodeProblem(t, resp)
	})
	t.Run("within limit", func(t *testing.T) {
		resp, err := env.client.Post(env.base+"/upload", "text/plain", io.MultiReader(strings.NewReader(body[:1000])))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var got map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&got)
		if resp.StatusCode != 200 || got["body_bytes"] != float64(1000) {
			t.Fatalf("status %d body %v", resp.StatusCode, got)
		}
	})
}

func TestHeadersTooLarge(t *testing.T) {
	up := newEcho(t, "a")
	env := startGateway(t, baseConfig(up.srv.URL, ""))
	req, _ := http.NewRequest("GET", env.base+"/x", nil)
	req.Header.Set("X-Big", strings.Repeat("a", 5000))
	resp, err := env.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 431 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	decodeProblem(t, resp)
}

func TestDeadUpstream(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + ln.Addr().String()
	ln.Close()
	env := startGateway(t, baseConfig(dead, ""))
	for i := 0; i < 5; i++ {
		resp, err := env.client.Get(env.base + "/accounts")
		if err != nil {
			t.Fatal(err)
		}
		p := decodeProblem(t, resp)
		resp.Body.Close()
		// Each request makes two attempts (one retry); the third failure
		// opens the breaker, then it fails fast with 503.
		switch {
		case i < 2 && (resp.StatusCode != 502 || p.Reason != "upstream_unavailable"):
			t.Fatalf("request %d: %d %s, want 502 upstream_unavailable", i, resp.StatusCode, p.Reason)
		case i >= 2 && (resp.StatusCode != 503 || p.Reason != "upstream_circuit_open" || resp.Header.Get("Retry-After") == ""):
			t.Fatalf("request %d: %d %s, want 503 upstream_circuit_open with Retry-After", i, resp.StatusCode, p.Reason)
		}
		if strings.Contains(p.Detail, "127.0.0.1") || strings.Contains(p.Detail, "refused") {
			t.Fatalf("problem leaks upstream internals: %q", p.Detail)
		}
	}
	if !strings.Contains(env.logs.String(), "connection refused") {
		t.Error("the log should carry the real upstream error")
	}
}

func TestForwardingHeadersRebuilt(t *testing.T) {
	up := newEcho(t, "a")
	env := startGateway(t, baseConfig(up.srv.URL, "forwarding: {strip_headers: [X-User-Id]}"))
	req, _ := http.NewRequest("GET", env.base+"/x", nil)
	req.Header.Set("X-Forwarded-For", "6.6.6.6")
	req.Header.Set("X-Forwarded-Host", "evil.example")
	req.Header.Set("X-Forwarded-Proto", "http")
	req.Header.Set("Forwarded", "for=6.6.6.6;proto=http")
	req.Header.Set("X-Real-IP", "6.6.6.6")
	req.Header.Set("True-Client-IP", "6.6.6.6")
	req.Header.Set("X-Original-URL", "/admin")
	req.Header.Set("X-User-Id", "admin")
	req.Header.Set("X-Request-Id", "bad id with spaces")
	resp, err := env.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	h := up.header()
	if got := h.Get("X-Forwarded-For"); got != "127.0.0.1" {
		t.Errorf("X-Forwarded-For = %q, want the TCP peer only", got)
	}
	if got := h.Get("X-Forwarded-Proto"); got != "https" {
		t.Errorf("X-Forwarded-Proto = %q", got)
	}
	if got := h.Get("Forwarded"); !strings.HasPrefix(got, "for=127.0.0.1;") || !strings.HasSuffix(got, "proto=https") {
		t.Errorf("Forwarded = %q", got)
	}
	for _, name := range []string{"X-Real-Ip", "True-Client-Ip", "X-Original-Url", "X-User-Id"} {
		if v := h.Get(name); v != "" {
			t.Errorf("%s reached the upstream: %q", name, v)
		}
	}
	if got := h.Get("X-Request-Id"); got == "bad id with spaces" || !validRequestID(got) {
		t.Errorf("malformed request id passed through: %q", got)
	}
}

func TestRequestIDAccepted(t *testing.T) {
	up := newEcho(t, "a")
	env := startGateway(t, baseConfig(up.srv.URL, ""))
	req, _ := http.NewRequest("GET", env.base+"/x", nil)
	req.Header.Set("X-Request-Id", "trace-0123456789abcdef")
	resp, err := env.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("X-Request-Id") != "trace-0123456789abcdef" || up.header().Get("X-Request-Id") != "trace-0123456789abcdef" {
		t.Fatalf("well-formed id not kept: client %q upstream %q", resp.Header.Get("X-Request-Id"), up.header().Get("X-Request-Id"))
	}
}

func TestNoRouteAndPanicSafety(t *testing.T) {
	up := newEcho(t, "a")
	cfg := strings.Replace(baseConfig(up.srv.URL, ""), "  - name: echo\n", "  - name: echo\n    match: {path_prefix: /api}\n", 1)
	env := startGateway(t, cfg)
	for _, path := range []string{"/", "/apix", "/other/api"} {
		resp, err := env.client.Get(env.base + path)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 404 || decodeProblem(t, resp).Reason != "no_route" {
			t.Errorf("%s: status %d", path, resp.StatusCode)
		}
		resp.Body.Close()
	}
	resp, err := env.client.Get(env.base + "/api/ok")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/api/ok: %d", resp.StatusCode)
	}
}

func TestAdminEndpoints(t *testing.T) {
	up := newEcho(t, "a")
	env := startGateway(t, baseConfig(up.srv.URL, ""))
	get := func(path, token string) (*http.Response, string) {
		req, _ := http.NewRequest("GET", env.admin+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	if r, _ := get("/healthz", ""); r.StatusCode != 200 {
		t.Errorf("healthz %d", r.StatusCode)
	}
	if r, _ := get("/readyz", ""); r.StatusCode != 200 {
		t.Errorf("readyz %d", r.StatusCode)
	}
	if r, _ := get("/metrics", ""); r.StatusCode != 401 {
		t.Errorf("metrics without token: %d", r.StatusCode)
	}
	if r, _ := get("/metrics", "wrong-token-wrong-token"); r.StatusCode != 401 {
		t.Errorf("metrics with wrong token: %d", r.StatusCode)
	}
	// Make one request so the counters have a sample.
	if resp, err := env.client.Get(env.base + "/x"); err == nil {
		resp.Body.Close()
	}
	r, body := get("/metrics", testToken)
	if r.StatusCode != 200 {
		t.Fatalf("metrics with token: %d", r.StatusCode)
	}
	for _, want := range []string{
		`bulwark_requests_total{api="echo",outcome="passed",status="200"} 1`,
		`bulwark_stage_duration_seconds_count{stage="route"}`,
		`bulwark_upstream_duration_seconds_count{api="echo",result="ok"} 1`,
		`bulwark_request_duration_seconds_bucket{api="echo"`,
		`bulwark_in_flight_requests 0`,
		`bulwark_config_reloads_total{outcome="failure"} 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestAuditLogWritten(t *testing.T) {
	up := newEcho(t, "a")
	env := startGateway(t, baseConfig(up.srv.URL, ""))
	for i := 0; i < 10; i++ {
		resp, err := env.client.Get(env.base + fmt.Sprintf("/item/%d", i))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if err := env.g.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(env.dir, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := audit.Verify(f)
	if err != nil || res.FirstBroken != 0 || res.Records != 10 {
		t.Fatalf("verify: %+v %v", res, err)
	}
	_, _ = f.Seek(0, 0)
	sc := bufio.NewScanner(f)
	sc.Scan()
	var rec map[string]any
	if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"time", "request_id", "api", "method", "path", "status", "latency_ms", "client", "hash", "prev"} {
		if _, ok := rec[k]; !ok {
			t.Errorf("audit record lacks %q: %v", k, rec)
		}
	}
}

func TestInFlightCap(t *testing.T) {
	release := make(chan struct{})
	var started atomic.Int32
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started.Add(1)
		<-release
	}))
	defer slow.Close()
	defer close(release)
	env := startGateway(t, strings.Replace(baseConfig(slow.URL, ""), "  max_header_bytes: 4KiB\n", "  max_header_bytes: 4KiB\n  max_in_flight: 2\n", 1))
	for i := 0; i < 2; i++ {
		go func() {
			if resp, err := env.client.Get(env.base + "/slow"); err == nil {
				resp.Body.Close()
			}
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for started.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	resp, err := env.client.Get(env.base + "/third")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("status %d retry-after %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if decodeProblem(t, resp).Reason != "overloaded" {
		t.Fatal("wrong reason")
	}
}

func TestConnsPerIPCap(t *testing.T) {
	up := newEcho(t, "a")
	env := startGateway(t, strings.Replace(baseConfig(up.srv.URL, ""), "  max_header_bytes: 4KiB\n", "  max_header_bytes: 4KiB\n  max_conns_per_ip: 2\n", 1))
	addr := env.g.Addrs()[0].String()
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < 2; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	time.Sleep(100 * time.Millisecond) // let the server accept both
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	var b [1]byte
	if _, err := c.Read(b[:]); err == nil || isTimeoutErr(err) {
		t.Fatalf("third connection from one IP was not closed: %v", err)
	}
}
