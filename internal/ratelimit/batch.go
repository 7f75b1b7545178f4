package ratelimit

import "context"

// Request is one decision of a batch: n events for Key under Limit, as
// the arguments of Allow.
type Request struct {
	Key   string
	Limit Limit
	N     int
	// ContinueOnDeny marks a request whose denial does not end the batch:
	// the requests after it are still decided. A limit in monitor mode,
	// whose refusal is recorded but not enforced, sets it.
	ContinueOnDeny bool
}

// BatchStore is a Store that decides several requests in one call: the
// Redis store in one round trip, so that a request under k limits costs
// one round trip instead of k. *Local, *Redis, *Failover and LocalStores
// implement it.
//
// AllowAll decides reqs in order exactly as this loop of Allow calls on
// the same state would:
//
//	for _, q := range reqs {
//		r, err := Allow(ctx, q.Key, q.Limit, q.N)
//		if err != nil { return results, err }
//		results = append(results, r)
//		if !r.Allowed && !q.ContinueOnDeny { break }
//	}
//
// that is: it stops at the first denial of a request without
// ContinueOnDeny, and requests decided before it keep their counts. It
// returns the results of the requests decided, in order (len ≤ len(reqs));
// when it stopped early, the last result is that denial.
//
// Every request's arguments are checked before anything is decided or sent:
// an argument error wraps ErrInvalidLimit or ErrExceedsBurst as Allow's
// would, and comes with no results and no count taken. On any other error
// (transport, cancelled context) the results are the decisions made before
// the failure — none for the Redis store's single round trip — and the
// error is that of reqs[len(results)]; no later request was decided.
type BatchStore interface {
	Store
	AllowAll(ctx context.Context, reqs []Request) ([]Result, error)
}

var (
	_ BatchStore = (*Local)(nil)
	_ BatchStore = (*Redis)(nil)
	_ BatchStore = (*Failover)(nil)
	_ BatchStore = LocalStores{}
)

// checkAll validates the arguments of every request of a batch, as Allow
// validates one, and returns the first problem.
func checkAll(reqs []Request) error {
	for _, q := range reqs {
		if err := checkAllow(q.Limit, q.N); err != nil {
			return err
		}
	}
	return nil
}

// allowEach decides a batch with one Allow call per request, with the
// semantics of BatchStore.AllowAll (arguments already checked).
func allowEach(ctx context.Context, s Store, reqs []Request) ([]Result, error) {
	out := make([]Result, 0, len(reqs))
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

// allowAllOn decides a batch with s's AllowAll when it has one, else with
// one Allow per request.
func allowAllOn(ctx context.Context, s Store, reqs []Request) ([]Result, error) {
	if b, ok := s.(BatchStore); ok {
		return b.AllowAll(ctx, reqs)
	}
	if err := checkAll(reqs); err != nil {
		return nil, err
	}
	return allowEach(ctx, s, reqs)
}
