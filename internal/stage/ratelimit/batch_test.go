package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulwarkapi/bulwark/internal/config"
	"github.com/bulwarkapi/bulwark/internal/identity"
	"github.com/bulwarkapi/bulwark/internal/pipeline"
	"github.com/bulwarkapi/bulwark/internal/policy"
	rl "github.com/bulwarkapi/bulwark/internal/ratelimit"
)

// seqStore hides AllowAll: a stage on it takes the sequential path, one
// Allow per limit. failAt > 0 makes its failAt-th Allow call (counting
// from 1) fail with err instead of counting.
type seqStore struct {
	rl.Store
	mu     sync.Mutex
	calls  int
	failAt int
	err    error
}

func (s *seqStore) Allow(ctx context.Context, key string, l rl.Limit, n int) (rl.Result, error) {
	s.mu.Lock()
	s.calls++
	fail := s.failAt > 0 && s.calls == s.failAt
	s.mu.Unlock()
	if fail {
		return rl.Result{}, s.err
	}
	return s.Store.Allow(ctx, key, l, n)
}

// batchStore is a fake BatchStore over a real store: it records every
// AllowAll batch and counts Allow calls. When err is set, AllowAll decides
// the first `decide` requests with the real store and then returns err
// (an argument error decides nothing, as the contract says); short makes
// it drop its last result without an error, against the contract.
type batchStore struct {
	inner   rl.BatchStore
	mu      sync.Mutex
	batches [][]rl.Request
	allows  int
	decide  int
	err     error
	short   bool
	badKey  string // Allow of a key with this part fails with err
}

func (s *batchStore) Allow(ctx context.Context, key string, l rl.Limit, n int) (rl.Result, error) {
	s.mu.Lock()
	s.allows++
	bad := s.badKey != "" && strings.Contains(key, s.badKey)
	s.mu.Unlock()
	if bad {
		return rl.Result{}, s.err
	}
	return s.inner.Allow(ctx, key, l, n)
}

func (s *batchStore) AllowAll(ctx context.Context, reqs []rl.Request) ([]rl.Result, error) {
	s.mu.Lock()
	s.batches = append(s.batches, append([]rl.Request(nil), reqs...))
	err, decide, short := s.err, s.decide, s.short
	s.mu.Unlock()
	if err != nil {
		if errors.Is(err, rl.ErrInvalidLimit) || errors.Is(err, rl.ErrExceedsBurst) {
			return nil, err
		}
		res, ierr := s.inner.AllowAll(ctx, reqs[:decide])
		if ierr != nil {
			return res, ierr
		}
		return res, err
	}
	res, ierr := s.inner.AllowAll(ctx, reqs)
	if short && len(res) > 0 {
		res = res[:len(res)-1]
	}
	return res, ierr
}

func (s *batchStore) counts() (batches, allows int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.batches), s.allows
}

// stageOn builds a stage with these limits on store, quotas on a local
// quota store at the frozen instant clk.
func stageOn(t *testing.T, store rl.Store, clk func() time.Time, monitor bool, limits []config.RateLimit) *Stage {
	t.Helper()
	env, err := policy.NewEnv()
	if err != nil {
		t.Fatal(err)
	}
	limits = append([]config.RateLimit(nil), limits...)
	for i := range limits {
		if limits[i].Name == "" {
			limits[i].Name = limits[i].Key
		}
		if limits[i].Burst == 0 && limits[i].Rate != "" {
			n, _, _ := rl.ParseRate(limits[i].Rate)
			limits[i].Burst = n
		}
	}
	st, err := New(Options{API: "bank", Limits: limits, Env: env, Monitor: monitor,
		Store: store, Quotas: rl.NewLocalQuotas(rl.LocalQuotaOptions{Now: clk})})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// outcome is everything Handle decides for one request.
type outcome struct {
	d       pipeline.Decision
	headers []pipeline.Header
}

func handle(ctx context.Context, st *Stage, r req) outcome {
	hr := httptest.NewRequest(http.MethodGet, "/x", nil)
	if r.header != "" {
		hr.Header.Set("X-Tenant", r.header)
	}
	x := &pipeline.Exchange{Request: hr, Identity: r.id, Operation: r.op, ClientAddr: netip.MustParseAddr(r.client)}
	d := st.Handle(ctx, x)
	return outcome{d: d, headers: x.ResponseHeaders}
}

func (o outcome) String() string {
	return fmt.Sprintf("%+v %v", o.d, o.headers)
}

// letter summarises an outcome: a allowed, m a monitored refusal, d an
// enforced refusal, u a store failure.
func (o outcome) letter() byte {
	switch {
	case o.d.Action == pipeline.Allow:
		return 'a'
	case o.d.Reason == "rate_limited" && o.d.Monitor:
		return 'm'
	case o.d.Reason == "rate_limited":
		return 'd'
	default:
		return 'u'
	}
}

// TestBatchedStageMatchesSequential runs the same requests through a stage
// that batches (over a real Local store) and one that cannot (the same
// store type behind seqStore): every decision and every header must be
// identical, and the batching stage must use one AllowAll per request
// whose applicable limits are two rates or more.
func TestBatchedStageMatchesSequential(t *testing.T) {
	alice := &identity.Identity{Subject: "alice", Provider: "idp", Kind: identity.KindJWT}
	partner := &identity.Identity{Subject: "acme", Provider: "keys", Kind: identity.KindAPIKey}
	ip := req{client: "192.0.2.1"}
	tests := []struct {
		name        string
		monitor     bool
		limits      []config.RateLimit
		reqs        []req
		want        string // letters of the outcomes
		wantBatches int
	}{
		{name: "second limit refuses; the first keeps counting",
			limits: []config.RateLimit{{Name: "a", Key: "ip", Rate: "5/h"}, {Name: "b", Key: "ip", Rate: "2/h"}},
			reqs:   []req{ip, ip, ip, ip, ip, ip}, want: "aadddd", wantBatches: 6},
		{name: "first limit refuses; the second is not counted",
			limits: []config.RateLimit{{Name: "a", Key: "ip", Rate: "1/h"}, {Name: "b", Key: "ip", Rate: "5/h"}},
			reqs:   []req{ip, ip, ip}, want: "add", wantBatches: 3},
		{name: "monitored limit first: its refusal is recorded and counting goes on",
			limits: []config.RateLimit{{Name: "m", Key: "ip", Rate: "1/h", Mode: "monitor"}, {Name: "hard", Key: "ip", Rate: "3/h"}},
			reqs:   []req{ip, ip, ip, ip, ip}, want: "ammdd", wantBatches: 5},
		{name: "monitored limit between enforced ones",
			limits: []config.RateLimit{{Name: "a", Key: "ip", Rate: "4/h"}, {Name: "m", Key: "ip", Rate: "1/h", Mode: "monitor"}, {Name: "c", Key: "ip", Rate: "2/h"}},
			reqs:   []req{ip, ip, ip, ip, ip}, want: "amddd", wantBatches: 5},
		{name: "two monitored refusals: the first is the one recorded",
			limits: []config.RateLimit{{Name: "m1", Key: "ip", Rate: "1/h", Mode: "monitor"}, {Name: "m2", Key: "ip", Rate: "1/h", Mode: "monitor"}, {Name: "c", Key: "ip", Rate: "3/h"}},
			reqs:   []req{ip, ip, ip, ip}, want: "ammd", wantBatches: 4},
		{name: "stage in monitor mode: everything counted, nothing enforced",
			monitor: true,
			limits:  []config.RateLimit{{Name: "a", Key: "ip", Rate: "1/h"}, {Name: "b", Key: "ip", Rate: "2/h"}},
			reqs:    []req{ip, ip, ip, ip}, want: "ammm", wantBatches: 4},
		{name: "limits that do not apply are left out of the batch",
			limits: []config.RateLimit{{Name: "key", Key: "api_key", Rate: "1/h"}, {Name: "addr", Key: "ip", Rate: "3/h"},
				{Name: "login", Key: "ip", Rate: "1/h", Operation: "POST /login"}, {Name: "who", Key: "identity", Rate: "2/h"}},
			reqs: []req{{client: "192.0.2.1", id: alice, op: "GET /a"}, {client: "192.0.2.1", id: alice, op: "POST /login"},
				{client: "192.0.2.1", id: partner, op: "POST /login"}, {client: "192.0.2.2", id: partner, op: "GET /a"}},
			want: "aadd", wantBatches: 4},
		{name: "cel and operation keys",
			limits: []config.RateLimit{{Name: "tenant", Key: "request.headers['x-tenant']", Rate: "2/h"}, {Name: "op", Key: "operation", Rate: "3/h"}},
			reqs: []req{{client: "192.0.2.1", header: "t1", op: "GET /a"}, {client: "192.0.2.2", header: "t1", op: "GET /a"},
				{client: "192.0.2.3", header: "t1", op: "GET /a"}, {client: "192.0.2.3", header: "t2", op: "GET /a"}, {client: "192.0.2.3", header: "t3", op: "GET /a"}},
			want: "aadad", wantBatches: 5},
		{name: "a quota among the limits: sequential path",
			limits: []config.RateLimit{{Name: "a", Key: "ip", Rate: "3/h"}, {Name: "q", Key: "ip", Quota: "2/day"}},
			reqs:   []req{ip, ip, ip, ip}, want: "aadd", wantBatches: 0},
		{name: "a quota of another operation does not prevent the batch",
			limits: []config.RateLimit{{Name: "a", Key: "ip", Rate: "3/h"}, {Name: "b", Key: "ip", Rate: "5/h"}, {Name: "q", Key: "ip", Quota: "9/day", Operation: "POST /login"}},
			reqs: []req{{client: "192.0.2.1", op: "GET /a"}, {client: "192.0.2.1", op: "POST /login"}, {client: "192.0.2.1", op: "GET /a"},
				{client: "192.0.2.1", op: "GET /a"}},
			want: "aaad", wantBatches: 3},
		{name: "one limit: a plain Allow",
			limits: []config.RateLimit{{Name: "a", Key: "ip", Rate: "1/h"}},
			reqs:   []req{ip, ip}, want: "ad", wantBatches: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := time.Unix(1_700_000_000, 0)
			clk := func() time.Time { return now }
			seq := stageOn(t, &seqStore{Store: rl.NewLocal(rl.LocalOptions{Now: clk})}, clk, tt.monitor, tt.limits)
			bs := &batchStore{inner: rl.NewLocal(rl.LocalOptions{Now: clk})}
			bat := stageOn(t, bs, clk, tt.monitor, tt.limits)
			if seq.batch != nil || bat.batch == nil {
				t.Fatal("the sequential stage must not batch, the other must be able to")
			}
			var letters strings.Builder
			for i, r := range tt.reqs {
				want := handle(context.Background(), seq, r)
				got := handle(context.Background(), bat, r)
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("request %d:\n batched    %s\n sequential %s", i, got, want)
				}
				letters.WriteByte(got.letter())
			}
			if letters.String() != tt.want {
				t.Fatalf("outcomes %q; want %q", letters.String(), tt.want)
			}
			if batches, _ := bs.counts(); batches != tt.wantBatches {
				t.Fatalf("%d AllowAll calls; want %d", batches, tt.wantBatches)
			}
		})
	}
}

// TestBatchOneCallPerRequest: three applicable rate limits cost one
// AllowAll and no Allow, with the keys in configured order and the
// monitored limit's request marked to go on after a refusal.
func TestBatchOneCallPerRequest(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	clk := func() time.Time { return now }
	bs := &batchStore{inner: rl.NewLocal(rl.LocalOptions{Now: clk})}
	st := stageOn(t, bs, clk, false, []config.RateLimit{
		{Name: "a", Key: "ip", Rate: "10/s", Burst: 20},
		{Name: "b", Key: "identity", Rate: "5/m", Mode: "monitor"},
		{Name: "c", Key: "operation", Rate: "100/h"},
	})
	out := handle(context.Background(), st, req{client: "192.0.2.1", op: "GET /a"})
	if out.d.Action != pipeline.Allow {
		t.Fatalf("decision %s", out)
	}
	batches, allows := bs.counts()
	if batches != 1 || allows != 0 {
		t.Fatalf("%d AllowAll and %d Allow calls; want one AllowAll", batches, allows)
	}
	reqs := bs.batches[0]
	want := []struct {
		name string
		lim  rl.Limit
		cont bool
	}{
		{"a", rl.Limit{Rate: 10, Period: time.Second, Burst: 20}, false},
		{"b", rl.Limit{Rate: 5, Period: time.Minute, Burst: 5}, true},
		{"c", rl.Limit{Rate: 100, Period: time.Hour, Burst: 100}, false},
	}
	if len(reqs) != len(want) {
		t.Fatalf("batch %+v; want %d requests", reqs, len(want))
	}
	for i, w := range want {
		q := reqs[i]
		if !strings.HasPrefix(q.Key, "bank\x00"+w.name+"\x00") || q.Limit != w.lim || q.N != 1 || q.ContinueOnDeny != w.cont {
			t.Fatalf("request %d = key %q, %v, n %d, ContinueOnDeny %v; want limit %s (%v), n 1, ContinueOnDeny %v", i, q.Key, q.Limit, q.N, q.ContinueOnDeny, w.name, w.lim, w.cont)
		}
	}
	if got := out.headers; len(got) != 2 || got[0].Value != `"a";q=20;w=2, "b";q=5;w=60, "c";q=100;w=3600` ||
		got[1].Value != `"a";r=19;t=1, "b";r=4;t=12, "c";r=99;t=36` {
		t.Fatalf("headers %v", got)
	}
}

// TestBatchStoreErrors: a batch that fails is answered exactly as the
// sequential path answers the same failure at the same limit.
func TestBatchStoreErrors(t *testing.T) {
	errDown := errors.New("ratelimit: redis: connection refused")
	argErr := fmt.Errorf("%w: burst spans more than the Redis store allows", rl.ErrInvalidLimit)
	limits := []config.RateLimit{
		{Name: "a", Key: "ip", Rate: "5/h"},
		{Name: "m", Key: "ip", Rate: "1/h", Mode: "monitor"},
		{Name: "c", Key: "ip", Rate: "5/h"},
	}
	ip := req{client: "192.0.2.1"}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name      string
		ctx       context.Context
		decide    int    // requests the batch decides before failing
		err       error  // the batch's error
		badKey    string // under an argument error: the limit whose Allow fails
		failAt    int    // the sequential store's failing call, for the same failure
		prior     int    // requests counted before, so that m refuses
		want      byte
		wantRules string
		wantAllow int // Allow calls of the batching stage
	}{
		{name: "failure at the first limit", err: errDown, decide: 0, failAt: 1, want: 'u', wantRules: "a"},
		{name: "failure after one decided", err: errDown, decide: 1, failAt: 2, want: 'u', wantRules: "m"},
		{name: "failure after a monitored refusal", err: errDown, decide: 2, failAt: 3, prior: 1, want: 'u', wantRules: "c"},
		{name: "cancelled request", ctx: cancelled, err: fmt.Errorf("ratelimit: redis: %w", context.Canceled), decide: 0, failAt: 1, want: 'u'},
		{name: "argument error: the sequential path answers", err: argErr, badKey: "\x00c\x00", failAt: 3, want: 'u', wantRules: "c", wantAllow: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := tt.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			now := time.Unix(1_700_000_000, 0)
			clk := func() time.Time { return now }
			ss := &seqStore{Store: rl.NewLocal(rl.LocalOptions{Now: clk})}
			bs := &batchStore{inner: rl.NewLocal(rl.LocalOptions{Now: clk})}
			seq := stageOn(t, ss, clk, false, limits)
			bat := stageOn(t, bs, clk, false, limits)
			for range tt.prior {
				handle(context.Background(), seq, ip)
				handle(context.Background(), bat, ip)
			}
			bs.batches, bs.allows = nil, 0
			ss.mu.Lock()
			ss.failAt, ss.err, ss.calls = tt.failAt, tt.err, 0
			ss.mu.Unlock()
			bs.decide, bs.err, bs.badKey = tt.decide, tt.err, tt.badKey

			want := handle(ctx, seq, ip)
			got := handle(ctx, bat, ip)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("batched    %s\nsequential %s", got, want)
			}
			if got.letter() != tt.want {
				t.Fatalf("outcome %c (%s); want %c", got.letter(), got, tt.want)
			}
			if tt.ctx != nil {
				if got.d.Status != 499 {
					t.Fatalf("cancelled request: %s; want 499", got)
				}
			} else if got.d.Status != http.StatusTooManyRequests || got.d.Reason != "rate_limit_unavailable" || strings.Join(got.d.Rules, ",") != tt.wantRules {
				t.Fatalf("decision %s; want 429 rate_limit_unavailable for %s", got, tt.wantRules)
			}
			if batches, allows := bs.counts(); batches != 1 || allows != tt.wantAllow {
				t.Fatalf("%d AllowAll and %d Allow calls; want 1 and %d", batches, allows, tt.wantAllow)
			}
		})
	}
}

// TestBatchShortAnswerFailsClosed: a store that stops a batch early
// without an error or a refusal leaves a limit unchecked; the stage
// answers as for a store failure at that limit rather than letting the
// request through on it.
func TestBatchShortAnswerFailsClosed(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	clk := func() time.Time { return now }
	bs := &batchStore{inner: rl.NewLocal(rl.LocalOptions{Now: clk}), short: true}
	st := stageOn(t, bs, clk, false, []config.RateLimit{{Name: "a", Key: "ip", Rate: "5/h"}, {Name: "b", Key: "ip", Rate: "5/h"}})
	out := handle(context.Background(), st, req{client: "192.0.2.1"})
	if out.d.Reason != "rate_limit_unavailable" || strings.Join(out.d.Rules, ",") != "b" {
		t.Fatalf("decision %s; want rate_limit_unavailable for b", out)
	}
}
