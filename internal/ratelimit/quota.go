package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// maxQuotaLimit bounds Quota.Limit at 2^52 so that a count plus a request
// (each at most 2^52) stays below 2^53, the largest integer a Lua number —
// a float64 — holds exactly: the Redis store and the local one then compare
// the same exact integers. 2^52 is about 4.5 × 10^15 events per window.
const maxQuotaLimit = 1 << 52

// Period is the calendar window a Quota counts in. Windows are aligned to
// UTC: a Day window runs from 00:00 UTC to the next 00:00 UTC, a Month window
// from 00:00 UTC on the 1st to 00:00 UTC on the 1st of the next month. The
// zero Period is invalid.
type Period uint8

const (
	// Day is one UTC calendar day.
	Day Period = iota + 1
	// Month is one UTC calendar month, whatever its number of days.
	Month
)

// String returns "day" or "month", the unit ParseQuota accepts.
func (p Period) String() string {
	switch p {
	case Day:
		return "day"
	case Month:
		return "month"
	default:
		return "Period(" + strconv.Itoa(int(p)) + ")"
	}
}

// window returns the UTC calendar window of period p that contains t: a
// stable identifier ("d20260131", "m202601") and the instant it ends. It
// assumes a valid p.
func (p Period) window(t time.Time) (id string, end time.Time) {
	t = t.UTC()
	y, m, d := t.Date()
	if p == Month {
		start := time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
		return "m" + start.Format("200601"), start.AddDate(0, 1, 0)
	}
	start := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	return "d" + start.Format("20060102"), start.AddDate(0, 0, 1)
}

// Quota allows Limit events per calendar window of Period for each key,
// such as 10000 per day. Unlike a Limit it does not refill gradually: the
// whole allowance comes back at the start of the next window.
type Quota struct {
	Limit  int64
	Period Period
}

// Validate reports every problem with q at once, each wrapping ErrInvalidLimit.
func (q Quota) Validate() error {
	var errs []error
	if q.Limit <= 0 {
		errs = append(errs, fmt.Errorf("%w: quota %d must be positive", ErrInvalidLimit, q.Limit))
	} else if q.Limit > maxQuotaLimit {
		errs = append(errs, fmt.Errorf("%w: quota %d exceeds the maximum %d", ErrInvalidLimit, q.Limit, int64(maxQuotaLimit)))
	}
	if q.Period != Day && q.Period != Month {
		errs = append(errs, fmt.Errorf("%w: quota period %s is not day or month", ErrInvalidLimit, q.Period))
	}
	return errors.Join(errs...)
}

// String renders q as "<limit>/<period>", the form ParseQuota accepts.
func (q Quota) String() string {
	return strconv.FormatInt(q.Limit, 10) + "/" + q.Period.String()
}

// ParseQuota parses "<count>/day" or "<count>/month", such as "10000/day"
// or "250000/month". The count is decimal digits only: no sign, spaces or
// fraction; the unit is lower case. Errors wrap ErrInvalidLimit.
func ParseQuota(s string) (Quota, error) {
	num, unit, ok := strings.Cut(s, "/")
	if !ok {
		return Quota{}, fmt.Errorf("%w: quota %q: want <count>/day or <count>/month", ErrInvalidLimit, s)
	}
	var p Period
	switch unit {
	case "day":
		p = Day
	case "month":
		p = Month
	default:
		return Quota{}, fmt.Errorf("%w: quota %q: unit %q is not day or month", ErrInvalidLimit, s, unit)
	}
	if num == "" {
		return Quota{}, fmt.Errorf("%w: quota %q: missing count", ErrInvalidLimit, s)
	}
	for _, c := range num {
		if c < '0' || c > '9' {
			return Quota{}, fmt.Errorf("%w: quota %q: count %q must be a positive whole number", ErrInvalidLimit, s, num)
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n > maxQuotaLimit {
		// Only a range error is possible after the digit check.
		return Quota{}, fmt.Errorf("%w: quota %q: count %s is too large (maximum %d)", ErrInvalidLimit, s, num, int64(maxQuotaLimit))
	}
	if n == 0 {
		return Quota{}, fmt.Errorf("%w: quota %q: count must be at least 1", ErrInvalidLimit, s)
	}
	return Quota{Limit: n, Period: p}, nil
}

// QuotaResult is the outcome of one quota decision.
type QuotaResult struct {
	// Allowed reports whether the n events were admitted (and counted).
	Allowed bool
	// Remaining is how many events the current window still admits.
	Remaining int64
	// ResetAfter is the wait until the current window ends and the full
	// quota is back. For a FallbackClosed denial it is the retry interval.
	ResetAfter time.Duration
	// Quota is the quota the decision was made under.
	Quota Quota
	// Fallback reports that a Failover decided without its primary store.
	Fallback bool
}

// QuotaStore counts events against calendar-window quotas. Implementations
// must be safe for concurrent use. Take counts n events for key in the
// current window of q.Period if the count stays within q.Limit; a denied
// Take counts nothing, and n == 0 only reads. One key has one counter per
// Period: Take calls for the same key and period under different limits
// share it. Errors wrap ErrInvalidLimit or ErrExceedsBurst (n > q.Limit) for
// bad arguments; a shared store may also return transport errors.
type QuotaStore interface {
	Take(ctx context.Context, key string, q Quota, n int64) (QuotaResult, error)
}

// checkTake validates the arguments of a Take, the same way in every store.
func checkTake(q Quota, n int64) error {
	if err := q.Validate(); err != nil {
		return err
	}
	if n < 0 {
		return fmt.Errorf("%w: negative event count %d", ErrInvalidLimit, n)
	}
	if n > q.Limit {
		return fmt.Errorf("%w: %d events under quota %s", ErrExceedsBurst, n, q)
	}
	return nil
}

// checkAllow validates the arguments of an Allow exactly as Local does.
func checkAllow(l Limit, n int) error {
	if err := l.Validate(); err != nil {
		return err
	}
	if n < 0 {
		return fmt.Errorf("%w: negative event count %d", ErrInvalidLimit, n)
	}
	if n > l.Burst {
		return fmt.Errorf("%w: %d events under %s", ErrExceedsBurst, n, l)
	}
	return nil
}
