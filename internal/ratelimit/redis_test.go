package ratelimit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// testRedisURL returns BULWARK_TEST_REDIS_URL or skips the test.
func testRedisURL(tb testing.TB) string {
	tb.Helper()
	u := os.Getenv("BULWARK_TEST_REDIS_URL")
	if u == "" {
		tb.Skip("BULWARK_TEST_REDIS_URL not set: skipping Redis store tests")
	}
	return u
}

// newTestClient returns a client for url, closed when the test ends.
func newTestClient(tb testing.TB, url string) *redis.Client {
	tb.Helper()
	opts, err := redis.ParseURL(url)
	if err != nil {
		tb.Fatalf("BULWARK_TEST_REDIS_URL: %v", err)
	}
	c := redis.NewClient(opts)
	tb.Cleanup(func() { _ = c.Close() })
	if err := c.Ping(context.Background()).Err(); err != nil {
		tb.Fatalf("ping %s: %v", url, err)
	}
	return c
}

// testPrefix returns a prefix unique to this test and deletes every key
// under it when the test ends (before the client is closed: cleanups run
// last-registered first).
func testPrefix(tb testing.TB, c *redis.Client) string {
	tb.Helper()
	var b [8]byte
	_, _ = rand.Read(b[:])
	prefix := "bulwark-test:" + hex.EncodeToString(b[:]) + ":" // no glob metacharacters
	tb.Cleanup(func() {
		ctx := context.Background()
		iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if err := iter.Err(); err != nil {
			tb.Errorf("cleanup scan: %v", err)
			return
		}
		if len(keys) > 0 {
			if err := c.Del(ctx, keys...).Err(); err != nil {
				tb.Errorf("cleanup del: %v", err)
			}
		}
	})
	return prefix
}

// newTestRedis returns a Redis store on a fresh prefix, and its client.
func newTestRedis(t *testing.T, o RedisOptions) (*Redis, *redis.Client) {
	t.Helper()
	c := newTestClient(t, testRedisURL(t))
	o.Prefix = testPrefix(t, c)
	return NewRedis(c, o), c
}

// unreachableClient points at a closed port with a single dial attempt.
func unreachableClient(tb testing.TB) *redis.Client {
	tb.Helper()
	opts, err := redis.ParseURL("redis://127.0.0.1:1/0")
	if err != nil {
		tb.Fatal(err)
	}
	opts.DialTimeout = 200 * time.Millisecond // refused at once on loopback; a bound if it is not
	opts.DialerRetries = 1                    // one attempt: the default retries with 100ms back-offs
	opts.MaxRetries = -1                      // no command retries
	c := redis.NewClient(opts)
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

func TestRedisBurstThenDeny(t *testing.T) {
	st, _ := newTestRedis(t, RedisOptions{})
	lim := Limit{Rate: 10, Period: time.Second, Burst: 5} // T = 100ms
	const T = 100 * time.Millisecond
	for i := 1; i <= lim.Burst; i++ {
		r := allow(t, st, "k", lim, 1)
		if !r.Allowed || r.Remaining != lim.Burst-i || r.RetryAfter != 0 || r.Limit != lim || r.Fallback {
			t.Fatalf("burst %d: %+v", i, r)
		}
		if r.ResetAfter > time.Duration(i)*T || r.ResetAfter < time.Duration(i-1)*T {
			t.Fatalf("burst %d: ResetAfter %s; want about %s", i, r.ResetAfter, time.Duration(i)*T)
		}
	}
	r := allow(t, st, "k", lim, 1)
	if r.Allowed || r.Remaining != 0 {
		t.Fatalf("over burst: %+v; want denied with nothing remaining", r)
	}
	if r.RetryAfter <= 0 || r.RetryAfter > T {
		t.Fatalf("over burst: RetryAfter %s; want in (0, %s]", r.RetryAfter, T)
	}
	if r.ResetAfter <= 4*T || r.ResetAfter > 5*T {
		t.Fatalf("over burst: ResetAfter %s; want in (%s, %s]", r.ResetAfter, 4*T, 5*T)
	}
	time.Sleep(r.RetryAfter + time.Millisecond) // 1ms: the server clock ticks in microseconds
	if r := allow(t, st, "k", lim, 1); !r.Allowed {
		t.Fatalf("after RetryAfter: %+v; want allowed", r)
	}
}

func TestRedisMatchesLocal(t *testing.T) {
	st, _ := newTestRedis(t, RedisOptions{})
	// Periods are long enough that the real time the Redis sequence takes
	// (milliseconds) cannot change a decision: T ≥ 333ms.
	tests := []struct {
		name  string
		lim   Limit
		steps []int
	}{
		{name: "singles", lim: Limit{Rate: 5, Period: time.Hour, Burst: 5}, steps: []int{1, 1, 1, 1, 1, 1, 1, 0}},
		{name: "batches", lim: Limit{Rate: 10, Period: time.Minute, Burst: 10}, steps: []int{0, 3, 3, 2, 3, 0, 2, 1, 10}},
		{name: "full burst", lim: Limit{Rate: 1000, Period: 24 * time.Hour, Burst: 10}, steps: []int{10, 1, 0, 10}},
		{name: "burst one", lim: Limit{Rate: 1, Period: time.Hour, Burst: 1}, steps: []int{0, 1, 1, 0}},
		{name: "T not whole µs", lim: Limit{Rate: 7, Period: time.Minute, Burst: 4}, steps: []int{2, 2, 1, 3, 0}}, // T = 8.571428571s
		{name: "thirds", lim: Limit{Rate: 3, Period: time.Second, Burst: 4}, steps: []int{1, 2, 2, 1, 1, 0}},      // T = 333.333333ms
		{name: "burst greater than rate", lim: Limit{Rate: 2, Period: time.Hour, Burst: 50}, steps: []int{25, 20, 6, 5, 0, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			local := NewLocal(LocalOptions{Now: newFakeClock().Now}) // one frozen instant
			key := "match:" + tt.name
			start := time.Now()
			for i, n := range tt.steps {
				want := allow(t, local, key, tt.lim, n)
				got := allow(t, st, key, tt.lim, n)
				// Redis may lag Local by the real time elapsed, and lead it by
				// 1µs per event of rounding T up to a whole microsecond.
				lag := time.Since(start) + time.Millisecond
				lead := time.Duration(tt.lim.Burst) * time.Microsecond
				near := func(g, w time.Duration) bool { return g >= w-lag && g <= w+lead }
				if got.Allowed != want.Allowed || got.Remaining != want.Remaining ||
					!near(got.RetryAfter, want.RetryAfter) || !near(got.ResetAfter, want.ResetAfter) ||
					(want.RetryAfter == 0) != (got.RetryAfter == 0) {
					t.Fatalf("step %d (n=%d): Redis %+v; Local %+v", i, n, got, want)
				}
			}
		})
	}
}

func TestRedisConcurrentReplicasAllowExactlyBurst(t *testing.T) {
	url := testRedisURL(t)
	c1, c2 := newTestClient(t, url), newTestClient(t, url)
	prefix := testPrefix(t, c1)
	replicas := []*Redis{NewRedis(c1, RedisOptions{Prefix: prefix}), NewRedis(c2, RedisOptions{Prefix: prefix})}
	lim := Limit{Rate: 1, Period: time.Hour, Burst: 37}
	q := Quota{Limit: 41, Period: Day}
	const goroutines, perGoroutine = 50, 20 // 1,000 calls of each kind

	var allowed, taken atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for g := range goroutines {
		st := replicas[g%2]
		wg.Go(func() {
			<-start
			for range perGoroutine {
				r, err := st.Allow(context.Background(), "login:alice", lim, 1)
				if err != nil {
					t.Error(err)
					return
				}
				if r.Allowed {
					allowed.Add(1)
				}
				qr, err := st.Take(context.Background(), "tenant:acme", q, 1)
				if err != nil {
					t.Error(err)
					return
				}
				if qr.Allowed {
					taken.Add(1)
				}
			}
		})
	}
	close(start)
	wg.Wait()
	if got := allowed.Load(); got != int64(lim.Burst) {
		t.Fatalf("allowed %d of %d concurrent calls across 2 clients; want exactly burst %d", got, goroutines*perGoroutine, lim.Burst)
	}
	if got := taken.Load(); got != q.Limit {
		t.Fatalf("quota admitted %d of %d concurrent takes across 2 clients; want exactly %d", got, goroutines*perGoroutine, q.Limit)
	}
}

func TestRedisKeyExpiry(t *testing.T) {
	st, c := newTestRedis(t, RedisOptions{})
	ctx := context.Background()
	rkey := func(k string) string { return st.prefix + "r:" + k }

	hour := Limit{Rate: 1, Period: time.Hour, Burst: 2}
	r := allow(t, st, "slow", hour, 1)
	pttl, err := c.PTTL(ctx, rkey("slow")).Result()
	if err != nil {
		t.Fatal(err)
	}
	if pttl <= 0 || pttl > time.Hour || pttl < r.ResetAfter-time.Second {
		t.Fatalf("PTTL = %s after ResetAfter %s; want about the time until idle", pttl, r.ResetAfter)
	}
	if v, err := c.Get(ctx, rkey("slow")).Int64(); err != nil || v < time.Now().Add(-time.Minute).UnixMicro() {
		t.Fatalf("stored TAT %d, %v; want integer Unix microseconds", v, err)
	}

	// A read writes nothing; a denial leaves the key as it was.
	allow(t, st, "read-only", hour, 0)
	if n, err := c.Exists(ctx, rkey("read-only")).Result(); err != nil || n != 0 {
		t.Fatalf("a read created the key: EXISTS = %d, %v", n, err)
	}

	// T = 1ms: the key is idle, and gone, within a few milliseconds.
	fast := Limit{Rate: 1000, Period: time.Second, Burst: 1}
	allow(t, st, "fast", fast, 1)
	// Under load the key may already be gone when PTTL runs (-2, reported
	// as a non-positive duration); what matters is that it never lives
	// longer than the time until idle.
	if pttl, err := c.PTTL(ctx, rkey("fast")).Result(); err != nil || pttl > time.Millisecond {
		t.Fatalf("PTTL = %s, %v; want at most 1ms", pttl, err)
	}
	deadline := time.Now().Add(time.Second)
	for {
		n, err := c.Exists(ctx, rkey("fast")).Result()
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("idle key did not expire")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRedisOpaqueKeys(t *testing.T) {
	st, _ := newTestRedis(t, RedisOptions{})
	lim := Limit{Rate: 1, Period: time.Hour, Burst: 2}
	keys := []string{"", "a", "a\x00b", "{slot}*?[x]", "\xff\xfe\n", "q:k:d20260102", "r:k", "k"}
	for _, k := range keys {
		for i := range lim.Burst {
			if r := allow(t, st, k, lim, 1); !r.Allowed {
				t.Fatalf("key %q event %d denied though other keys are the ones exhausted: %+v", k, i, r)
			}
		}
		if r := allow(t, st, k, lim, 1); r.Allowed {
			t.Fatalf("key %q allowed beyond burst", k)
		}
	}
	// Rate keys and quota counters live in separate namespaces: the rate
	// key "q:k:d20260102" above did not touch k's quota counter.
	q := Quota{Limit: 3, Period: Day}
	if r := take(t, st, "k", q, 3); !r.Allowed {
		t.Fatalf("quota of k: %+v; want untouched by rate keys", r)
	}
}

func TestRedisQuota(t *testing.T) {
	st, c := newTestRedis(t, RedisOptions{})
	ctx := context.Background()
	q := Quota{Limit: 5, Period: Day}
	now := time.Now()
	id, end := Day.window(now)
	qkey := st.prefix + "q:k:" + id
	within := func(step string, r QuotaResult) {
		t.Helper()
		if r.ResetAfter <= 0 || r.ResetAfter > time.Until(end)+time.Second || r.ResetAfter > 24*time.Hour {
			t.Fatalf("%s: ResetAfter %s; want at most the %s to the window's end", step, r.ResetAfter, time.Until(end))
		}
	}

	r := take(t, st, "k", q, 0)
	if !r.Allowed || r.Remaining != 5 {
		t.Fatalf("read idle: %+v", r)
	}
	within("read idle", r)
	if n, _ := c.Exists(ctx, qkey).Result(); n != 0 {
		t.Fatal("a read created the counter")
	}
	for i := int64(1); i <= q.Limit; i++ {
		r := take(t, st, "k", q, 1)
		if !r.Allowed || r.Remaining != q.Limit-i || r.Quota != q || r.Fallback {
			t.Fatalf("take %d: %+v", i, r)
		}
		within(fmt.Sprint("take ", i), r)
	}
	if r := take(t, st, "k", q, 1); r.Allowed || r.Remaining != 0 {
		t.Fatalf("over limit: %+v; want denied", r)
	}
	if v, err := c.Get(ctx, qkey).Int64(); err != nil || v != q.Limit {
		t.Fatalf("counter = %d, %v; want %d (denials count nothing)", v, err, q.Limit)
	}
	pttl, err := c.PTTL(ctx, qkey).Result()
	if err != nil || pttl <= 0 || pttl > time.Until(end)+quotaExpiryMargin+time.Second { // 1s: Go and Redis clocks
		t.Fatalf("PTTL = %s, %v; want until the window's end plus %s", pttl, err, quotaExpiryMargin)
	}

	// A denied take consumes nothing.
	if r := take(t, st, "n", q, 3); !r.Allowed || r.Remaining != 2 {
		t.Fatalf("3 of 5: %+v", r)
	}
	if r := take(t, st, "n", q, 3); r.Allowed || r.Remaining != 2 {
		t.Fatalf("3 more: %+v; want denied with 2 remaining", r)
	}
	if r := take(t, st, "n", q, 2); !r.Allowed || r.Remaining != 0 {
		t.Fatalf("2 more: %+v", r)
	}
}

func TestRedisQuotaCalendarWindows(t *testing.T) {
	// A clock in the future keeps the counters' PEXPIREAT ahead of the
	// server's real time.
	clk := newFakeClock()
	st, _ := newTestRedis(t, RedisOptions{Now: clk.Now})
	day := Quota{Limit: 2, Period: Day}
	month := Quota{Limit: 3, Period: Month}
	tests := []struct {
		at        time.Time
		q         Quota
		n         int64
		allowed   bool
		remaining int64
		reset     time.Duration
	}{
		{at: time.Date(2099, 12, 31, 23, 59, 59, 0, time.UTC), q: day, n: 2, allowed: true, remaining: 0, reset: time.Second},
		{at: time.Date(2099, 12, 31, 23, 59, 59, 0, time.UTC), q: month, n: 3, allowed: true, remaining: 0, reset: time.Second},
		{at: time.Date(2099, 12, 31, 23, 59, 59, 500_000_000, time.UTC), q: day, n: 1, allowed: false, remaining: 0, reset: 500 * time.Millisecond},
		{at: time.Date(2099, 12, 31, 23, 59, 59, 500_000_000, time.UTC), q: month, n: 1, allowed: false, remaining: 0, reset: 500 * time.Millisecond},
		{at: time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC), q: day, n: 1, allowed: true, remaining: 1, reset: 24 * time.Hour},
		{at: time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC), q: month, n: 1, allowed: true, remaining: 2, reset: 31 * 24 * time.Hour},
		{at: time.Date(2100, 2, 28, 12, 0, 0, 0, time.UTC), q: month, n: 3, allowed: true, remaining: 0, reset: 12 * time.Hour}, // 2100 is not a leap year
		{at: time.Date(2100, 3, 1, 0, 0, 0, 0, time.UTC), q: month, n: 0, allowed: true, remaining: 3, reset: 31 * 24 * time.Hour},
	}
	for i, tt := range tests {
		clk.Set(tt.at)
		r := take(t, st, "k", tt.q, tt.n)
		if r.Allowed != tt.allowed || r.Remaining != tt.remaining || r.ResetAfter != tt.reset {
			t.Fatalf("step %d (%s at %s, n=%d): %+v; want allowed %v, remaining %d, reset %s",
				i, tt.q, tt.at, tt.n, r, tt.allowed, tt.remaining, tt.reset)
		}
	}
}

func TestRedisArgumentErrorsWithoutRoundTrip(t *testing.T) {
	st := NewRedis(unreachableClient(t), RedisOptions{}) // any round trip would fail with a transport error
	ok := Limit{Rate: 1, Period: time.Second, Burst: 2}
	tests := []struct {
		name string
		lim  Limit
		n    int
		want error
	}{
		{name: "exceeds burst", lim: ok, n: 3, want: ErrExceedsBurst},
		{name: "negative n", lim: ok, n: -1, want: ErrInvalidLimit},
		{name: "zero rate", lim: Limit{Period: time.Second, Burst: 1}, n: 1, want: ErrInvalidLimit},
		{name: "tolerance beyond the script's exact range", lim: Limit{Rate: 1_000_000_000, Period: time.Second, Burst: 1<<50 + 1}, n: 1, want: ErrInvalidLimit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := st.Allow(context.Background(), "k", tt.lim, tt.n)
			if !errors.Is(err, tt.want) || strings.HasPrefix(err.Error(), "ratelimit: redis:") {
				t.Fatalf("Allow error = %v; want %v without a round trip", err, tt.want)
			}
		})
	}
	for _, tc := range []struct {
		q    Quota
		n    int64
		want error
	}{
		{Quota{Limit: 2, Period: Day}, 3, ErrExceedsBurst},
		{Quota{Limit: 2, Period: Day}, -1, ErrInvalidLimit},
		{Quota{Limit: 2}, 1, ErrInvalidLimit},
	} {
		if _, err := st.Take(context.Background(), "k", tc.q, tc.n); !errors.Is(err, tc.want) || strings.HasPrefix(err.Error(), "ratelimit: redis:") {
			t.Fatalf("Take(%v, %d) error = %v; want %v without a round trip", tc.q, tc.n, err, tc.want)
		}
	}
}

func TestRedisTransportErrors(t *testing.T) {
	st := NewRedis(unreachableClient(t), RedisOptions{})
	lim := Limit{Rate: 1, Period: time.Second, Burst: 2}
	q := Quota{Limit: 2, Period: Day}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		want error // nil: any transport error
	}{
		{name: "connection refused", ctx: context.Background()},
		{name: "cancelled", ctx: cancelled, want: context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, call := range []func() error{
				func() error { _, err := st.Allow(tt.ctx, "k", lim, 1); return err },
				func() error { _, err := st.Take(tt.ctx, "k", q, 1); return err },
			} {
				start := time.Now()
				err := call()
				if took := time.Since(start); took > time.Second {
					t.Fatalf("transport error took %s; want it quickly", took)
				}
				if err == nil || errors.Is(err, ErrInvalidLimit) || errors.Is(err, ErrExceedsBurst) ||
					!strings.HasPrefix(err.Error(), "ratelimit: redis: ") {
					t.Fatalf("error = %v; want a wrapped transport error that is no argument error", err)
				}
				if tt.want != nil && !errors.Is(err, tt.want) {
					t.Fatalf("error = %v; want it to wrap %v", err, tt.want)
				}
			}
		})
	}
}

func TestRedisScriptCacheFlushed(t *testing.T) {
	st, c := newTestRedis(t, RedisOptions{})
	lim := Limit{Rate: 1, Period: time.Hour, Burst: 3}
	allow(t, st, "k", lim, 1)
	take(t, st, "k", Quota{Limit: 3, Period: Day}, 1)
	// EVALSHA now fails with NOSCRIPT; the store must fall back to EVAL.
	if err := c.ScriptFlush(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	if r := allow(t, st, "k", lim, 1); !r.Allowed || r.Remaining != 1 {
		t.Fatalf("after SCRIPT FLUSH: %+v; want allowed with 1 remaining", r)
	}
	if r := take(t, st, "k", Quota{Limit: 3, Period: Day}, 1); !r.Allowed || r.Remaining != 1 {
		t.Fatalf("quota after SCRIPT FLUSH: %+v; want allowed with 1 remaining", r)
	}
}

func TestFailoverOverUnreachableRedis(t *testing.T) {
	h := &fakeHealth{up: true}
	var fellBack atomic.Int64
	f := NewFailover(NewRedis(unreachableClient(t), RedisOptions{}),
		LocalStores{NewLocal(LocalOptions{}), NewLocalQuotas(LocalQuotaOptions{})},
		h, FallbackLocal, func(error) { fellBack.Add(1) })
	lim := Limit{Rate: 1, Period: time.Hour, Burst: 2}
	for i, want := range []bool{true, true, false} {
		r, err := f.Allow(context.Background(), "k", lim, 1)
		if err != nil || r.Allowed != want || !r.Fallback {
			t.Fatalf("call %d: %+v, %v; want a local decision allowed=%v", i, r, err, want)
		}
	}
	if _, err := f.Allow(context.Background(), "k", lim, 3); !errors.Is(err, ErrExceedsBurst) {
		t.Fatalf("n > burst: %v; want ErrExceedsBurst", err)
	}
	obs := h.take()
	if len(obs) != 3 || fellBack.Load() != 3 {
		t.Fatalf("observed %v, %d fallbacks; want 3 failures", obs, fellBack.Load())
	}
	for _, err := range obs {
		if err == nil || errors.Is(err, ErrInvalidLimit) {
			t.Fatalf("observed %v; want a transport error", err)
		}
	}
}

func BenchmarkRedisAllow(b *testing.B) {
	c := newTestClient(b, testRedisURL(b))
	st := NewRedis(c, RedisOptions{Prefix: testPrefix(b, c)})
	lim := Limit{Rate: 100, Period: time.Second, Burst: 20}
	keys := make([]string, 10_000)
	for i := range keys {
		keys[i] = "ip:10.0." + strconv.Itoa(i>>8&255) + "." + strconv.Itoa(i&255)
	}
	ctx := context.Background()
	var worker atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(worker.Add(1)) * 7919
		for pb.Next() {
			if _, err := st.Allow(ctx, keys[i%len(keys)], lim, 1); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

func TestRedisIntervalRounding(t *testing.T) {
	tests := []struct {
		lim     Limit
		t, tau  int64 // microseconds
		wantErr bool
	}{
		{lim: Limit{Rate: 100, Period: time.Second, Burst: 20}, t: 10_000, tau: 200_000},
		{lim: Limit{Rate: 5, Period: time.Minute, Burst: 1}, t: 12_000_000, tau: 12_000_000},
		{lim: Limit{Rate: 3, Period: time.Second, Burst: 3}, t: 333_334, tau: 1_000_002},                // 333333333ns rounded up
		{lim: Limit{Rate: 7, Period: time.Minute, Burst: 2}, t: 8_571_429, tau: 17_142_858},             // 8571428571ns rounded up
		{lim: Limit{Rate: 1_000_000_000, Period: time.Second, Burst: 5}, t: 1, tau: 5},                  // 1ns: one per µs at most
		{lim: Limit{Rate: 1, Period: time.Microsecond, Burst: 1 << 50}, t: 1, tau: 1 << 50},             // largest τ
		{lim: Limit{Rate: 1, Period: time.Microsecond, Burst: 1<<50 + 1}, wantErr: true},                // beyond it
		{lim: Limit{Rate: 1, Period: 24 * time.Hour, Burst: 1 << 24}, t: 86_400_000_000, wantErr: true}, // 46,000 years
	}
	for _, tt := range tests {
		t.Run(tt.lim.String(), func(t *testing.T) {
			gotT, gotTau, err := redisInterval(tt.lim)
			if tt.wantErr {
				if !errors.Is(err, ErrInvalidLimit) {
					t.Fatalf("redisInterval(%v) = %d, %d, %v; want ErrInvalidLimit", tt.lim, gotT, gotTau, err)
				}
				return
			}
			if err != nil || gotT != tt.t || gotTau != tt.tau {
				t.Fatalf("redisInterval(%v) = %d, %d, %v; want %d, %d", tt.lim, gotT, gotTau, err, tt.t, tt.tau)
			}
		})
	}
}
