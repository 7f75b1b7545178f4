// Package throttle is the load-shedding stage: it holds each request of an
// API in a concurrency limiter (internal/throttle) for as long as the
// upstream works on it, queues requests over the limit for a bounded time,
// and sheds the rest with 503 and Retry-After. With an adaptive limit, a
// slowing upstream lowers the limit, so a flood queues at the gateway
// instead of piling onto the bank's systems.
package throttle

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/bulwarkapi/bulwark/internal/config"
	"github.com/bulwarkapi/bulwark/internal/pipeline"
	"github.com/bulwarkapi/bulwark/internal/throttle"
)

// StageName is the name of the stage in decisions, metrics and the audit log.
const StageName = "throttle"

// retryAfterShed is the Retry-After of a shed request, in seconds: a
// queue that was full or too slow a moment ago is worth retrying soon,
// and a second spreads the retries of a crowd.
const retryAfterShed = 1

// Stage is the throttle of one API. It is safe for concurrent use.
type Stage struct {
	cfg     config.Throttle
	limiter *throttle.Limiter
	monitor bool
}

var _ pipeline.Stage = (*Stage)(nil)

// New returns the throttle stage for one API's throttle block.
func New(c config.Throttle, apiMonitor bool) (*Stage, error) {
	l, err := throttle.New(throttle.Options{
		MaxConcurrency: c.MaxConcurrency,
		QueueSize:      c.Queue,
		QueueTimeout:   c.QueueTimeout.D(),
		Adaptive:       c.Adaptive,
		MinConcurrency: c.MinConcurrency,
		TargetLatency:  c.TargetLatency.D(),
	})
	if err != nil {
		return nil, err
	}
	return &Stage{cfg: c, limiter: l, monitor: apiMonitor || c.Mode == "monitor"}, nil
}

// Config returns the block the stage was built from, so a reload with the
// same block keeps the limiter and its learned state.
func (s *Stage) Config() config.Throttle { return s.cfg }

// Monitor reports whether the stage only records.
func (s *Stage) Monitor() bool { return s.monitor }

// Limiter exposes the limiter for metrics.
func (s *Stage) Limiter() *throttle.Limiter { return s.limiter }

// Name implements pipeline.Stage.
func (s *Stage) Name() string { return StageName }

// Handle takes a slot, waiting in the queue if need be. The slot is held
// on the exchange and released when the exchange ends, with the upstream
// latency as the limiter's sample. In monitor mode a request that would
// be shed is recorded and goes on without a slot.
func (s *Stage) Handle(ctx context.Context, x *pipeline.Exchange) pipeline.Decision {
	var tok throttle.Token
	var err error
	if s.monitor {
		var ok bool
		if tok, ok = s.limiter.TryAcquire(); !ok {
			err = throttle.ErrQueueFull
		}
	} else {
		tok, err = s.limiter.Acquire(ctx)
	}
	if err == nil {
		x.Slot = &slot{tok: tok}
		return pipeline.Continue
	}
	if ctx.Err() != nil {
		return pipeline.Halt(499, "client_closed", "")
	}
	reason := "shed_queue_full"
	if errors.Is(err, throttle.ErrQueueTimeout) {
		reason = "shed_queue_timeout"
	}
	d := pipeline.Halt(http.StatusServiceUnavailable, reason, "The API is at capacity; retry shortly.")
	d.Headers = http.Header{"Retry-After": {strconv.Itoa(retryAfterShed)}}
	d.Monitor = s.monitor
	return d
}

// slot is the exchange's hold on a limiter slot.
type slot struct{ tok throttle.Token }

// Release returns the slot with the exchange's outcome: the upstream's
// latency as a sample, a failure when the upstream failed or answered
// 5xx, and no sample when the upstream was never reached or the client
// went away.
func (s *slot) Release(x *pipeline.Exchange) {
	outcome := throttle.Success
	switch {
	case x.Upstream == "" || x.Status == 499:
		outcome = throttle.Ignore
	case x.Status >= 500:
		outcome = throttle.Failure
	}
	s.tok.Release(x.UpstreamLatency, outcome)
}
