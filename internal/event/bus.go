package event

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// DefaultBusSize is the queue of a Bus when Options.Size is zero:
	// 64k events is a few seconds of peak traffic on one gateway, enough to
	// ride out a slow store flush without dropping.
	DefaultBusSize = 65536
	// DefaultBatch is the most events a handler receives at once: large
	// enough to amortise a store transaction, small enough to keep latency
	// to the inventory under a second.
	DefaultBatch = 512
	// DefaultFlushInterval is how long a partial batch waits for more.
	DefaultFlushInterval = 200 * time.Millisecond
)

// Handler consumes a batch of events. The slice is reused after the call
// returns: a handler that keeps events must copy them.
type Handler func(ctx context.Context, batch []Exchange)

// Options configures a Bus.
type Options struct {
	Size          int
	Batch         int
	FlushInterval time.Duration
}

// Bus is a bounded, asynchronous, fan-out queue of events. Publish never
// blocks: when the queue is full the event is dropped and counted. One
// goroutine delivers batches to every subscribed handler in turn.
type Bus struct {
	ch       chan Exchange
	batch    int
	interval time.Duration

	mu       sync.Mutex
	handlers []Handler

	published, dropped atomic.Uint64
	done               chan struct{}
	closeOnce          sync.Once
}

// NewBus returns a bus; call Run to start delivery.
func NewBus(o Options) *Bus {
	if o.Size <= 0 {
		o.Size = DefaultBusSize
	}
	if o.Batch <= 0 {
		o.Batch = DefaultBatch
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = DefaultFlushInterval
	}
	return &Bus{ch: make(chan Exchange, o.Size), batch: o.Batch, interval: o.FlushInterval, done: make(chan struct{})}
}

// Subscribe adds a handler. Handlers added after Run see later batches.
func (b *Bus) Subscribe(h Handler) {
	b.mu.Lock()
	b.handlers = append(b.handlers, h)
	b.mu.Unlock()
}

// Publish queues e without blocking; it reports false when e was dropped
// because the queue is full.
func (b *Bus) Publish(e Exchange) bool {
	select {
	case b.ch <- e:
		b.published.Add(1)
		return true
	default:
		b.dropped.Add(1)
		return false
	}
}

// Published and Dropped count events since the bus was made.
func (b *Bus) Published() uint64 { return b.published.Load() }

// Dropped counts events dropped because the queue was full.
func (b *Bus) Dropped() uint64 { return b.dropped.Load() }

// Len is the number of events waiting.
func (b *Bus) Len() int { return len(b.ch) }

// Run delivers batches until ctx ends or Close is called, then delivers
// what is still queued and returns.
func (b *Bus) Run(ctx context.Context) {
	buf := make([]Exchange, 0, b.batch)
	t := time.NewTicker(b.interval)
	defer t.Stop()
	flush := func() {
		if len(buf) == 0 {
			return
		}
		b.mu.Lock()
		hs := b.handlers
		b.mu.Unlock()
		for _, h := range hs {
			h(ctx, buf)
		}
		clear(buf)
		buf = buf[:0]
	}
	for {
		select {
		case e := <-b.ch:
			buf = append(buf, e)
			if len(buf) >= b.batch {
				flush()
			}
		case <-t.C:
			flush()
		case <-ctx.Done():
			b.drain(&buf, flush)
			return
		case <-b.done:
			b.drain(&buf, flush)
			return
		}
	}
}

func (b *Bus) drain(buf *[]Exchange, flush func()) {
	for {
		select {
		case e := <-b.ch:
			*buf = append(*buf, e)
			if len(*buf) >= b.batch {
				flush()
			}
		default:
			flush()
			return
		}
	}
}

// Close stops Run after it has delivered the queued events.
func (b *Bus) Close() { b.closeOnce.Do(func() { close(b.done) }) }
