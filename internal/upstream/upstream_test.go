package upstream

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwarkapi/bulwark/internal/config"
	"github.com/bulwarkapi/bulwark/internal/pipeline"
)

func cfgFor(url string, retries int, breaker *config.CircuitBreaker) config.Upstream {
	return config.Upstream{
		URL: url, Retries: &retries, DialTimeout: config.Duration(time.Second),
		ResponseHeaderTimeout: config.Duration(2 * time.Second), MaxIdleConnsPerHost: 8,
		CircuitBreaker: breaker,
	}
}

func newProxy(t *testing.T, u config.Upstream, o Options) *Proxy {
	t.Helper()
	if o.API == "" {
		o.API = "t"
	}
	if o.PathPrefix == "" {
		o.PathPrefix = "/"
	}
	p, err := New(u, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func serve(p *Proxy, method, target string, body io.Reader) (*httptest.ResponseRecorder, *pipeline.Exchange) {
	req := httptest.NewRequest(method, target, body)
	req.RemoteAddr = "192.0.2.7:5555"
	x := &pipeline.Exchange{RequestID: "rid-0123456789"}
	req = req.WithContext(pipeline.NewContext(req.Context(), x))
	rec := httptest.NewRecorder()
	p.ServeHTTP(rec, req)
	return rec, x
}

// flaky accepts connections and closes the first n without answering.
func flaky(t *testing.T, n int32) (string, *atomic.Int32) {
	var seen atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if seen.Add(1) <= n {
			hj, _ := w.(http.Hijacker)
			c, _, _ := hj.Hijack()
			c.Close()
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL, &seen
}

func TestRetriesOnlyIdempotent(t *testing.T) {
	tests := []struct {
		method   string
		body     string
		wantCode int
		wantSeen int32
	}{
		{"GET", "", 200, 2},
		{"DELETE", "", 200, 2},
		{"POST", "", 502, 1},
		{"PATCH", "", 502, 1},
		{"PUT", "payload", 502, 1}, // a body cannot be replayed
	}
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			url, seen := flaky(t, 1)
			var gotErr error
			p := newProxy(t, cfgFor(url, 1, nil), Options{ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
				gotErr = err
				w.WriteHeader(502)
			}})
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			rec, x := serve(p, tt.method, "http://gw/x", body)
			if rec.Code != tt.wantCode || seen.Load() != tt.wantSeen {
				t.Fatalf("code %d seen %d (err %v), want %d %d", rec.Code, seen.Load(), gotErr, tt.wantCode, tt.wantSeen)
			}
			if tt.wantCode == 200 && x.Retries != 1 {
				t.Fatalf("retries = %d", x.Retries)
			}
		})
	}
}

func TestBreakerOpensAndRecovers(t *testing.T) {
	var fail atomic.Bool
	fail.Store(true)
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if fail.Load() {
			w.WriteHeader(503)
			return
		}
		w.WriteHeader(200)
	}))
	defer srv.Close()
	var lastErr error
	p := newProxy(t, cfgFor(srv.URL, 0, &config.CircuitBreaker{Failures: 3, Cooldown: config.Duration(200 * time.Millisecond)}),
		Options{ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) { lastErr = err; w.WriteHeader(599) }})
	for i := 0; i < 3; i++ {
		if rec, _ := serve(p, "GET", "http://gw/", nil); rec.Code != 503 {
			t.Fatalf("attempt %d: %d (upstream 503 must pass through)", i, rec.Code)
		}
	}
	rec, _ := serve(p, "GET", "http://gw/", nil)
	if rec.Code != 599 || !errors.Is(lastErr, ErrCircuitOpen) || hits.Load() != 3 {
		t.Fatalf("open breaker: code %d err %v hits %d", rec.Code, lastErr, hits.Load())
	}
	fail.Store(false)
	time.Sleep(250 * time.Millisecond)
	if rec, _ := serve(p, "GET", "http://gw/", nil); rec.Code != 200 {
		t.Fatalf("half-open probe: %d", rec.Code)
	}
	if rec, _ := serve(p, "GET", "http://gw/", nil); rec.Code != 200 {
		t.Fatalf("closed again: %d", rec.Code)
	}
}

func TestRewrite(t *testing.T) {
	var got *http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r.Clone(context.Background()) }))
	defer srv.Close()
	tests := []struct {
		name      string
		up        config.Upstream
		prefix    string
		target    string
		wantPath  string
		wantHost  string
		preserved bool
	}{
		{"join base path", config.Upstream{URL: srv.URL + "/base"}, "/", "http://gw.example/a/b?q=1", "/base/a/b", "", false},
		{"strip prefix", config.Upstream{URL: srv.URL, StripPrefix: true}, "/api/v1", "http://gw.example/api/v1/accounts", "/accounts", "", false},
		{"strip to root", config.Upstream{URL: srv.URL, StripPrefix: true}, "/api/v1", "http://gw.example/api/v1", "/", "", false},
		{"escaped path kept", config.Upstream{URL: srv.URL}, "/", "http://gw.example/files/a%2Fb", "/files/a%2Fb", "", false},
		{"preserve host", config.Upstream{URL: srv.URL, PreserveHost: true}, "/", "http://gw.example/x", "/x", "gw.example", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := cfgFor(tt.up.URL, 0, nil)
			u.StripPrefix, u.PreserveHost = tt.up.StripPrefix, tt.up.PreserveHost
			p := newProxy(t, u, Options{PathPrefix: tt.prefix, RequestIDHeader: "X-Request-Id"})
			serve(p, "GET", tt.target, nil)
			if got == nil {
				t.Fatal("upstream not called")
			}
			if got.URL.EscapedPath() != tt.wantPath {
				t.Errorf("path %q, want %q", got.URL.EscapedPath(), tt.wantPath)
			}
			if tt.preserved && got.Host != tt.wantHost {
				t.Errorf("host %q", got.Host)
			}
			if !tt.preserved && got.Host == "gw.example" {
				t.Error("client host forwarded without preserve_host")
			}
			if got.Header.Get("X-Request-Id") != "rid-0123456789" {
				t.Errorf("request id %q", got.Header.Get("X-Request-Id"))
			}
			if !strings.Contains(tt.target, "?q=1") || got.URL.RawQuery == "q=1" {
				return
			}
			t.Errorf("query lost: %q", got.URL.RawQuery)
		})
	}
}

func TestForwarded(t *testing.T) {
	tests := []struct{ remote, host, want string }{
		{"192.0.2.1:1234", "api.example", `for=192.0.2.1;host="api.example";proto=http`},
		{"[2001:db8::1]:443", "api.example:8443", `for="[2001:db8::1]";host="api.example:8443";proto=http`},
		{"192.0.2.1:1", `evil"host`, `for=192.0.2.1;proto=http`},
		{"garbage", "", `proto=http`},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "http://x/", nil)
		r.RemoteAddr, r.Host = tt.remote, tt.host
		if got := forwarded(r, ""); got != tt.want {
			t.Errorf("forwarded(%q, %q) = %q, want %q", tt.remote, tt.host, got, tt.want)
		}
	}
}

// FuzzForwarded: the rebuilt Forwarded header is always a single safe
// header value whatever the client's Host and address are.
func FuzzForwarded(f *testing.F) {
	f.Add("192.0.2.1:1234", "api.example")
	f.Add("[::1]:1", "h\r\nX-Evil: 1")
	f.Add("", `a"b\c`)
	f.Fuzz(func(t *testing.T, remote, host string) {
		r := httptest.NewRequest("GET", "http://x/", nil)
		r.RemoteAddr, r.Host = remote, host
		v := forwarded(r, "")
		for i := 0; i < len(v); i++ {
			if c := v[i]; c < 0x20 || c == 0x7f {
				t.Fatalf("control byte in %q", v)
			}
		}
		if strings.Count(v, `"`)%2 != 0 {
			t.Fatalf("unbalanced quotes in %q", v)
		}
		if !strings.HasSuffix(v, "proto=http") {
			t.Fatalf("proto missing in %q", v)
		}
	})
}

func TestRetryableError(t *testing.T) {
	dial := &net.OpError{Op: "dial", Err: errors.New("refused")}
	read := &net.OpError{Op: "read", Err: errors.New("timeout")}
	for _, tt := range []struct {
		err  error
		want bool
	}{{dial, true}, {io.EOF, true}, {read, false}, {context.Canceled, false}, {ErrCircuitOpen, false}, {context.DeadlineExceeded, false}} {
		if got := retryableError(tt.err); got != tt.want {
			t.Errorf("retryableError(%v) = %v", tt.err, got)
		}
	}
}
