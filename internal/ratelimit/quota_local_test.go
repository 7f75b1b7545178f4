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

// Set moves the fake clock to t, forwards or backwards.
func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func take(t *testing.T, s QuotaStore, key string, q Quota, n int64) QuotaResult {
	t.Helper()
	r, err := s.Take(context.Background(), key, q, n)
	if err != nil {
		t.Fatalf("Take(%q, %v, %d): %v", key, q, n, err)
	}
	return r
}

func wantQuota(t *testing.T, step string, got QuotaResult, allowed bool, remaining int64, reset time.Duration) {
	t.Helper()
	if got.Allowed != allowed || got.Remaining != remaining || got.ResetAfter != reset {
		t.Fatalf("%s: got {Allowed:%v Remaining:%d ResetAfter:%s}; want {Allowed:%v Remaining:%d ResetAfter:%s}",
			step, got.Allowed, got.Remaining, got.ResetAfter, allowed, remaining, reset)
	}
}

func TestLocalQuotaLimitThenDeny(t *testing.T) {
	clk := newFakeClock() // 2026-01-02 03:04:05 UTC
	st := NewLocalQuotas(LocalQuotaOptions{Now: clk.Now})
	q := Quota{Limit: 5, Period: Day}
	reset := 20*time.Hour + 55*time.Minute + 55*time.Second // to 2026-01-03 00:00 UTC

	wantQuota(t, "read idle", take(t, st, "k", q, 0), true, 5, reset)
	if st.Len() != 0 {
		t.Fatalf("a read stored a counter: Len = %d", st.Len())
	}
	for i := int64(1); i <= q.Limit; i++ {
		r := take(t, st, "k", q, 1)
		wantQuota(t, fmt.Sprintf("take %d", i), r, true, q.Limit-i, reset)
		if r.Quota != q || r.Fallback {
			t.Fatalf("take %d: Quota = %v, Fallback = %v; want %v, false", i, r.Quota, r.Fallback, q)
		}
	}
	wantQuota(t, "over limit", take(t, st, "k", q, 1), false, 0, reset)
	wantQuota(t, "read exhausted", take(t, st, "k", q, 0), true, 0, reset)

	// A denied take consumes nothing.
	wantQuota(t, "3 of 5", take(t, st, "n", q, 3), true, 2, reset)
	wantQuota(t, "3 more", take(t, st, "n", q, 3), false, 2, reset)
	wantQuota(t, "2 more", take(t, st, "n", q, 2), true, 0, reset)

	// Time passing inside the window gives nothing back.
	clk.Advance(reset - time.Nanosecond)
	wantQuota(t, "last ns of window", take(t, st, "k", q, 1), false, 0, time.Nanosecond)
	clk.Advance(time.Nanosecond)
	wantQuota(t, "next window", take(t, st, "k", q, 5), true, 0, 24*time.Hour)
}

func TestLocalQuotaCalendarBoundaries(t *testing.T) {
	utc := func(y int, m time.Month, d, h, mi, s, ns int) time.Time {
		return time.Date(y, m, d, h, mi, s, ns, time.UTC)
	}
	const day = 24 * time.Hour
	type step struct {
		at        time.Time
		n         int64
		allowed   bool
		remaining int64
		reset     time.Duration
	}
	tests := []struct {
		name  string
		q     Quota
		steps []step
	}{
		{name: "day Jan 31 to Feb 1", q: Quota{Limit: 3, Period: Day}, steps: []step{
			{utc(2026, 1, 31, 0, 0, 0, 0), 3, true, 0, day},
			{utc(2026, 1, 31, 23, 59, 59, 999999999), 1, false, 0, time.Nanosecond},
			{utc(2026, 2, 1, 0, 0, 0, 0), 1, true, 2, day},
		}},
		{name: "month Jan 31 to Feb 1", q: Quota{Limit: 3, Period: Month}, steps: []step{
			{utc(2026, 1, 1, 0, 0, 0, 0), 2, true, 1, 31 * day},
			{utc(2026, 1, 31, 23, 0, 0, 0), 1, true, 0, time.Hour},
			{utc(2026, 1, 31, 23, 59, 59, 0), 1, false, 0, time.Second},
			{utc(2026, 2, 1, 0, 0, 0, 0), 1, true, 2, 28 * day}, // 2026 is not a leap year
			{utc(2026, 2, 28, 12, 0, 0, 0), 2, true, 0, day / 2},
			{utc(2026, 3, 1, 0, 0, 0, 0), 3, true, 0, 31 * day},
		}},
		{name: "day Dec 31 to Jan 1", q: Quota{Limit: 2, Period: Day}, steps: []step{
			{utc(2026, 12, 31, 23, 0, 0, 0), 2, true, 0, time.Hour},
			{utc(2026, 12, 31, 23, 59, 59, 0), 1, false, 0, time.Second},
			{utc(2027, 1, 1, 0, 0, 0, 0), 2, true, 0, day},
		}},
		{name: "month Dec 31 to Jan 1", q: Quota{Limit: 2, Period: Month}, steps: []step{
			{utc(2026, 12, 1, 0, 0, 0, 0), 2, true, 0, 31 * day},
			{utc(2026, 12, 31, 23, 59, 59, 0), 1, false, 0, time.Second},
			{utc(2027, 1, 1, 0, 0, 0, 0), 1, true, 1, 31 * day},
		}},
		{name: "day leap Feb 28 to 29 to Mar 1", q: Quota{Limit: 1, Period: Day}, steps: []step{
			{utc(2028, 2, 28, 23, 0, 0, 0), 1, true, 0, time.Hour},
			{utc(2028, 2, 29, 0, 0, 0, 0), 1, true, 0, day}, // Feb 29 is a day of its own
			{utc(2028, 2, 29, 23, 59, 0, 0), 1, false, 0, time.Minute},
			{utc(2028, 3, 1, 0, 0, 0, 0), 1, true, 0, day},
		}},
		{name: "month leap February", q: Quota{Limit: 2, Period: Month}, steps: []step{
			{utc(2028, 2, 1, 0, 0, 0, 0), 1, true, 1, 29 * day}, // 2028 is a leap year
			{utc(2028, 2, 28, 0, 0, 0, 0), 1, true, 0, 2 * day},
			{utc(2028, 2, 29, 12, 0, 0, 0), 1, false, 0, day / 2}, // Feb 29 is still February
			{utc(2028, 3, 1, 0, 0, 0, 0), 1, true, 1, 31 * day},
		}},
		{name: "windows are UTC whatever the clock's zone", q: Quota{Limit: 1, Period: Day}, steps: []step{
			{time.Date(2026, 2, 1, 8, 0, 0, 0, time.FixedZone("UTC+9", 9*3600)), 1, true, 0, time.Hour}, // Jan 31 23:00 UTC
			{utc(2026, 1, 31, 23, 30, 0, 0), 1, false, 0, 30 * time.Minute},
			{utc(2026, 2, 1, 0, 0, 0, 0), 1, true, 0, day},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newFakeClock()
			st := NewLocalQuotas(LocalQuotaOptions{Now: clk.Now})
			for i, s := range tt.steps {
				clk.Set(s.at)
				wantQuota(t, fmt.Sprintf("step %d at %s", i, s.at), take(t, st, "k", tt.q, s.n), s.allowed, s.remaining, s.reset)
			}
		})
	}
}

func TestLocalQuotaKeysAndPeriodsIndependent(t *testing.T) {
	clk := newFakeClock()
	st := NewLocalQuotas(LocalQuotaOptions{Now: clk.Now})
	day := Quota{Limit: 2, Period: Day}
	month := Quota{Limit: 3, Period: Month}
	take(t, st, "a", day, 2)
	if r := take(t, st, "a", day, 1); r.Allowed {
		t.Fatal("day quota of a allowed beyond limit")
	}
	if r := take(t, st, "a", month, 3); !r.Allowed {
		t.Fatal("month counter of a is affected by its day counter")
	}
	if r := take(t, st, "b", day, 2); !r.Allowed {
		t.Fatal("day counter of b is affected by a's")
	}
	// One counter per key and period: a larger limit sees the same count.
	if r := take(t, st, "a", Quota{Limit: 10, Period: Day}, 0); r.Remaining != 8 {
		t.Fatalf("Remaining under 10/day after 2 taken = %d; want 8", r.Remaining)
	}
	if st.Len() != 3 {
		t.Fatalf("Len = %d; want 3", st.Len())
	}
}

func TestLocalQuotaErrors(t *testing.T) {
	st := NewLocalQuotas(LocalQuotaOptions{Now: newFakeClock().Now})
	ok := Quota{Limit: 2, Period: Day}
	ctx := context.Background()
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		q    Quota
		n    int64
		want error
	}{
		{name: "exceeds limit", ctx: ctx, q: ok, n: 3, want: ErrExceedsBurst},
		{name: "negative n", ctx: ctx, q: ok, n: -1, want: ErrInvalidLimit},
		{name: "zero limit", ctx: ctx, q: Quota{Period: Day}, n: 1, want: ErrInvalidLimit},
		{name: "no period", ctx: ctx, q: Quota{Limit: 1}, n: 1, want: ErrInvalidLimit},
		{name: "cancelled", ctx: cancelled, q: ok, n: 1, want: context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := st.Take(tt.ctx, "k", tt.q, tt.n); !errors.Is(err, tt.want) {
				t.Fatalf("Take error = %v; want %v", err, tt.want)
			}
		})
	}
	if st.Len() != 0 {
		t.Fatalf("failed calls stored counters: Len = %d", st.Len())
	}
}

func TestLocalQuotaConcurrentExactlyLimit(t *testing.T) {
	st := NewLocalQuotas(LocalQuotaOptions{Now: newFakeClock().Now})
	q := Quota{Limit: 37, Period: Month}
	const callers = 1000
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			r, err := st.Take(context.Background(), "k", q, 1)
			if err != nil {
				t.Error(err)
				return
			}
			if r.Allowed {
				allowed.Add(1)
			}
		})
	}
	wg.Wait()
	if got := allowed.Load(); got != q.Limit {
		t.Fatalf("allowed %d of %d concurrent takes; want exactly %d", got, callers, q.Limit)
	}
}

func TestLocalQuotaMemoryBound(t *testing.T) {
	for _, maxKeys := range []int{1, 10, 100, 1000, 5000} {
		t.Run(strconv.Itoa(maxKeys), func(t *testing.T) {
			clk := newFakeClock() // frozen: every counter stays live, eviction must take live ones
			st := NewLocalQuotas(LocalQuotaOptions{MaxKeys: maxKeys, Now: clk.Now})
			q := Quota{Limit: 10, Period: Day}
			for i := range 3 * maxKeys {
				take(t, st, "key-"+strconv.Itoa(i), q, 1)
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

func TestLocalQuotaEndedWindowsEvictedFirst(t *testing.T) {
	clk := newFakeClock()
	clk.Set(time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC))
	const maxKeys = 100 // a single shard
	st := NewLocalQuotas(LocalQuotaOptions{MaxKeys: maxKeys, Now: clk.Now})
	day := Quota{Limit: 50, Period: Day}
	month := Quota{Limit: 1, Period: Month}

	// Jan 15: an exhausted monthly counter with the lowest count (1), and
	// heavy daily counters (50).
	take(t, st, "victim", month, 1)
	for i := range maxKeys - 1 {
		take(t, st, "heavy-"+strconv.Itoa(i), day, 50)
	}
	if st.Len() != maxKeys {
		t.Fatalf("Len = %d; want %d", st.Len(), maxKeys)
	}

	// Jan 16: the daily counters have ended and go first, although the
	// victim's live count is lower than theirs and than the new ones (2).
	clk.Set(time.Date(2026, 1, 16, 0, 0, 0, 0, time.UTC))
	for i := range maxKeys - 1 {
		take(t, st, "new-"+strconv.Itoa(i), day, 2)
		if n := st.Len(); n > maxKeys {
			t.Fatalf("Len = %d > MaxKeys %d", n, maxKeys)
		}
	}
	if r := take(t, st, "victim", month, 1); r.Allowed {
		t.Fatal("a live counter was evicted while ended ones remained")
	}
	for i := range maxKeys - 1 {
		if r := take(t, st, "new-"+strconv.Itoa(i), day, 0); r.Remaining != 48 {
			t.Fatalf("new-%d: Remaining = %d; want 48 (counter kept)", i, r.Remaining)
		}
	}
}

func TestLocalQuotaSprayCannotFlushExhaustedCounter(t *testing.T) {
	clk := newFakeClock() // frozen: sprayed counters never end
	const maxKeys = 100
	st := NewLocalQuotas(LocalQuotaOptions{MaxKeys: maxKeys, Now: clk.Now})
	month := Quota{Limit: 5, Period: Month}
	take(t, st, "victim", month, 5)
	for i := range 10 * maxKeys {
		take(t, st, "spray-"+strconv.Itoa(i), Quota{Limit: 10, Period: Day}, 1)
		if n := st.Len(); n > maxKeys {
			t.Fatalf("Len = %d > MaxKeys %d", n, maxKeys)
		}
	}
	// Live counters: the lowest counts (the sprayed 1s) go before the victim's 5.
	if r := take(t, st, "victim", month, 1); r.Allowed {
		t.Fatal("spraying distinct keys flushed an exhausted quota counter")
	}
}
