package throttle

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Sentinel errors returned by Acquire when a request is shed; callers branch
// on them with errors.Is and answer 503 with Retry-After.
var (
	// ErrQueueFull reports that no slot was free and the wait queue was full
	// (or disabled), so the request was shed without waiting.
	ErrQueueFull = errors.New("throttle: queue full")
	// ErrQueueTimeout reports that the request waited QueueTimeout in the
	// queue without getting a slot.
	ErrQueueTimeout = errors.New("throttle: queue timeout")
)

// Outcome classifies a finished request for the adaptive limit.
type Outcome uint8

const (
	// Success is a request the upstream answered; its latency is a sample.
	Success Outcome = iota
	// Failure is an upstream error, timeout or 5xx. It counts as congestion
	// whatever its latency, and its latency is not sampled (a fast error
	// would drag the learned baseline down).
	Failure
	// Ignore is a request whose latency says nothing about the upstream,
	// typically because the client cancelled it. It frees the slot only.
	// Outcomes other than Success and Failure are treated as Ignore.
	Ignore
)

// String returns the outcome's name.
func (o Outcome) String() string {
	switch o {
	case Success:
		return "success"
	case Failure:
		return "failure"
	case Ignore:
		return "ignore"
	}
	return "ignore(unknown)"
}

// Limiter bounds the number of in-flight requests to one upstream, queues a
// bounded number beyond that, and sheds the rest. It is safe for concurrent
// use. See the package documentation for the algorithm.
type Limiter struct {
	// Configuration, immutable after New.
	maxConc      int
	minConc      int
	queueSize    int
	queueTimeout time.Duration
	adaptive     bool
	target       time.Duration
	tolerance    float64
	now          func() time.Time

	mu sync.Mutex
	// limit is the adaptive limit in [minConc, maxConc]; limitInt is its
	// floor, the number of slots Acquire actually grants.
	limit    float64
	limitInt int
	inFlight int
	// gens holds one generation per slot, free the indexes of unused slots.
	// A Token is valid while its generation matches its slot's, so a stale
	// copy can never release a slot that was reissued.
	gens []uint64
	free []int32
	// The wait queue: a FIFO intrusive doubly linked list.
	head, tail *waiter
	queued     int
	est        estimator
	// Counters for Stats.
	admitted, shedFull, shedTimeout, canceled uint64

	// testHookQueueWake, when set, runs after a queued Acquire woke up for
	// its timeout or its context and before it takes the lock: tests use it
	// to grant the slot in exactly that window.
	testHookQueueWake func()
}

// waiter is one queued Acquire. ready receives exactly one Token, sent under
// the Limiter's mutex at the moment the waiter leaves the queue by a grant,
// so the send never blocks and a grant is never lost.
type waiter struct {
	ready      chan Token
	prev, next *waiter
	queued     bool
}

// Token is a held slot. Acquire returns it by value so that the uncontended
// path allocates nothing. Release it exactly once when the upstream call
// ends; further Releases, of the same Token or of any copy of it, are
// no-ops. The zero Token (returned with an error) is valid to Release and
// does nothing, so `defer tok.Release(...)` needs no error check.
type Token struct {
	l    *Limiter
	gen  uint64
	slot int32
	// busy records that the limiter was used near its limit when this slot
	// was granted; only such samples may raise the adaptive limit.
	busy bool
}

// New returns a Limiter for o, or every problem with o joined by
// errors.Join, each wrapping ErrInvalidOptions.
func New(o Options) (*Limiter, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	o = o.withDefaults()
	l := &Limiter{
		maxConc:      o.MaxConcurrency,
		minConc:      o.MinConcurrency,
		queueSize:    o.QueueSize,
		queueTimeout: o.QueueTimeout,
		adaptive:     o.Adaptive,
		target:       o.TargetLatency,
		tolerance:    o.Tolerance,
		now:          o.Now,
		limit:        float64(o.MaxConcurrency),
		limitInt:     o.MaxConcurrency,
	}
	if !l.adaptive {
		l.minConc = l.maxConc
	}
	return l, nil
}

// Acquire returns a slot, waiting in the FIFO queue if the limit is
// reached. It sheds the request with ErrQueueFull when the queue is full,
// with ErrQueueTimeout after QueueTimeout in the queue, and returns
// ctx.Err() if ctx ends first (also when it has ended before the call).
// The caller must Release the Token when the upstream call ends.
func (l *Limiter) Acquire(ctx context.Context) (Token, error) {
	if err := ctx.Err(); err != nil {
		l.mu.Lock()
		l.canceled++
		l.mu.Unlock()
		return Token{}, err
	}
	l.mu.Lock()
	if l.head == nil && l.inFlight < l.limitInt {
		tok := l.grantLocked(false)
		l.mu.Unlock()
		return tok, nil
	}
	if l.queued >= l.queueSize {
		l.shedFull++
		l.mu.Unlock()
		return Token{}, ErrQueueFull
	}
	w := &waiter{ready: make(chan Token, 1)}
	l.pushLocked(w)
	l.mu.Unlock()

	timer := time.NewTimer(l.queueTimeout)
	defer timer.Stop()
	var err error
	timedOut := false
	select {
	case tok := <-w.ready:
		return tok, nil
	case <-timer.C:
		err, timedOut = ErrQueueTimeout, true
	case <-ctx.Done():
		err = ctx.Err()
	}
	if hook := l.testHookQueueWake; hook != nil {
		hook()
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	if timedOut {
		l.shedTimeout++
	} else {
		l.canceled++
	}
	if w.queued {
		l.removeLocked(w)
		return Token{}, err
	}
	// A release granted us the slot between our wake-up and the lock. The
	// Token is already in the buffered channel (it was sent under the
	// lock); hand the slot on rather than leak it.
	tok := <-w.ready
	l.admitted--
	if l.freeLocked(tok) {
		l.dispatchLocked()
	}
	return Token{}, err
}

// TryAcquire returns a slot if one is free and nobody is queued, without
// waiting. It reports false (and counts nothing as shed) otherwise.
func (l *Limiter) TryAcquire() (Token, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.head == nil && l.inFlight < l.limitInt {
		return l.grantLocked(false), true
	}
	return Token{}, false
}

// Release frees the slot and, for an adaptive Limiter, feeds latency and
// outcome to the limit (Ignore feeds nothing). latency should be the
// upstream call's duration, excluding the time spent queued. Release is
// idempotent: releasing a Token again, or any copy of it, or the zero Token,
// does nothing, even after the slot was granted to another request. It only
// reads t, so concurrent Releases of the same Token are safe too.
func (t *Token) Release(latency time.Duration, outcome Outcome) {
	if t == nil || t.l == nil {
		return
	}
	t.l.release(*t, latency, outcome)
}

func (l *Limiter) release(tok Token, latency time.Duration, outcome Outcome) {
	sample := l.adaptive && (outcome == Success || outcome == Failure)
	var now time.Time
	if sample {
		now = l.now() // outside the lock: an injected clock may be slow
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.freeLocked(tok) {
		return
	}
	if sample {
		l.observeLocked(now, latency, outcome, tok.busy)
	}
	l.dispatchLocked()
}

// grantLocked takes a slot for a new in-flight request.
func (l *Limiter) grantLocked(fromQueue bool) Token {
	l.inFlight++
	l.admitted++
	var s int32
	if n := len(l.free); n > 0 {
		s = l.free[n-1]
		l.free = l.free[:n-1]
	} else {
		// Slots are created lazily; there are never more than the peak
		// number in flight, which is at most maxConc.
		s = int32(len(l.gens))
		l.gens = append(l.gens, 0)
	}
	return Token{
		l:    l,
		gen:  l.gens[s],
		slot: s,
		busy: fromQueue || 2*float64(l.inFlight) >= l.limit,
	}
}

// freeLocked returns tok's slot and reports whether tok was still valid.
func (l *Limiter) freeLocked(tok Token) bool {
	if tok.l != l || int(tok.slot) >= len(l.gens) || l.gens[tok.slot] != tok.gen {
		return false
	}
	l.gens[tok.slot]++
	l.free = append(l.free, tok.slot)
	l.inFlight--
	return true
}

// dispatchLocked hands free capacity to waiters in FIFO order.
func (l *Limiter) dispatchLocked() {
	for l.head != nil && l.inFlight < l.limitInt {
		w := l.head
		l.removeLocked(w)
		w.ready <- l.grantLocked(true)
	}
}

func (l *Limiter) pushLocked(w *waiter) {
	w.queued = true
	w.prev = l.tail
	if l.tail != nil {
		l.tail.next = w
	} else {
		l.head = w
	}
	l.tail = w
	l.queued++
}

func (l *Limiter) removeLocked(w *waiter) {
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		l.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		l.tail = w.prev
	}
	w.prev, w.next, w.queued = nil, nil, false
	l.queued--
}

// Stats is a snapshot of a Limiter for metrics. Counters are totals since
// New.
type Stats struct {
	// Limit is the current limit: MaxConcurrency, or the adaptive limit.
	Limit int
	// InFlight is the number of held slots; it may exceed Limit right
	// after the adaptive limit dropped (nobody is evicted).
	InFlight int
	// Queued is the number of requests waiting for a slot.
	Queued int
	// Admitted counts slots granted by Acquire and TryAcquire.
	Admitted uint64
	// ShedQueueFull counts ErrQueueFull results.
	ShedQueueFull uint64
	// ShedQueueTimeout counts ErrQueueTimeout results.
	ShedQueueTimeout uint64
	// Canceled counts Acquires that returned ctx.Err().
	Canceled uint64
	// Latency is the short-term latency estimate of an adaptive Limiter
	// (0 before the first Success sample).
	Latency time.Duration
	// Baseline is the learned no-load latency of an adaptive Limiter
	// (0 before the first Success sample). It is tracked even when
	// TargetLatency is set, for metrics.
	Baseline time.Duration
}

// Shed is the total number of requests shed by the Limiter, all reasons.
// Requests whose context ended are not shed; see Canceled.
func (s Stats) Shed() uint64 { return s.ShedQueueFull + s.ShedQueueTimeout }

// Stats returns a consistent snapshot of l.
func (l *Limiter) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return Stats{
		Limit:            l.limitInt,
		InFlight:         l.inFlight,
		Queued:           l.queued,
		Admitted:         l.admitted,
		ShedQueueFull:    l.shedFull,
		ShedQueueTimeout: l.shedTimeout,
		Canceled:         l.canceled,
		Latency:          time.Duration(l.est.short),
		Baseline:         time.Duration(l.est.baseline),
	}
}
