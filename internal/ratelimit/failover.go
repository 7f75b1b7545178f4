package ratelimit

import (
	"context"
	"errors"
	"strconv"
	"time"
)

// closedRetryAfter is the RetryAfter of a FallbackClosed denial: the shared
// store's health gate retries about once a second, so a client told to come
// back after one second usually finds it answering again.
const closedRetryAfter = time.Second

// Health is the shared gate in front of the primary store. Up reports
// whether to call the primary now (false during the back-off after a
// failure); Observe reports a call's outcome: nil on success, the error on
// a transport failure. Implementations must be safe for concurrent use.
type Health interface {
	Up() bool
	Observe(err error)
}

// FallbackPolicy says how a Failover decides while its primary is unusable.
type FallbackPolicy uint8

const (
	// FallbackLocal decides with the local store: limits hold per replica,
	// so a deployment of r replicas admits up to r times the shared limit.
	FallbackLocal FallbackPolicy = iota
	// FallbackOpen admits every request, reporting a full burst or quota.
	FallbackOpen
	// FallbackClosed denies every request, with a RetryAfter (or, for a
	// quota, a ResetAfter) of one second.
	FallbackClosed
)

// String returns "local", "open" or "closed".
func (p FallbackPolicy) String() string {
	switch p {
	case FallbackLocal:
		return "local"
	case FallbackOpen:
		return "open"
	case FallbackClosed:
		return "closed"
	default:
		return "FallbackPolicy(" + strconv.Itoa(int(p)) + ")"
	}
}

// CombinedStore is both a Store and a QuotaStore, as *Redis, *Failover and
// LocalStores are.
type CombinedStore interface {
	Store
	QuotaStore
}

// LocalStores pairs a Local and a LocalQuotas into the Store and QuotaStore
// that NewFailover takes as its fallback; it is a BatchStore through Local.
type LocalStores struct {
	*Local
	*LocalQuotas
}

var _ CombinedStore = LocalStores{}

// Failover is a Store, BatchStore and QuotaStore that decides with a
// primary (shared) store while it works and with a fallback policy while it
// does not. It is safe for concurrent use.
//
// When the Health gate is up, the primary decides; success is reported to
// the gate with Observe(nil). An error wrapping ErrInvalidLimit or
// ErrExceedsBurst is returned as is: it is about the arguments, not the
// store. When the caller's own context has ended, its error is returned and
// the gate is not told: the store did not fail. Any other error is a
// transport failure: it is reported with Observe(err) and onFallback(err),
// and the fallback decides. When the gate is down the primary is not
// called; onFallback(nil) is called and the fallback decides. Fallback
// decisions have Fallback set in their result.
type Failover struct {
	primary    CombinedStore
	local      CombinedStore
	health     Health
	policy     FallbackPolicy
	onFallback func(error)
	now        func() time.Time // for the ResetAfter of FallbackOpen quotas
}

var (
	_ Store      = (*Failover)(nil)
	_ QuotaStore = (*Failover)(nil)
)

// NewFailover returns a Failover from primary to local under policy p. A
// nil h counts as always up and observes nothing; a nil onFallback is not
// called. local is used only under FallbackLocal and may then not be nil.
func NewFailover(primary, local CombinedStore, h Health, p FallbackPolicy, onFallback func(err error)) *Failover {
	return &Failover{primary: primary, local: local, health: h, policy: p, onFallback: onFallback, now: time.Now}
}

// Allow decides with the primary or, when it is unusable, the fallback policy.
func (f *Failover) Allow(ctx context.Context, key string, l Limit, n int) (Result, error) {
	// Validate first so that every policy rejects bad arguments alike.
	if err := checkAllow(l, n); err != nil {
		return Result{}, err
	}
	if f.up() {
		r, err := f.primary.Allow(ctx, key, l, n)
		if fallback, err := f.classify(ctx, err); !fallback {
			if err != nil {
				return Result{}, err
			}
			return r, nil
		}
	} else {
		f.notify(nil)
	}
	var r Result
	switch f.policy {
	case FallbackOpen:
		r = Result{Allowed: true, Remaining: l.Burst, Limit: l}
	case FallbackClosed:
		r = Result{RetryAfter: closedRetryAfter, ResetAfter: closedRetryAfter, Limit: l}
	default:
		var err error
		if r, err = f.local.Allow(ctx, key, l, n); err != nil {
			return Result{}, err
		}
	}
	r.Fallback = true
	return r, nil
}

// AllowAll decides a batch (see BatchStore) with the primary's AllowAll
// or, when the primary is unusable, with the fallback policy applied to the
// requests it did not decide: the local store's AllowAll under
// FallbackLocal; under FallbackOpen every request allowed with its full
// burst; under FallbackClosed each request denied as Allow denies it, up to
// and including the first without ContinueOnDeny. Errors are classified,
// observed and notified as by Allow, once for the batch; onFallback is
// then called once per fallback decision, as the Allow calls the batch
// replaces would (the first time with the primary's error when it failed),
// so that a metric of fallback decisions counts the same. A primary
// without AllowAll is called once per request through Allow.
func (f *Failover) AllowAll(ctx context.Context, reqs []Request) ([]Result, error) {
	if err := checkAll(reqs); err != nil {
		return nil, err
	}
	if len(reqs) == 0 {
		return nil, nil
	}
	primary, ok := f.primary.(BatchStore)
	if !ok {
		return allowEach(ctx, f, reqs)
	}
	var done []Result
	if f.up() {
		res, err := primary.AllowAll(ctx, reqs)
		fallback, err := f.classify(ctx, err)
		if !fallback {
			return res, err
		}
		// The primary's decisions before its failure stand: they were made
		// (and counted) there. The fallback decides the rest.
		done = res[:min(len(res), len(reqs)-1)]
	} else {
		f.notify(nil)
	}
	rest := reqs[len(done):]
	var fb []Result
	var err error
	switch f.policy {
	case FallbackOpen:
		fb = make([]Result, len(rest))
		for i, q := range rest {
			fb[i] = Result{Allowed: true, Remaining: q.Limit.Burst, Limit: q.Limit}
		}
	case FallbackClosed:
		fb = make([]Result, 0, len(rest))
		for _, q := range rest {
			fb = append(fb, Result{RetryAfter: closedRetryAfter, ResetAfter: closedRetryAfter, Limit: q.Limit})
			if !q.ContinueOnDeny {
				break
			}
		}
	default:
		// An error here is the local store's (a cancelled context): fb
		// holds what it decided before it.
		fb, err = allowAllOn(ctx, f.local, rest)
	}
	for range len(fb) - 1 {
		f.notify(nil) // the first fallback decision was notified above
	}
	return append(done, markFallback(fb)...), err
}

// markFallback sets Fallback on every result.
func markFallback(rs []Result) []Result {
	for i := range rs {
		rs[i].Fallback = true
	}
	return rs
}

// Take decides with the primary or, when it is unusable, the fallback policy.
func (f *Failover) Take(ctx context.Context, key string, q Quota, n int64) (QuotaResult, error) {
	if err := checkTake(q, n); err != nil {
		return QuotaResult{}, err
	}
	if f.up() {
		r, err := f.primary.Take(ctx, key, q, n)
		if fallback, err := f.classify(ctx, err); !fallback {
			if err != nil {
				return QuotaResult{}, err
			}
			return r, nil
		}
	} else {
		f.notify(nil)
	}
	var r QuotaResult
	switch f.policy {
	case FallbackOpen:
		now := f.now()
		_, end := q.Period.window(now)
		r = QuotaResult{Allowed: true, Remaining: q.Limit, ResetAfter: end.Sub(now), Quota: q}
	case FallbackClosed:
		r = QuotaResult{ResetAfter: closedRetryAfter, Quota: q}
	default:
		var err error
		if r, err = f.local.Take(ctx, key, q, n); err != nil {
			return QuotaResult{}, err
		}
	}
	r.Fallback = true
	return r, nil
}

func (f *Failover) up() bool { return f.health == nil || f.health.Up() }

// classify sorts the primary's outcome. The primary's answer stands, with
// fallback false, on success (observed as such), on an argument error
// (returned as is) and when the caller's own context has ended (its error is
// returned, nothing is observed). Any other error is a transport failure:
// it is observed and notified, and fallback is true.
func (f *Failover) classify(ctx context.Context, err error) (fallback bool, ret error) {
	switch {
	case err == nil:
		if f.health != nil {
			f.health.Observe(nil)
		}
		return false, nil
	case errors.Is(err, ErrInvalidLimit), errors.Is(err, ErrExceedsBurst):
		return false, err
	case ctx.Err() != nil:
		return false, ctx.Err()
	}
	if f.health != nil {
		f.health.Observe(err)
	}
	f.notify(err)
	return true, nil
}

func (f *Failover) notify(err error) {
	if f.onFallback != nil {
		f.onFallback(err)
	}
}
