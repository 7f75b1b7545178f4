// Package record is the last stage of every exchange: it writes the audit
// record and the request metrics. It runs after the response was written,
// on the request goroutine; the audit writer itself is asynchronous.
package record

import (
	"time"

	"github.com/bulwarkapi/bulwark/internal/audit"
	"github.com/bulwarkapi/bulwark/internal/metrics"
	"github.com/bulwarkapi/bulwark/internal/pipeline"
)

// NoAPI is the api label of requests that matched no API.
const NoAPI = "-"

// Recorder writes the record of finished exchanges.
type Recorder struct {
	audit   *audit.Writer // nil when the audit log is disabled
	metrics *metrics.Metrics
	events  *EventOptions // nil: no exchange events
}

// New returns a recorder; w may be nil.
func New(w *audit.Writer, m *metrics.Metrics) *Recorder {
	return &Recorder{audit: w, metrics: m}
}

// Outcome classifies an exchange for metrics: "stopped" when a stage
// stopped it, "monitored" when a stage would have stopped it in monitor
// mode, "passed" otherwise.
func Outcome(x *pipeline.Exchange) string {
	out := "passed"
	for i := range x.Decisions {
		d := &x.Decisions[i]
		if d.Action != pipeline.Stop {
			continue
		}
		if d.Enforced {
			return "stopped"
		}
		out = "monitored"
	}
	return out
}

// Record writes x to the audit log and metrics.
func (r *Recorder) Record(x *pipeline.Exchange, now time.Time) {
	latency := now.Sub(x.Start)
	api := x.API
	if api == "" {
		api = NoAPI
	}
	if m := r.metrics; m != nil {
		m.Requests.WithLabelValues(api, metrics.StatusLabel(x.Status), Outcome(x)).Inc()
		m.RequestDuration.WithLabelValues(api).Observe(latency.Seconds())
		for i := range x.Decisions {
			d := &x.Decisions[i]
			enforced := "false"
			if d.Enforced {
				enforced = "true"
			}
			m.Decisions.WithLabelValues(api, d.Stage, d.Action.String(), d.Reason, enforced).Inc()
		}
	}
	if r.events != nil && r.events.Publish != nil {
		r.events.Publish(Event(x, r.events))
	}
	if r.audit == nil {
		return
	}
	rec := audit.Record{
		Time:            x.Start,
		RequestID:       x.RequestID,
		API:             x.API,
		Operation:       x.Operation,
		Method:          x.Request.Method,
		Path:            x.Request.URL.EscapedPath(),
		Host:            x.Request.Host,
		Status:          x.Status,
		Latency:         latency,
		UpstreamLatency: x.UpstreamLatency,
		Client:          x.Client.String(),
		Mode:            x.Mode.String(),
		Upstream:        x.Upstream,
		Retries:         x.Retries,
		BytesIn:         x.BytesIn,
		BytesOut:        x.BytesOut,
	}
	rec.RequestClasses, rec.ResponseClasses = x.RequestClasses, x.ResponseClasses
	if x.ViaProxy {
		rec.ForwardedFor = x.ClientAddr.String()
	}
	rec.Username = x.Username
	if id := x.Identity; id != nil {
		rec.Subject, rec.Provider, rec.Auth = id.Subject, id.Provider, string(id.Kind)
	}
	if len(x.Decisions) > 0 {
		rec.Decisions = make([]audit.Decision, len(x.Decisions))
		for i, d := range x.Decisions {
			rec.Decisions[i] = audit.Decision{
				Stage: d.Stage, Action: d.Action.String(), Reason: d.Reason,
				Status: d.Status, Enforced: d.Enforced, Rules: d.Rules,
			}
		}
	}
	r.audit.Write(rec)
}
