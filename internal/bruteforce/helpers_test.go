package bruteforce

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisURLEnv names the Redis server the Redis tests run against.
const redisURLEnv = "BULWARK_TEST_REDIS_URL"

// fakeClock is a manually advanced clock; it never reads the wall clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// storeFactory opens stores for the behaviour suite.
type storeFactory struct {
	name string
	// exact is true when time is a fake clock, so durations can be
	// asserted exactly; with real time only ordering-independent facts are.
	exact bool
	// open returns two handles on one shared state (two Redis clients, or
	// one Local store twice) and a function that lets time pass.
	open func(t testing.TB) (a, b Store, wait func(time.Duration))
}

func localFactory() storeFactory {
	return storeFactory{
		name:  "local",
		exact: true,
		open: func(testing.TB) (Store, Store, func(time.Duration)) {
			clk := newFakeClock()
			s := NewLocal(LocalOptions{Now: clk.Now})
			return s, s, clk.Advance
		},
	}
}

func redisFactory() storeFactory {
	return storeFactory{
		name: "redis",
		open: func(t testing.TB) (Store, Store, func(time.Duration)) {
			c1, c2 := redisClient(t), redisClient(t)
			prefix := testPrefix(t, c1)
			return NewRedis(c1, prefix), NewRedis(c2, prefix), time.Sleep
		},
	}
}

// redisClient connects to the test server, or skips the test without one.
func redisClient(t testing.TB) *redis.Client {
	t.Helper()
	url := os.Getenv(redisURLEnv)
	if url == "" {
		t.Skip(redisURLEnv + " not set: skipping Redis brute-force tests")
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("%s: %v", redisURLEnv, err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("ping %s: %v", url, err)
	}
	return c
}

// testPrefix returns a random key prefix and deletes its keys at cleanup.
func testPrefix(t testing.TB, c *redis.Client) string {
	t.Helper()
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	prefix := "bulwark-test:bf:" + hex.EncodeToString(b) + ":"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		keys, err := scanKeys(ctx, c, prefix)
		if err != nil {
			t.Errorf("scan %s*: %v", prefix, err)
			return
		}
		if len(keys) > 0 {
			if err := c.Del(ctx, keys...).Err(); err != nil {
				t.Errorf("delete %d keys: %v", len(keys), err)
			}
		}
	})
	return prefix
}

func scanKeys(ctx context.Context, c *redis.Client, prefix string) ([]string, error) {
	var keys []string
	iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	return keys, iter.Err()
}

// harness drives two Guards sharing one state.
type harness struct {
	t      *testing.T
	a, b   *Guard
	sa     Store
	wait   func(time.Duration)
	exact  bool
	policy Policy
}

func newHarness(t *testing.T, f storeFactory, o Options) *harness {
	t.Helper()
	sa, sb, wait := f.open(t)
	a, err := New(sa, o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	b, err := New(sb, o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return &harness{t: t, a: a, b: b, sa: sa, wait: wait, exact: f.exact, policy: a.Policy()}
}

// guard alternates between the two handles, so that Redis tests exercise
// state shared by two clients.
func (h *harness) guard(i int) *Guard {
	if i%2 == 0 {
		return h.a
	}
	return h.b
}

func (h *harness) check(user, client string) Verdict {
	h.t.Helper()
	v, err := h.a.Check(context.Background(), user, client)
	if err != nil {
		h.t.Fatalf("Check(%q, %q): %v", user, client, err)
	}
	return v
}

func (h *harness) fail(i int, user, client string) (Verdict, []Alert) {
	h.t.Helper()
	v, alerts, err := h.guard(i).Failure(context.Background(), user, client)
	if err != nil {
		h.t.Fatalf("Failure(%q, %q): %v", user, client, err)
	}
	return v, alerts
}

func (h *harness) success(user, client string) {
	h.t.Helper()
	if err := h.b.Success(context.Background(), user, client); err != nil {
		h.t.Fatalf("Success(%q, %q): %v", user, client, err)
	}
}

func (h *harness) state(user, client string) State {
	h.t.Helper()
	st, err := h.sa.State(context.Background(), user, client)
	if err != nil {
		h.t.Fatalf("State(%q, %q): %v", user, client, err)
	}
	return st
}

// wantOpen asserts an attempt that is not blocked.
func (h *harness) wantOpen(step string, v Verdict) {
	h.t.Helper()
	if v.Block || v.Reason != ReasonNone || v.RetryAfter != 0 {
		h.t.Fatalf("%s: got %+v; want not blocked", step, v)
	}
}

// wantBlock asserts a block for reason lasting (0, limit]; exactly limit
// when the clock is fake and exact is set.
func (h *harness) wantBlock(step string, v Verdict, reason Reason, limit time.Duration, exact bool) {
	h.t.Helper()
	if !v.Block || v.Reason != reason || v.Delay != 0 {
		h.t.Fatalf("%s: got %+v; want Block with reason %q", step, v, reason)
	}
	if v.RetryAfter <= 0 || v.RetryAfter > limit {
		h.t.Fatalf("%s: RetryAfter %s outside (0, %s]", step, v.RetryAfter, limit)
	}
	if exact && h.exact && v.RetryAfter != limit {
		h.t.Fatalf("%s: RetryAfter %s; want exactly %s", step, v.RetryAfter, limit)
	}
}

// stubStore returns a fixed State and records calls; for Guard unit tests.
type stubStore struct {
	st     State
	err    error
	resets []string
}

func (s *stubStore) RecordFailure(context.Context, string, string, Policy) (State, error) {
	return s.st, s.err
}

func (s *stubStore) State(context.Context, string, string) (State, error) { return s.st, s.err }

func (s *stubStore) Reset(_ context.Context, user string) error {
	s.resets = append(s.resets, user)
	return s.err
}
