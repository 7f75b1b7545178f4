package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Limits of the batch scenarios; every T is long (≥ 6s) so that the real
// time a Redis run takes cannot change a decision or a Remaining.
var (
	batchLimA = Limit{Rate: 1, Period: time.Hour, Burst: 3}    // T = 1h
	batchLimB = Limit{Rate: 10, Period: time.Minute, Burst: 2} // T = 6s
	batchLimC = Limit{Rate: 5, Period: time.Hour, Burst: 5}    // T = 12m
)

// batchKeys are the keys the scenarios use, with the limit to read each by.
var batchKeys = []struct {
	key string
	lim Limit
}{{"k1", batchLimA}, {"k2", batchLimB}, {"k3", batchLimC}, {"k4", batchLimA}}

func rq(key string, l Limit, n int) Request { return Request{Key: key, Limit: l, N: n} }

func goOn(r Request) Request { r.ContinueOnDeny = true; return r }

// batchScenario is a state (setup, counted with Allow) and a batch on it.
type batchScenario struct {
	name  string
	setup []Request
	batch []Request
	want  string // one letter per result: a allowed, d denied
}

var batchScenarios = []batchScenario{
	{name: "all allowed",
		batch: []Request{rq("k1", batchLimA, 1), rq("k2", batchLimB, 1), rq("k3", batchLimC, 1)}, want: "aaa"},
	{name: "denial in the middle stops the batch",
		setup: []Request{rq("k2", batchLimB, 2)},
		batch: []Request{rq("k1", batchLimA, 1), rq("k2", batchLimB, 1), rq("k3", batchLimC, 1)}, want: "ad"},
	{name: "denial first",
		setup: []Request{rq("k1", batchLimA, 3)},
		batch: []Request{rq("k1", batchLimA, 1), rq("k2", batchLimB, 1), rq("k3", batchLimC, 1)}, want: "d"},
	{name: "a denial that continues (monitor) goes on",
		setup: []Request{rq("k2", batchLimB, 2)},
		batch: []Request{rq("k1", batchLimA, 1), goOn(rq("k2", batchLimB, 1)), rq("k3", batchLimC, 1)}, want: "ada"},
	{name: "enforced denial after a continuing one",
		setup: []Request{rq("k2", batchLimB, 2), rq("k3", batchLimC, 5)},
		batch: []Request{rq("k1", batchLimA, 1), goOn(rq("k2", batchLimB, 1)), rq("k3", batchLimC, 1), rq("k4", batchLimA, 1)}, want: "add"},
	{name: "every request continues",
		setup: []Request{rq("k1", batchLimA, 3), rq("k2", batchLimB, 2)},
		batch: []Request{goOn(rq("k1", batchLimA, 1)), goOn(rq("k2", batchLimB, 1)), goOn(rq("k3", batchLimC, 1))}, want: "dda"},
	{name: "reads (n=0) count nothing, even on an exhausted key",
		setup: []Request{rq("k2", batchLimB, 2)},
		batch: []Request{rq("k1", batchLimA, 0), rq("k2", batchLimB, 0), rq("k3", batchLimC, 2), rq("k3", batchLimC, 0)}, want: "aaaa"},
	{name: "one key twice sees its own first count",
		batch: []Request{rq("k1", batchLimA, 2), rq("k1", batchLimA, 1), rq("k1", batchLimA, 1), rq("k2", batchLimB, 1)}, want: "aad"},
	{name: "whole bursts",
		batch: []Request{rq("k1", batchLimA, 3), rq("k2", batchLimB, 2), rq("k3", batchLimC, 5)}, want: "aaa"},
	{name: "more than what is left",
		setup: []Request{rq("k3", batchLimC, 3)},
		batch: []Request{rq("k1", batchLimA, 1), rq("k3", batchLimC, 3), rq("k4", batchLimA, 1)}, want: "ad"},
	{name: "one request",
		batch: []Request{rq("k1", batchLimA, 1)}, want: "a"},
	{name: "no request", want: ""},
}

// sequentialAllow is the loop AllowAll replaces, written out independently
// of the package's own helper: the reference of every comparison.
func sequentialAllow(ctx context.Context, s Store, reqs []Request) ([]Result, error) {
	var out []Result
	for _, q := range reqs {
		r, err := s.Allow(ctx, q.Key, q.Limit, q.N)
		if err != nil {
			return out, err
		}
		out = append(out, r)
		if !r.Allowed && !q.ContinueOnDeny {
			break
		}
	}
	return out, nil
}

func shape(rs []Result) string {
	var b strings.Builder
	for _, r := range rs {
		if r.Allowed {
			b.WriteByte('a')
		} else {
			b.WriteByte('d')
		}
	}
	return b.String()
}

// checkScenario builds the scenario's state in ref and in sut, decides the
// batch with sequential Allow calls on ref and with one AllowAll on sut,
// and compares the results and then every key's state (a read of each).
func checkScenario(t *testing.T, sc batchScenario, ref Store, sut BatchStore, same func(got, want Result) bool) {
	t.Helper()
	ctx := context.Background()
	for _, q := range sc.setup {
		allow(t, ref, q.Key, q.Limit, q.N)
		allow(t, sut, q.Key, q.Limit, q.N)
	}
	want, err := sequentialAllow(ctx, ref, sc.batch)
	if err != nil {
		t.Fatalf("sequential Allow: %v", err)
	}
	got, err := sut.AllowAll(ctx, sc.batch)
	if err != nil {
		t.Fatalf("AllowAll: %v", err)
	}
	if shape(want) != sc.want {
		t.Fatalf("the sequential reference decided %q; the scenario expects %q", shape(want), sc.want)
	}
	if len(got) != len(want) {
		t.Fatalf("AllowAll decided %d requests (%q); sequential Allow %d (%q)", len(got), shape(got), len(want), shape(want))
	}
	for i := range got {
		if !same(got[i], want[i]) {
			t.Fatalf("request %d: AllowAll %+v; sequential Allow %+v", i, got[i], want[i])
		}
	}
	for _, k := range batchKeys {
		w, g := allow(t, ref, k.key, k.lim, 0), allow(t, sut, k.key, k.lim, 0)
		if !same(g, w) {
			t.Fatalf("state of %s after the batch: AllowAll side %+v; sequential side %+v", k.key, g, w)
		}
	}
}

func TestLocalAllowAllMatchesSequential(t *testing.T) {
	for _, sc := range batchScenarios {
		t.Run(sc.name, func(t *testing.T) {
			clk := newFakeClock() // one frozen instant: results must be identical
			ref := NewLocal(LocalOptions{Now: clk.Now})
			sut := LocalStores{Local: NewLocal(LocalOptions{Now: clk.Now})} // LocalStores gets AllowAll from *Local
			checkScenario(t, sc, ref, sut, func(g, w Result) bool { return g == w })
		})
	}
}

// invalidBatches each hold a bad request after a valid one: nothing of the
// batch may be counted.
var invalidBatches = []struct {
	name  string
	batch []Request
	want  error
}{
	{name: "negative count", batch: []Request{rq("k1", batchLimA, 1), rq("k2", batchLimB, -1)}, want: ErrInvalidLimit},
	{name: "over the burst", batch: []Request{rq("k1", batchLimA, 1), rq("k2", batchLimB, 3)}, want: ErrExceedsBurst},
	{name: "invalid limit", batch: []Request{rq("k1", batchLimA, 1), rq("k2", Limit{Period: time.Second, Burst: 1}, 1)}, want: ErrInvalidLimit},
	{name: "bad request last of three", batch: []Request{rq("k1", batchLimA, 1), goOn(rq("k3", batchLimC, 1)), rq("k2", batchLimB, 9)}, want: ErrExceedsBurst},
}

// checkInvalid runs every invalid batch on s and checks that it is refused
// with Allow's sentinel, with no result and no count taken in counts (the
// store the counts would be in).
func checkInvalid(t *testing.T, s BatchStore, counts Store) {
	t.Helper()
	for _, tt := range invalidBatches {
		res, err := s.AllowAll(context.Background(), tt.batch)
		if !errors.Is(err, tt.want) || len(res) != 0 {
			t.Fatalf("%s: AllowAll = %v, %v; want %v and no result", tt.name, res, err, tt.want)
		}
		if strings.HasPrefix(err.Error(), "ratelimit: redis:") {
			t.Fatalf("%s: error %v reads as a transport error", tt.name, err)
		}
	}
	for _, k := range batchKeys {
		if r := allow(t, counts, k.key, k.lim, 0); r.Remaining != k.lim.Burst || r.ResetAfter != 0 {
			t.Fatalf("%s after the invalid batches: %+v; want untouched (a full burst)", k.key, r)
		}
	}
}

func TestLocalAllowAllInvalidArgumentsCountNothing(t *testing.T) {
	st := NewLocal(LocalOptions{Now: newFakeClock().Now})
	checkInvalid(t, st, st)
}

func TestLocalAllowAllCancelled(t *testing.T) {
	st := NewLocal(LocalOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if res, err := st.AllowAll(ctx, []Request{rq("k1", batchLimA, 1)}); !errors.Is(err, context.Canceled) || len(res) != 0 {
		t.Fatalf("AllowAll on a cancelled context = %v, %v; want context.Canceled", res, err)
	}
	if r := allow(t, st, "k1", batchLimA, 0); r.Remaining != batchLimA.Burst {
		t.Fatalf("a cancelled batch counted: %+v", r)
	}
}

// concurrentBatches runs 1,000 batches at once over three keys with the
// given bursts, each batch naming the keys in one of three rotations, and
// returns how many events each key admitted. decide runs one batch.
func concurrentBatches(t *testing.T, lims [3]Limit, decide func(i int, reqs []Request) ([]Result, error)) [3]int64 {
	t.Helper()
	keys := [3]string{"shared:a", "shared:b", "shared:c"}
	var admitted [3]atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range 1000 {
		wg.Go(func() {
			reqs := make([]Request, 3)
			idx := make([]int, 3)
			for j := range 3 {
				k := (i + j) % 3 // every key comes first in a third of the batches
				idx[j] = k
				reqs[j] = rq(keys[k], lims[k], 1)
			}
			<-start
			res, err := decide(i, reqs)
			if err != nil {
				t.Error(err)
				return
			}
			if len(res) == 0 || len(res) > 3 || (len(res) < 3 && res[len(res)-1].Allowed) {
				t.Errorf("batch %d: %q; want every request decided or a stop at a denial", i, shape(res))
				return
			}
			for j, r := range res {
				if !r.Allowed && j < len(res)-1 {
					t.Errorf("batch %d: %q goes on after a denial", i, shape(res))
				}
				if r.Allowed {
					admitted[idx[j]].Add(1)
				}
			}
		})
	}
	close(start)
	wg.Wait()
	return [3]int64{admitted[0].Load(), admitted[1].Load(), admitted[2].Load()}
}

// burstLimits have no refill within a test (one event per hour) and
// different bursts, each below the 333 batches that name the key first.
var burstLimits = [3]Limit{
	{Rate: 1, Period: time.Hour, Burst: 37},
	{Rate: 1, Period: time.Hour, Burst: 23},
	{Rate: 1, Period: time.Hour, Burst: 11},
}

func TestLocalAllowAllConcurrentNeverExceedsBurst(t *testing.T) {
	st := NewLocal(LocalOptions{})
	got := concurrentBatches(t, burstLimits, func(_ int, reqs []Request) ([]Result, error) {
		return st.AllowAll(context.Background(), reqs)
	})
	// Each key is first in 333 batches, more than its burst: the burst is
	// reached, and never passed.
	for k, lim := range burstLimits {
		if got[k] != int64(lim.Burst) {
			t.Fatalf("key %d admitted %d events under 1,000 concurrent batches; want exactly its burst %d (all: %v)", k, got[k], lim.Burst, got)
		}
	}
}

// fakeBatchPrimary is a fakePrimary with AllowAll: it allows every
// request (marked with primaryMark) or, when err is set, decides the first
// `decide` requests and then fails with err.
type fakeBatchPrimary struct {
	*fakePrimary
	decide  int
	batches atomic.Int64
}

func (p *fakeBatchPrimary) AllowAll(_ context.Context, reqs []Request) ([]Result, error) {
	p.batches.Add(1)
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []Result
	for i, q := range reqs {
		if p.err != nil && i == p.decide {
			return out, p.err
		}
		out = append(out, Result{Allowed: true, Remaining: primaryMark, Limit: q.Limit})
	}
	return out, nil
}

func TestFailoverAllowAllPolicies(t *testing.T) {
	lim3 := Limit{Rate: 1, Period: time.Hour, Burst: 3}
	lim1 := Limit{Rate: 1, Period: time.Hour, Burst: 1}
	// Under the local fallback: a allowed, b allowed then denied (going
	// on), c allowed then denied (stop), d never decided.
	reqs := []Request{goOn(rq("a", lim3, 1)), goOn(rq("b", lim1, 1)), goOn(rq("b", lim1, 1)), rq("c", lim1, 1), rq("c", lim1, 1), rq("d", lim3, 1)}
	tests := []struct {
		policy FallbackPolicy
		mode   string // "primary error", "gate down", "primary fails after 2"
		want   string // P decided by the primary, a/d by the fallback
	}{
		{FallbackLocal, "primary error", "aadad"},
		{FallbackLocal, "gate down", "aadad"},
		{FallbackLocal, "primary fails after 2", "PPaad"},
		{FallbackOpen, "primary error", "aaaaaa"},
		{FallbackOpen, "gate down", "aaaaaa"},
		{FallbackOpen, "primary fails after 2", "PPaaaa"},
		{FallbackClosed, "primary error", "dddd"},
		{FallbackClosed, "gate down", "dddd"},
		{FallbackClosed, "primary fails after 2", "PPdd"},
	}
	for _, tt := range tests {
		t.Run(tt.policy.String()+"/"+tt.mode, func(t *testing.T) {
			x := newFailoverFixture(tt.policy)
			p := &fakeBatchPrimary{fakePrimary: x.primary}
			x.f.primary = p
			p.setErr(errConnRefused)
			decided := 0
			switch tt.mode {
			case "gate down":
				x.health.set(false)
			case "primary fails after 2":
				p.decide, decided = 2, 2
			}
			got, err := x.f.AllowAll(context.Background(), reqs)
			if err != nil {
				t.Fatalf("AllowAll: %v", err)
			}

			// The fallback's part, as a reference: the local policy is a
			// sequential run on a fresh local store at the same instant.
			rest := reqs[decided:]
			var fb []Result
			switch tt.policy {
			case FallbackLocal:
				fb, _ = sequentialAllow(context.Background(), NewLocal(LocalOptions{Now: x.clk.Now}), rest)
			case FallbackOpen:
				for _, q := range rest {
					fb = append(fb, Result{Allowed: true, Remaining: q.Limit.Burst, Limit: q.Limit})
				}
			case FallbackClosed:
				for _, q := range rest {
					fb = append(fb, Result{RetryAfter: time.Second, ResetAfter: time.Second, Limit: q.Limit})
					if !q.ContinueOnDeny {
						break
					}
				}
			}
			var want []Result
			var letters strings.Builder
			for _, q := range reqs[:decided] {
				want = append(want, Result{Allowed: true, Remaining: primaryMark, Limit: q.Limit})
				letters.WriteByte('P')
			}
			for _, r := range fb {
				r.Fallback = true
				want = append(want, r)
			}
			letters.WriteString(shape(fb))
			if letters.String() != tt.want {
				t.Fatalf("reference %q; the table expects %q", letters.String(), tt.want)
			}
			if len(got) != len(want) {
				t.Fatalf("AllowAll decided %d: %+v; want %d: %+v", len(got), got, len(want), want)
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("request %d: %+v; want %+v", i, got[i], want[i])
				}
			}

			// One Observe for the batch; one onFallback per fallback
			// decision, the first with the primary's error.
			wantObserved := []error{errConnRefused}
			first := errConnRefused
			if tt.mode == "gate down" {
				wantObserved, first = nil, nil
				if n := p.batches.Load() + int64(p.callCount()); n != 0 {
					t.Fatalf("primary called %d times while the gate was down", n)
				}
			} else if p.batches.Load() != 1 || p.callCount() != 0 {
				t.Fatalf("primary: %d AllowAll, %d Allow calls; want one AllowAll", p.batches.Load(), p.callCount())
			}
			wantFallback := make([]error, len(fb))
			wantFallback[0] = first
			if got := x.health.take(); !sameErrs(got, wantObserved) {
				t.Fatalf("Observe calls = %v; want %v", got, wantObserved)
			}
			if got := x.takeFallbacks(); !sameErrs(got, wantFallback) {
				t.Fatalf("onFallback calls = %v; want %v", got, wantFallback)
			}
		})
	}
}

func TestFailoverAllowAllPrimaryUp(t *testing.T) {
	x := newFailoverFixture(FallbackClosed)
	p := &fakeBatchPrimary{fakePrimary: x.primary}
	x.f.primary = p
	reqs := []Request{rq("a", batchLimA, 1), rq("b", batchLimB, 1)}
	got, err := x.f.AllowAll(context.Background(), reqs)
	if err != nil || len(got) != 2 || got[0].Remaining != primaryMark || got[1].Remaining != primaryMark || got[0].Fallback || got[1].Fallback {
		t.Fatalf("AllowAll = %+v, %v; want the primary's two decisions", got, err)
	}
	if p.batches.Load() != 1 || p.callCount() != 0 {
		t.Fatalf("primary: %d AllowAll, %d Allow; want one AllowAll", p.batches.Load(), p.callCount())
	}
	if obs := x.health.take(); !sameErrs(obs, []error{nil}) {
		t.Fatalf("Observe calls = %v; want one success", obs)
	}
	if fb := x.takeFallbacks(); len(fb) != 0 {
		t.Fatalf("onFallback called while the primary answered: %v", fb)
	}
}

func TestFailoverAllowAllErrors(t *testing.T) {
	t.Run("bad arguments under every policy, without the primary", func(t *testing.T) {
		for _, pol := range []FallbackPolicy{FallbackLocal, FallbackOpen, FallbackClosed} {
			x := newFailoverFixture(pol)
			x.health.set(false)
			checkInvalid(t, x.f, x.f.local)
			if fb := x.takeFallbacks(); len(fb) != 0 {
				t.Fatalf("%s: onFallback called for bad arguments: %v", pol, fb)
			}
		}
	})
	t.Run("the primary's argument error passes through", func(t *testing.T) {
		x := newFailoverFixture(FallbackOpen)
		p := &fakeBatchPrimary{fakePrimary: x.primary}
		x.f.primary = p
		perr := fmt.Errorf("%w: from the primary", ErrInvalidLimit)
		p.setErr(perr)
		if res, err := x.f.AllowAll(context.Background(), []Request{rq("a", batchLimA, 1)}); err != perr || len(res) != 0 {
			t.Fatalf("AllowAll = %v, %v; want the primary's %v", res, err, perr)
		}
		if obs, fb := x.health.take(), x.takeFallbacks(); len(obs) != 0 || len(fb) != 0 {
			t.Fatalf("argument error observed %v, notified %v; want neither", obs, fb)
		}
	})
	t.Run("the caller's cancelled context is no outage", func(t *testing.T) {
		x := newFailoverFixture(FallbackOpen)
		p := &fakeBatchPrimary{fakePrimary: x.primary, decide: 1}
		x.f.primary = p
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		p.setErr(fmt.Errorf("ratelimit: redis: %w", context.Canceled))
		res, err := x.f.AllowAll(ctx, []Request{rq("a", batchLimA, 1), rq("b", batchLimB, 1)})
		if !errors.Is(err, context.Canceled) || len(res) != 1 || res[0].Remaining != primaryMark {
			t.Fatalf("AllowAll = %+v, %v; want the primary's first decision and context.Canceled", res, err)
		}
		if obs, fb := x.health.take(), x.takeFallbacks(); len(obs) != 0 || len(fb) != 0 {
			t.Fatalf("cancelled caller observed %v, notified %v; want neither", obs, fb)
		}
	})
}

// TestFailoverAllowAllWithoutBatchPrimary: a primary with only Allow is
// called once per request, exactly as the Allow loop would.
func TestFailoverAllowAllWithoutBatchPrimary(t *testing.T) {
	x := newFailoverFixture(FallbackLocal)
	reqs := []Request{rq("a", batchLimA, 1), rq("b", batchLimB, 1), rq("c", batchLimC, 1)}
	got, err := x.f.AllowAll(context.Background(), reqs)
	if err != nil || len(got) != 3 || got[2].Remaining != primaryMark || got[2].Fallback {
		t.Fatalf("AllowAll = %+v, %v; want three primary decisions", got, err)
	}
	if x.primary.callCount() != 3 {
		t.Fatalf("primary Allow calls = %d; want 3", x.primary.callCount())
	}
	x.primary.setErr(errConnRefused)
	got, err = x.f.AllowAll(context.Background(), reqs)
	if err != nil || len(got) != 3 || !got[0].Fallback || got[0].Remaining != batchLimA.Burst-1 {
		t.Fatalf("AllowAll = %+v, %v; want three local decisions", got, err)
	}
	if fb := x.takeFallbacks(); !sameErrs(fb, []error{errConnRefused, errConnRefused, errConnRefused}) {
		t.Fatalf("onFallback calls = %v; want one per Allow", fb)
	}
}
