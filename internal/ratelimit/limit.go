package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Sentinel errors; callers branch on them with errors.Is.
var (
	// ErrInvalidLimit reports a Limit or a rate string that cannot be enforced.
	ErrInvalidLimit = errors.New("invalid rate limit")
	// ErrExceedsBurst reports a request for more events than the limit's
	// Burst: such a request can never be allowed, however long it waits.
	ErrExceedsBurst = errors.New("request exceeds burst")
)

// maxTolerance bounds T × Burst (about 146 years) so that TAT arithmetic in
// int64 nanoseconds cannot overflow for any realistic clock value.
const maxTolerance = time.Duration(1 << 62)

// Limit is a GCRA limit: Rate events per Period, with up to Burst events
// admitted at one instant after the key has been idle. See the package
// documentation for the exact formula.
type Limit struct {
	Rate   int
	Period time.Duration
	Burst  int
}

// Interval is the emission interval T = Period / Rate, truncated to whole
// nanoseconds. It is meaningful only for a valid Limit.
func (l Limit) Interval() time.Duration {
	return l.Period / time.Duration(l.Rate)
}

// Tolerance is τ = T × Burst. It is meaningful only for a valid Limit.
func (l Limit) Tolerance() time.Duration {
	return l.Interval() * time.Duration(l.Burst)
}

// Validate reports every problem with l at once, each wrapping ErrInvalidLimit.
func (l Limit) Validate() error {
	var errs []error
	if l.Rate <= 0 {
		errs = append(errs, fmt.Errorf("%w: rate %d must be positive", ErrInvalidLimit, l.Rate))
	}
	if l.Period <= 0 {
		errs = append(errs, fmt.Errorf("%w: period %s must be positive", ErrInvalidLimit, l.Period))
	}
	if l.Burst <= 0 {
		errs = append(errs, fmt.Errorf("%w: burst %d must be positive", ErrInvalidLimit, l.Burst))
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	t := l.Interval()
	if t <= 0 {
		return fmt.Errorf("%w: %d per %s is finer than one event per nanosecond", ErrInvalidLimit, l.Rate, l.Period)
	}
	if time.Duration(l.Burst) > maxTolerance/t {
		return fmt.Errorf("%w: burst %d at one event per %s spans more than %s", ErrInvalidLimit, l.Burst, t, maxTolerance)
	}
	return nil
}

// String renders l as "rate/period burst b", for logs and error messages.
func (l Limit) String() string {
	return fmt.Sprintf("%d/%s burst %d", l.Rate, l.Period, l.Burst)
}

// Result is the outcome of one decision: enough to render a 429 with
// Retry-After and the RateLimit / RateLimit-Policy headers.
type Result struct {
	// Allowed reports whether the n events were admitted (and counted).
	Allowed bool
	// Remaining is how many single events would be admitted right now.
	Remaining int
	// RetryAfter is zero when allowed; when denied, the wait after which the
	// same request is admitted (assuming no other traffic on the key).
	RetryAfter time.Duration
	// ResetAfter is the wait until the key is idle, with its full burst back.
	ResetAfter time.Duration
	// Limit is the limit the decision was made under.
	Limit Limit
	// Fallback reports that a Failover decided without its primary store.
	Fallback bool
}

// Store decides rate-limit requests. Implementations must be safe for
// concurrent use. Allow counts n events for key under l; n == 0 only reads.
// Errors wrap ErrInvalidLimit or ErrExceedsBurst for bad arguments; a shared
// store may also return transport errors, on which callers fall back.
type Store interface {
	Allow(ctx context.Context, key string, l Limit, n int) (Result, error)
}

// periods maps a rate string's unit to its period; "d" is a fixed 24 hours.
var periods = map[string]time.Duration{
	"s": time.Second,
	"m": time.Minute,
	"h": time.Hour,
	"d": 24 * time.Hour,
}

// ParseRate parses "<count>/<unit>" with unit s, m, h or d (24h), such as
// "100/s" or "10000/d". The count is positive decimal digits only: no sign,
// spaces or fraction. Errors wrap ErrInvalidLimit.
func ParseRate(s string) (rate int, period time.Duration, err error) {
	num, unit, ok := strings.Cut(s, "/")
	if !ok {
		return 0, 0, fmt.Errorf("%w: rate %q: want <count>/<unit> such as 100/s", ErrInvalidLimit, s)
	}
	period, ok = periods[unit]
	if !ok {
		return 0, 0, fmt.Errorf("%w: rate %q: unit %q is not one of s, m, h, d", ErrInvalidLimit, s, unit)
	}
	if num == "" {
		return 0, 0, fmt.Errorf("%w: rate %q: missing count", ErrInvalidLimit, s)
	}
	for _, c := range num {
		if c < '0' || c > '9' {
			return 0, 0, fmt.Errorf("%w: rate %q: count %q must be a positive whole number", ErrInvalidLimit, s, num)
		}
	}
	n, err := strconv.ParseInt(num, 10, 0) // bitSize 0: fits an int
	if err != nil {
		// Only a range error is possible after the digit check.
		return 0, 0, fmt.Errorf("%w: rate %q: count %s is too large", ErrInvalidLimit, s, num)
	}
	if n == 0 {
		return 0, 0, fmt.Errorf("%w: rate %q: count must be at least 1", ErrInvalidLimit, s)
	}
	if n > int64(period) {
		return 0, 0, fmt.Errorf("%w: rate %q: more than one event per nanosecond", ErrInvalidLimit, s)
	}
	return int(n), period, nil
}
