package throttle

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestEndToEnd puts a Limiter in front of a real HTTP upstream whose latency
// rises from 2ms to 40ms halfway through a flood. The upstream must never
// see more than MaxConcurrency handlers, requests must be shed once it has
// slowed, and the adaptive limit must have backed off.
func TestEndToEnd(t *testing.T) {
	t.Run("learned baseline", func(t *testing.T) { endToEnd(t, 0) })
	t.Run("target latency", func(t *testing.T) { endToEnd(t, 20*time.Millisecond) })
}

func endToEnd(t *testing.T, target time.Duration) {
	const (
		maxConc     = 16
		clients     = 64
		requests    = 400
		fastLat     = 2 * time.Millisecond
		slowLat     = 40 * time.Millisecond
		shedBackoff = 20 * time.Millisecond // what a client would do on 503 + Retry-After
	)
	var (
		latency  atomic.Int64
		upstream maxTracker
	)
	latency.Store(int64(fastLat))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upstream.enter()
		defer upstream.exit() // runs before net/http sends the response
		time.Sleep(time.Duration(latency.Load()))
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	transport := &http.Transport{MaxIdleConnsPerHost: clients}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport}
	// Warm the connection pool so that dialing does not pollute the first
	// latency samples (the learned baseline starts from them).
	var warm sync.WaitGroup
	for range maxConc {
		warm.Go(func() {
			if err := call(context.Background(), client, srv.URL, errors.New("warm-up")); err != nil {
				t.Errorf("warm-up: %v", err)
			}
		})
	}
	warm.Wait()
	upstream.peak.Store(0)

	l := mustNew(t, Options{MaxConcurrency: maxConc, QueueSize: maxConc, QueueTimeout: 100 * time.Millisecond,
		Adaptive: true, MinConcurrency: 2, TargetLatency: target})

	var (
		next                 atomic.Int64
		shedSlow, shedFast   atomic.Int64
		served, failed       atomic.Int64
		limiterSide          maxTracker
		wg                   sync.WaitGroup
		ctx, cancelAll       = context.WithTimeout(context.Background(), 30*time.Second)
		errUnexpectedStatus  = errors.New("unexpected status")
		recordUnexpectedOnce sync.Once
	)
	defer cancelAll()
	for range clients {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > requests {
					return
				}
				if i == requests/2+1 {
					latency.Store(int64(slowLat))
				}
				slow := i > requests/2
				tok, err := l.Acquire(ctx)
				if err != nil {
					if !errors.Is(err, ErrQueueFull) && !errors.Is(err, ErrQueueTimeout) {
						t.Errorf("Acquire: %v", err)
						return
					}
					if slow {
						shedSlow.Add(1)
					} else {
						shedFast.Add(1)
					}
					time.Sleep(shedBackoff)
					continue
				}
				limiterSide.enter()
				start := time.Now()
				err = call(ctx, client, srv.URL, errUnexpectedStatus)
				lat := time.Since(start)
				limiterSide.exit()
				if err != nil {
					failed.Add(1)
					recordUnexpectedOnce.Do(func() { t.Errorf("upstream call: %v", err) })
					tok.Release(lat, Failure)
					continue
				}
				served.Add(1)
				tok.Release(lat, Success)
			}
		})
	}
	wg.Wait()

	s := l.Stats()
	t.Logf("served %d, shed %d before / %d after the slowdown, upstream peak %d, final %+v",
		served.Load(), shedFast.Load(), shedSlow.Load(), upstream.peak.Load(), s)
	if peak := upstream.peak.Load(); peak > maxConc {
		t.Errorf("upstream saw %d concurrent requests; MaxConcurrency is %d", peak, maxConc)
	}
	if peak := limiterSide.peak.Load(); peak > maxConc {
		t.Errorf("%d requests held slots at once; MaxConcurrency is %d", peak, maxConc)
	}
	if shedSlow.Load() == 0 {
		t.Error("nothing was shed after the upstream slowed")
	}
	if s.Limit >= maxConc {
		t.Errorf("limit ended at %d; want it below MaxConcurrency %d", s.Limit, maxConc)
	}
	if s.InFlight != 0 || s.Queued != 0 {
		t.Errorf("leaked: %+v", s)
	}
	if got := served.Load() + failed.Load() + shedSlow.Load() + shedFast.Load(); got != requests {
		t.Errorf("accounted for %d of %d requests", got, requests)
	}
}

func call(ctx context.Context, client *http.Client, url string, errStatus error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return errStatus
	}
	return nil
}
