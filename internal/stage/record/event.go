package record

import (
	"net/netip"

	"github.com/bulwarkapi/bulwark/internal/event"
	"github.com/bulwarkapi/bulwark/internal/identity"
	"github.com/bulwarkapi/bulwark/internal/inventory/shape"
	"github.com/bulwarkapi/bulwark/internal/pipeline"
)

// maxEventParams bounds the query parameters an event lists: a request
// with thousands of parameters is an attack, not an API shape to learn.
const maxEventParams = 32

// EventOptions says how exchanges become events.
type EventOptions struct {
	// Gateway names this node in events.
	Gateway string
	// Internal are the networks whose clients are east-west (internal).
	Internal []netip.Prefix
	// Publish receives each event; it must not block (event.Bus.Publish).
	Publish func(event.Exchange) bool
	// Steps, when set, marks events whose object id is a step of a
	// sequential walk (Exchange.ObjectStep).
	Steps *Steps
}

// WithEvents makes the recorder publish an exchange event per request.
func (r *Recorder) WithEvents(o EventOptions) *Recorder {
	r.events = &o
	return r
}

// Event builds the exchange event of x: metadata and classes, never
// values; the subject and object ids as hashes.
func Event(x *pipeline.Exchange, o *EventOptions) event.Exchange {
	e := event.Exchange{
		ID:              x.RequestID,
		Time:            x.Start,
		Gateway:         o.Gateway,
		Source:          "gateway",
		API:             x.API,
		Host:            x.Request.Host,
		Method:          x.Request.Method,
		Path:            x.Request.URL.Path,
		Operation:       x.Operation,
		Status:          x.Status,
		LatencyMS:       float64(x.UpstreamLatency.Microseconds()) / 1000,
		Auth:            event.AuthNone,
		Username:        x.Username,
		RequestClasses:  x.RequestClasses,
		ResponseClasses: x.ResponseClasses,
		ObjectIDs:       x.ObjectIDs,
		ObjectParam:     x.ObjectParam,
		ReturnedIDs:     x.ReturnedIDs,
		RequestSchema:   x.RequestSchema,
		ResponseSchema:  x.ResponseSchema,
		RequestBytes:    x.BytesIn,
		ResponseBytes:   x.BytesOut,
		ClientClass:     event.ClientExternal,
	}
	addr := x.ClientAddr
	if !addr.IsValid() {
		addr = x.Client.Addr().Unmap()
	}
	if addr.IsValid() {
		e.Client = addr.String()
		for _, p := range o.Internal {
			if p.Contains(addr) {
				e.ClientClass = event.ClientInternal
				break
			}
		}
	}
	if id := x.Identity; id != nil {
		e.Subject = x.SubjectHash()
		switch id.Kind {
		case identity.KindJWT:
			e.Auth = event.AuthJWT
		case identity.KindAPIKey:
			e.Auth = event.AuthAPIKey
		case identity.KindIntrospection:
			e.Auth = event.AuthIntrospection
		case identity.KindMTLS:
			e.Auth = event.AuthMTLS
			e.MTLSIdentity = id.Subject
		}
	} else if x.Request.Header.Get("Authorization") != "" {
		// A credential the gateway did not verify (no authenticate on
		// this API): report its kind only.
		e.Auth = authScheme(x.Request.Header.Get("Authorization"))
	}
	for i := range x.Decisions {
		d := &x.Decisions[i]
		if d.Action == pipeline.Stop {
			e.Reasons = append(e.Reasons, d.Stage+":"+d.Reason)
			if d.Enforced {
				e.Blocked = true
			}
		}
	}
	if o.Steps != nil && x.ObjectParam != "" && len(x.ObjectIDs) > 0 {
		if v, ok := x.Params.Get(x.ObjectParam); ok {
			who := e.Subject
			if who == "" {
				who = x.ClientKey()
			}
			e.ObjectStep = o.Steps.Step(who, x.API, x.Operation, x.ObjectParam, v)
		}
	}
	for _, p := range x.Params {
		e.Params = append(e.Params, event.Param{Name: p.Name, In: "path", Type: shape.GuessType(p.Value)})
	}
	e.Params = append(e.Params, x.BodyParams...)
	if x.Request.URL.RawQuery == "" {
		return e // no query: skip parsing one into a map
	}
	n := 0
	for name, vs := range x.Request.URL.Query() {
		if n++; n > maxEventParams {
			break
		}
		t := "string"
		if len(vs) > 0 {
			t = shape.GuessType(vs[0])
		}
		e.Params = append(e.Params, event.Param{Name: name, In: "query", Type: t})
	}
	return e
}

func authScheme(h string) string {
	if len(h) >= 6 && (h[:6] == "Basic " || h[:6] == "basic ") {
		return event.AuthBasic
	}
	return event.AuthJWT
}
