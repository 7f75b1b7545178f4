package introspect

import (
	"context"
	"sync"

	"github.com/bulwarkapi/bulwark/internal/identity"
)

// result is the outcome of one lookup.
type result struct {
	id  *identity.Identity
	err error
}

// flights coalesces concurrent lookups of the same token into one
// introspection request: the first caller starts it, later callers wait for
// its result.
type flights struct {
	mu sync.Mutex
	m  map[cacheKey]*flight
}

// flight is one introspection request in progress; res is written once,
// before done is closed.
type flight struct {
	done chan struct{}
	res  result
}

// do returns the result of run for k, sharing one run between concurrent
// callers.
//
// recheck is called under the lock before a new run starts: a run that
// ended just before this caller arrived has filled the cache, and recheck
// returns that instead of starting another. run executes on its own
// goroutine, detached from any one caller: a client that goes away stops
// waiting (ctx) but does not fail the others waiting for the same token.
// run must be bounded in time by itself (the introspection timeout).
func (f *flights) do(ctx context.Context, k cacheKey, recheck func() (result, bool), run func() result) result {
	f.mu.Lock()
	fl, ok := f.m[k]
	if !ok {
		if r, hit := recheck(); hit {
			f.mu.Unlock()
			return r
		}
		fl = &flight{done: make(chan struct{})}
		if f.m == nil {
			f.m = make(map[cacheKey]*flight)
		}
		f.m[k] = fl
		go func() {
			fl.res = run()
			f.mu.Lock()
			delete(f.m, k)
			f.mu.Unlock()
			close(fl.done)
		}()
	}
	f.mu.Unlock()
	select {
	case <-fl.done:
		return fl.res
	case <-ctx.Done():
		return result{err: ctx.Err()}
	}
}
