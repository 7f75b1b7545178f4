package bruteforce

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// newLocalHarness is a harness over a Local store with its fake clock.
func newLocalHarness(t *testing.T, o Options, maxKeys int) (*harness, *fakeClock, *Local) {
	t.Helper()
	clk := newFakeClock()
	st := NewLocal(LocalOptions{MaxKeys: maxKeys, Now: clk.Now})
	f := storeFactory{name: "local", exact: true, open: func(testing.TB) (Store, Store, func(time.Duration)) {
		return st, st, clk.Advance
	}}
	return newHarness(t, f, o), clk, st
}

func TestLocalExactTimes(t *testing.T) {
	const (
		window  = 15 * time.Minute
		lockout = 10 * time.Minute
	)
	o := Options{MaxFailures: 5, Window: window, Lockout: lockout}
	cases := []struct {
		name string
		run  func(t *testing.T, h *harness, clk *fakeClock)
	}{
		{"lock lasts exactly Lockout from the locking failure", func(t *testing.T, h *harness, clk *fakeClock) {
			for i := range 5 {
				clk.Advance(time.Second)
				h.fail(i, "u1", "c1")
			}
			h.wantBlock("at lock", h.check("u1", "c1"), ReasonUsernameLocked, lockout, true)
			clk.Advance(time.Minute)
			h.fail(0, "u1", "c1") // attempts while locked do not extend it
			h.wantBlock("1m later", h.check("u1", "c1"), ReasonUsernameLocked, lockout-time.Minute, true)
			clk.Advance(lockout - time.Minute - time.Nanosecond)
			h.wantBlock("1ns before the end", h.check("u1", "c1"), ReasonUsernameLocked, time.Nanosecond, true)
			clk.Advance(time.Nanosecond)
			h.wantOpen("at the end", h.check("u1", "c1"))
		}},
		{"fixed window from the first failure", func(t *testing.T, h *harness, clk *fakeClock) {
			h.fail(0, "u1", "c1")
			clk.Advance(window / 2)
			h.fail(1, "u1", "c1")
			clk.Advance(window/2 - time.Nanosecond)
			if v := h.check("u1", "c1"); v.Failures != 2 {
				t.Fatalf("1ns before the window ends: Failures %d; want 2", v.Failures)
			}
			clk.Advance(time.Nanosecond)
			if v := h.check("u1", "c1"); v.Failures != 0 {
				t.Fatalf("at the window's end: Failures %d; want 0 (the second failure goes too)", v.Failures)
			}
		}},
		{"lock longer than the window", func(t *testing.T, h *harness, clk *fakeClock) {
			h2 := *h
			g, err := New(h.sa, Options{MaxFailures: 2, Window: time.Minute, Lockout: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			h2.a, h2.b = g, g
			h2.fail(0, "u1", "c1")
			h2.fail(0, "u1", "c1")
			clk.Advance(30 * time.Minute)
			v := h2.check("u1", "c1")
			h2.wantBlock("count window over, lock on", v, ReasonUsernameLocked, 30*time.Minute, true)
			if v.Failures != 0 {
				t.Fatalf("Failures %d; want 0 once the window is over", v.Failures)
			}
		}},
		{"stuffing flag lasts until the set's window ends, alert once per window", func(t *testing.T, h *harness, clk *fakeClock) {
			for round := range 2 {
				alerts := 0
				for i := 1; i <= 12; i++ {
					_, as := h.fail(i, fmt.Sprintf("r%du%d", round, i), "c1")
					alerts += len(as)
					if i == 1 {
						clk.Advance(time.Minute) // the set's window started at the first member
					}
				}
				if alerts != 1 {
					t.Fatalf("round %d: %d alerts; want 1", round, alerts)
				}
				h.wantBlock("flagged", h.check("x", "c1"), ReasonCredentialStuffing, window-time.Minute, true)
				clk.Advance(window - time.Minute)
				h.wantOpen("window over", h.check("x", "c1"))
			}
		}},
		{"success after a served lock", func(t *testing.T, h *harness, clk *fakeClock) {
			for i := range 5 {
				h.fail(i, "u1", "c1")
			}
			clk.Advance(lockout)
			h.success("u1", "c1")
			if v := h.check("u1", "c1"); v.Block || v.Failures != 0 {
				t.Fatalf("after lock and success: %+v", v)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, clk, _ := newLocalHarness(t, o, 0)
			tc.run(t, h, clk)
		})
	}
}

func TestLocalBoundedMemory(t *testing.T) {
	const (
		maxKeys = 1000
		spray   = 100_000
	)
	cases := []struct {
		name    string
		advance time.Duration // between sprayed failures
	}{
		{"all live", 0},
		{"expiring as it goes", time.Millisecond},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := Options{MaxFailures: 3, Window: 10 * time.Second, Lockout: time.Hour, MaxClientsPerUsername: 5}
			h, clk, st := newLocalHarness(t, o, maxKeys)
			// A victim locked (and flagged) before the flood.
			for i := range 6 {
				h.fail(i, "victim", fmt.Sprintf("v%d", i))
			}
			h.wantBlock("victim before", h.check("victim", "x"), ReasonUsernameLocked, time.Hour, true)
			for i := range spray {
				h.fail(i, fmt.Sprintf("u%d", i), fmt.Sprintf("c%d", i))
				clk.Advance(tc.advance)
				if i%10_000 == 0 {
					if n := st.Len(); n > maxKeys {
						t.Fatalf("after %d: Len %d > MaxKeys %d", i, n, maxKeys)
					}
				}
			}
			if n := st.Len(); n > maxKeys {
				t.Fatalf("Len %d > MaxKeys %d", n, maxKeys)
			}
			v := h.check("victim", "x")
			if !v.Block || v.Reason != ReasonUsernameLocked {
				t.Fatalf("victim after a flood of %d keys: %+v; want still locked", spray, v)
			}
			// The newest sprayed keys are kept.
			if v := h.check(fmt.Sprintf("u%d", spray-1), ""); v.Failures != 1 {
				t.Fatalf("newest key: Failures %d; want 1", v.Failures)
			}
		})
	}
}

func TestLocalEvictsExpiredFirst(t *testing.T) {
	clk := newFakeClock()
	st := NewLocal(LocalOptions{MaxKeys: 10, Now: clk.Now}) // one shard
	p := Policy{Window: time.Minute, Lockout: time.Minute, MaxFailures: 100, MaxClientFailures: 100,
		MaxUsernamesPerClient: 10, MaxClientsPerUsername: 10}
	ctx := context.Background()
	record := func(user string) {
		t.Helper()
		if _, err := st.RecordFailure(ctx, user, "", p); err != nil {
			t.Fatal(err)
		}
	}
	record("old") // ends at 1m
	clk.Advance(30 * time.Second)
	for i := range 9 {
		record(fmt.Sprintf("mid%d", i)) // end at 1m30s
	}
	clk.Advance(40 * time.Second) // "old" expired, the rest live
	record("new")
	for i := range 9 {
		if s, _ := st.State(ctx, fmt.Sprintf("mid%d", i), ""); s.User.Failures != 1 {
			t.Fatalf("mid%d evicted while an expired key was there", i)
		}
	}
	record("newer") // full, nothing expired: the oldest live key goes
	n := 0
	for i := range 9 {
		if s, _ := st.State(ctx, fmt.Sprintf("mid%d", i), ""); s.User.Failures == 1 {
			n++
		}
	}
	if n != 8 || st.Len() != 10 {
		t.Fatalf("%d of 9 mid keys kept, Len %d; want 8 and 10", n, st.Len())
	}
}

func TestLocalCancelledContext(t *testing.T) {
	st := NewLocal(LocalOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p := Policy{Window: time.Minute, Lockout: time.Minute, MaxFailures: 1, MaxClientFailures: 1,
		MaxUsernamesPerClient: 1, MaxClientsPerUsername: 1}
	if _, err := st.RecordFailure(ctx, "u", "c", p); err != context.Canceled {
		t.Fatalf("RecordFailure: %v; want context.Canceled", err)
	}
	if _, err := st.State(ctx, "u", "c"); err != context.Canceled {
		t.Fatalf("State: %v; want context.Canceled", err)
	}
	if err := st.Reset(ctx, "u"); err != context.Canceled {
		t.Fatalf("Reset: %v; want context.Canceled", err)
	}
}
