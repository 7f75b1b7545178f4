package throttle

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Defaults applied by New to zero-valued Options fields. The package
// documentation gives the reasoning behind each value.
const (
	// DefaultQueueTimeout is the longest a request waits in the queue when
	// Options.QueueTimeout is zero.
	DefaultQueueTimeout = time.Second
	// DefaultTolerance is the ratio of short-term to baseline latency that
	// counts as congestion when Options.Tolerance is zero.
	DefaultTolerance = 2.0
	// DefaultMinConcurrencyDivisor derives the adaptive floor when
	// Options.MinConcurrency is zero: MaxConcurrency / 10, at least 1.
	DefaultMinConcurrencyDivisor = 10
	// MaxMaxConcurrency is the largest accepted MaxConcurrency; slot
	// indexes are 32-bit.
	MaxMaxConcurrency = math.MaxInt32
)

// ErrInvalidOptions is wrapped by every problem New reports.
var ErrInvalidOptions = errors.New("throttle: invalid options")

// Options configures a Limiter. Only MaxConcurrency is required; every
// other zero value selects a documented default.
type Options struct {
	// MaxConcurrency is the hard ceiling of in-flight requests. It must be
	// positive. The (adaptive) limit never exceeds it.
	MaxConcurrency int
	// QueueSize is how many requests may wait for a slot beyond the limit.
	// 0 means no queue: a request that finds no free slot is shed at once.
	QueueSize int
	// QueueTimeout is the longest a request waits in the queue before it is
	// shed with ErrQueueTimeout; 0 means DefaultQueueTimeout. It is measured
	// with real timers, not with Now.
	QueueTimeout time.Duration
	// Adaptive lets the limit move between MinConcurrency and
	// MaxConcurrency, driven by the latencies and outcomes passed to
	// Token.Release. Without it the limit is MaxConcurrency.
	Adaptive bool
	// MinConcurrency is the floor of the adaptive limit; 0 means
	// MaxConcurrency / DefaultMinConcurrencyDivisor, at least 1. It must not
	// exceed MaxConcurrency.
	MinConcurrency int
	// TargetLatency, when positive, is the short-term latency above which
	// the upstream counts as congested. 0 means a learned threshold:
	// Tolerance × baseline latency.
	TargetLatency time.Duration
	// Tolerance is the ratio of short-term to baseline latency that counts
	// as congestion when TargetLatency is 0; 0 means DefaultTolerance. A set
	// value must be greater than 1. It is ignored when TargetLatency is set.
	Tolerance float64
	// Now is the clock for the adaptive algorithm; nil means time.Now.
	// Tests inject a fake.
	Now func() time.Time
}

// validate reports every problem with o at once, each wrapping
// ErrInvalidOptions. Fields used only by the adaptive limit are checked
// even when Adaptive is false, so that switching it on later cannot expose
// a silently wrong value.
func (o Options) validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidOptions}, args...)...))
	}
	switch {
	case o.MaxConcurrency <= 0:
		bad("MaxConcurrency %d must be positive", o.MaxConcurrency)
	case o.MaxConcurrency > MaxMaxConcurrency:
		bad("MaxConcurrency %d exceeds %d", o.MaxConcurrency, MaxMaxConcurrency)
	}
	if o.QueueSize < 0 {
		bad("QueueSize %d must not be negative", o.QueueSize)
	}
	if o.QueueTimeout < 0 {
		bad("QueueTimeout %s must not be negative", o.QueueTimeout)
	}
	switch {
	case o.MinConcurrency < 0:
		bad("MinConcurrency %d must not be negative", o.MinConcurrency)
	case o.MaxConcurrency > 0 && o.MinConcurrency > o.MaxConcurrency:
		bad("MinConcurrency %d exceeds MaxConcurrency %d", o.MinConcurrency, o.MaxConcurrency)
	}
	if o.TargetLatency < 0 {
		bad("TargetLatency %s must not be negative", o.TargetLatency)
	}
	switch {
	case math.IsNaN(o.Tolerance) || math.IsInf(o.Tolerance, 0):
		bad("Tolerance %v must be a finite number", o.Tolerance)
	case o.Tolerance < 0:
		bad("Tolerance %v must not be negative", o.Tolerance)
	case o.Tolerance > 0 && o.Tolerance <= 1:
		bad("Tolerance %v must be greater than 1 (the baseline itself would count as congestion)", o.Tolerance)
	}
	return errors.Join(errs...)
}

// withDefaults returns o with every zero-valued optional field replaced by
// its default. o must be valid.
func (o Options) withDefaults() Options {
	if o.QueueTimeout == 0 {
		o.QueueTimeout = DefaultQueueTimeout
	}
	if o.MinConcurrency == 0 {
		o.MinConcurrency = max(1, o.MaxConcurrency/DefaultMinConcurrencyDivisor)
	}
	if o.Tolerance == 0 {
		o.Tolerance = DefaultTolerance
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}
