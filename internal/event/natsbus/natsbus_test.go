package natsbus

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bulwarkapi/bulwark/internal/event"
)

// natsURLEnv names the NATS server (with JetStream) the tests run against.
const natsURLEnv = "BULWARK_TEST_NATS_URL"

// testWait bounds every wait of a test for something to arrive.
const testWait = 15 * time.Second

// env is one test's NATS: a unique stream and subject, deleted at the end.
type env struct {
	url, stream, subject string
	js                   jetstream.JetStream
}

func newEnv(t *testing.T) env {
	t.Helper()
	u := os.Getenv(natsURLEnv)
	if u == "" {
		t.Skip(natsURLEnv + " not set: skipping NATS JetStream tests")
	}
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	suffix := hex.EncodeToString(b)
	nc, err := nats.Connect(u)
	if err != nil {
		t.Fatalf("connect to %s: %v", u, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	e := env{url: u, stream: "BULWARK_TEST_" + strings.ToUpper(suffix), subject: "bulwark.test." + suffix, js: js}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := js.DeleteStream(ctx, e.stream); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Errorf("delete stream %s: %v", e.stream, err)
		}
		nc.Close()
	})
	return e
}

func (e env) publisher(t *testing.T) *Publisher {
	t.Helper()
	p, err := NewPublisher(context.Background(), e.url, PublisherOptions{Stream: e.stream, Subject: e.subject})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func (e env) consumer(t *testing.T, batch int) *Consumer {
	t.Helper()
	c, err := NewConsumer(context.Background(), e.url, ConsumerOptions{
		Stream: e.stream, Subject: e.subject, Durable: "test-collector", Batch: batch,
		FetchWait: 200 * time.Millisecond, NakDelay: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// waitSettled waits until the consumer has nothing pending or
// unacknowledged: every event was handled and its ack processed.
func (e env) waitSettled(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(testWait)
	for {
		c, err := e.js.Consumer(ctx, e.stream, "test-collector")
		if err != nil {
			t.Fatal(err)
		}
		info, err := c.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.NumPending == 0 && info.NumAckPending == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumer not settled: %d pending, %d unacknowledged", info.NumPending, info.NumAckPending)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// mkEvents returns n events with ids prefix-0…prefix-(n-1).
func mkEvents(prefix string, n int) []event.Exchange {
	out := make([]event.Exchange, n)
	for i := range out {
		out[i] = event.Exchange{
			ID: fmt.Sprintf("%s-%03d", prefix, i), Time: time.Date(2026, 3, 1, 12, 0, i, 0, time.UTC),
			Gateway: "gw-1", Source: "gateway", API: "shop", Host: "shop.example", Method: "GET",
			Path: fmt.Sprintf("/items/%d", i), Operation: "GET /items/{id}", Status: 200, LatencyMS: 1.5,
			Auth: event.AuthJWT, Subject: "h:abc", Params: []event.Param{{Name: "id", In: "path", Type: "integer"}},
			ResponseSchema: map[string]any{"type": "object"},
		}
	}
	return out
}

// collector records what a handler was given.
type collector struct {
	mu    sync.Mutex
	calls int
	seen  map[string]int
	last  map[string]event.Exchange
}

func newCollector() *collector {
	return &collector{seen: map[string]int{}, last: map[string]event.Exchange{}}
}

func (c *collector) add(evs []event.Exchange) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	for _, e := range evs {
		c.seen[e.ID]++
		c.last[e.ID] = e
	}
}

func (c *collector) distinct() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

// runConsumer runs c.Run with handle in the background; the returned
// func stops it and returns Run's error.
func runConsumer(t *testing.T, c *Consumer, handle func(context.Context, []event.Exchange) error) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx, handle) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-errc:
			case <-time.After(testWait):
				err = errors.New("Run did not return after cancel")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// waitFor polls cond until it holds or testWait passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestPublishedEventsArriveOnceEach(t *testing.T) {
	e := newEnv(t)
	p := e.publisher(t)
	ctx := context.Background()
	evs := mkEvents("once", 120)
	for i := 0; i < len(evs); i += 50 {
		if err := p.PublishBatch(ctx, evs[i:min(i+50, len(evs))]); err != nil {
			t.Fatal(err)
		}
	}
	c := e.consumer(t, 32)
	got := newCollector()
	stop := runConsumer(t, c, func(_ context.Context, evs []event.Exchange) error {
		if len(evs) > 32 {
			t.Errorf("batch of %d events, want at most 32", len(evs))
		}
		got.add(evs)
		return nil
	})
	waitFor(t, "all events", func() bool { return got.distinct() == len(evs) })
	e.waitSettled(t)
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	for _, ev := range evs {
		if n := got.seen[ev.ID]; n != 1 {
			t.Errorf("%s delivered %d times, want once", ev.ID, n)
		}
	}
	if !reflect.DeepEqual(got.last[evs[7].ID], evs[7]) {
		t.Errorf("event round trip:\n got %+v\nwant %+v", got.last[evs[7].ID], evs[7])
	}
	if s := c.Stats(); s.Handled != uint64(len(evs)) || s.Delivered != uint64(len(evs)) || s.FailedBatches != 0 {
		t.Errorf("stats = %+v", s)
	}
}

func TestHandlerErrorRedelivers(t *testing.T) {
	e := newEnv(t)
	p := e.publisher(t)
	ctx := context.Background()
	evs := mkEvents("retry", 10)
	if err := p.PublishBatch(ctx, evs); err != nil {
		t.Fatal(err)
	}
	c := e.consumer(t, 100)
	got := newCollector()
	var (
		mu     sync.Mutex
		failed map[string]bool
	)
	stop := runConsumer(t, c, func(_ context.Context, evs []event.Exchange) error {
		mu.Lock()
		defer mu.Unlock()
		if failed == nil {
			failed = map[string]bool{}
			for _, e := range evs {
				failed[e.ID] = true
			}
			return errors.New("store unavailable")
		}
		got.add(evs)
		return nil
	})
	waitFor(t, "redelivery of every event", func() bool { return got.distinct() == len(evs) })
	e.waitSettled(t)
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(failed) == 0 {
		t.Fatal("the failing call saw no events")
	}
	for id := range failed {
		if got.seen[id] == 0 {
			t.Errorf("%s was not redelivered after the handler failed", id)
		}
	}
	if s := c.Stats(); s.FailedBatches != 1 || s.Handled != uint64(len(evs)) {
		t.Errorf("stats = %+v, want 1 failed batch and %d handled", s, len(evs))
	}
}

func TestConsumerResumesAfterRestart(t *testing.T) {
	e := newEnv(t)
	p := e.publisher(t)
	ctx := context.Background()
	first := mkEvents("first", 30)
	if err := p.PublishBatch(ctx, first); err != nil {
		t.Fatal(err)
	}

	// The first collector handles one batch, then shuts down.
	c1 := e.consumer(t, 10)
	got1 := newCollector()
	runCtx, cancel := context.WithCancel(ctx)
	err := c1.Run(runCtx, func(_ context.Context, evs []event.Exchange) error {
		got1.add(evs)
		cancel()
		return nil
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := c1.Close(); err != nil {
		t.Fatal(err)
	}
	if n := got1.distinct(); n == 0 || n == len(first) {
		t.Fatalf("first collector handled %d of %d events, want a part", n, len(first))
	}
	e.waitSettled0(t)

	// Events published while no collector runs are kept.
	second := mkEvents("second", 15)
	if err := p.PublishBatch(ctx, second); err != nil {
		t.Fatal(err)
	}

	c2 := e.consumer(t, 10)
	got2 := newCollector()
	want := len(first) + len(second) - got1.distinct()
	stop := runConsumer(t, c2, func(_ context.Context, evs []event.Exchange) error {
		got2.add(evs)
		return nil
	})
	waitFor(t, "the remaining events", func() bool { return got2.distinct() == want })
	e.waitSettled(t)
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	for _, ev := range append(first, second...) {
		n1, n2 := got1.seen[ev.ID], got2.seen[ev.ID]
		if n1+n2 != 1 {
			t.Errorf("%s handled %d times before and %d after the restart, want once in all", ev.ID, n1, n2)
		}
	}
}

// waitSettled0 waits until no message is delivered and unacknowledged
// (pending ones may remain): the acks of a stopped collector are in.
func (e env) waitSettled0(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	waitFor(t, "acks of the stopped collector", func() bool {
		c, err := e.js.Consumer(ctx, e.stream, "test-collector")
		if err != nil {
			t.Fatal(err)
		}
		info, err := c.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.NumAckPending == 0
	})
}

func TestDuplicateIDStoredOnce(t *testing.T) {
	e := newEnv(t)
	p := e.publisher(t)
	ctx := context.Background()
	ev := mkEvents("dup", 1)
	if err := p.PublishBatch(ctx, ev); err != nil {
		t.Fatal(err)
	}
	if err := p.PublishBatch(ctx, []event.Exchange{ev[0], ev[0]}); err != nil {
		t.Fatal(err)
	}
	s, err := e.js.Stream(ctx, e.stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Errorf("stream holds %d messages after publishing one id three times, want 1", info.State.Msgs)
	}
	if info.Config.Storage != jetstream.FileStorage || info.Config.MaxAge != DefaultMaxAge || info.Config.Duplicates != DefaultDuplicates {
		t.Errorf("stream config = storage %v, max age %v, duplicates %v", info.Config.Storage, info.Config.MaxAge, info.Config.Duplicates)
	}
}

func TestUndecodableSkipped(t *testing.T) {
	e := newEnv(t)
	p := e.publisher(t)
	ctx := context.Background()
	if _, err := e.js.Publish(ctx, e.subject, []byte("not json")); err != nil {
		t.Fatal(err)
	}
	evs := mkEvents("ok", 2)
	if err := p.PublishBatch(ctx, evs); err != nil {
		t.Fatal(err)
	}
	c := e.consumer(t, 10)
	got := newCollector()
	stop := runConsumer(t, c, func(_ context.Context, evs []event.Exchange) error {
		got.add(evs)
		return nil
	})
	waitFor(t, "the valid events", func() bool { return got.distinct() == len(evs) })
	e.waitSettled(t)
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if s := c.Stats(); s.Undecodable != 1 || s.Handled != 2 {
		t.Errorf("stats = %+v, want 1 undecodable and 2 handled", s)
	}
}

func TestPublishAfterCloseFails(t *testing.T) {
	e := newEnv(t)
	p := e.publisher(t)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	err := p.PublishBatch(context.Background(), mkEvents("closed", 3))
	var perr *PublishError
	if !errors.As(err, &perr) || perr.Failed != 3 || perr.Total != 3 {
		t.Fatalf("PublishBatch after Close: err = %v, want a PublishError with 3 of 3 failed", err)
	}
}

func TestRunReturnsWhenConsumerDeleted(t *testing.T) {
	e := newEnv(t)
	c := e.consumer(t, 10)
	errc := make(chan error, 1)
	go func() {
		errc <- c.Run(context.Background(), func(context.Context, []event.Exchange) error { return nil })
	}()
	time.Sleep(100 * time.Millisecond)
	if err := e.js.DeleteConsumer(context.Background(), e.stream, "test-collector"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if err == nil {
			t.Error("Run returned nil after its consumer was deleted")
		}
	case <-time.After(testWait):
		t.Fatal("Run kept going after its consumer was deleted")
	}
}
