package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// fakeHealth is a Health gate whose state the test sets; it records every
// Observe call.
type fakeHealth struct {
	mu       sync.Mutex
	up       bool
	observed []error
}

func (h *fakeHealth) Up() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.up
}

func (h *fakeHealth) Observe(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.observed = append(h.observed, err)
}

func (h *fakeHealth) set(up bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.up = up
}

func (h *fakeHealth) take() []error {
	h.mu.Lock()
	defer h.mu.Unlock()
	o := h.observed
	h.observed = nil
	return o
}

// fakePrimary answers every call with err, or, when err is nil, with an
// allowed decision marked by Remaining/ResetAfter values no fallback uses.
type fakePrimary struct {
	mu    sync.Mutex
	err   error
	calls int
}

const primaryMark = 4242

func (p *fakePrimary) Allow(_ context.Context, _ string, l Limit, _ int) (Result, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	if p.err != nil {
		return Result{}, p.err
	}
	return Result{Allowed: true, Remaining: primaryMark, Limit: l}, nil
}

func (p *fakePrimary) Take(_ context.Context, _ string, q Quota, _ int64) (QuotaResult, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	if p.err != nil {
		return QuotaResult{}, p.err
	}
	return QuotaResult{Allowed: true, Remaining: primaryMark, Quota: q}, nil
}

func (p *fakePrimary) setErr(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.err = err
}

func (p *fakePrimary) callCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls
}

var errConnRefused = errors.New("ratelimit: redis: dial tcp 127.0.0.1:6379: connect: connection refused")

// failoverFixture builds a Failover over a fake primary, a fake gate, and a
// local fallback on a frozen clock, recording onFallback calls.
type failoverFixture struct {
	f        *Failover
	primary  *fakePrimary
	health   *fakeHealth
	clk      *fakeClock
	mu       sync.Mutex
	fallback []error
}

func newFailoverFixture(p FallbackPolicy) *failoverFixture {
	x := &failoverFixture{primary: &fakePrimary{}, health: &fakeHealth{up: true}, clk: newFakeClock()}
	local := LocalStores{
		Local:       NewLocal(LocalOptions{Now: x.clk.Now}),
		LocalQuotas: NewLocalQuotas(LocalQuotaOptions{Now: x.clk.Now}),
	}
	x.f = NewFailover(x.primary, local, x.health, p, func(err error) {
		x.mu.Lock()
		defer x.mu.Unlock()
		x.fallback = append(x.fallback, err)
	})
	x.f.now = x.clk.Now
	return x
}

func (x *failoverFixture) takeFallbacks() []error {
	x.mu.Lock()
	defer x.mu.Unlock()
	o := x.fallback
	x.fallback = nil
	return o
}

func sameErrs(got, want []error) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}

func TestFailoverPolicies(t *testing.T) {
	lim := Limit{Rate: 1, Period: time.Hour, Burst: 3}
	q := Quota{Limit: 3, Period: Day}
	dayLeft := 20*time.Hour + 55*time.Minute + 55*time.Second // fake clock is 03:04:05 UTC
	tests := []struct {
		name   string
		policy FallbackPolicy
		// wantAllow lists the Allow results of four calls of n=1 on one key.
		wantAllow []Result
		wantTake  []QuotaResult
	}{
		{name: "local", policy: FallbackLocal,
			wantAllow: []Result{
				{Allowed: true, Remaining: 2, ResetAfter: time.Hour},
				{Allowed: true, Remaining: 1, ResetAfter: 2 * time.Hour},
				{Allowed: true, Remaining: 0, ResetAfter: 3 * time.Hour},
				{Allowed: false, Remaining: 0, RetryAfter: time.Hour, ResetAfter: 3 * time.Hour},
			},
			wantTake: []QuotaResult{
				{Allowed: true, Remaining: 2, ResetAfter: dayLeft},
				{Allowed: true, Remaining: 1, ResetAfter: dayLeft},
				{Allowed: true, Remaining: 0, ResetAfter: dayLeft},
				{Allowed: false, Remaining: 0, ResetAfter: dayLeft},
			}},
		{name: "open", policy: FallbackOpen,
			wantAllow: []Result{
				{Allowed: true, Remaining: 3}, {Allowed: true, Remaining: 3},
				{Allowed: true, Remaining: 3}, {Allowed: true, Remaining: 3},
			},
			wantTake: []QuotaResult{
				{Allowed: true, Remaining: 3, ResetAfter: dayLeft}, {Allowed: true, Remaining: 3, ResetAfter: dayLeft},
				{Allowed: true, Remaining: 3, ResetAfter: dayLeft}, {Allowed: true, Remaining: 3, ResetAfter: dayLeft},
			}},
		{name: "closed", policy: FallbackClosed,
			wantAllow: []Result{
				{RetryAfter: time.Second, ResetAfter: time.Second}, {RetryAfter: time.Second, ResetAfter: time.Second},
				{RetryAfter: time.Second, ResetAfter: time.Second}, {RetryAfter: time.Second, ResetAfter: time.Second},
			},
			wantTake: []QuotaResult{
				{ResetAfter: time.Second}, {ResetAfter: time.Second},
				{ResetAfter: time.Second}, {ResetAfter: time.Second},
			}},
	}
	for _, tt := range tests {
		for _, down := range []bool{false, true} {
			name := tt.name + "/primary error"
			if down {
				name = tt.name + "/gate down"
			}
			t.Run(name, func(t *testing.T) {
				x := newFailoverFixture(tt.policy)
				x.primary.setErr(errConnRefused)
				x.health.set(!down)
				wantNotified := errConnRefused
				if down {
					wantNotified = nil
				}
				ctx := context.Background()
				for i, want := range tt.wantAllow {
					got, err := x.f.Allow(ctx, "k", lim, 1)
					if err != nil {
						t.Fatalf("Allow %d: %v", i, err)
					}
					want.Limit, want.Fallback = lim, true
					if got != want {
						t.Fatalf("Allow %d = %+v; want %+v", i, got, want)
					}
				}
				for i, want := range tt.wantTake {
					got, err := x.f.Take(ctx, "k", q, 1)
					if err != nil {
						t.Fatalf("Take %d: %v", i, err)
					}
					want.Quota, want.Fallback = q, true
					if got != want {
						t.Fatalf("Take %d = %+v; want %+v", i, got, want)
					}
				}
				calls := len(tt.wantAllow) + len(tt.wantTake)
				wantObserved := make([]error, calls)
				wantFallback := make([]error, calls)
				for i := range calls {
					wantObserved[i], wantFallback[i] = errConnRefused, wantNotified
				}
				if down {
					wantObserved = nil
					if n := x.primary.callCount(); n != 0 {
						t.Fatalf("primary called %d times while the gate was down", n)
					}
				}
				if got := x.health.take(); !sameErrs(got, wantObserved) {
					t.Fatalf("Observe calls = %v; want %v", got, wantObserved)
				}
				if got := x.takeFallbacks(); !sameErrs(got, wantFallback) {
					t.Fatalf("onFallback calls = %v; want %v", got, wantFallback)
				}
			})
		}
	}
}

func TestFailoverPrimarySuccessAndRecovery(t *testing.T) {
	x := newFailoverFixture(FallbackLocal)
	lim := Limit{Rate: 1, Period: time.Hour, Burst: 3}
	q := Quota{Limit: 3, Period: Month}
	ctx := context.Background()

	check := func(step string, wantPrimary bool, wantObserved, wantFallback []error) {
		t.Helper()
		r, err := x.f.Allow(ctx, "k", lim, 1)
		if err != nil {
			t.Fatalf("%s: Allow: %v", step, err)
		}
		qr, err := x.f.Take(ctx, "k", q, 1)
		if err != nil {
			t.Fatalf("%s: Take: %v", step, err)
		}
		fromPrimary := r.Remaining == primaryMark && qr.Remaining == primaryMark
		if fromPrimary != wantPrimary || r.Fallback == wantPrimary || qr.Fallback == wantPrimary {
			t.Fatalf("%s: results %+v, %+v; want from primary = %v", step, r, qr, wantPrimary)
		}
		if got := x.health.take(); !sameErrs(got, wantObserved) {
			t.Fatalf("%s: Observe calls = %v; want %v", step, got, wantObserved)
		}
		if got := x.takeFallbacks(); !sameErrs(got, wantFallback) {
			t.Fatalf("%s: onFallback calls = %v; want %v", step, got, wantFallback)
		}
	}

	check("healthy", true, []error{nil, nil}, nil)
	x.primary.setErr(errConnRefused)
	check("failing", false, []error{errConnRefused, errConnRefused}, []error{errConnRefused, errConnRefused})
	x.health.set(false) // the gate backs off: the primary is not tried
	calls := x.primary.callCount()
	check("down", false, nil, []error{nil, nil})
	if x.primary.callCount() != calls {
		t.Fatal("primary called while the gate was down")
	}
	x.primary.setErr(nil)
	x.health.set(true) // back-off over: the primary decides again
	check("recovered", true, []error{nil, nil}, nil)
}

func TestFailoverArgumentErrorsPassThrough(t *testing.T) {
	for _, sentinel := range []error{ErrInvalidLimit, ErrExceedsBurst} {
		t.Run(sentinel.Error(), func(t *testing.T) {
			x := newFailoverFixture(FallbackOpen)
			perr := fmt.Errorf("%w: from the primary", sentinel)
			x.primary.setErr(perr)
			if _, err := x.f.Allow(context.Background(), "k", Limit{Rate: 1, Period: time.Second, Burst: 1}, 1); err != perr {
				t.Fatalf("Allow error = %v; want the primary's %v", err, perr)
			}
			if _, err := x.f.Take(context.Background(), "k", Quota{Limit: 1, Period: Day}, 1); err != perr {
				t.Fatalf("Take error = %v; want the primary's %v", err, perr)
			}
			if got := x.health.take(); len(got) != 0 {
				t.Fatalf("argument errors observed as failures: %v", got)
			}
			if got := x.takeFallbacks(); len(got) != 0 {
				t.Fatalf("onFallback called for argument errors: %v", got)
			}
		})
	}
}

func TestFailoverRejectsBadArgumentsUnderEveryPolicy(t *testing.T) {
	tests := []struct {
		name string
		lim  Limit
		n    int
		q    Quota
		qn   int64
		want error
	}{
		{name: "invalid", lim: Limit{}, n: 1, q: Quota{}, qn: 1, want: ErrInvalidLimit},
		{name: "negative", lim: Limit{Rate: 1, Period: time.Second, Burst: 1}, n: -1, q: Quota{Limit: 1, Period: Day}, qn: -1, want: ErrInvalidLimit},
		{name: "exceeds", lim: Limit{Rate: 1, Period: time.Second, Burst: 1}, n: 2, q: Quota{Limit: 1, Period: Day}, qn: 2, want: ErrExceedsBurst},
	}
	for _, p := range []FallbackPolicy{FallbackLocal, FallbackOpen, FallbackClosed} {
		for _, tt := range tests {
			t.Run(p.String()+"/"+tt.name, func(t *testing.T) {
				x := newFailoverFixture(p)
				x.health.set(false) // even without the primary
				if _, err := x.f.Allow(context.Background(), "k", tt.lim, tt.n); !errors.Is(err, tt.want) {
					t.Fatalf("Allow error = %v; want %v", err, tt.want)
				}
				if _, err := x.f.Take(context.Background(), "k", tt.q, tt.qn); !errors.Is(err, tt.want) {
					t.Fatalf("Take error = %v; want %v", err, tt.want)
				}
				if got := x.takeFallbacks(); len(got) != 0 {
					t.Fatalf("onFallback called for bad arguments: %v", got)
				}
			})
		}
	}
}

func TestFailoverCallerContextIsNotAnOutage(t *testing.T) {
	x := newFailoverFixture(FallbackOpen)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	x.primary.setErr(fmt.Errorf("ratelimit: redis: %w", context.Canceled))
	r, err := x.f.Allow(ctx, "k", Limit{Rate: 1, Period: time.Second, Burst: 1}, 1)
	if !errors.Is(err, context.Canceled) || r.Allowed {
		t.Fatalf("Allow = %+v, %v; want context.Canceled and no decision", r, err)
	}
	qr, err := x.f.Take(ctx, "k", Quota{Limit: 1, Period: Day}, 1)
	if !errors.Is(err, context.Canceled) || qr.Allowed {
		t.Fatalf("Take = %+v, %v; want context.Canceled and no decision", qr, err)
	}
	if got := x.health.take(); len(got) != 0 {
		t.Fatalf("a cancelled caller was observed as a store failure: %v", got)
	}
	if got := x.takeFallbacks(); len(got) != 0 {
		t.Fatalf("onFallback called for a cancelled caller: %v", got)
	}

	// A deadline in the store (not the caller's) is an outage.
	x.primary.setErr(fmt.Errorf("ratelimit: redis: %w", context.DeadlineExceeded))
	r, err = x.f.Allow(context.Background(), "k", Limit{Rate: 1, Period: time.Second, Burst: 1}, 1)
	if err != nil || !r.Allowed || !r.Fallback {
		t.Fatalf("Allow after a store timeout = %+v, %v; want an open fallback decision", r, err)
	}
	if got := x.health.take(); len(got) != 1 || got[0] == nil {
		t.Fatalf("store timeout observed as %v; want one failure", got)
	}
}

func TestFailoverNilHealthAndCallback(t *testing.T) {
	p := &fakePrimary{err: errConnRefused}
	f := NewFailover(p, LocalStores{NewLocal(LocalOptions{}), NewLocalQuotas(LocalQuotaOptions{})}, nil, FallbackLocal, nil)
	r, err := f.Allow(context.Background(), "k", Limit{Rate: 1, Period: time.Second, Burst: 1}, 1)
	if err != nil || !r.Allowed || !r.Fallback {
		t.Fatalf("Allow = %+v, %v; want a local fallback decision", r, err)
	}
	if p.callCount() != 1 {
		t.Fatalf("primary calls = %d; want 1 (nil Health is always up)", p.callCount())
	}
}
