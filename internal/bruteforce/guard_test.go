package bruteforce

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestNewValidation(t *testing.T) {
	st := NewLocal(LocalOptions{})
	valid := Options{MaxFailures: 5, Window: 15 * time.Minute}
	cases := []struct {
		name  string
		store Store
		mod   func(*Options)
		want  []string // substrings, one per expected problem
	}{
		{"valid minimal", st, func(*Options) {}, nil},
		{"nil store", nil, func(*Options) {}, []string{"store is nil"}},
		{"zero", st, func(o *Options) { *o = Options{} }, []string{"max failures 0", "window 0s"}},
		{"negatives", st, func(o *Options) {
			o.MaxClientFailures, o.Lockout, o.Delay, o.MaxDelay = -1, -time.Second, -time.Second, -time.Second
			o.MaxUsernamesPerClient, o.MaxClientsPerUsername = -1, -1
		}, []string{"max client failures -1", "lockout -1s", "delay -1s", "max delay -1s",
			"max usernames per client -1", "max clients per username -1"}},
		{"sub-millisecond", st, func(o *Options) { o.Window, o.Lockout = time.Microsecond, time.Microsecond },
			[]string{"window 1µs", "lockout 1µs"}},
		{"too large", st, func(o *Options) {
			o.MaxFailures, o.Window, o.MaxUsernamesPerClient = MaxFailuresLimit+1, MaxSpan+1, MaxDistinctThreshold+1
		}, []string{"max failures 1000001", "window", "max usernames per client 10001"}},
		{"delay above the default cap", st, func(o *Options) { o.Delay = 3 * time.Second },
			[]string{"delay 3s exceeds max delay 2s"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := valid
			tc.mod(&o)
			g, err := New(tc.store, o)
			if len(tc.want) == 0 {
				if err != nil || g == nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || g != nil {
				t.Fatalf("New: got %v, %v; want an error", g, err)
			}
			if !errors.Is(err, ErrInvalidOptions) {
				t.Fatalf("error %v does not wrap ErrInvalidOptions", err)
			}
			if lines := strings.Count(err.Error(), "\n") + 1; lines != len(tc.want) {
				t.Fatalf("%d problems reported; want %d:\n%v", lines, len(tc.want), err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	g, err := New(NewLocal(LocalOptions{}), Options{MaxFailures: 5, Window: 15 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	want := Policy{
		Window:                15 * time.Minute,
		Lockout:               15 * time.Minute,
		MaxFailures:           5,
		MaxClientFailures:     20,
		MaxUsernamesPerClient: 10,
		MaxClientsPerUsername: 10,
	}
	if got := g.Policy(); got != want {
		t.Fatalf("Policy %+v; want %+v", got, want)
	}
	if g.delay != 0 || g.maxDelay != DefaultMaxDelay {
		t.Fatalf("delay %s, max %s; want 0, %s", g.delay, g.maxDelay, DefaultMaxDelay)
	}
}

func TestDelayAfter(t *testing.T) {
	ms := time.Millisecond
	cases := []struct {
		delay, maxDelay time.Duration
		k               int
		want            time.Duration
	}{
		{100 * ms, time.Second, 0, 0},
		{100 * ms, time.Second, 1, 100 * ms},
		{100 * ms, time.Second, 2, 200 * ms},
		{100 * ms, time.Second, 3, 400 * ms},
		{100 * ms, time.Second, 4, 800 * ms},
		{100 * ms, time.Second, 5, time.Second},
		{100 * ms, time.Second, MaxFailuresLimit, time.Second},
		{time.Second, time.Second, 3, time.Second},
		{0, time.Second, 3, 0},
		{MaxSpan / 2, MaxSpan, 64, MaxSpan},
	}
	for _, tc := range cases {
		g := &Guard{delay: tc.delay, maxDelay: tc.maxDelay}
		if got := g.delayAfter(tc.k); got != tc.want {
			t.Errorf("delay %s cap %s after %d: %s; want %s", tc.delay, tc.maxDelay, tc.k, got, tc.want)
		}
	}
}

func TestVerdict(t *testing.T) {
	s := time.Second
	cases := []struct {
		name        string
		user        string
		st          State
		want        Verdict
		wantAlerts  []Alert
		wantLocking bool
	}{
		{"open", "u", State{User: Subject{Failures: 2}, Client: Subject{Failures: 3}},
			Verdict{Failures: 2, Delay: 400 * time.Millisecond}, nil, false},
		{"longest block decides", "u", State{User: Subject{Locked: 2 * s}, Client: Subject{Flagged: 3 * s}},
			Verdict{Block: true, Reason: ReasonCredentialStuffing, RetryAfter: 3 * s}, nil, false},
		{"ties in Reason order", "u", State{User: Subject{Locked: s, Flagged: s}, Client: Subject{Locked: s, Flagged: s}},
			Verdict{Block: true, Reason: ReasonUsernameLocked, RetryAfter: s}, nil, false},
		{"distributed over client lock", "u", State{User: Subject{Flagged: 2 * s}, Client: Subject{Locked: s}},
			Verdict{Block: true, Reason: ReasonDistributedAttack, RetryAfter: 2 * s}, nil, false},
		{"served lock counts as zero", "u", State{User: Subject{Failures: 5}, Client: Subject{Failures: 20}},
			Verdict{}, nil, false},
		{"locked keeps its count", "u", State{User: Subject{Failures: 5, Locked: s, LockedNow: true}},
			Verdict{Block: true, Reason: ReasonUsernameLocked, RetryAfter: s, Failures: 5}, nil, true},
		{"alerts", "u", State{
			User:   Subject{Distinct: 11, Flagged: s, FlaggedNow: true},
			Client: Subject{Distinct: 12, Flagged: 2 * s, FlaggedNow: true, LockedNow: true, Locked: s},
		}, Verdict{Block: true, Reason: ReasonCredentialStuffing, RetryAfter: 2 * s},
			[]Alert{{ReasonCredentialStuffing, 12}, {ReasonDistributedAttack, 11}}, true},
		{"empty username ignores the user side", "", State{User: Subject{Failures: 4, Locked: s, FlaggedNow: true}},
			Verdict{}, nil, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stub := &stubStore{st: tc.st}
			g, err := New(stub, Options{MaxFailures: 5, Window: time.Minute, Delay: 100 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			v, err := g.Check(ctx, tc.user, "c")
			if err != nil || v != tc.want {
				t.Fatalf("Check: %+v, %v; want %+v", v, err, tc.want)
			}
			v, alerts, err := g.Failure(ctx, tc.user, "c")
			want := tc.want
			want.LockedNow = tc.wantLocking
			if err != nil || v != want {
				t.Fatalf("Failure: %+v, %v; want %+v", v, err, want)
			}
			if len(alerts) != len(tc.wantAlerts) {
				t.Fatalf("alerts %v; want %v", alerts, tc.wantAlerts)
			}
			for i := range alerts {
				if alerts[i] != tc.wantAlerts[i] {
					t.Fatalf("alerts %v; want %v", alerts, tc.wantAlerts)
				}
			}
		})
	}
}

func TestGuardStoreErrors(t *testing.T) {
	boom := errors.New("boom")
	stub := &stubStore{err: boom, st: State{User: Subject{Locked: time.Second}}}
	g, err := New(stub, Options{MaxFailures: 5, Window: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if v, err := g.Check(ctx, "u", "c"); !errors.Is(err, boom) || v != (Verdict{}) {
		t.Fatalf("Check: %+v, %v; want zero Verdict and boom", v, err)
	}
	if v, a, err := g.Failure(ctx, "u", "c"); !errors.Is(err, boom) || v != (Verdict{}) || a != nil {
		t.Fatalf("Failure: %+v, %v, %v; want zero Verdict, no alerts and boom", v, a, err)
	}
	if err := g.Success(ctx, "u", "c"); !errors.Is(err, boom) {
		t.Fatalf("Success: %v; want boom", err)
	}
	if err := g.Success(ctx, "", "c"); err != nil || len(stub.resets) != 1 {
		t.Fatalf("Success without username: %v, resets %v; want a no-op", err, stub.resets)
	}
}

func TestPolicyCheck(t *testing.T) {
	ok := Policy{Window: time.Minute, Lockout: time.Minute, MaxFailures: 1, MaxClientFailures: 1,
		MaxUsernamesPerClient: 1, MaxClientsPerUsername: 1}
	bad := []Policy{{}, ok, ok, ok}
	bad[1].Lockout = 0
	bad[2].MaxClientFailures = 0
	bad[3].MaxClientsPerUsername = MaxDistinctThreshold + 1
	if _, err := NewLocal(LocalOptions{}).RecordFailure(context.Background(), "u", "c", ok); err != nil {
		t.Fatalf("valid policy: %v", err)
	}
	// The policy is checked before any Redis traffic: a nil client is fine.
	for _, st := range []Store{NewLocal(LocalOptions{}), NewRedis(nil, "")} {
		for i, p := range bad {
			if _, err := st.RecordFailure(context.Background(), "u", "c", p); !errors.Is(err, ErrInvalidOptions) {
				t.Fatalf("%T: bad policy %d: %v; want ErrInvalidOptions", st, i, err)
			}
		}
	}
}
