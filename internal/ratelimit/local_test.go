package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

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

func allow(t *testing.T, s Store, key string, lim Limit, n int) Result {
	t.Helper()
	r, err := s.Allow(context.Background(), key, lim, n)
	if err != nil {
		t.Fatalf("Allow(%q, %v, %d): %v", key, lim, n, err)
	}
	return r
}

func wantResult(t *testing.T, step string, got Result, allowed bool, remaining int, retry, reset time.Duration) {
	t.Helper()
	if got.Allowed != allowed || got.Remaining != remaining || got.RetryAfter != retry || got.ResetAfter != reset {
		t.Fatalf("%s: got {Allowed:%v Remaining:%d RetryAfter:%s ResetAfter:%s}; want {Allowed:%v Remaining:%d RetryAfter:%s ResetAfter:%s}",
			step, got.Allowed, got.Remaining, got.RetryAfter, got.ResetAfter, allowed, remaining, retry, reset)
	}
}

func TestBurstThenSteadyRate(t *testing.T) {
	clk := newFakeClock()
	st := NewLocal(LocalOptions{Now: clk.Now})
	lim := Limit{Rate: 10, Period: time.Second, Burst: 5} // T = 100ms, τ = 500ms
	const T = 100 * time.Millisecond

	// Idle key: exactly Burst events at one instant.
	for i := 1; i <= lim.Burst; i++ {
		r := allow(t, st, "k", lim, 1)
		wantResult(t, fmt.Sprintf("burst %d", i), r, true, lim.Burst-i, 0, time.Duration(i)*T)
		if r.Limit != lim {
			t.Fatalf("Result.Limit = %v; want %v", r.Limit, lim)
		}
	}
	wantResult(t, "over burst", allow(t, st, "k", lim, 1), false, 0, T, 5*T)

	// RetryAfter is exact: denied 1ns before it elapses, allowed on it.
	clk.Advance(T - time.Nanosecond)
	wantResult(t, "1ns early", allow(t, st, "k", lim, 1), false, 0, time.Nanosecond, 4*T+time.Nanosecond)
	clk.Advance(time.Nanosecond)
	wantResult(t, "on time", allow(t, st, "k", lim, 1), true, 0, 0, 5*T)

	// Steady state: one per T, never two.
	for i := 0; i < 50; i++ {
		clk.Advance(T)
		wantResult(t, fmt.Sprintf("steady %d first", i), allow(t, st, "k", lim, 1), true, 0, 0, 5*T)
		wantResult(t, fmt.Sprintf("steady %d second", i), allow(t, st, "k", lim, 1), false, 0, T, 5*T)
	}

	// Partial recovery: after 2T idle, exactly 2 more.
	clk.Advance(2 * T)
	wantResult(t, "read", allow(t, st, "k", lim, 0), true, 2, 0, 3*T)
	allow(t, st, "k", lim, 1)
	allow(t, st, "k", lim, 1)
	if r := allow(t, st, "k", lim, 1); r.Allowed {
		t.Fatalf("third event after 2T idle allowed: %+v", r)
	}

	// After ResetAfter the key is idle again: a full burst.
	clk.Advance(5 * T)
	for i := 1; i <= lim.Burst; i++ {
		if r := allow(t, st, "k", lim, 1); !r.Allowed {
			t.Fatalf("event %d of refilled burst denied: %+v", i, r)
		}
	}
	if r := allow(t, st, "k", lim, 1); r.Allowed {
		t.Fatalf("event beyond refilled burst allowed: %+v", r)
	}
}

func TestBurstOne(t *testing.T) {
	clk := newFakeClock()
	st := NewLocal(LocalOptions{Now: clk.Now})
	lim := Limit{Rate: 5, Period: time.Minute, Burst: 1} // T = 12s
	wantResult(t, "first", allow(t, st, "k", lim, 1), true, 0, 0, 12*time.Second)
	wantResult(t, "second", allow(t, st, "k", lim, 1), false, 0, 12*time.Second, 12*time.Second)
	clk.Advance(12 * time.Second)
	wantResult(t, "after T", allow(t, st, "k", lim, 1), true, 0, 0, 12*time.Second)
}

func TestAllowN(t *testing.T) {
	clk := newFakeClock()
	st := NewLocal(LocalOptions{Now: clk.Now})
	lim := Limit{Rate: 10, Period: time.Second, Burst: 5}
	const T = 100 * time.Millisecond

	wantResult(t, "read idle", allow(t, st, "k", lim, 0), true, 5, 0, 0)
	if st.Len() != 0 {
		t.Fatalf("a read stored a key: Len = %d", st.Len())
	}
	wantResult(t, "3 of 5", allow(t, st, "k", lim, 3), true, 2, 0, 3*T)
	// 3 more need TAT+3T-τ = 6T-5T = T from now; a denial consumes nothing.
	wantResult(t, "3 more", allow(t, st, "k", lim, 3), false, 2, T, 3*T)
	wantResult(t, "2 more", allow(t, st, "k", lim, 2), true, 0, 0, 5*T)
	wantResult(t, "burst from full", allow(t, st, "k", lim, 5), false, 0, 5*T, 5*T)
	clk.Advance(5 * T)
	wantResult(t, "burst from idle", allow(t, st, "k", lim, 5), true, 0, 0, 5*T)
}

func TestAllowErrors(t *testing.T) {
	st := NewLocal(LocalOptions{Now: newFakeClock().Now})
	ok := Limit{Rate: 1, Period: time.Second, Burst: 2}
	ctx := context.Background()
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		lim  Limit
		n    int
		want error
	}{
		{name: "exceeds burst", ctx: ctx, lim: ok, n: 3, want: ErrExceedsBurst},
		{name: "negative n", ctx: ctx, lim: ok, n: -1, want: ErrInvalidLimit},
		{name: "zero rate", ctx: ctx, lim: Limit{Period: time.Second, Burst: 1}, n: 1, want: ErrInvalidLimit},
		{name: "zero burst", ctx: ctx, lim: Limit{Rate: 1, Period: time.Second}, n: 1, want: ErrInvalidLimit},
		{name: "cancelled", ctx: cancelled, lim: ok, n: 1, want: context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := st.Allow(tt.ctx, "k", tt.lim, tt.n); !errors.Is(err, tt.want) {
				t.Fatalf("Allow error = %v; want %v", err, tt.want)
			}
		})
	}
	if st.Len() != 0 {
		t.Fatalf("failed calls stored keys: Len = %d", st.Len())
	}
}

func TestConcurrentOneKeyNeverExceedsBurst(t *testing.T) {
	clk := newFakeClock() // frozen: never advanced
	st := NewLocal(LocalOptions{Now: clk.Now})
	lim := Limit{Rate: 100, Period: time.Minute, Burst: 10}
	const callers = 1000

	var allowed, denied atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, callers)
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			r, err := st.Allow(context.Background(), "login:alice", lim, 1)
			if err != nil {
				errs <- err
				return
			}
			if r.Allowed {
				allowed.Add(1)
			} else {
				denied.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Allow: %v", err)
	}
	if got := allowed.Load(); got != int64(lim.Burst) {
		t.Fatalf("allowed %d of %d concurrent calls at one instant; want exactly burst %d", got, callers, lim.Burst)
	}
	if got := denied.Load(); got != callers-int64(lim.Burst) {
		t.Fatalf("denied %d; want %d", got, callers-lim.Burst)
	}
}

func TestKeysAreIndependent(t *testing.T) {
	clk := newFakeClock()
	st := NewLocal(LocalOptions{Now: clk.Now})
	lim := Limit{Rate: 1, Period: time.Hour, Burst: 2}
	for _, k := range []string{"a", "b", "c"} {
		for i := 0; i < lim.Burst; i++ {
			if r := allow(t, st, k, lim, 1); !r.Allowed {
				t.Fatalf("key %q event %d denied though other keys are exhausted: %+v", k, i, r)
			}
		}
		if r := allow(t, st, k, lim, 1); r.Allowed {
			t.Fatalf("key %q allowed beyond burst", k)
		}
	}
	if st.Len() != 3 {
		t.Fatalf("Len = %d; want 3", st.Len())
	}
}

func TestMemoryBound(t *testing.T) {
	for _, maxKeys := range []int{1, 10, 100, 1000, 5000} {
		t.Run(strconv.Itoa(maxKeys), func(t *testing.T) {
			clk := newFakeClock() // frozen: every key stays limited, eviction must take live keys
			st := NewLocal(LocalOptions{MaxKeys: maxKeys, Now: clk.Now})
			lim := Limit{Rate: 1, Period: time.Minute, Burst: 1}
			for i := range 3 * maxKeys {
				allow(t, st, "key-"+strconv.Itoa(i), lim, 1)
				if n := st.Len(); n > maxKeys {
					t.Fatalf("after %d inserts Len = %d > MaxKeys %d", i+1, n, maxKeys)
				}
			}
			if st.Len() == 0 {
				t.Fatal("store is empty after inserts")
			}
		})
	}
}

func TestIdleKeysEvictedBeforeLimited(t *testing.T) {
	clk := newFakeClock()
	const maxKeys = 1000
	st := NewLocal(LocalOptions{MaxKeys: maxKeys, Now: clk.Now})
	strict := Limit{Rate: 1, Period: time.Hour, Burst: 1}
	allow(t, st, "victim", strict, 1)

	// Each sprayed key is idle again (TAT in the past) by the next insert.
	fast := Limit{Rate: 1000, Period: time.Second, Burst: 1} // T = 1ms
	for i := range 3 * maxKeys {
		clk.Advance(time.Millisecond)
		allow(t, st, "spray-"+strconv.Itoa(i), fast, 1)
		if n := st.Len(); n > maxKeys {
			t.Fatalf("Len = %d > MaxKeys %d", n, maxKeys)
		}
	}
	r := allow(t, st, "victim", strict, 1)
	wantResult(t, "victim after spray", r, false, 0, time.Hour-3*time.Second, time.Hour-3*time.Second)
}

func TestEarliestTATEvictedWhenAllLimited(t *testing.T) {
	clk := newFakeClock()
	st := NewLocal(LocalOptions{MaxKeys: 3, Now: clk.Now}) // one shard of 3
	hour := Limit{Rate: 1, Period: time.Hour, Burst: 1}
	second := Limit{Rate: 1, Period: time.Second, Burst: 1}
	minute := Limit{Rate: 1, Period: time.Minute, Burst: 1}
	allow(t, st, "hour", hour, 1)
	allow(t, st, "second", second, 1)
	allow(t, st, "minute", minute, 1)
	allow(t, st, "new", minute, 1) // full, nothing idle: evicts the earliest TAT, "second"

	if n := st.Len(); n != 3 {
		t.Fatalf("Len = %d; want 3", n)
	}
	if r := allow(t, st, "hour", hour, 1); r.Allowed {
		t.Fatal(`"hour" was evicted; want the earliest TAT ("second") evicted`)
	}
	if r := allow(t, st, "minute", minute, 1); r.Allowed {
		t.Fatal(`"minute" was evicted; want the earliest TAT ("second") evicted`)
	}
	if r := allow(t, st, "second", second, 1); !r.Allowed {
		t.Fatal(`"second" still limited; want it evicted`)
	}
}

func TestSprayCannotFlushThrottledKey(t *testing.T) {
	clk := newFakeClock() // frozen: sprayed keys never go idle
	st := NewLocal(LocalOptions{MaxKeys: 100, Now: clk.Now})
	login := Limit{Rate: 5, Period: time.Hour, Burst: 5}
	for range login.Burst {
		allow(t, st, "login:alice", login, 1)
	}
	spray := Limit{Rate: 1, Period: time.Second, Burst: 1}
	for i := range 10_000 {
		allow(t, st, "login:spray-"+strconv.Itoa(i), spray, 1)
	}
	if r := allow(t, st, "login:alice", login, 1); r.Allowed {
		t.Fatal("spraying distinct keys flushed a throttled key")
	}
}

func TestExpiredKeysSweptOnInsert(t *testing.T) {
	clk := newFakeClock()
	st := NewLocal(LocalOptions{MaxKeys: 1000, Now: clk.Now})
	lim := Limit{Rate: 1, Period: time.Second, Burst: 1}
	for i := range 500 {
		allow(t, st, "old-"+strconv.Itoa(i), lim, 1)
	}
	clk.Advance(time.Second) // all 500 idle now
	for i := range 500 {
		allow(t, st, "new-"+strconv.Itoa(i), lim, 1)
	}
	// Each insert sweeps up to sweepPerInsert idle keys from its own shard;
	// with 500 inserts spread over the shards most old keys are gone.
	if n := st.Len(); n >= 1000 {
		t.Fatalf("Len = %d; idle keys were not swept", n)
	}
}

func BenchmarkAllow(b *testing.B) {
	lim := Limit{Rate: 100, Period: time.Second, Burst: 20}
	for _, bc := range []struct {
		name    string
		keys    int
		maxKeys int
	}{
		{name: "keys=100k", keys: 100_000, maxKeys: 0},
		{name: "keys=1M/max=100k", keys: 1_000_000, maxKeys: 100_000}, // constant eviction
	} {
		b.Run(bc.name, func(b *testing.B) {
			keys := make([]string, bc.keys)
			for i := range keys {
				keys[i] = "ip:10." + strconv.Itoa(i>>16&255) + "." + strconv.Itoa(i>>8&255) + "." + strconv.Itoa(i&255) + "/" + strconv.Itoa(i)
			}
			st := NewLocal(LocalOptions{MaxKeys: bc.maxKeys})
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
		})
	}
}
