package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwarkapi/bulwark/internal/testkit/cutproxy"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// redisURL returns the test Redis or skips.
func redisURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv("BULWARK_TEST_REDIS_URL")
	if u == "" {
		t.Skip("BULWARK_TEST_REDIS_URL not set: skipping tests that need Redis")
	}
	return u
}

// get sends one request, optionally with extra headers, and returns the
// response with its body read.
func (e *gwEnv) get(t *testing.T, path string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.base+path, nil)
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

func TestRateLimitHeadersAnd429(t *testing.T) {
	up := newEcho(t, "a")
	env := startGateway(t, baseConfig(up.srv.URL, "")+`    rate_limits:
      - {key: ip, rate: 3/h}
      - {name: per-op, key: operation, rate: 100/s}
`)
	for i := range 3 {
		resp, _ := env.get(t, "/x")
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: status %d", i, resp.StatusCode)
		}
		if got, want := resp.Header.Get("RateLimit-Policy"), `"ip";q=3;w=3600, "per-op";q=100;w=1`; got != want {
			t.Fatalf("RateLimit-Policy %q, want %q", got, want)
		}
		if got, want := resp.Header.Get("RateLimit"), fmt.Sprintf(`"ip";r=%d;t=`, 2-i); !strings.HasPrefix(got, want) {
			t.Fatalf("RateLimit %q, want prefix %q", got, want)
		}
	}
	resp, _ := env.get(t, "/x")
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("4th request: status %d, want 429", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodGet, env.base+"/x", nil)
	resp, err := env.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := decodeProblem(t, resp)
	if p.Reason != "rate_limited" || resp.Header.Get("Retry-After") == "" || !strings.HasPrefix(resp.Header.Get("RateLimit"), `"ip";r=0;`) {
		t.Fatalf("problem %+v, Retry-After %q, RateLimit %q", p, resp.Header.Get("Retry-After"), resp.Header.Get("RateLimit"))
	}
}

func TestRateLimitSpoofedForwardedForIgnored(t *testing.T) {
	up := newEcho(t, "a")
	// No trusted proxies: every request comes from 127.0.0.1 whatever it claims.
	env := startGateway(t, baseConfig(up.srv.URL, "")+`    rate_limits: [{key: ip, rate: 2/h}]
`)
	codes := []int{}
	for i := range 4 {
		resp, _ := env.get(t, "/x", "X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i+1), "Forwarded", fmt.Sprintf("for=198.51.100.%d", i+1))
		codes = append(codes, resp.StatusCode)
	}
	if fmt.Sprint(codes) != "[200 200 429 429]" {
		t.Fatalf("statuses %v: a spoofed header changed the client address", codes)
	}
}

func TestRateLimitTrustedProxy(t *testing.T) {
	up := newEcho(t, "a")
	env := startGateway(t, baseConfig(up.srv.URL, "forwarding: {trusted_proxies: [127.0.0.1]}")+`    rate_limits: [{key: ip, rate: 1/h}]
`)
	// Behind a trusted proxy each reported client has its own limit.
	for i := range 3 {
		resp, _ := env.get(t, "/x", "X-Forwarded-For", fmt.Sprintf("6.6.6.6, 198.51.100.%d", i+1))
		if resp.StatusCode != 200 {
			t.Fatalf("client %d: status %d", i, resp.StatusCode)
		}
		if got := up.header().Get("X-Forwarded-For"); got != fmt.Sprintf("198.51.100.%d, 127.0.0.1", i+1) {
			t.Fatalf("upstream X-Forwarded-For %q", got)
		}
	}
	resp, _ := env.get(t, "/x", "X-Forwarded-For", "198.51.100.1")
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("second request of one client: %d, want 429", resp.StatusCode)
	}
}

// TestRateLimitConcurrentBurst: 1,000 concurrent requests on one key never
// get more than the burst through.
func TestRateLimitConcurrentBurst(t *testing.T) {
	for _, store := range []string{"local", "redis"} {
		t.Run(store, func(t *testing.T) {
			extra := ""
			if store == "redis" {
				// A generous timeout: this test is about atomicity, and a
				// Redis slowed by a loaded CI machine must not hand
				// decisions to the local fallback (which would rightly
				// allow its own burst on top).
				extra = fmt.Sprintf("cluster: {redis_url: %q, redis_timeout: 5s}", redisURL(t))
			}
			up := newEcho(t, "a")
			name := fmt.Sprintf("burst%d", time.Now().UnixNano()) // a fresh Redis key per run
			env := startGateway(t, baseConfig(up.srv.URL, extra)+fmt.Sprintf(`    rate_limits: [{name: %s, key: ip, rate: 50/h, burst: 50}]
`, name))
			var ok, limited, other atomic.Int64
			var lastOther atomic.Value
			var wg sync.WaitGroup
			sem := make(chan struct{}, 100)
			for range 1000 {
				wg.Add(1)
				sem <- struct{}{}
				go func() {
					defer wg.Done()
					defer func() { <-sem }()
					resp, err := env.client.Get(env.base + "/x")
					if err != nil {
						other.Add(1)
						lastOther.Store(err.Error())
						return
					}
					b, _ := io.ReadAll(resp.Body)
					_ = resp.Body.Close()
					switch resp.StatusCode {
					case 200:
						ok.Add(1)
					case 429:
						limited.Add(1)
					default:
						other.Add(1)
						lastOther.Store(fmt.Sprintf("%d %s", resp.StatusCode, b))
					}
				}()
			}
			wg.Wait()
			if ok.Load() != 50 || limited.Load() != 950 || other.Load() != 0 {
				t.Fatalf("allowed %d, limited %d, other %d (last: %v); want exactly 50 allowed", ok.Load(), limited.Load(), other.Load(), lastOther.Load())
			}
		})
	}
}

// TestRedisOutageFallsBackToLocal: Redis stops in the middle; the gateway
// keeps serving on local limits, counts the fallback, makes no 5xx of its
// own, and resumes shared limits when Redis returns.
func TestRedisOutageFallsBackToLocal(t *testing.T) {
	target := strings.TrimPrefix(strings.TrimSuffix(redisURL(t), "/0"), "redis://")
	if i := strings.IndexByte(target, '/'); i >= 0 {
		target = target[:i]
	}
	px := cutproxy.New(t, target)
	up := newEcho(t, "a")
	name := fmt.Sprintf("outage%d", time.Now().UnixNano())
	env := startGateway(t, baseConfig(up.srv.URL, fmt.Sprintf("cluster: {redis_url: %q}", "redis://"+px.Addr()+"/0"))+fmt.Sprintf(`    rate_limits: [{name: %s, key: ip, rate: 5/h}]
`, name))
	m := env.g.Metrics()
	count := func(n int) (ok, limited int) {
		for range n {
			resp, _ := env.get(t, "/x")
			switch {
			case resp.StatusCode == 200:
				ok++
			case resp.StatusCode == 429:
				limited++
			default:
				t.Fatalf("status %d: the gateway made a %d during a Redis outage", resp.StatusCode, resp.StatusCode)
			}
		}
		return
	}
	// Shared: 3 of 5 used in Redis.
	if ok, _ := count(3); ok != 3 {
		t.Fatalf("before the outage: %d allowed", ok)
	}
	px.Cut()
	ok, limited := count(8)
	// The local store has its own 5: the outage does not lift the limit.
	if ok != 5 || limited != 3 {
		t.Fatalf("during the outage: allowed %d, limited %d; want 5 and 3 from the local fallback", ok, limited)
	}
	if got := testutil.ToFloat64(m.Fallbacks.WithLabelValues("ratelimit")); got < 8 {
		t.Fatalf("bulwark_cluster_fallback_total{component=ratelimit} = %v, want ≥ 8", got)
	}
	if testutil.ToFloat64(m.RedisUp) != 0 || testutil.ToFloat64(m.RedisErrors) < 1 {
		t.Fatalf("redis_up %v, redis_errors %v", testutil.ToFloat64(m.RedisUp), testutil.ToFloat64(m.RedisErrors))
	}
	if !strings.Contains(env.logs.String(), "redis unavailable") {
		t.Fatal("no log line for the outage")
	}
	px.Restore()
	// After the retry interval, Redis decides again: 2 left of the shared 5.
	deadline := time.Now().Add(5 * time.Second)
	for testutil.ToFloat64(m.RedisUp) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("shared limits did not resume after Redis returned")
		}
		time.Sleep(200 * time.Millisecond)
		env.get(t, "/x")
	}
	// The probe above that succeeded consumed shared capacity: whatever is
	// left, the shared count is what decides now, and it runs out.
	_, limited = count(6)
	if limited == 0 {
		t.Fatal("after recovery the shared limit is not enforced")
	}
	if !strings.Contains(env.logs.String(), "redis available again") {
		t.Fatal("no log line for the recovery")
	}
}

// errUnused keeps errors imported for helpers added later.
var _ = errors.New
var _ = context.Background

// TestAdaptiveThrottleShedsSlowUpstream: under an upstream that slows
// down, the adaptive limiter lowers its limit and sheds load with 503,
// and the upstream's concurrency never exceeds the configured ceiling.
func TestAdaptiveThrottleShedsSlowUpstream(t *testing.T) {
	var cur, peak atomic.Int64
	var slow atomic.Bool
	up := httptestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := cur.Add(1)
		defer cur.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		d := 2 * time.Millisecond
		if slow.Load() {
			d = 60 * time.Millisecond
		}
		time.Sleep(d)
		_, _ = io.WriteString(w, "{}")
	}))
	const ceiling = 12
	env := startGateway(t, baseConfig(up, "")+fmt.Sprintf(`    throttle: {max_concurrency: %d, queue: 8, queue_timeout: 50ms, adaptive: true, min_concurrency: 2, target_latency: 20ms}
`, ceiling))
	var ok, shed, other atomic.Int64
	var badShed atomic.Value
	run := func(n int) {
		var wg sync.WaitGroup
		for range 48 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range n {
					resp, err := env.client.Get(env.base + "/x")
					if err != nil {
						other.Add(1)
						continue
					}
					body, _ := io.ReadAll(resp.Body)
					_ = resp.Body.Close()
					switch resp.StatusCode {
					case 200:
						ok.Add(1)
					case 503:
						shed.Add(1)
						if resp.Header.Get("Retry-After") != "1" || resp.Header.Get("Content-Type") != "application/problem+json" || !strings.Contains(string(body), "shed_queue") {
							badShed.Store(fmt.Sprintf("%v %s", resp.Header, body))
						}
					default:
						other.Add(1)
					}
				}
			}()
		}
		wg.Wait()
	}
	run(5) // fast upstream
	fastShed := shed.Load()
	slow.Store(true)
	run(6) // slow upstream: 48 clients against a ceiling of 12
	if p := peak.Load(); p > ceiling {
		t.Fatalf("upstream saw %d concurrent requests, ceiling %d", p, ceiling)
	}
	if shed.Load() == fastShed {
		t.Fatal("nothing was shed while the upstream slowed down")
	}
	if v := badShed.Load(); v != nil {
		t.Fatalf("a shed response is not a 503 problem with Retry-After: %v", v)
	}
	if other.Load() != 0 {
		t.Fatalf("%d requests failed otherwise", other.Load())
	}
	st := env.g.snap.Load().throttles["echo"].Limiter().Stats()
	if st.Limit >= ceiling {
		t.Fatalf("adaptive limit %d did not back off below the ceiling %d", st.Limit, ceiling)
	}
	metrics := adminText(t, env)
	if !strings.Contains(metrics, `bulwark_throttle_limit{api="echo"} `+fmt.Sprint(st.Limit)) {
		t.Fatalf("throttle limit metric missing or wrong:\n%s", grepLines(metrics, "bulwark_throttle"))
	}
	t.Logf("ok %d, shed %d, peak upstream concurrency %d, final limit %d", ok.Load(), shed.Load(), peak.Load(), st.Limit)
}

func httptestServer(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

func adminText(t *testing.T, env *gwEnv) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, env.admin+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestAddressLimitsCountBeforeAuthentication: limits by address apply to
// requests with bad credentials too (counted before the signature check),
// while identity limits count verified callers.
func TestAddressLimitsCountBeforeAuthentication(t *testing.T) {
	f := startBankAuthzWith(t, "enforce", "", "    rate_limits: [{key: ip, rate: 3/h}, {key: identity, rate: 100/h}]\n")
	codes := []int{}
	for range 5 {
		code, _ := f.call(t, "not.a.jwt", http.MethodGet, "/api/v1/accounts/"+f.aAcc, "")
		codes = append(codes, code)
	}
	if fmt.Sprint(codes) != "[401 401 401 429 429]" {
		t.Fatalf("bad-token requests: %v, want three 401 then 429", codes)
	}
	req, _ := http.NewRequest(http.MethodGet, f.env.base+"/api/v1/accounts/"+f.aAcc, nil)
	req.Header.Set("Authorization", "Bearer not.a.jwt")
	resp, err := f.env.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Values("RateLimit-Policy"); len(got) != 1 || got[0] != `"ip";q=3;w=3600` {
		t.Fatalf("RateLimit-Policy on a pre-authentication refusal: %q", got)
	}
}
