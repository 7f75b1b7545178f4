package bruteforce

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestBehaviourLocal(t *testing.T) { runBehaviour(t, localFactory()) }
func TestBehaviourRedis(t *testing.T) { runBehaviour(t, redisFactory()) }

// runBehaviour is the behaviour suite every Store must pass. Windows are
// seconds long so that real time (Redis) cannot end one mid-case; cases
// about expiry use short ones and wait past them.
func runBehaviour(t *testing.T, f storeFactory) {
	base := Options{MaxFailures: 5, Window: 10 * time.Second, Lockout: 5 * time.Second}
	with := func(mod func(*Options)) Options {
		o := base
		mod(&o)
		return o
	}
	cases := []struct {
		name string
		opts Options
		run  func(t *testing.T, h *harness)
	}{
		{"username locked after MaxFailures", base, func(t *testing.T, h *harness) {
			for i := 1; i <= 5; i++ {
				h.wantOpen(fmt.Sprintf("check %d", i), h.check("u1", "c1"))
				v, alerts := h.fail(i, "u1", "c1")
				if len(alerts) != 0 || v.Failures != i || v.LockedNow != (i == 5) {
					t.Fatalf("failure %d: got %+v, alerts %v; want Failures %d, LockedNow %v", i, v, alerts, i, i == 5)
				}
				if i < 5 {
					h.wantOpen(fmt.Sprintf("failure %d", i), v)
				} else {
					h.wantBlock("failure 5", v, ReasonUsernameLocked, 5*time.Second, true)
				}
			}
			v := h.check("u1", "c1")
			h.wantBlock("6th attempt", v, ReasonUsernameLocked, 5*time.Second, true)
			if v.Failures != 5 {
				t.Fatalf("6th attempt: Failures %d; want 5", v.Failures)
			}
			h.wantBlock("same username, other client", h.check("u1", "c2"), ReasonUsernameLocked, 5*time.Second, true)
			h.wantOpen("other username, other client", h.check("u2", "c2"))
			h.wantOpen("other username, same client", h.check("u2", "c1"))
		}},
		{"attempts while locked neither count nor extend the lock", with(func(o *Options) { o.Lockout = time.Second }), func(t *testing.T, h *harness) {
			for i := range 5 {
				h.fail(i, "u1", "c1")
			}
			first := h.check("u1", "c1")
			h.wantBlock("locked", first, ReasonUsernameLocked, time.Second, true)
			h.wait(100 * time.Millisecond)
			for i := range 3 {
				v, _ := h.fail(i, "u1", "c1")
				if v.LockedNow || v.Failures != 5 {
					t.Fatalf("failure while locked: got %+v; want Failures 5, not LockedNow", v)
				}
			}
			v := h.check("u1", "c1")
			h.wantBlock("still locked", v, ReasonUsernameLocked, first.RetryAfter-100*time.Millisecond, true)
			h.wait(v.RetryAfter + 50*time.Millisecond)
			v = h.check("u1", "c1")
			h.wantOpen("lock served", v)
			if v.Failures != 0 {
				t.Fatalf("lock served: Failures %d; want 0 (a full budget again)", v.Failures)
			}
			for i := 1; i <= 5; i++ {
				v, _ := h.fail(i, "u1", "c1")
				if v.Failures != i || v.Block != (i == 5) || v.LockedNow != (i == 5) {
					t.Fatalf("second round failure %d: got %+v", i, v)
				}
			}
		}},
		{"lock expires after Lockout", with(func(o *Options) { o.Lockout = 300 * time.Millisecond }), func(t *testing.T, h *harness) {
			for i := range 5 {
				h.fail(i, "u1", "c1")
			}
			h.wantBlock("locked", h.check("u1", "c1"), ReasonUsernameLocked, 300*time.Millisecond, true)
			h.wait(350 * time.Millisecond)
			h.wantOpen("after lockout", h.check("u1", "c1"))
		}},
		{"window expiry resets counts", with(func(o *Options) { o.Window = time.Second }), func(t *testing.T, h *harness) {
			for i := range 4 {
				h.fail(i, "u1", "c1")
			}
			if v := h.check("u1", "c1"); v.Failures != 4 {
				t.Fatalf("in window: Failures %d; want 4", v.Failures)
			}
			h.wait(1100 * time.Millisecond)
			v := h.check("u1", "c1")
			h.wantOpen("after window", v)
			if v.Failures != 0 {
				t.Fatalf("after window: Failures %d; want 0", v.Failures)
			}
			if st := h.state("u1", "c1"); st.Client.Failures != 0 || st.User.Distinct != 0 || st.Client.Distinct != 0 {
				t.Fatalf("after window: state %+v; want all counts 0", st)
			}
			for i := 1; i <= 4; i++ {
				v, _ := h.fail(i, "u1", "c1")
				h.wantOpen(fmt.Sprintf("new window failure %d", i), v)
				if v.Failures != i {
					t.Fatalf("new window failure %d: Failures %d", i, v.Failures)
				}
			}
		}},
		{"success resets the username count only", with(func(o *Options) { o.MaxClientFailures = 6 }), func(t *testing.T, h *harness) {
			for i := range 3 {
				h.fail(i, "u1", "c1")
			}
			h.success("u1", "c1")
			if v := h.check("u1", "c1"); v.Failures != 0 {
				t.Fatalf("after success: Failures %d; want 0", v.Failures)
			}
			if st := h.state("u1", "c1"); st.Client.Failures != 3 {
				t.Fatalf("after success: client failures %d; want 3 (kept)", st.Client.Failures)
			}
			if v, _ := h.fail(0, "u1", "c1"); v.Failures != 1 {
				t.Fatalf("failure after success: Failures %d; want 1", v.Failures)
			}
			// The client address has 4 failures: two more lock it.
			h.fail(1, "u2", "c1")
			v, _ := h.fail(0, "u2", "c1")
			h.wantBlock("client limit", v, ReasonClientLocked, 5*time.Second, true)
			if !v.LockedNow {
				t.Fatalf("client limit: LockedNow not set")
			}
			h.wantBlock("any username from the locked client", h.check("u3", "c1"), ReasonClientLocked, 5*time.Second, true)

			// A success does not lift a lock.
			for i := range 5 {
				h.fail(i, "u4", "c2")
			}
			h.success("u4", "c2")
			h.wantBlock("locked after success", h.check("u4", "c2"), ReasonUsernameLocked, 5*time.Second, true)
		}},
		{"progressive delay", with(func(o *Options) {
			o.MaxFailures, o.MaxClientFailures = 10, 100
			o.Delay, o.MaxDelay = 100*time.Millisecond, time.Second
		}), func(t *testing.T, h *harness) {
			if v := h.check("u1", "c1"); v.Delay != 0 {
				t.Fatalf("no failures: Delay %s; want 0", v.Delay)
			}
			ms := time.Millisecond
			want := []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, time.Second, time.Second, time.Second}
			for i, w := range want {
				v, _ := h.fail(i, "u1", "c1")
				if v.Delay != w {
					t.Fatalf("after %d failures: Failure's Delay %s; want %s", i+1, v.Delay, w)
				}
				if v := h.check("u1", "c1"); v.Delay != w || v.Block {
					t.Fatalf("after %d failures: Check %+v; want Delay %s", i+1, v, w)
				}
			}
			// The larger of the two counts decides.
			if v := h.check("u9", "c1"); v.Delay != time.Second {
				t.Fatalf("fresh username, busy client: Delay %s; want 1s", v.Delay)
			}
			if v := h.check("u1", "c9"); v.Delay != time.Second {
				t.Fatalf("busy username, fresh client: Delay %s; want 1s", v.Delay)
			}
			for i, u := range []string{"u2", "u3", "u4"} {
				h.fail(i, u, "c2")
			}
			if v := h.check("u2", "c2"); v.Delay != 400*ms {
				t.Fatalf("username 1 failure, client 3: Delay %s; want 400ms", v.Delay)
			}
			if v := h.check("", "c2"); v.Delay != 400*ms {
				t.Fatalf("no username, client 3: Delay %s; want 400ms", v.Delay)
			}
			if v := h.check("u8", "c8"); v.Delay != 0 {
				t.Fatalf("fresh pair: Delay %s; want 0", v.Delay)
			}
		}},
		{"credential stuffing alerts once and blocks the client", with(func(o *Options) { o.MaxClientFailures = 1000 }), func(t *testing.T, h *harness) {
			alerts := 0
			for i := 1; i <= 30; i++ {
				v, as := h.fail(i, fmt.Sprintf("u%d", i), "c1")
				for _, a := range as {
					if a.Reason != ReasonCredentialStuffing || a.Count != 11 || i != 11 {
						t.Fatalf("failure %d: unexpected alert %+v", i, a)
					}
					alerts++
				}
				if i >= 11 {
					h.wantBlock(fmt.Sprintf("failure %d", i), v, ReasonCredentialStuffing, 10*time.Second, false)
				} else {
					h.wantOpen(fmt.Sprintf("failure %d", i), v)
				}
			}
			if alerts != 1 {
				t.Fatalf("%d alerts; want exactly 1", alerts)
			}
			h.wantBlock("fresh username", h.check("fresh", "c1"), ReasonCredentialStuffing, 10*time.Second, true)
			h.wantBlock("no username", h.check("", "c1"), ReasonCredentialStuffing, 10*time.Second, true)
			h.wantOpen("stuffed username elsewhere", h.check("u1", "c2"))
			if st := h.state("", "c1"); st.Client.Distinct != SetCapFactor*10 {
				t.Fatalf("distinct usernames %d; want the cap %d", st.Client.Distinct, SetCapFactor*10)
			}
		}},
		{"distributed attack alerts once and blocks the username", with(func(o *Options) { o.MaxFailures = 1000 }), func(t *testing.T, h *harness) {
			alerts := 0
			for i := 1; i <= 30; i++ {
				v, as := h.fail(i, "u1", fmt.Sprintf("c%d", i))
				for _, a := range as {
					if a.Reason != ReasonDistributedAttack || a.Count != 11 || i != 11 {
						t.Fatalf("failure %d: unexpected alert %+v", i, a)
					}
					alerts++
				}
				if i >= 11 {
					h.wantBlock(fmt.Sprintf("failure %d", i), v, ReasonDistributedAttack, 10*time.Second, false)
				}
			}
			if alerts != 1 {
				t.Fatalf("%d alerts; want exactly 1", alerts)
			}
			h.wantBlock("fresh client", h.check("u1", "fresh"), ReasonDistributedAttack, 10*time.Second, true)
			h.wantOpen("other username from an attacking client", h.check("u2", "c1"))
			if st := h.state("u1", ""); st.User.Distinct != SetCapFactor*10 {
				t.Fatalf("distinct clients %d; want the cap %d", st.User.Distinct, SetCapFactor*10)
			}
		}},
		{"client locked at the default MaxClientFailures", base, func(t *testing.T, h *harness) {
			// 10 usernames × 2: no username lock, no stuffing (10 is not
			// more than 10), 20 = 4 × MaxFailures client failures.
			n := 0
			for r := range 2 {
				for u := range 10 {
					n++
					v, alerts := h.fail(n, fmt.Sprintf("u%d", u), "c1")
					if len(alerts) != 0 {
						t.Fatalf("failure %d: alerts %v", n, alerts)
					}
					if n < 20 {
						h.wantOpen(fmt.Sprintf("failure %d", n), v)
					} else if !v.LockedNow {
						t.Fatalf("failure 20 (round %d): LockedNow not set: %+v", r, v)
					}
				}
			}
			h.wantBlock("any username", h.check("u99", "c1"), ReasonClientLocked, 5*time.Second, true)
			h.wantBlock("no username", h.check("", "c1"), ReasonClientLocked, 5*time.Second, true)
			if v := h.check("u1", "c2"); v.Block || v.Failures != 2 {
				t.Fatalf("username from another client: got %+v; want open with Failures 2", v)
			}
		}},
		{"empty username: client checks only", with(func(o *Options) {
			o.MaxClientFailures, o.MaxUsernamesPerClient = 8, 3
		}), func(t *testing.T, h *harness) {
			for i := 1; i <= 8; i++ {
				v, alerts := h.fail(i, "", "c1")
				if len(alerts) != 0 || v.Failures != 0 {
					t.Fatalf("failure %d: got %+v, alerts %v; want no alert, Failures 0", i, v, alerts)
				}
				if i < 8 {
					h.wantOpen(fmt.Sprintf("failure %d", i), h.check("", "c1"))
				}
			}
			h.wantBlock("no username", h.check("", "c1"), ReasonClientLocked, 5*time.Second, true)
			h.wantBlock("a username", h.check("u1", "c1"), ReasonClientLocked, 5*time.Second, true)
			h.wantOpen("other client", h.check("", "c2"))
			if st := h.state("", "c1"); st.Client.Distinct != 0 {
				t.Fatalf("distinct usernames %d; want 0", st.Client.Distinct)
			}
		}},
		{"concurrent failures are all counted", with(func(o *Options) {
			o.MaxFailures, o.MaxClientFailures = 1000, 1_000_000
		}), func(t *testing.T, h *harness) {
			res := concurrentFailures(t, h, 200, 20)
			if res.lockedNow != 0 || res.alerts[ReasonDistributedAttack] != 1 || len(res.alerts) != 1 {
				t.Fatalf("got %d lockouts, alerts %v; want 0 and exactly one distributed_attack", res.lockedNow, res.alerts)
			}
			if v := h.check("u1", "c1"); v.Failures != 200 {
				t.Fatalf("Failures %d; want 200", v.Failures)
			}
		}},
		{"concurrent failures lock exactly once", with(func(o *Options) {
			o.MaxFailures, o.MaxClientFailures = 100, 1_000_000
		}), func(t *testing.T, h *harness) {
			res := concurrentFailures(t, h, 200, 1)
			if res.lockedNow != 1 || len(res.alerts) != 0 {
				t.Fatalf("got %d lockouts, alerts %v; want exactly 1 lockout, no alert", res.lockedNow, res.alerts)
			}
			v := h.check("u1", "c0")
			h.wantBlock("after the burst", v, ReasonUsernameLocked, 5*time.Second, false)
			if v.Failures != 100 {
				t.Fatalf("Failures %d; want 100 (failures while locked are not counted)", v.Failures)
			}
			if st := h.state("", "c0"); st.Client.Failures != 200 {
				t.Fatalf("client failures %d; want 200", st.Client.Failures)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t, newHarness(t, f, tc.opts))
		})
	}
}

type burstResult struct {
	lockedNow int
	alerts    map[Reason]int
}

// concurrentFailures runs n concurrent failures of u1 spread over clients
// distinct client addresses, alternating between the harness's handles.
func concurrentFailures(t *testing.T, h *harness, n, clients int) burstResult {
	t.Helper()
	var (
		mu   sync.Mutex
		res  = burstResult{alerts: map[Reason]int{}}
		wg   sync.WaitGroup
		errs = make(chan error, n)
	)
	for i := range n {
		wg.Go(func() {
			v, alerts, err := h.guard(i).Failure(context.Background(), "u1", fmt.Sprintf("c%d", i%clients))
			if err != nil {
				errs <- err
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if v.LockedNow {
				res.lockedNow++
			}
			for _, a := range alerts {
				res.alerts[a.Reason]++
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent Failure: %v", err)
	}
	return res
}
