package bruteforce

import "context"

// Health is a shared health gate for the primary (Redis) store, owned by
// the gateway and shared with its other Redis users: Up reports whether the
// primary should be tried now, Observe feeds it the outcome of each try
// (nil for success). Implementations must be safe for concurrent use.
type Health interface {
	Up() bool
	Observe(err error)
}

// failover is the Store returned by NewFailover.
type failover struct {
	primary, local Store
	health         Health
	onFallback     func(err error)
}

var _ Store = (*failover)(nil)

// NewFailover returns a Store that uses primary while h reports it up and
// local otherwise, so that a decision never fails because Redis did:
//
//   - h.Up(): primary is called. Success → h.Observe(nil) and its result.
//     Failure while the caller's context is done → the context's error,
//     without Observe (the caller gave up; Redis is not to blame) and
//     without fallback. Any other failure → h.Observe(err),
//     onFallback(err), and local's result.
//   - !h.Up(): onFallback(nil) and local's result; primary is not called.
//
// onFallback lets the caller count and rate-limit its own logging; it is
// called synchronously on the request path and must be cheap. It may be
// nil. h nil means always up. primary and local must not be nil.
//
// The local store's state is per replica and only covers the time spent
// failed over: locks and counts held in Redis are not visible to it, and
// what it counted is not copied back to Redis on recovery.
func NewFailover(primary, local Store, h Health, onFallback func(err error)) Store {
	if primary == nil || local == nil {
		panic("bruteforce: NewFailover with a nil store")
	}
	if h == nil {
		h = alwaysUp{}
	}
	if onFallback == nil {
		onFallback = func(error) {}
	}
	return &failover{primary: primary, local: local, health: h, onFallback: onFallback}
}

// RecordFailure implements Store.
func (f *failover) RecordFailure(ctx context.Context, user, client string, p Policy) (State, error) {
	if f.health.Up() {
		st, err := f.primary.RecordFailure(ctx, user, client, p)
		if fallback, err := f.outcome(ctx, err); !fallback {
			return st, err
		}
	} else {
		f.onFallback(nil)
	}
	return f.local.RecordFailure(ctx, user, client, p)
}

// State implements Store.
func (f *failover) State(ctx context.Context, user, client string) (State, error) {
	if f.health.Up() {
		st, err := f.primary.State(ctx, user, client)
		if fallback, err := f.outcome(ctx, err); !fallback {
			return st, err
		}
	} else {
		f.onFallback(nil)
	}
	return f.local.State(ctx, user, client)
}

// Reset implements Store.
func (f *failover) Reset(ctx context.Context, user string) error {
	if f.health.Up() {
		if fallback, err := f.outcome(ctx, f.primary.Reset(ctx, user)); !fallback {
			return err
		}
	} else {
		f.onFallback(nil)
	}
	return f.local.Reset(ctx, user)
}

// outcome reports the primary's outcome to the health gate and says
// whether to fall back; if not, err is what the caller gets. A failure
// while the caller's context is done is the caller's, not the primary's:
// it is not observed and the context's error is returned.
func (f *failover) outcome(ctx context.Context, err error) (fallback bool, _ error) {
	switch {
	case err == nil:
		f.health.Observe(nil)
		return false, nil
	case ctx.Err() != nil:
		return false, ctx.Err()
	default:
		f.health.Observe(err)
		f.onFallback(err)
		return true, nil
	}
}

// alwaysUp is the Health used when none is given.
type alwaysUp struct{}

func (alwaysUp) Up() bool      { return true }
func (alwaysUp) Observe(error) {}
