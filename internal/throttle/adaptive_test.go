package throttle

import (
	"math"
	"testing"
	"time"
)

// round simulates one batch under load: it takes every slot the current
// limit allows, lets lat pass on the clock, and releases them all with lat
// and outcome. About half of the slots are granted "busy".
func round(t *testing.T, l *Limiter, clk *fakeClock, lat time.Duration, outcome Outcome) {
	t.Helper()
	n := l.Stats().Limit
	toks := make([]Token, 0, n)
	for range n {
		tok, ok := l.TryAcquire()
		if !ok {
			t.Fatalf("TryAcquire failed below the limit: %+v", l.Stats())
		}
		toks = append(toks, tok)
	}
	clk.Advance(lat)
	for i := range toks {
		toks[i].Release(lat, outcome)
	}
	checkBounds(t, l)
}

// sequential releases n samples one at a time: never busy.
func sequential(t *testing.T, l *Limiter, clk *fakeClock, n int, lat time.Duration, outcome Outcome) {
	t.Helper()
	for range n {
		tok, ok := l.TryAcquire()
		if !ok {
			t.Fatal("TryAcquire failed on an idle limiter")
		}
		clk.Advance(lat)
		tok.Release(lat, outcome)
	}
	checkBounds(t, l)
}

func checkBounds(t *testing.T, l *Limiter) {
	t.Helper()
	s := l.Stats()
	if s.Limit < l.minConc || s.Limit > l.maxConc {
		t.Fatalf("limit %d outside [%d, %d]", s.Limit, l.minConc, l.maxConc)
	}
	if l.limit < float64(l.minConc) || l.limit > float64(l.maxConc) {
		t.Fatalf("float limit %v outside [%d, %d]", l.limit, l.minConc, l.maxConc)
	}
}

func newAdaptive(t *testing.T, o Options) (*Limiter, *fakeClock) {
	t.Helper()
	clk := newFakeClock()
	o.Adaptive, o.Now = true, clk.Now
	return mustNew(t, o), clk
}

// TestDecreaseAboveTarget: each round of 50ms samples against a 10ms target
// costs exactly one ×0.9 (one per window), down to the floor and no further.
func TestDecreaseAboveTarget(t *testing.T) {
	for _, outcome := range []Outcome{Success, Failure} {
		t.Run(outcome.String(), func(t *testing.T) {
			l, clk := newAdaptive(t, Options{MaxConcurrency: 100, MinConcurrency: 10, TargetLatency: 10 * time.Millisecond})
			lat := 50 * time.Millisecond
			if outcome == Failure {
				// Failures are congestion whatever their latency; one good
				// sample first sets the window to 2ms, one per round.
				sequential(t, l, clk, 1, 2*time.Millisecond, Success)
				lat = 2 * time.Millisecond
			}
			want := 100.0
			for range 40 {
				round(t, l, clk, lat, outcome)
				want = max(10, want*backoffRatio)
				if got := l.Stats().Limit; got != int(math.Floor(want)) {
					t.Fatalf("limit = %d; want %d", got, int(math.Floor(want)))
				}
			}
			if got := l.Stats().Limit; got != 10 {
				t.Fatalf("limit after sustained congestion = %d; want the floor 10", got)
			}
		})
	}
}

// TestOneBurstOneDecrease: a full batch of very slow responses that were all
// in flight together decreases the limit once, not once per response.
func TestOneBurstOneDecrease(t *testing.T) {
	l, clk := newAdaptive(t, Options{MaxConcurrency: 100, MinConcurrency: 1, TargetLatency: 10 * time.Millisecond})
	round(t, l, clk, 500*time.Millisecond, Success)
	if got := l.Stats().Limit; got != 90 {
		t.Fatalf("limit after one slow burst = %d; want 90", got)
	}
	// Failures inside the same window are absorbed too.
	round(t, l, clk, 0, Failure)
	if got := l.Stats().Limit; got != 90 {
		t.Fatalf("limit after failures within the window = %d; want 90", got)
	}
}

func TestIgnoreFeedsNothing(t *testing.T) {
	l, clk := newAdaptive(t, Options{MaxConcurrency: 20, TargetLatency: time.Millisecond})
	for range 20 {
		round(t, l, clk, time.Second, Ignore)
		round(t, l, clk, time.Second, Outcome(200)) // unknown: treated as Ignore
	}
	if s := l.Stats(); s.Limit != 20 || s.Latency != 0 || s.Baseline != 0 {
		t.Fatalf("Ignore changed the limiter: %+v", s)
	}
}

// TestRecovery: after congestion ends, the limit climbs back under load,
// never above the ceiling, and not at all without load.
func TestRecovery(t *testing.T) {
	l, clk := newAdaptive(t, Options{MaxConcurrency: 100, MinConcurrency: 10, TargetLatency: 10 * time.Millisecond})
	for range 40 {
		round(t, l, clk, 50*time.Millisecond, Success)
	}
	if got := l.Stats().Limit; got != 10 {
		t.Fatalf("limit = %d; want floor 10", got)
	}
	// Idle traffic (one request at a time) says nothing about the upstream
	// under load: the limit stays.
	sequential(t, l, clk, 500, 2*time.Millisecond, Success)
	if got := l.Stats().Limit; got != 10 {
		t.Fatalf("limit rose without load: %d", got)
	}
	// Loaded rounds with normal latency: the limit climbs to the ceiling.
	prev, rounds := 10, 0
	for ; l.Stats().Limit < 100; rounds++ {
		if rounds > 2000 {
			t.Fatalf("limit stuck at %d", l.Stats().Limit)
		}
		round(t, l, clk, 2*time.Millisecond, Success)
		got := l.Stats().Limit
		if got < prev {
			t.Fatalf("limit fell from %d to %d under normal latency", prev, got)
		}
		prev = got
	}
	for range 50 {
		round(t, l, clk, 2*time.Millisecond, Success)
		if got := l.Stats().Limit; got != 100 {
			t.Fatalf("limit = %d; want the ceiling 100", got)
		}
	}
}

// TestLearnedBaseline: with TargetLatency 0 the threshold is Tolerance ×
// the learned no-load latency.
func TestLearnedBaseline(t *testing.T) {
	l, clk := newAdaptive(t, Options{MaxConcurrency: 50, MinConcurrency: 5})
	for range 20 {
		round(t, l, clk, 5*time.Millisecond, Success)
	}
	s := l.Stats()
	if s.Limit != 50 || s.Baseline != 5*time.Millisecond || s.Latency != 5*time.Millisecond {
		t.Fatalf("after steady 5ms: %+v", s)
	}
	for range 5 {
		round(t, l, clk, 50*time.Millisecond, Success)
	}
	s = l.Stats()
	if s.Limit >= 50 {
		t.Fatalf("limit %d did not decrease after 5ms→50ms", s.Limit)
	}
	if s.Baseline > s.Latency/3 {
		t.Fatalf("baseline rose fast: %+v", s)
	}

	// A lasting change is learned: after enough samples at 50ms the
	// baseline has risen, 50ms is normal again and the limit recovers.
	for range 2000 {
		round(t, l, clk, 50*time.Millisecond, Success)
		if l.Stats().Limit == 50 {
			break
		}
	}
	s = l.Stats()
	if s.Limit != 50 || s.Baseline < 25*time.Millisecond {
		t.Fatalf("did not adapt to a lasting 50ms: %+v", s)
	}
}

func TestLearnedBaselineTolerance(t *testing.T) {
	l, clk := newAdaptive(t, Options{MaxConcurrency: 50, Tolerance: 20})
	for range 20 {
		round(t, l, clk, 5*time.Millisecond, Success)
	}
	for range 20 {
		round(t, l, clk, 50*time.Millisecond, Success)
	}
	if got := l.Stats().Limit; got != 50 {
		t.Fatalf("10× latency within Tolerance 20 decreased the limit to %d", got)
	}
}

// TestBaselineFollowsShortTermDown: a faster upstream lowers the baseline as
// fast as the short-term estimate; a single fast outlier barely moves it.
func TestBaselineFollowsShortTermDown(t *testing.T) {
	l, clk := newAdaptive(t, Options{MaxConcurrency: 10})
	sequential(t, l, clk, 50, 10*time.Millisecond, Success)
	sequential(t, l, clk, 1, 0, Success)
	if s := l.Stats(); s.Baseline < 8*time.Millisecond {
		t.Fatalf("one fast outlier dragged the baseline to %s", s.Baseline)
	}
	sequential(t, l, clk, 100, time.Millisecond, Success)
	if s := l.Stats(); s.Baseline > 1100*time.Microsecond {
		t.Fatalf("baseline %s did not follow a faster upstream", s.Baseline)
	}
}

// TestLimitBelowInFlight: a drop of the limit evicts nobody; new requests
// wait until enough slots are released.
func TestLimitBelowInFlight(t *testing.T) {
	l, clk := newAdaptive(t, Options{MaxConcurrency: 10, MinConcurrency: 2, TargetLatency: time.Millisecond})
	var toks []Token
	for range 10 {
		tok, _ := l.TryAcquire()
		toks = append(toks, tok)
	}
	clk.Advance(time.Second)
	toks[0].Release(time.Second, Success) // congestion: 10 → 9
	toks = toks[1:]
	if s := l.Stats(); s.Limit != 9 || s.InFlight != 9 {
		t.Fatalf("stats = %+v", s)
	}
	clk.Advance(time.Second)
	toks[0].Release(time.Second, Failure) // 9 → 8.1
	toks = toks[1:]
	if s := l.Stats(); s.Limit != 8 || s.InFlight != 8 {
		t.Fatalf("stats = %+v", s)
	}
	clk.Advance(time.Second)
	toks[0].Release(time.Second, Failure) // 8.1 → 7.29, InFlight 7
	toks = toks[1:]
	if _, ok := l.TryAcquire(); ok {
		t.Fatal("acquired at the limit")
	}
	toks[0].Release(0, Ignore)
	toks = toks[1:]
	tok, ok := l.TryAcquire()
	if !ok {
		t.Fatalf("no slot below the limit: %+v", l.Stats())
	}
	toks = append(toks, tok)
	for i := range toks {
		toks[i].Release(0, Ignore)
	}
	if s := l.Stats(); s.InFlight != 0 {
		t.Fatalf("InFlight = %d", s.InFlight)
	}
}

func TestStaticIgnoresSamples(t *testing.T) {
	clk := newFakeClock()
	l := mustNew(t, Options{MaxConcurrency: 10, TargetLatency: time.Millisecond, Now: clk.Now})
	for range 20 {
		round(t, l, clk, time.Second, Failure)
	}
	if s := l.Stats(); s.Limit != 10 || s.Latency != 0 {
		t.Fatalf("static limiter adapted: %+v", s)
	}
}
