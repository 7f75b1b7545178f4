// Package natsbus carries exchange events between the nodes of a
// multi-node deployment over NATS JetStream: every gateway publishes the
// events of its event bus to one stream, and the collector consumes them
// from a durable consumer, at least once.
//
// Delivery is at-least-once end to end. A publisher sets the JetStream
// message id to the event id, so a batch published twice within the
// stream's duplicate window is stored once; a consumer acknowledges a
// batch only after its handler succeeded, so a crash or a handler error
// redelivers it. The handler must therefore be idempotent per event id
// (the collector deduplicates with store.MarkEvents).
//
// Cool-downs travel the other way, from the collector to every gateway,
// on core NATS (NewCoolDownPublisher, SubscribeCoolDowns): cooldown.go
// says why they need no JetStream.
package natsbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Defaults of PublisherOptions and ConsumerOptions.
const (
	// DefaultStream is the JetStream stream that holds the events.
	DefaultStream = "BULWARK_EVENTS"
	// DefaultSubject is the subject events are published on.
	DefaultSubject = "bulwark.events"
	// DefaultDurable is the name of the collector's durable consumer: one
	// name shared by collector replicas makes them split the work.
	DefaultDurable = "bulwark-collector"
	// DefaultBatch is the most events a handler receives at once: one
	// store transaction per 500 events amortises the commit without
	// holding more than a second of a busy gateway's traffic.
	DefaultBatch = 500
	// DefaultMaxAge is how long the stream keeps events: a collector may
	// be down for a day without losing traffic. The store must keep event
	// ids (store.Prune) at least this long, or a late redelivery counts twice.
	DefaultMaxAge = 24 * time.Hour
	// DefaultDuplicates is the stream's de-duplication window: a publisher
	// retrying a batch within it does not store events twice. Two minutes
	// is the JetStream default, far longer than a publish retry.
	DefaultDuplicates = 2 * time.Minute
	// DefaultAckTimeout bounds PublishBatch: the event bus goroutine must
	// not stall behind an unreachable NATS; past it the batch is reported
	// failed and the caller drops it.
	DefaultAckTimeout = 5 * time.Second
	// DefaultFetchWait is how long a fetch waits to fill a batch: the
	// worst-case latency of an event at low traffic.
	DefaultFetchWait = time.Second
	// DefaultAckWait is how long JetStream waits for an acknowledgement
	// before redelivering; it must exceed the slowest handler call, and
	// the consumer extends it while a handler runs anyway.
	DefaultAckWait = 30 * time.Second
	// DefaultNakDelay is how long a failed batch waits before redelivery:
	// long enough not to hammer a store that is down, short enough to
	// resume promptly once it is back.
	DefaultNakDelay = 2 * time.Second
)

const (
	// maxAsyncPending bounds unacknowledged async publishes per publisher:
	// several event bus batches in flight, beyond which PublishMsgAsync
	// stalls instead of buffering without limit.
	maxAsyncPending = 4096
	// ackPendingPerBatch sizes the consumer's MaxAckPending as a multiple
	// of the batch: batches waiting for a delayed redelivery must not stop
	// new ones from being fetched.
	ackPendingPerBatch = 4
	// connectTimeout bounds the initial dial of the NATS server.
	connectTimeout = 5 * time.Second
	// reconnectWait is the pause between reconnection attempts; the
	// connection retries forever, a gateway outlives NATS outages.
	reconnectWait = time.Second
	// retryMin and retryMax bound the back-off of a consumer whose fetches
	// fail (NATS unreachable, stream leader election).
	retryMin = 100 * time.Millisecond
	retryMax = 5 * time.Second
)

// connect dials url with reconnection forever and logs connection state
// changes on log; extra options are applied after these.
func connect(url, name string, log *slog.Logger, extra ...nats.Option) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name(name),
		nats.Timeout(connectTimeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(reconnectWait),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("natsbus: disconnected from NATS", "name", name, "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			log.Info("natsbus: reconnected to NATS", "name", name, "server", c.ConnectedUrlRedacted())
		}),
	}
	nc, err := nats.Connect(url, append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("natsbus: connect to NATS: %w", err)
	}
	return nc, nil
}

// streamConfig is the stream events are kept in: on disk, for maxAge,
// oldest dropped first when a limit is reached.
func streamConfig(name, subject string, maxAge, duplicates time.Duration, replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        name,
		Description: "Bulwark exchange events",
		Subjects:    []string{subject},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		Storage:     jetstream.FileStorage,
		MaxAge:      maxAge,
		Duplicates:  duplicates,
		Replicas:    replicas,
	}
}

// ensureStream creates the stream with cfg unless it exists; an existing
// stream is left as it is (the publisher owns its configuration).
func ensureStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) error {
	_, err := js.Stream(ctx, cfg.Name)
	if err == nil {
		return nil
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("natsbus: look up stream %s: %w", cfg.Name, err)
	}
	_, err = js.CreateStream(ctx, cfg)
	if err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return fmt.Errorf("natsbus: create stream %s: %w", cfg.Name, err)
	}
	return nil
}

// orDefault returns v, or def when v is the zero value.
func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// discardLogger is used when no logger is given.
func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
