package ratelimit

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwarkapi/bulwark/internal/testkit/cutproxy"

	"github.com/redis/go-redis/v9"
)

// testRing returns a one-shard Ring on the test Redis: a UniversalClient
// that is not a *redis.Client, standing for a Cluster client (keys spread
// by hash) in the per-key path of AllowAll.
func testRing(tb testing.TB, url string) *redis.Ring {
	tb.Helper()
	opts, err := redis.ParseURL(url)
	if err != nil {
		tb.Fatalf("BULWARK_TEST_REDIS_URL: %v", err)
	}
	r := redis.NewRing(&redis.RingOptions{
		Addrs:    map[string]string{"one": opts.Addr},
		Username: opts.Username,
		Password: opts.Password,
		DB:       opts.DB,
	})
	tb.Cleanup(func() { _ = r.Close() })
	return r
}

// nearRedis compares two Results of the Redis store decided a little apart
// in real time: same decision and Remaining, durations within the real
// time elapsed since start.
func nearRedis(start time.Time) func(g, w Result) bool {
	return func(g, w Result) bool {
		lag := time.Since(start) + time.Millisecond
		near := func(a, b time.Duration) bool { return a >= b-lag && a <= b+lag }
		return g.Allowed == w.Allowed && g.Remaining == w.Remaining && g.Limit == w.Limit && g.Fallback == w.Fallback &&
			near(g.RetryAfter, w.RetryAfter) && near(g.ResetAfter, w.ResetAfter) && (g.RetryAfter == 0) == (w.RetryAfter == 0)
	}
}

func TestRedisAllowAllMatchesSequential(t *testing.T) {
	url := testRedisURL(t)
	c := newTestClient(t, url)
	ring := testRing(t, url)
	for _, sc := range batchScenarios {
		t.Run(sc.name, func(t *testing.T) {
			for _, way := range []struct {
				name   string
				client redis.UniversalClient
			}{{"one script", c}, {"per-key client", ring}} {
				t.Run(way.name, func(t *testing.T) {
					// The reference is the Redis store answering sequential
					// Allow calls, on keys of its own.
					ref := NewRedis(c, RedisOptions{Prefix: testPrefix(t, c)})
					sut := NewRedis(way.client, RedisOptions{Prefix: testPrefix(t, c)})
					checkScenario(t, sc, ref, sut, nearRedis(time.Now()))
				})
			}
		})
	}
}

// TestRedisAllowAllSharesKeysWithAllow: a batch counts in the very keys
// Allow uses, so replicas that batch and replicas that do not share limits.
func TestRedisAllowAllSharesKeysWithAllow(t *testing.T) {
	st, c := newTestRedis(t, RedisOptions{})
	lim := Limit{Rate: 1, Period: time.Hour, Burst: 2}
	allow(t, st, "k", lim, 1)
	res, err := st.AllowAll(context.Background(), []Request{rq("k", lim, 1), rq("other", lim, 1), rq("k", lim, 1)})
	if err != nil || shape(res) != "aad" {
		t.Fatalf("AllowAll = %+v, %v; want the Allow call counted: allowed, allowed, denied", res, err)
	}
	if r := allow(t, st, "k", lim, 1); r.Allowed {
		t.Fatalf("Allow after the batch: %+v; want denied", r)
	}
	v, err := c.Get(context.Background(), st.prefix+"r:k").Int64()
	if err != nil || v < time.Now().Add(-time.Minute).UnixMicro() {
		t.Fatalf("TAT under %sr:k = %d, %v; want integer Unix microseconds", st.prefix, v, err)
	}
	pttl, err := c.PTTL(context.Background(), st.prefix+"r:other").Result()
	if err != nil || pttl <= 0 || pttl > time.Hour {
		t.Fatalf("PTTL of a key a batch wrote = %s, %v; want the time until idle", pttl, err)
	}
}

// countHook counts the commands a client sends.
type countHook struct{ n atomic.Int64 }

func (h *countHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}
func (h *countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func TestRedisAllowAllOneRoundTrip(t *testing.T) {
	url := testRedisURL(t)
	c := newTestClient(t, url)
	ring := testRing(t, url)
	reqs := []Request{rq("k1", batchLimA, 1), rq("k2", batchLimB, 1), rq("k3", batchLimC, 1)}
	for _, tc := range []struct {
		name   string
		client redis.UniversalClient
		want   int64
	}{
		{"redis.Client: one script run", c, 1},
		{"other clients: one call per request", ring, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := NewRedis(tc.client, RedisOptions{Prefix: testPrefix(t, c)})
			// The first run may load the script (EVALSHA, then EVAL).
			if _, err := st.AllowAll(context.Background(), reqs); err != nil {
				t.Fatal(err)
			}
			h := &countHook{}
			tc.client.AddHook(h)
			res, err := st.AllowAll(context.Background(), reqs)
			if err != nil || shape(res) != "aaa" {
				t.Fatalf("AllowAll = %+v, %v", res, err)
			}
			if got := h.n.Load(); got != tc.want {
				t.Fatalf("%d commands for a batch of 3; want %d", got, tc.want)
			}
		})
	}
}

func TestRedisAllowAllInvalidArgumentsCountNothing(t *testing.T) {
	st, _ := newTestRedis(t, RedisOptions{})
	checkInvalid(t, st, st)
}

func TestRedisAllowAllArgumentErrorsWithoutRoundTrip(t *testing.T) {
	st := NewRedis(unreachableClient(t), RedisOptions{}) // any round trip would fail with a transport error
	refused := func(name string, batch []Request, want error) {
		t.Helper()
		res, err := st.AllowAll(context.Background(), batch)
		if !errors.Is(err, want) || len(res) != 0 || strings.HasPrefix(err.Error(), "ratelimit: redis:") {
			t.Fatalf("%s: AllowAll = %v, %v; want %v without a round trip", name, res, err, want)
		}
	}
	for _, tt := range invalidBatches {
		refused(tt.name, tt.batch, tt.want)
	}
	// Valid for Local, beyond the script's exact range for Redis.
	refused("tolerance beyond 2^50µs", []Request{rq("k1", batchLimA, 1), rq("k2", Limit{Rate: 1, Period: time.Microsecond, Burst: 1<<50 + 1}, 1)}, ErrInvalidLimit)
}

func TestRedisAllowAllTransportErrors(t *testing.T) {
	st := NewRedis(unreachableClient(t), RedisOptions{})
	reqs := []Request{rq("k1", batchLimA, 1), rq("k2", batchLimB, 1)}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tt := range []struct {
		name string
		ctx  context.Context
		want error // nil: any transport error
	}{
		{name: "connection refused", ctx: context.Background()},
		{name: "cancelled", ctx: cancelled, want: context.Canceled},
	} {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			res, err := st.AllowAll(tt.ctx, reqs)
			if took := time.Since(start); took > time.Second {
				t.Fatalf("transport error took %s; want it quickly", took)
			}
			if err == nil || len(res) != 0 || errors.Is(err, ErrInvalidLimit) || errors.Is(err, ErrExceedsBurst) ||
				!strings.HasPrefix(err.Error(), "ratelimit: redis: ") {
				t.Fatalf("AllowAll = %v, %v; want no result and a wrapped transport error", res, err)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("error = %v; want it to wrap %v", err, tt.want)
			}
		})
	}
}

func TestRedisAllowAllScriptCacheFlushed(t *testing.T) {
	st, c := newTestRedis(t, RedisOptions{})
	reqs := []Request{rq("k1", batchLimA, 1), rq("k2", batchLimB, 1)}
	if _, err := st.AllowAll(context.Background(), reqs); err != nil {
		t.Fatal(err)
	}
	if err := c.ScriptFlush(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	res, err := st.AllowAll(context.Background(), reqs)
	if err != nil || shape(res) != "aa" || res[0].Remaining != 1 || res[1].Remaining != 0 {
		t.Fatalf("after SCRIPT FLUSH: %+v, %v; want both allowed, counted twice", res, err)
	}
}

// TestRedisAllowAllConcurrentNeverExceedsBurst: 1,000 concurrent batches
// over two clients (two replicas) on shared keys; a third of them decided
// by sequential Allow calls as a replica without batches would. Every key
// admits exactly its burst.
func TestRedisAllowAllConcurrentNeverExceedsBurst(t *testing.T) {
	url := testRedisURL(t)
	c1, c2 := newTestClient(t, url), newTestClient(t, url)
	prefix := testPrefix(t, c1)
	r1, r2 := NewRedis(c1, RedisOptions{Prefix: prefix}), NewRedis(c2, RedisOptions{Prefix: prefix})
	got := concurrentBatches(t, burstLimits, func(i int, reqs []Request) ([]Result, error) {
		switch i % 3 {
		case 0:
			return r1.AllowAll(context.Background(), reqs)
		case 1:
			return r2.AllowAll(context.Background(), reqs)
		default:
			return sequentialAllow(context.Background(), r2, reqs)
		}
	})
	for k, lim := range burstLimits {
		if got[k] != int64(lim.Burst) {
			t.Fatalf("key %d admitted %d events under 1,000 concurrent batches; want exactly its burst %d (all: %v)", k, got[k], lim.Burst, got)
		}
	}
}

// TestFailoverAllowAllRedisCut: a Failover over Redis batches while Redis
// answers; when the connection is cut, the whole batch goes to the fallback
// policy; when it is back, Redis decides again on the counts it had.
func TestFailoverAllowAllRedisCut(t *testing.T) {
	url := testRedisURL(t)
	direct := newTestClient(t, url)
	lim1 := Limit{Rate: 1, Period: time.Hour, Burst: 2}
	lim2 := Limit{Rate: 1, Period: time.Hour, Burst: 5}
	reqs := []Request{rq("k1", lim1, 1), rq("k2", lim2, 1)}
	tests := []struct {
		policy FallbackPolicy
		want   []Result // during the cut
	}{
		{FallbackLocal, []Result{
			{Allowed: true, Remaining: 1, ResetAfter: time.Hour, Limit: lim1, Fallback: true},
			{Allowed: true, Remaining: 4, ResetAfter: time.Hour, Limit: lim2, Fallback: true}}},
		{FallbackOpen, []Result{
			{Allowed: true, Remaining: 2, Limit: lim1, Fallback: true},
			{Allowed: true, Remaining: 5, Limit: lim2, Fallback: true}}},
		{FallbackClosed, []Result{
			{RetryAfter: time.Second, ResetAfter: time.Second, Limit: lim1, Fallback: true}}},
	}
	for _, tt := range tests {
		t.Run(tt.policy.String(), func(t *testing.T) {
			opts, err := redis.ParseURL(url)
			if err != nil {
				t.Fatal(err)
			}
			px := cutproxy.New(t, opts.Addr)
			opts.Addr = px.Addr()
			opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = time.Second, time.Second, time.Second
			opts.MaxRetries = -1 // as internal/cluster: the fallback is the retry
			opts.DialerRetries = 1
			c := redis.NewClient(opts)
			t.Cleanup(func() { _ = c.Close() })
			prefix := testPrefix(t, direct)
			clk := newFakeClock()
			h := &fakeHealth{up: true} // stays up: every call tries Redis
			var mu sync.Mutex
			var notified []error
			f := NewFailover(NewRedis(c, RedisOptions{Prefix: prefix}),
				LocalStores{NewLocal(LocalOptions{Now: clk.Now}), NewLocalQuotas(LocalQuotaOptions{Now: clk.Now})},
				h, tt.policy, func(err error) { mu.Lock(); notified = append(notified, err); mu.Unlock() })
			ctx := context.Background()

			for i := range 2 { // k1's burst of 2 used in Redis
				res, err := f.AllowAll(ctx, reqs)
				if err != nil || shape(res) != "aa" || res[0].Fallback || res[1].Fallback || res[0].Remaining != 1-i {
					t.Fatalf("batch %d before the cut: %+v, %v; want two Redis decisions", i, res, err)
				}
			}
			if obs := h.take(); !sameErrs(obs, []error{nil, nil}) {
				t.Fatalf("Observe before the cut = %v; want two successes", obs)
			}

			px.Cut()
			res, err := f.AllowAll(ctx, reqs)
			if err != nil {
				t.Fatalf("AllowAll during the cut: %v; want the fallback's decision", err)
			}
			if len(res) != len(tt.want) {
				t.Fatalf("during the cut: %+v; want %+v", res, tt.want)
			}
			for i := range res {
				if res[i] != tt.want[i] {
					t.Fatalf("during the cut, request %d: %+v; want %+v", i, res[i], tt.want[i])
				}
			}
			obs := h.take()
			if len(obs) != 1 || obs[0] == nil || errors.Is(obs[0], ErrInvalidLimit) {
				t.Fatalf("Observe during the cut = %v; want one transport failure", obs)
			}
			mu.Lock()
			got := notified
			notified = nil
			mu.Unlock()
			if len(got) != len(tt.want) || got[0] != obs[0] || (len(got) > 1 && got[1] != nil) {
				t.Fatalf("onFallback during the cut = %v; want the failure once, then nil per further fallback decision", got)
			}

			px.Restore()
			deadline := time.Now().Add(5 * time.Second)
			for {
				res, err = f.AllowAll(ctx, reqs)
				if err != nil {
					t.Fatal(err)
				}
				if len(res) > 0 && !res[0].Fallback {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("Redis did not decide again within 5s of the restore")
				}
				time.Sleep(10 * time.Millisecond) // the client redials through the proxy
			}
			// Redis still holds k1's two events: denied, and k2 not counted.
			if shape(res) != "d" || res[0].Fallback {
				t.Fatalf("after the restore: %+v; want Redis to deny k1 on the count it kept", res)
			}
			if r := allow(t, NewRedis(direct, RedisOptions{Prefix: prefix}), "k2", lim2, 0); r.Remaining != 3 {
				t.Fatalf("k2 in Redis: %+v; want 3 left (two events before the cut, none during it)", r)
			}
		})
	}
}

// BenchmarkRedisTwoLimits compares the two ways of deciding a request
// under two limits in Redis: two Allow calls (two round trips) and one
// AllowAll of two requests (one round trip).
func BenchmarkRedisTwoLimits(b *testing.B) {
	c := newTestClient(b, testRedisURL(b))
	st := NewRedis(c, RedisOptions{Prefix: testPrefix(b, c)})
	// Generous limits: every request is allowed, so both ways do the same work.
	perIP := Limit{Rate: 1_000_000, Period: time.Second, Burst: 1_000}
	perUser := Limit{Rate: 1_000_000, Period: time.Second, Burst: 1_000}
	ips := make([]string, 10_000)
	users := make([]string, len(ips))
	for i := range ips {
		ips[i] = "ip:10.0." + strconv.Itoa(i>>8&255) + "." + strconv.Itoa(i&255)
		users[i] = "id:" + strconv.Itoa(i*7919)
	}
	ctx := context.Background()
	twoAllow := func(i int) error {
		if _, err := st.Allow(ctx, ips[i%len(ips)], perIP, 1); err != nil {
			return err
		}
		_, err := st.Allow(ctx, users[i%len(users)], perUser, 1)
		return err
	}
	oneAllowAll := func(i int) error {
		_, err := st.AllowAll(ctx, []Request{
			{Key: ips[i%len(ips)], Limit: perIP, N: 1},
			{Key: users[i%len(users)], Limit: perUser, N: 1},
		})
		return err
	}
	for _, way := range []struct {
		name   string
		decide func(int) error
	}{{"two Allow", twoAllow}, {"one AllowAll", oneAllowAll}} {
		b.Run("serial/"+way.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if err := way.decide(i); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
		b.Run("parallel/"+way.name, func(b *testing.B) {
			var worker atomic.Uint64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := int(worker.Add(1)) * 7919
				for pb.Next() {
					if err := way.decide(i); err != nil {
						b.Error(err)
						return
					}
					i++
				}
			})
		})
	}
}
