// Package ratelimit is the rate-limit and quota stage: for each request it
// counts every limit of the API that applies (by client address, identity,
// API key, operation or a CEL key) in a shared or local store, refuses the
// request with 429 and Retry-After when one is exhausted, and reports the
// state of the applied limits in the RateLimit-Policy and RateLimit headers
// of the IETF httpapi draft on every response.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/bulwarkapi/bulwark/internal/config"
	"github.com/bulwarkapi/bulwark/internal/identity"
	"github.com/bulwarkapi/bulwark/internal/pipeline"
	"github.com/bulwarkapi/bulwark/internal/policy"
	rl "github.com/bulwarkapi/bulwark/internal/ratelimit"
	"github.com/bulwarkapi/bulwark/internal/spec"
)

// StageName is the name of the stage in decisions, metrics and the audit log.
const StageName = "ratelimit"

// Options configures a stage for one API.
type Options struct {
	API    string
	Limits []config.RateLimit
	// Spec, when set, is used to check and normalise the operations limits
	// are scoped to.
	Spec *spec.Document
	// Env compiles CEL keys; required when a key is an expression.
	Env *policy.Env
	// Store counts rates; Quotas counts quotas (both usually one store).
	Store  rl.Store
	Quotas rl.QuotaStore
	// Monitor records refusals without enforcing them (the API's or the
	// stage's mode).
	Monitor bool
	// Phase selects the limits this stage counts: every limit, or only
	// those that can be counted before authentication (BeforeAuth), or
	// only the others (AfterAuth). Problems are reported for every limit
	// whatever the phase.
	Phase Phase
}

// Phase is where in the pipeline a rate-limit stage runs.
type Phase uint8

const (
	// AllPhases counts every limit.
	AllPhases Phase = iota
	// BeforeAuth counts the limits keyed by client address or operation,
	// before authentication: a flood of bad credentials is limited before
	// the gateway spends a signature check on each.
	BeforeAuth
	// AfterAuth counts the limits that need the identity (identity,
	// api_key, CEL keys).
	AfterAuth
)

// CountsBeforeAuth reports whether a limit with this key needs no identity.
func CountsBeforeAuth(key string) bool { return key == config.KeyIP || key == config.KeyOperation }

// FieldError locates a problem in the API's rate_limits block.
type FieldError struct {
	Path string
	Err  error
}

func (e *FieldError) Error() string { return e.Path + ": " + e.Err.Error() }

// Field is the path of the problem under the API's config.
func (e *FieldError) Field() string { return e.Path }

// Unwrap returns the underlying error.
func (e *FieldError) Unwrap() error { return e.Err }

type keyKind uint8

const (
	keyIP keyKind = iota
	keyIdentity
	keyAPIKey
	keyOperation
	keyCEL
)

// limit is one compiled limit.
type limit struct {
	name      string
	kind      keyKind
	expr      *policy.Program
	operation string // "" = every operation
	rate      rl.Limit
	quota     *rl.Quota
	monitor   bool
	policy    string // the RateLimit-Policy item, precomputed
	prefix    string // api \x00 name \x00, the store key prefix
}

// Stage is the rate-limit stage of one API. It is safe for concurrent use.
type Stage struct {
	api     string
	limits  []*limit
	store   rl.Store
	batch   rl.BatchStore // store, when it decides several limits in one call
	quotas  rl.QuotaStore
	monitor bool
}

var _ pipeline.Stage = (*Stage)(nil)

// New compiles the limits of one API. Problems are *FieldError values
// joined with errors.Join, located under "rate_limits[i]".
func New(o Options) (*Stage, error) {
	s := &Stage{api: o.API, store: o.Store, quotas: o.Quotas, monitor: o.Monitor}
	s.batch, _ = o.Store.(rl.BatchStore)
	var errs []error
	fail := func(path string, err error) { errs = append(errs, &FieldError{Path: path, Err: err}) }
	for i, c := range o.Limits {
		p := fmt.Sprintf("rate_limits[%d]", i)
		l := &limit{name: c.Name, operation: c.Operation, monitor: c.Mode == "monitor",
			prefix: o.API + "\x00" + c.Name + "\x00"}
		switch c.Key {
		case config.KeyIP:
			l.kind = keyIP
		case config.KeyIdentity:
			l.kind = keyIdentity
		case config.KeyAPIKey:
			l.kind = keyAPIKey
		case config.KeyOperation:
			l.kind = keyOperation
		default:
			l.kind = keyCEL
			if o.Env == nil {
				fail(p+".key", errors.New("no policy environment for a CEL key"))
				continue
			}
			prg, err := o.Env.CompileKey(c.Key, policy.Request)
			if err != nil {
				fail(p+".key", err)
				continue
			}
			l.expr = prg
		}
		if c.Operation != "" && o.Spec != nil {
			if op := o.Spec.Operation(c.Operation); op != nil {
				l.operation = op.Key
			} else {
				fail(p+".operation", fmt.Errorf("the spec has no operation %q", c.Operation))
			}
		}
		if c.Quota != "" {
			q, err := rl.ParseQuota(c.Quota)
			if err != nil {
				fail(p+".quota", err)
				continue
			}
			l.quota = &q
			l.policy = policyItem(c.Name, q.Limit, quotaWindow(q))
			if s.quotas == nil {
				fail(p+".quota", errors.New("no quota store"))
			}
		} else {
			n, period, err := rl.ParseRate(c.Rate)
			if err != nil {
				fail(p+".rate", err)
				continue
			}
			l.rate = rl.Limit{Rate: n, Period: period, Burst: c.Burst}
			if err := l.rate.Validate(); err != nil {
				fail(p+".burst", err)
				continue
			}
			// The window of a GCRA policy is the time to earn a full burst back.
			l.policy = policyItem(c.Name, int64(c.Burst), l.rate.Tolerance())
			if s.store == nil {
				fail(p+".rate", errors.New("no rate-limit store"))
			}
		}
		if o.Phase == AllPhases || (o.Phase == BeforeAuth) == CountsBeforeAuth(c.Key) {
			s.limits = append(s.limits, l)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

// Name implements pipeline.Stage.
func (s *Stage) Name() string { return StageName }

// Empty reports whether the stage counts no limit (none of its phase).
func (s *Stage) Empty() bool { return len(s.limits) == 0 }

// Handle counts the request against every limit that applies, in the
// configured order, and stops at the first that is exhausted. Limits
// counted before the refusing one keep their count: a refused request
// still cost the caller, which is what a limit in front of a login wants.
// A limit in monitor mode (or a stage in monitor mode) records its refusal
// and counting goes on.
//
// When the store is a BatchStore and every limit that applies is a rate
// (no quota), the limits are decided in one AllowAll call — one Redis
// round trip — with these same semantics: a monitored limit's request has
// ContinueOnDeny set, so the batch stops only at an enforced refusal, as
// this loop does. A request under a quota takes the sequential path, one
// store call per limit, as do batches the store rejects for their
// arguments (nothing was counted then, and the sequential path gives the
// answer it always gave: earlier limits counted, the bad one unavailable).
func (s *Stage) Handle(ctx context.Context, x *pipeline.Exchange) pipeline.Decision {
	var policies, states []string
	monitored := pipeline.Continue
	defer func() {
		if len(policies) > 0 {
			x.ResponseHeaders = append(x.ResponseHeaders,
				pipeline.Header{Name: "RateLimit-Policy", Value: strings.Join(policies, ", ")},
				pipeline.Header{Name: "RateLimit", Value: strings.Join(states, ", ")})
		}
	}()
	// count records one decision of l; stop reports that it is an enforced
	// refusal, the answer d.
	count := func(l *limit, allowed bool, remaining int64, reset, retry time.Duration) (d pipeline.Decision, stop bool) {
		policies = append(policies, l.policy)
		states = append(states, stateItem(l.name, remaining, reset))
		if allowed {
			return d, false
		}
		secs := ceilSeconds(retry)
		if secs < 1 {
			secs = 1
		}
		d = pipeline.Halt(http.StatusTooManyRequests, "rate_limited",
			"Rate limit "+l.name+" exceeded; retry after "+strconv.FormatInt(secs, 10)+" s.")
		d.Rules = []string{l.name}
		d.Headers = http.Header{"Retry-After": {strconv.FormatInt(secs, 10)}}
		d.Monitor = l.monitor || s.monitor
		if !d.Monitor {
			return d, true
		}
		if monitored.Action == pipeline.Allow {
			monitored = d // the first monitored refusal is recorded; counting goes on
		}
		return d, false
	}

	var buf [8]applied
	apply := buf[:0]
	batch := s.batch != nil
	for _, l := range s.limits {
		if l.operation != "" && l.operation != x.Operation {
			continue
		}
		key, ok := s.key(ctx, l, x)
		if !ok {
			continue
		}
		apply = append(apply, applied{l, key})
		batch = batch && l.quota == nil
	}

	if batch && len(apply) > 1 {
		reqs := make([]rl.Request, len(apply))
		for i, a := range apply {
			reqs[i] = rl.Request{Key: a.key, Limit: a.l.rate, N: 1, ContinueOnDeny: a.l.monitor || s.monitor}
		}
		res, err := s.batch.AllowAll(ctx, reqs)
		if err == nil || !(errors.Is(err, rl.ErrInvalidLimit) || errors.Is(err, rl.ErrExceedsBurst)) {
			if len(res) > len(apply) {
				res = res[:len(apply)]
			}
			for i, r := range res {
				if d, stop := count(apply[i].l, r.Allowed, int64(r.Remaining), r.ResetAfter, r.RetryAfter); stop {
					return d
				}
			}
			if len(res) < len(apply) {
				// The store failed at apply[len(res)] (or, against its
				// contract, stopped without an enforced refusal): that limit
				// was not checked.
				if err == nil {
					err = errShortBatch
				}
				return s.storeError(ctx, apply[len(res)].l, err)
			}
			return monitored
		}
	}

	for _, a := range apply {
		l := a.l
		var allowed bool
		var remaining int64
		var reset, retry time.Duration
		if l.quota != nil {
			r, err := s.quotas.Take(ctx, a.key, *l.quota, 1)
			if err != nil {
				return s.storeError(ctx, l, err)
			}
			allowed, remaining, reset = r.Allowed, r.Remaining, r.ResetAfter
			retry = r.ResetAfter
		} else {
			r, err := s.store.Allow(ctx, a.key, l.rate, 1)
			if err != nil {
				return s.storeError(ctx, l, err)
			}
			allowed, remaining, reset, retry = r.Allowed, int64(r.Remaining), r.ResetAfter, r.RetryAfter
		}
		if d, stop := count(l, allowed, remaining, reset, retry); stop {
			return d
		}
	}
	return monitored
}

// applied is a limit that applies to the request, with its store key.
type applied struct {
	l   *limit
	key string
}

// errShortBatch reports a batch answer that stopped before an enforced
// refusal without an error: the limits left undecided count as a failure.
var errShortBatch = errors.New("ratelimit: the store's batch answer stopped early")

// storeError answers a store failure that the store could not absorb
// (a cancelled request, or the fallback policy "closed" surfaced as an
// error). A client that went away gets nothing; anything else is a 429
// rather than a gateway-made 5xx.
func (s *Stage) storeError(ctx context.Context, l *limit, err error) pipeline.Decision {
	if ctx.Err() != nil {
		return pipeline.Halt(499, "client_closed", "")
	}
	d := pipeline.Halt(http.StatusTooManyRequests, "rate_limit_unavailable",
		"The rate limit "+l.name+" could not be checked; retry shortly.")
	d.Rules = []string{l.name}
	d.Headers = http.Header{"Retry-After": {"1"}}
	d.Monitor = l.monitor || s.monitor
	return d
}

// key returns the store key of the request under l, and false when the
// limit does not apply (an api_key limit on a request authenticated
// otherwise).
func (s *Stage) key(ctx context.Context, l *limit, x *pipeline.Exchange) (string, bool) {
	switch l.kind {
	case keyIP:
		return l.prefix + x.ClientKey(), true
	case keyIdentity:
		if x.Identity == nil {
			// Anonymous operations of an authenticated API are counted by
			// address under the same limit, so they are not unlimited.
			return l.prefix + "anon:" + x.ClientKey(), true
		}
		return l.prefix + "id:" + x.SubjectHash(), true
	case keyAPIKey:
		if x.Identity == nil || x.Identity.Kind != identity.KindAPIKey {
			return "", false
		}
		return l.prefix + x.SubjectHash(), true
	case keyOperation:
		return l.prefix + x.Operation, true
	default:
		act, err := policy.NewActivation(policy.Input{Exchange: x})
		if err == nil {
			var v string
			if v, err = l.expr.EvalKey(ctx, act); err == nil && v != "" {
				// Hashed: CEL values (tenant names, usernames) stay out of
				// the store's key space, and key lengths stay bounded.
				return l.prefix + "k:" + policy.HashID(v), true
			}
		}
		// Fail closed: a key that cannot be computed (missing header, bad
		// body) falls back to the client address rather than to no limit.
		return l.prefix + "cel-fallback:" + x.ClientKey(), true
	}
}

// policyItem is one member of RateLimit-Policy: "name";q=N;w=S.
func policyItem(name string, q int64, w time.Duration) string {
	return strconv.Quote(name) + ";q=" + strconv.FormatInt(q, 10) + ";w=" + strconv.FormatInt(max(ceilSeconds(w), 1), 10)
}

// stateItem is one member of RateLimit: "name";r=N;t=S.
func stateItem(name string, remaining int64, reset time.Duration) string {
	return strconv.Quote(name) + ";r=" + strconv.FormatInt(remaining, 10) + ";t=" + strconv.FormatInt(ceilSeconds(reset), 10)
}

func quotaWindow(q rl.Quota) time.Duration {
	if q.Period == rl.Month {
		return 30 * 24 * time.Hour // nominal: the draft wants one number
	}
	return 24 * time.Hour
}

func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64(math.Ceil(d.Seconds()))
}
