package natsbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bulwarkapi/bulwark/internal/event"
)

// ConsumerOptions configures NewConsumer; zero fields take defaults.
type ConsumerOptions struct {
	// Stream is the stream name (DefaultStream). It is created with the
	// publisher's defaults when missing, so a collector may start first.
	Stream string
	// Subject filters the stream (DefaultSubject).
	Subject string
	// Durable names the consumer (DefaultDurable); its position survives
	// restarts of the collector.
	Durable string
	// Batch is the most events per handler call (DefaultBatch).
	Batch int
	// FetchWait is how long a fetch waits to fill a batch (DefaultFetchWait).
	FetchWait time.Duration
	// AckWait is how long JetStream waits for an ack (DefaultAckWait).
	AckWait time.Duration
	// NakDelay delays the redelivery of a failed batch (DefaultNakDelay).
	NakDelay time.Duration
	// Logger receives failures that Run retries (discarded when nil).
	Logger *slog.Logger
}

// ConsumerStats counts what a Consumer did since it was created.
type ConsumerStats struct {
	// Delivered counts messages received, redeliveries included.
	Delivered uint64
	// Handled counts events acknowledged after a successful handler call.
	Handled uint64
	// Undecodable counts messages that were not an event: acknowledged
	// and skipped, since redelivering them cannot help.
	Undecodable uint64
	// FailedBatches counts handler errors (each batch is redelivered).
	FailedBatches uint64
}

// Consumer reads exchange events from a durable JetStream pull consumer
// with explicit acknowledgement.
type Consumer struct {
	nc        *nats.Conn
	cons      jetstream.Consumer
	name      string // stream/durable, for errors and logs
	batch     int
	fetchWait time.Duration
	ackWait   time.Duration
	nakDelay  time.Duration
	log       *slog.Logger

	delivered, handled, undecodable, failed atomic.Uint64
}

// NewConsumer connects to the NATS server at url and creates or updates
// the durable consumer (creating the stream first when it is missing).
func NewConsumer(ctx context.Context, url string, o ConsumerOptions) (*Consumer, error) {
	o.Stream = orDefault(o.Stream, DefaultStream)
	o.Subject = orDefault(o.Subject, DefaultSubject)
	o.Durable = orDefault(o.Durable, DefaultDurable)
	o.Batch = max(orDefault(o.Batch, DefaultBatch), 1)
	o.FetchWait = orDefault(o.FetchWait, DefaultFetchWait)
	o.AckWait = orDefault(o.AckWait, DefaultAckWait)
	o.NakDelay = orDefault(o.NakDelay, DefaultNakDelay)
	if o.Logger == nil {
		o.Logger = discardLogger()
	}
	nc, err := connect(url, "bulwark-consumer", o.Logger)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("natsbus: jetstream: %w", err)
	}
	if err := ensureStream(ctx, js, streamConfig(o.Stream, o.Subject, DefaultMaxAge, DefaultDuplicates, 1)); err != nil {
		nc.Close()
		return nil, err
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, o.Stream, jetstream.ConsumerConfig{
		Durable:       o.Durable,
		Description:   "Bulwark event collector",
		FilterSubject: o.Subject,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       o.AckWait,
		MaxDeliver:    -1, // at-least-once: a batch is retried until the handler takes it
		MaxAckPending: ackPendingPerBatch * o.Batch,
	})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("natsbus: create consumer %s on %s: %w", o.Durable, o.Stream, err)
	}
	return &Consumer{
		nc: nc, cons: cons, name: o.Stream + "/" + o.Durable,
		batch: o.Batch, fetchWait: o.FetchWait, ackWait: o.AckWait, nakDelay: o.NakDelay, log: o.Logger,
	}, nil
}

// Stats returns the counters of c.
func (c *Consumer) Stats() ConsumerStats {
	return ConsumerStats{
		Delivered: c.delivered.Load(), Handled: c.handled.Load(),
		Undecodable: c.undecodable.Load(), FailedBatches: c.failed.Load(),
	}
}

// Run fetches batches and calls handle with the decoded events of each,
// one call at a time, until ctx ends; it then returns nil. A batch is
// acknowledged when handle returns nil and redelivered after NakDelay when
// it returns an error, so handle sees every event at least once and must
// be idempotent per event id. The events slice is handle's to keep.
// Transient fetch failures are logged and retried with back-off; Run
// returns an error only when the consumer or its connection is gone.
func (c *Consumer) Run(ctx context.Context, handle func(ctx context.Context, events []event.Exchange) error) error {
	backoff := retryMin
	for ctx.Err() == nil {
		msgs, err := c.fetch(ctx)
		if ctx.Err() != nil {
			// Shutting down: hand the unprocessed messages back now
			// rather than after AckWait.
			nakAll(msgs, 0)
			return nil
		}
		if err != nil {
			nakAll(msgs, 0)
			if fatalFetchError(err) {
				return fmt.Errorf("natsbus: fetch from %s: %w", c.name, err)
			}
			c.log.Warn("natsbus: fetch failed; retrying", "consumer", c.name, "retry_in", backoff, "err", err)
			if !sleep(ctx, backoff) {
				return nil
			}
			backoff = min(2*backoff, retryMax)
			continue
		}
		backoff = retryMin
		if len(msgs) > 0 {
			c.process(ctx, msgs, handle)
		}
	}
	return nil
}

// fetch returns the messages of one pull request: up to a batch, within
// FetchWait.
func (c *Consumer) fetch(ctx context.Context) ([]jetstream.Msg, error) {
	fctx, cancel := context.WithTimeout(ctx, c.fetchWait)
	defer cancel()
	b, err := c.cons.Fetch(c.batch, jetstream.FetchContext(fctx))
	if err != nil {
		return nil, err
	}
	msgs := make([]jetstream.Msg, 0, c.batch)
	for m := range b.Messages() {
		msgs = append(msgs, m)
	}
	err = b.Error()
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		err = nil // the wait ended with a partial batch: not a failure
	}
	return msgs, err
}

// process decodes msgs, calls handle and settles every message.
func (c *Consumer) process(ctx context.Context, msgs []jetstream.Msg, handle func(context.Context, []event.Exchange) error) {
	c.delivered.Add(uint64(len(msgs)))
	events := make([]event.Exchange, 0, len(msgs))
	good := make([]jetstream.Msg, 0, len(msgs))
	var (
		bad    int
		badErr error
	)
	for _, m := range msgs {
		var e event.Exchange
		if err := json.Unmarshal(m.Data(), &e); err != nil {
			bad++
			if badErr == nil {
				badErr = err
			}
			_ = m.Ack() // a lost ack only redelivers a message skipped again
			continue
		}
		events = append(events, e)
		good = append(good, m)
	}
	if bad > 0 {
		c.undecodable.Add(uint64(bad))
		c.log.Warn("natsbus: skipped undecodable messages", "consumer", c.name, "count", bad, "err", badErr)
	}
	if len(events) == 0 {
		return
	}
	stop := c.keepAlive(good)
	err := handle(ctx, events)
	stop()
	if err != nil {
		c.failed.Add(1)
		delay := c.nakDelay
		if ctx.Err() != nil {
			delay = 0 // shutting down: let another collector take it now
		}
		c.log.Warn("natsbus: handler failed; batch will be redelivered",
			"consumer", c.name, "events", len(events), "retry_in", delay, "err", err)
		nakAll(good, delay)
		return
	}
	var ackErr error
	for _, m := range good {
		if err := m.Ack(); err != nil && ackErr == nil {
			ackErr = err
		}
	}
	c.handled.Add(uint64(len(events)))
	if ackErr != nil {
		c.log.Warn("natsbus: acknowledging a handled batch failed; it may be redelivered",
			"consumer", c.name, "events", len(events), "err", ackErr)
	}
}

// keepAlive tells JetStream every half AckWait that msgs are still being
// worked on, so that a slow handler call does not cause a redelivery; the
// returned func stops it.
func (c *Consumer) keepAlive(msgs []jetstream.Msg) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(c.ackWait / 2)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				for _, m := range msgs {
					_ = m.InProgress() // best effort: at worst the batch is redelivered
				}
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

// Close closes the connection, flushing pending acknowledgements. Call it
// after Run has returned; a Run still going fails with a closed
// connection.
func (c *Consumer) Close() error {
	c.nc.Close()
	return nil
}

// nakAll asks for the redelivery of msgs after delay (0: at once). Errors
// are ignored: an unsettled message is redelivered after AckWait anyway.
func nakAll(msgs []jetstream.Msg, delay time.Duration) {
	for _, m := range msgs {
		if delay > 0 {
			_ = m.NakWithDelay(delay)
		} else {
			_ = m.Nak()
		}
	}
}

// fatalFetchError reports whether retrying a fetch cannot help: the
// consumer or stream was deleted, or the connection was closed.
func fatalFetchError(err error) bool {
	return errors.Is(err, jetstream.ErrConsumerDeleted) ||
		errors.Is(err, jetstream.ErrConsumerNotFound) ||
		errors.Is(err, jetstream.ErrStreamNotFound) ||
		errors.Is(err, nats.ErrConnectionClosed)
}

// sleep waits for d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
