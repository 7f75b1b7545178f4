package bruteforce

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeHealth is a Health gate set by the test; it records Observe calls.
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

// countingStore answers every call with err, or with its tag as the user's
// failure count, and counts the calls.
type countingStore struct {
	tag   int
	err   error
	calls int
}

func (s *countingStore) answer(ctx context.Context) (State, error) {
	s.calls++
	if s.err != nil {
		return State{}, s.err
	}
	if err := ctx.Err(); err != nil {
		return State{}, err
	}
	return State{User: Subject{Failures: s.tag}}, nil
}

func (s *countingStore) RecordFailure(ctx context.Context, _, _ string, _ Policy) (State, error) {
	return s.answer(ctx)
}

func (s *countingStore) State(ctx context.Context, _, _ string) (State, error) { return s.answer(ctx) }

func (s *countingStore) Reset(ctx context.Context, _ string) error {
	_, err := s.answer(ctx)
	return err
}

const (
	primaryTag = 1
	localTag   = 2
)

// storeOps are the three Store methods, each returning the tag of the store
// that answered (0 for Reset, which carries none).
var storeOps = []struct {
	name string
	call func(ctx context.Context, s Store) (int, error)
}{
	{"RecordFailure", func(ctx context.Context, s Store) (int, error) {
		st, err := s.RecordFailure(ctx, "u", "c", Policy{})
		return st.User.Failures, err
	}},
	{"State", func(ctx context.Context, s Store) (int, error) {
		st, err := s.State(ctx, "u", "c")
		return st.User.Failures, err
	}},
	{"Reset", func(ctx context.Context, s Store) (int, error) { return 0, s.Reset(ctx, "u") }},
}

func TestFailover(t *testing.T) {
	redisDown := errors.New("redis: connection refused")
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	cases := []struct {
		name         string
		up           bool
		primaryErr   error
		ctx          context.Context
		wantErr      error
		wantPrimary  int
		wantLocal    int
		wantObserved []error
		wantFallback []error
	}{
		{"up, primary answers", true, nil, context.Background(), nil, 1, 0, []error{nil}, nil},
		{"up, primary fails", true, redisDown, context.Background(), nil, 1, 1, []error{redisDown}, []error{redisDown}},
		{"down", false, nil, context.Background(), nil, 0, 1, nil, []error{nil}},
		{"caller cancelled", true, nil, cancelled, context.Canceled, 1, 0, nil, nil},
	}
	for _, op := range storeOps {
		for _, tc := range cases {
			t.Run(op.name+"/"+tc.name, func(t *testing.T) {
				primary := &countingStore{tag: primaryTag, err: tc.primaryErr}
				local := &countingStore{tag: localTag}
				h := &fakeHealth{up: tc.up}
				var fallbacks []error
				f := NewFailover(primary, local, h, func(err error) { fallbacks = append(fallbacks, err) })

				tag, err := op.call(tc.ctx, f)
				if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
					t.Fatalf("error %v; want %v", err, tc.wantErr)
				}
				if primary.calls != tc.wantPrimary || local.calls != tc.wantLocal {
					t.Fatalf("calls: primary %d, local %d; want %d, %d", primary.calls, local.calls, tc.wantPrimary, tc.wantLocal)
				}
				if op.name != "Reset" && err == nil {
					want := primaryTag
					if tc.wantLocal > 0 {
						want = localTag
					}
					if tag != want {
						t.Fatalf("answered by store %d; want %d", tag, want)
					}
				}
				if !slices.Equal(h.observed, tc.wantObserved) {
					t.Fatalf("Observe calls %v; want %v", h.observed, tc.wantObserved)
				}
				if !slices.Equal(fallbacks, tc.wantFallback) {
					t.Fatalf("onFallback calls %v; want %v", fallbacks, tc.wantFallback)
				}
			})
		}
	}
}

func TestFailoverRecovery(t *testing.T) {
	redisDown := errors.New("redis: i/o timeout")
	primary := &countingStore{tag: primaryTag, err: redisDown}
	local := &countingStore{tag: localTag}
	h := &fakeHealth{up: true}
	fallbacks := 0
	f := NewFailover(primary, local, h, func(error) { fallbacks++ })
	ctx := context.Background()
	state := func() int {
		t.Helper()
		st, err := f.State(ctx, "u", "c")
		if err != nil {
			t.Fatalf("State: %v", err)
		}
		return st.User.Failures
	}

	steps := []struct {
		name string
		mod  func()
		want int
	}{
		{"primary starts failing", func() {}, localTag},
		{"gate trips", func() { h.set(false) }, localTag},
		{"primary back, gate still down", func() { primary.err = nil }, localTag},
		{"gate recovers", func() { h.set(true) }, primaryTag},
	}
	for _, s := range steps {
		s.mod()
		if got := state(); got != s.want {
			t.Fatalf("%s: answered by %d; want %d", s.name, got, s.want)
		}
	}
	if primary.calls != 2 || local.calls != 3 || fallbacks != 3 {
		t.Fatalf("calls: primary %d, local %d, fallbacks %d; want 2, 3, 3", primary.calls, local.calls, fallbacks)
	}
	if want := []error{redisDown, nil}; !slices.Equal(h.observed, want) {
		t.Fatalf("Observe calls %v; want %v", h.observed, want)
	}
}

// TestFailoverGuard runs a Guard over a failing primary: decisions come from
// the local store and no error reaches the caller.
func TestFailoverGuard(t *testing.T) {
	primary := &countingStore{err: errors.New("redis: connection refused")}
	clk := newFakeClock()
	local := NewLocal(LocalOptions{Now: clk.Now})
	g, err := New(NewFailover(primary, local, nil, nil), Options{MaxFailures: 3, Window: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 3 {
		if _, _, err := g.Failure(ctx, "u", "c"); err != nil {
			t.Fatalf("Failure: %v", err)
		}
	}
	v, err := g.Check(ctx, "u", "c")
	if err != nil || !v.Block || v.Reason != ReasonUsernameLocked {
		t.Fatalf("Check: %+v, %v; want a local username lock and no error", v, err)
	}
	if err := g.Success(ctx, "u", "c"); err != nil {
		t.Fatalf("Success: %v", err)
	}
	if primary.calls != 5 {
		t.Fatalf("primary tried %d times; want 5 (nil Health means always up)", primary.calls)
	}
}
