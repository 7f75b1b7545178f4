package pipeline

import (
	"context"
	"net/http"
	"time"
)

// Stage is one protection on the request side of the pipeline. Handle runs on
// the request goroutine; it may read and annotate the exchange and returns its
// decision. A stage must not write to the client: a Stop decision is rendered
// once, at the edge, as problem+json.
type Stage interface {
	Name() string
	Handle(ctx context.Context, x *Exchange) Decision
}

// ResponseStage is one protection on the response side, run after the
// upstream answered and before the response is sent to the client. It may
// modify resp (headers, body) and returns its decision; a Stop replaces the
// upstream response with a problem.
type ResponseStage interface {
	Name() string
	HandleResponse(ctx context.Context, x *Exchange, resp *http.Response) Decision
}

// StageTimer receives the time each stage took; the gateway feeds it into the
// per-stage latency histograms. Implementations must be safe for concurrent use.
type StageTimer interface {
	ObserveStage(stage string, d time.Duration)
}

// Pipeline is an immutable, ordered list of stages. It is built once per
// configuration snapshot and shared by all requests of that snapshot.
type Pipeline struct {
	request  []Stage
	response []ResponseStage
	timer    StageTimer
}

// New returns a pipeline running the given stages in order. timer may be nil.
func New(timer StageTimer, request []Stage, response []ResponseStage) *Pipeline {
	return &Pipeline{request: request, response: response, timer: timer}
}

// RunRequest runs the request stages in order and returns the decision that
// stopped the exchange, or nil when it may go on to the upstream. Monitor mode
// is implemented here, once: a Stop from a stage while the exchange is in
// monitor mode is recorded with Enforced=false and the next stage runs.
func (p *Pipeline) RunRequest(ctx context.Context, x *Exchange) *Decision {
	for _, s := range p.request {
		var t0 time.Time
		if p.timer != nil {
			t0 = time.Now()
		}
		d := s.Handle(ctx, x)
		if p.timer != nil {
			p.timer.ObserveStage(s.Name(), time.Since(t0))
		}
		if stop := p.settle(x, s.Name(), d); stop {
			return &x.Decisions[len(x.Decisions)-1]
		}
	}
	return nil
}

// RunResponse runs the response stages in order with the same monitor-mode
// semantics as RunRequest.
func (p *Pipeline) RunResponse(ctx context.Context, x *Exchange, resp *http.Response) *Decision {
	for _, s := range p.response {
		var t0 time.Time
		if p.timer != nil {
			t0 = time.Now()
		}
		d := s.HandleResponse(ctx, x, resp)
		if p.timer != nil {
			p.timer.ObserveStage(s.Name(), time.Since(t0))
		}
		if stop := p.settle(x, s.Name(), d); stop {
			return &x.Decisions[len(x.Decisions)-1]
		}
	}
	return nil
}

// settle records d on the exchange and reports whether the exchange stops.
func (p *Pipeline) settle(x *Exchange, stage string, d Decision) bool {
	if d.Action == Allow && d.Reason == "" {
		return false
	}
	d.Stage = stage
	if d.Action != Stop {
		x.Record(d)
		return false
	}
	d.Enforced = x.Mode != Monitor && !d.Monitor
	x.Record(d)
	return d.Enforced
}

// HasResponseStages reports whether any response stage is configured, so the
// gateway can skip response hooks entirely on the pass-through path.
func (p *Pipeline) HasResponseStages() bool { return len(p.response) > 0 }

// ByAPI is a stage that runs, for each exchange, the stage configured for
// its API (the route stage has set x.API). Most protections are configured
// per API; this keeps the pipeline one flat list of stage names.
type ByAPI struct {
	name   string
	stages map[string]Stage
}

// NewByAPI returns a stage named name dispatching to stages by API name.
func NewByAPI(name string, stages map[string]Stage) *ByAPI {
	return &ByAPI{name: name, stages: stages}
}

// Name implements Stage.
func (b *ByAPI) Name() string { return b.name }

// Handle implements Stage.
func (b *ByAPI) Handle(ctx context.Context, x *Exchange) Decision {
	if s, ok := b.stages[x.API]; ok {
		return s.Handle(ctx, x)
	}
	return Continue
}

// ByAPIResponse is ByAPI for response stages.
type ByAPIResponse struct {
	name   string
	stages map[string]ResponseStage
}

// NewByAPIResponse returns a response stage dispatching by API name.
func NewByAPIResponse(name string, stages map[string]ResponseStage) *ByAPIResponse {
	return &ByAPIResponse{name: name, stages: stages}
}

// Name implements ResponseStage.
func (b *ByAPIResponse) Name() string { return b.name }

// HandleResponse implements ResponseStage.
func (b *ByAPIResponse) HandleResponse(ctx context.Context, x *Exchange, resp *http.Response) Decision {
	if s, ok := b.stages[x.API]; ok {
		return s.HandleResponse(ctx, x, resp)
	}
	return Continue
}

var _ ResponseStage = (*ByAPIResponse)(nil)

// Len reports how many APIs have this stage.
func (b *ByAPI) Len() int { return len(b.stages) }

var _ Stage = (*ByAPI)(nil)
