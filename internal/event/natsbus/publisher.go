package natsbus

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bulwarkapi/bulwark/internal/event"
)

// PublisherOptions configures NewPublisher; zero fields take defaults.
type PublisherOptions struct {
	// Stream is the stream name (DefaultStream).
	Stream string
	// Subject is the subject events are published on (DefaultSubject).
	Subject string
	// MaxAge is how long the stream keeps events (DefaultMaxAge).
	MaxAge time.Duration
	// Duplicates is the de-duplication window (DefaultDuplicates).
	Duplicates time.Duration
	// Replicas is the stream's replication factor in a NATS cluster (1).
	Replicas int
	// AckTimeout bounds each PublishBatch (DefaultAckTimeout).
	AckTimeout time.Duration
	// Logger receives connection state changes (discarded when nil).
	Logger *slog.Logger
}

// Publisher publishes exchange events to a JetStream stream. It is safe
// for concurrent use.
type Publisher struct {
	nc         *nats.Conn
	js         jetstream.JetStream
	subject    string
	ackTimeout time.Duration
}

// NewPublisher connects to the NATS server at url and creates or updates
// the stream (file storage, limits retention, MaxAge, duplicate window).
func NewPublisher(ctx context.Context, url string, o PublisherOptions) (*Publisher, error) {
	o.Stream = orDefault(o.Stream, DefaultStream)
	o.Subject = orDefault(o.Subject, DefaultSubject)
	o.MaxAge = orDefault(o.MaxAge, DefaultMaxAge)
	o.Duplicates = orDefault(o.Duplicates, DefaultDuplicates)
	o.Replicas = orDefault(o.Replicas, 1)
	o.AckTimeout = orDefault(o.AckTimeout, DefaultAckTimeout)
	if o.Logger == nil {
		o.Logger = discardLogger()
	}
	if o.Duplicates > o.MaxAge {
		return nil, fmt.Errorf("natsbus: duplicate window %s exceeds MaxAge %s", o.Duplicates, o.MaxAge)
	}
	nc, err := connect(url, "bulwark-publisher", o.Logger)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(maxAsyncPending),
		// Acks that never come (a lost connection) must free their slot.
		jetstream.WithPublishAsyncTimeout(o.AckTimeout))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("natsbus: jetstream: %w", err)
	}
	cfg := streamConfig(o.Stream, o.Subject, o.MaxAge, o.Duplicates, o.Replicas)
	if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
		nc.Close()
		return nil, fmt.Errorf("natsbus: create or update stream %s: %w", o.Stream, err)
	}
	return &Publisher{nc: nc, js: js, subject: o.Subject, ackTimeout: o.AckTimeout}, nil
}

// PublishError reports the events of a batch that were not stored. Some
// of them may have been stored after all (an ack lost, not the message):
// the consumer's de-duplication absorbs that.
type PublishError struct {
	// Failed is how many events were not acknowledged, of Total.
	Failed, Total int
	// Err is the first failure.
	Err error
}

// Error implements error.
func (e *PublishError) Error() string {
	return fmt.Sprintf("natsbus: %d of %d events not published: %v", e.Failed, e.Total, e.Err)
}

// Unwrap returns the first failure.
func (e *PublishError) Unwrap() error { return e.Err }

// PublishBatch publishes events as JSON, one message each with the event
// id as JetStream message id, and waits for the acknowledgements until
// ctx ends or the ack timeout passes. It returns a *PublishError when any
// event was not acknowledged; it never retries, the caller counts and
// drops. Events without an id are published without de-duplication.
func (p *Publisher) PublishBatch(ctx context.Context, events []event.Exchange) error {
	if len(events) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, p.ackTimeout)
	defer cancel()
	perr := &PublishError{Total: len(events)}
	fail := func(n int, err error) {
		if perr.Err == nil {
			perr.Err = err
		}
		perr.Failed += n
	}
	futures := make([]jetstream.PubAckFuture, 0, len(events))
	for i := range events {
		data, err := json.Marshal(&events[i])
		if err != nil {
			fail(1, fmt.Errorf("encode event %q: %w", events[i].ID, err))
			continue
		}
		msg := &nats.Msg{Subject: p.subject, Data: data}
		var opts []jetstream.PublishOpt
		if id := events[i].ID; id != "" {
			opts = append(opts, jetstream.WithMsgID(id))
		}
		f, err := p.js.PublishMsgAsync(msg, opts...)
		if err != nil {
			fail(1, fmt.Errorf("publish event %q: %w", events[i].ID, err))
			continue
		}
		futures = append(futures, f)
	}
	for i, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			fail(1, fmt.Errorf("publish: %w", err))
		case <-ctx.Done():
			fail(len(futures)-i, fmt.Errorf("wait for acks: %w", ctx.Err()))
			return perr
		}
	}
	if perr.Failed > 0 {
		return perr
	}
	return nil
}

// Close closes the connection; unacknowledged publishes are abandoned.
func (p *Publisher) Close() error {
	p.nc.Close()
	return nil
}
