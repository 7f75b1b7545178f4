package bruteforce

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestRedisKeysExpire checks that every key the store writes carries an
// expiry no longer than max(Window, Lockout), and shares its subject's
// hash tag.
func TestRedisKeysExpire(t *testing.T) {
	c := redisClient(t)
	prefix := testPrefix(t, c)
	const (
		window  = 4 * time.Second
		lockout = 6 * time.Second
	)
	g, err := New(NewRedis(c, prefix), Options{MaxFailures: 3, Window: window, Lockout: lockout})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 12 {
		if _, _, err := g.Failure(ctx, "victim", fmt.Sprintf("c%d", i)); err != nil {
			t.Fatal(err)
		}
		if _, _, err := g.Failure(ctx, fmt.Sprintf("u%d", i), "stuffer"); err != nil {
			t.Fatal(err)
		}
	}
	if err := g.Success(ctx, "u1", "stuffer"); err != nil {
		t.Fatal(err)
	}
	keys, err := scanKeys(ctx, c, prefix)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, k := range keys {
		ttl, err := c.PTTL(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		if ttl <= 0 || ttl > max(window, lockout) {
			t.Fatalf("key %q: TTL %s outside (0, %s]", k, ttl, max(window, lockout))
		}
		rest := strings.TrimPrefix(k, prefix)
		if !strings.HasPrefix(rest, "{") || !strings.Contains(rest, "}:") {
			t.Fatalf("key %q lacks a hash tag", k)
		}
		kinds[rest[strings.LastIndex(rest, ":")+1:]]++
	}
	for _, s := range []string{suffixCount, suffixLock, suffixSet, suffixFlag} {
		if kinds[s] == 0 {
			t.Fatalf("no %q key among %v", s, keys)
		}
	}
}

// TestRedisScriptNotCached runs the record script under a digest the
// server cannot know: the store must fall back to sending the source.
func TestRedisScriptNotCached(t *testing.T) {
	c := redisClient(t)
	prefix := testPrefix(t, c)
	saved := recordScript
	t.Cleanup(func() { recordScript = saved })
	recordScript = redis.NewScript(recordLua + "\n-- " + prefix + "\n")
	g, err := New(NewRedis(c, prefix), Options{MaxFailures: 2, Window: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := 1; i <= 2; i++ {
		v, _, err := g.Failure(ctx, "u1", "c1")
		if err != nil || v.Failures != i {
			t.Fatalf("failure %d: %+v, %v", i, v, err)
		}
	}
	if v, err := g.Check(ctx, "u1", "c1"); err != nil || v.Reason != ReasonUsernameLocked {
		t.Fatalf("Check: %+v, %v; want username_locked", v, err)
	}
}

func TestRedisCancelledContext(t *testing.T) {
	c := redisClient(t)
	st := NewRedis(c, testPrefix(t, c))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p := Policy{Window: time.Second, Lockout: time.Second, MaxFailures: 1, MaxClientFailures: 1,
		MaxUsernamesPerClient: 1, MaxClientsPerUsername: 1}
	_, err1 := st.RecordFailure(ctx, "u", "c", p)
	_, err2 := st.State(ctx, "u", "c")
	err3 := st.Reset(ctx, "u")
	for i, err := range []error{err1, err2, err3} {
		if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrStore) {
			t.Fatalf("call %d: %v; want ErrStore and context.Canceled", i, err)
		}
	}
}

// TestRedisUnreachable needs no server: every call fails with ErrStore, and
// a Failover over it decides from the local store without an error.
func TestRedisUnreachable(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 200 * time.Millisecond,
		DialerRetries: 1, DialerRetryTimeout: time.Millisecond})
	t.Cleanup(func() { _ = c.Close() })
	rs := NewRedis(c, "")
	ctx := context.Background()
	p := Policy{Window: time.Second, Lockout: time.Second, MaxFailures: 1, MaxClientFailures: 1,
		MaxUsernamesPerClient: 1, MaxClientsPerUsername: 1}
	_, err1 := rs.RecordFailure(ctx, "u", "c", p)
	_, err2 := rs.State(ctx, "u", "c")
	err3 := rs.Reset(ctx, "u")
	for i, err := range []error{err1, err2, err3} {
		if !errors.Is(err, ErrStore) {
			t.Fatalf("call %d: %v; want ErrStore", i, err)
		}
	}

	h := &fakeHealth{up: true}
	var fallbacks []error
	g, err := New(NewFailover(rs, NewLocal(LocalOptions{}), h, func(err error) { fallbacks = append(fallbacks, err) }),
		Options{MaxFailures: 1, Window: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := g.Failure(ctx, "u", "c"); err != nil {
		t.Fatalf("Failure: %v", err)
	}
	v, err := g.Check(ctx, "u", "c")
	if err != nil || v.Reason != ReasonUsernameLocked {
		t.Fatalf("Check: %+v, %v; want a local username lock", v, err)
	}
	if len(fallbacks) != 2 || !errors.Is(fallbacks[0], ErrStore) || len(h.observed) != 2 || h.observed[1] == nil {
		t.Fatalf("fallbacks %v, observed %v; want two ErrStore failures", fallbacks, h.observed)
	}
}
