package throttle

import (
	"context"
	"errors"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"
)

func TestAcquireRelease(t *testing.T) {
	l := mustNew(t, Options{MaxConcurrency: 2})
	ctx := context.Background()
	a, err := l.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Acquire(ctx); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("third Acquire with no queue: %v; want ErrQueueFull", err)
	}
	if _, ok := l.TryAcquire(); ok {
		t.Fatal("TryAcquire succeeded at the limit")
	}
	if s := l.Stats(); s.InFlight != 2 || s.Admitted != 2 || s.ShedQueueFull != 1 || s.Shed() != 1 {
		t.Fatalf("stats = %+v", s)
	}
	a.Release(time.Millisecond, Success)
	if s := l.Stats(); s.InFlight != 1 {
		t.Fatalf("after one release InFlight = %d; want 1", s.InFlight)
	}
	c, ok := l.TryAcquire()
	if !ok {
		t.Fatal("TryAcquire failed with a free slot")
	}
	b.Release(0, Ignore)
	c.Release(0, Failure)
	if s := l.Stats(); s.InFlight != 0 || s.Limit != 2 {
		t.Fatalf("static limiter after releases: %+v", s)
	}
}

func TestReleaseIdempotent(t *testing.T) {
	l := mustNew(t, Options{MaxConcurrency: 1})
	tok, err := l.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	copied := tok
	tok.Release(0, Success)
	tok.Release(0, Success) // same Token again
	// The slot is reissued; neither the stale Token nor its copy may free it.
	next, ok := l.TryAcquire()
	if !ok {
		t.Fatal("slot not freed by the first Release")
	}
	copied.Release(0, Success)
	tok.Release(0, Success)
	if s := l.Stats(); s.InFlight != 1 {
		t.Fatalf("stale Release freed a reissued slot: InFlight = %d; want 1", s.InFlight)
	}
	next.Release(0, Success)
	if s := l.Stats(); s.InFlight != 0 {
		t.Fatalf("InFlight = %d; want 0", s.InFlight)
	}

	var zero Token
	zero.Release(0, Success) // no-op, no panic
	var nilTok *Token
	nilTok.Release(0, Success)
	// A Token from another limiter is not ours.
	other := mustNew(t, Options{MaxConcurrency: 1})
	foreign, _ := other.TryAcquire()
	mine, _ := l.TryAcquire()
	l.release(foreign, 0, Success)
	if s := l.Stats(); s.InFlight != 1 {
		t.Fatalf("foreign Token released our slot: %+v", s)
	}
	mine.Release(0, Success)
	foreign.Release(0, Success)
}

func TestConcurrentReleaseOfCopies(t *testing.T) {
	l := mustNew(t, Options{MaxConcurrency: 4, Adaptive: true})
	for range 100 {
		tok, err := l.Acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() { tok.Release(time.Millisecond, Success) })
		}
		wg.Wait()
		if s := l.Stats(); s.InFlight != 0 {
			t.Fatalf("InFlight = %d after concurrent releases of one Token", s.InFlight)
		}
	}
}

// acquireAsync starts an Acquire in a goroutine and waits until it is queued
// (Queued reaches wantQueued), so that callers can build a known FIFO order.
func acquireAsync(t *testing.T, l *Limiter, ctx context.Context, wantQueued int) <-chan acquireResult {
	t.Helper()
	ch := make(chan acquireResult, 1)
	go func() {
		tok, err := l.Acquire(ctx)
		ch <- acquireResult{tok, err}
	}()
	waitFor(t, "waiter to queue", func() bool { return l.Stats().Queued == wantQueued })
	return ch
}

type acquireResult struct {
	tok Token
	err error
}

func TestQueueFIFO(t *testing.T) {
	l := mustNew(t, Options{MaxConcurrency: 2, QueueSize: 3, QueueTimeout: time.Minute})
	ctx := context.Background()
	var held []Token
	for range 2 {
		tok, err := l.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, tok)
	}
	var waiters []<-chan acquireResult
	for i := range 3 {
		waiters = append(waiters, acquireAsync(t, l, ctx, i+1))
	}
	if _, err := l.Acquire(ctx); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("6th Acquire: %v; want ErrQueueFull", err)
	}
	if _, ok := l.TryAcquire(); ok {
		t.Fatal("TryAcquire overtook the queue")
	}
	if s := l.Stats(); s.InFlight != 2 || s.Queued != 3 || s.ShedQueueFull != 1 {
		t.Fatalf("stats = %+v", s)
	}
	// Each release hands the slot to the oldest waiter, and only to it.
	for i, w := range waiters {
		held[0].Release(time.Millisecond, Success)
		held = held[1:]
		r := <-w
		if r.err != nil {
			t.Fatalf("waiter %d: %v", i, r.err)
		}
		for _, later := range waiters[i+1:] {
			select {
			case r := <-later:
				t.Fatalf("a later waiter got %+v before its turn", r)
			default:
			}
		}
		held = append(held, r.tok)
		if s := l.Stats(); s.InFlight != 2 || s.Queued != 2-i {
			t.Fatalf("after grant %d: %+v", i, s)
		}
	}
	for i := range held {
		held[i].Release(time.Millisecond, Success)
	}
	if s := l.Stats(); s.InFlight != 0 || s.Queued != 0 || s.Admitted != 5 {
		t.Fatalf("final stats = %+v", s)
	}
}

func TestQueueTimeout(t *testing.T) {
	l := mustNew(t, Options{MaxConcurrency: 1, QueueSize: 1, QueueTimeout: 5 * time.Millisecond})
	held, err := l.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Acquire(context.Background()); !errors.Is(err, ErrQueueTimeout) {
		t.Fatalf("Acquire: %v; want ErrQueueTimeout", err)
	}
	if s := l.Stats(); s.InFlight != 1 || s.Queued != 0 || s.ShedQueueTimeout != 1 || s.Shed() != 1 {
		t.Fatalf("stats = %+v", s)
	}
	held.Release(0, Ignore)
	if s := l.Stats(); s.InFlight != 0 {
		t.Fatalf("InFlight = %d", s.InFlight)
	}
}

func TestQueueContextCancel(t *testing.T) {
	l := mustNew(t, Options{MaxConcurrency: 1, QueueSize: 2, QueueTimeout: time.Minute})
	held, err := l.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	first := acquireAsync(t, l, ctx, 1)
	second := acquireAsync(t, l, context.Background(), 2)
	cancel()
	if r := <-first; !errors.Is(r.err, context.Canceled) {
		t.Fatalf("cancelled waiter: %v; want context.Canceled", r.err)
	}
	if s := l.Stats(); s.Queued != 1 || s.Canceled != 1 || s.Shed() != 0 {
		t.Fatalf("stats = %+v", s)
	}
	held.Release(0, Success)
	r := <-second
	if r.err != nil {
		t.Fatalf("second waiter: %v", r.err)
	}
	r.tok.Release(0, Success)

	// A context that ended before the call never takes a slot.
	if _, err := l.Acquire(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Acquire with a dead context: %v", err)
	}
	dl, cancelDL := context.WithTimeout(context.Background(), -time.Second)
	defer cancelDL()
	if _, err := l.Acquire(dl); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire past the deadline: %v", err)
	}
	if s := l.Stats(); s.InFlight != 0 || s.Queued != 0 || s.Canceled != 3 {
		t.Fatalf("final stats = %+v", s)
	}
}

// TestGrantRacesWakeup forces the classic bug window: the waiter has woken
// for its timeout or context, and before it takes the lock a release hands
// it the slot. The slot must reach the next waiter or go back to the pool.
func TestGrantRacesWakeup(t *testing.T) {
	t.Run("cancel hands on to next waiter", func(t *testing.T) {
		l := mustNew(t, Options{MaxConcurrency: 1, QueueSize: 2, QueueTimeout: time.Minute})
		held, _ := l.TryAcquire()
		var once sync.Once
		l.testHookQueueWake = func() { once.Do(func() { held.Release(time.Millisecond, Success) }) }
		ctx, cancel := context.WithCancel(context.Background())
		first := acquireAsync(t, l, ctx, 1)
		second := acquireAsync(t, l, context.Background(), 2)
		cancel()
		if r := <-first; !errors.Is(r.err, context.Canceled) {
			t.Fatalf("first waiter: %v; want context.Canceled", r.err)
		}
		r := <-second
		if r.err != nil {
			t.Fatalf("second waiter lost the handed-on slot: %v", r.err)
		}
		if s := l.Stats(); s.InFlight != 1 || s.Queued != 0 || s.Admitted != 2 || s.Canceled != 1 {
			t.Fatalf("stats = %+v", s)
		}
		r.tok.Release(time.Millisecond, Success)
		if s := l.Stats(); s.InFlight != 0 {
			t.Fatalf("leaked slot: InFlight = %d", s.InFlight)
		}
	})
	t.Run("timeout frees the slot", func(t *testing.T) {
		l := mustNew(t, Options{MaxConcurrency: 1, QueueSize: 1, QueueTimeout: time.Millisecond})
		held, _ := l.TryAcquire()
		var once sync.Once
		l.testHookQueueWake = func() { once.Do(func() { held.Release(time.Millisecond, Success) }) }
		if _, err := l.Acquire(context.Background()); !errors.Is(err, ErrQueueTimeout) {
			t.Fatalf("Acquire: %v; want ErrQueueTimeout", err)
		}
		if s := l.Stats(); s.InFlight != 0 || s.Queued != 0 || s.Admitted != 1 || s.ShedQueueTimeout != 1 {
			t.Fatalf("leaked slot: %+v", s)
		}
		tok, ok := l.TryAcquire()
		if !ok {
			t.Fatal("slot not returned to the pool")
		}
		tok.Release(0, Ignore)
	})
}

// TestNeverAboveLimit hammers a small limiter from 200 goroutines and checks
// the observed concurrency against the ceiling.
func TestNeverAboveLimit(t *testing.T) {
	for _, adaptive := range []bool{false, true} {
		name := map[bool]string{false: "static", true: "adaptive"}[adaptive]
		t.Run(name, func(t *testing.T) {
			const maxConc = 5
			l := mustNew(t, Options{MaxConcurrency: maxConc, QueueSize: 50, QueueTimeout: 50 * time.Millisecond,
				Adaptive: adaptive, MinConcurrency: 2, TargetLatency: 3 * time.Millisecond})
			var m maxTracker
			var wg sync.WaitGroup
			for g := range 200 {
				wg.Go(func() {
					rng := rand.New(rand.NewPCG(uint64(g), 1))
					for range 50 {
						tok, err := l.Acquire(context.Background())
						if err != nil {
							if !errors.Is(err, ErrQueueFull) && !errors.Is(err, ErrQueueTimeout) {
								t.Errorf("Acquire: %v", err)
							}
							continue
						}
						m.enter()
						runtime.Gosched()
						m.exit()
						tok.Release(time.Duration(rng.IntN(6))*time.Millisecond, Outcome(rng.IntN(3)))
					}
				})
			}
			wg.Wait()
			s := l.Stats()
			if peak := m.peak.Load(); peak > maxConc {
				t.Fatalf("peak concurrency %d > MaxConcurrency %d", peak, maxConc)
			}
			if !adaptive && m.peak.Load() > int64(s.Limit) {
				t.Fatalf("peak concurrency %d > limit %d", m.peak.Load(), s.Limit)
			}
			if s.InFlight != 0 || s.Queued != 0 {
				t.Fatalf("leaked: %+v", s)
			}
			if s.Limit < 2 || s.Limit > maxConc {
				t.Fatalf("limit %d outside [2, %d]", s.Limit, maxConc)
			}
			if total := s.Admitted + s.Shed() + s.Canceled; total != 200*50 {
				t.Fatalf("accounted for %d of %d acquires: %+v", total, 200*50, s)
			}
		})
	}
}

// TestQueueStress lets waiters time out and get cancelled at random while
// releases happen, then checks that no slot and no waiter leaked.
func TestQueueStress(t *testing.T) {
	const (
		maxConc    = 3
		goroutines = 100
		iterations = 40
	)
	l := mustNew(t, Options{MaxConcurrency: maxConc, QueueSize: 20, QueueTimeout: time.Millisecond,
		Adaptive: true, MinConcurrency: 1, TargetLatency: 200 * time.Microsecond})
	var m maxTracker
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 2))
			for range iterations {
				ctx := context.Background()
				cancel := context.CancelFunc(func() {})
				switch rng.IntN(3) {
				case 0:
					ctx, cancel = context.WithTimeout(ctx, time.Duration(rng.IntN(1500))*time.Microsecond)
				case 1:
					ctx, cancel = context.WithCancel(ctx)
					if rng.IntN(2) == 0 {
						time.AfterFunc(time.Duration(rng.IntN(1000))*time.Microsecond, cancel)
					}
				}
				tok, err := l.Acquire(ctx)
				cancel()
				if err != nil {
					if !errors.Is(err, ErrQueueFull) && !errors.Is(err, ErrQueueTimeout) &&
						!errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
						t.Errorf("Acquire: %v", err)
					}
					continue
				}
				m.enter()
				if rng.IntN(4) == 0 {
					time.Sleep(time.Duration(rng.IntN(300)) * time.Microsecond)
				} else {
					runtime.Gosched()
				}
				m.exit()
				lat := time.Duration(rng.IntN(400)) * time.Microsecond
				tok.Release(lat, Outcome(rng.IntN(3)))
				if rng.IntN(8) == 0 {
					tok.Release(lat, Success) // stray double release
				}
			}
		})
	}
	wg.Wait()
	s := l.Stats()
	if s.InFlight != 0 || s.Queued != 0 {
		t.Fatalf("leaked after stress: %+v", s)
	}
	if peak := m.peak.Load(); peak > maxConc {
		t.Fatalf("peak concurrency %d > %d", peak, maxConc)
	}
	if total := s.Admitted + s.Shed() + s.Canceled; total != goroutines*iterations {
		t.Fatalf("accounted for %d of %d acquires: %+v", total, goroutines*iterations, s)
	}
	// Every slot is usable again.
	var toks []Token
	for range s.Limit {
		tok, ok := l.TryAcquire()
		if !ok {
			t.Fatalf("only %d of %d slots free after stress", len(toks), s.Limit)
		}
		toks = append(toks, tok)
	}
	for i := range toks {
		toks[i].Release(0, Ignore)
	}
}

func TestAcquireReleaseAllocs(t *testing.T) {
	for _, adaptive := range []bool{false, true} {
		l := mustNew(t, Options{MaxConcurrency: 8, Adaptive: adaptive})
		ctx := context.Background()
		allocs := testing.AllocsPerRun(1000, func() {
			tok, err := l.Acquire(ctx)
			if err != nil {
				t.Fatal(err)
			}
			tok.Release(time.Millisecond, Success)
		})
		if allocs != 0 {
			t.Errorf("adaptive=%v: %v allocations per Acquire/Release; want 0", adaptive, allocs)
		}
	}
}

func BenchmarkAcquireRelease(b *testing.B) {
	for _, adaptive := range []bool{false, true} {
		b.Run(map[bool]string{false: "static", true: "adaptive"}[adaptive], func(b *testing.B) {
			l := mustNew(b, Options{MaxConcurrency: 1 << 20, Adaptive: adaptive})
			ctx := context.Background()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					tok, err := l.Acquire(ctx)
					if err != nil {
						b.Error(err)
						return
					}
					tok.Release(time.Millisecond, Success)
				}
			})
		})
	}
}
