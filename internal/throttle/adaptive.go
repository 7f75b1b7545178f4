package throttle

import (
	"math"
	"time"
)

// Constants of the adaptive limit. The package documentation explains the
// choices.
const (
	// backoffRatio is the multiplicative decrease applied on congestion.
	backoffRatio = 0.9
	// shortAlpha weights a new Success sample in the short-term latency
	// EMA: about the last 10 samples matter.
	shortAlpha = 1.0 / 10
	// baselineAlpha weights a new Success sample in the baseline EMA:
	// about the last 1000 samples matter, so congestion lasting a few
	// hundred requests barely moves it.
	baselineAlpha = 1.0 / 1000
	// minLatencySample is the smallest latency sampled; it keeps the
	// learned baseline, and so the threshold, above zero.
	minLatencySample = time.Microsecond
	// minDecreaseInterval is the shortest interval between two decreases,
	// whatever the latency estimate.
	minDecreaseInterval = time.Millisecond
)

// estimator holds the latency estimates, in nanoseconds as float64. Both
// are 0 until the first Success sample.
type estimator struct {
	// short is the short-term EMA of Success latencies.
	short float64
	// baseline is a slow EMA of Success latencies that never exceeds short:
	// it falls as fast as short and rises about 100 times slower.
	baseline float64
	// decreasedAt is when the limit was last decreased; decreased reports
	// whether it ever was.
	decreasedAt time.Time
	decreased   bool
}

// add feeds one Success latency to the estimates.
func (e *estimator) add(latency time.Duration) {
	x := float64(max(latency, minLatencySample))
	if e.short == 0 {
		e.short, e.baseline = x, x
		return
	}
	e.short += shortAlpha * (x - e.short)
	e.baseline += baselineAlpha * (x - e.baseline)
	e.baseline = min(e.baseline, e.short)
}

// congested reports whether the short-term latency is above the threshold:
// target when positive, else tolerance × baseline. Without any sample
// nothing is congested.
func (e *estimator) congested(target time.Duration, tolerance float64) bool {
	if e.short == 0 {
		return false
	}
	if target > 0 {
		return e.short > float64(target)
	}
	return e.short > tolerance*e.baseline
}

// mayDecrease reports whether a decrease at now is allowed: at most one per
// window, where the window is the short-term latency (the time the upstream
// needs to show the effect of the previous decrease), at least
// minDecreaseInterval. A clock that went backwards allows nothing.
func (e *estimator) mayDecrease(now time.Time) bool {
	if !e.decreased {
		return true
	}
	window := max(time.Duration(e.short), minDecreaseInterval)
	return now.Sub(e.decreasedAt) >= window
}

// observeLocked applies one Success or Failure sample to the adaptive limit.
func (l *Limiter) observeLocked(now time.Time, latency time.Duration, outcome Outcome, busy bool) {
	congested := outcome == Failure
	if outcome == Success {
		l.est.add(latency)
		congested = l.est.congested(l.target, l.tolerance)
	}
	switch {
	case congested:
		if !l.est.mayDecrease(now) {
			return
		}
		l.est.decreasedAt, l.est.decreased = now, true
		l.limit = max(float64(l.minConc), l.limit*backoffRatio)
	case busy:
		l.limit = min(float64(l.maxConc), l.limit+1/l.limit)
	default:
		return
	}
	l.limitInt = min(l.maxConc, max(l.minConc, int(math.Floor(l.limit))))
}
