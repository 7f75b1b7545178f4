// Package pipeline holds the per-request state of the gateway (the Exchange),
// the Stage abstraction every protection implements, and the RFC 9457 problem
// rendering that is the single way the gateway speaks an error to a client.
package pipeline

import (
	"context"
	"net/http"
	"net/netip"
	"time"

	"github.com/bulwarkapi/bulwark/internal/pseudo"

	"github.com/bulwarkapi/bulwark/internal/event"
	"github.com/bulwarkapi/bulwark/internal/identity"
)

// Param is one path parameter extracted by the route stage.
type Param struct {
	Name  string
	Value string
}

// Params is an ordered list of path parameters. A slice rather than a map:
// operations have few parameters and a slice costs no allocation per lookup.
type Params []Param

// Get returns the value of the named parameter and whether it was present.
func (p Params) Get(name string) (string, bool) {
	for i := range p {
		if p[i].Name == name {
			return p[i].Value, true
		}
	}
	return "", false
}

// Exchange is the state of one request/response pair as it moves through the
// stages. It is created by the gateway for each request, written by stages in
// order on the request goroutine, and read by the record stage at the end.
// It is not safe for concurrent use; no stage may keep it past the request.
type Exchange struct {
	// RequestID is the id returned to the client and forwarded upstream.
	RequestID string
	// Start is when the gateway began handling the request.
	Start time.Time
	// Request is the client request as received (after transport limits).
	Request *http.Request
	// Client is the address of the TCP peer.
	Client netip.AddrPort
	// ClientAddr is the client's address: the TCP peer's, or, when the peer
	// is a trusted proxy, the address it reported (forwarding.trusted_proxies).
	// Limits, brute-force counters and policies key on it.
	ClientAddr netip.Addr
	// ViaProxy reports that ClientAddr came from a trusted proxy's header.
	ViaProxy bool
	// TLS reports whether the request arrived over TLS.
	TLS bool

	// API is the name of the matched API ("" until route runs or when none matched).
	API string
	// Mode is the matched API's mode; Monitor means stops are recorded, not enforced.
	Mode Mode
	// Operation is "METHOD /template" of the matched OpenAPI operation, or "".
	Operation string
	// OperationID is the spec's operationId for the matched operation, or "".
	OperationID string
	// Params are the path parameters of the matched operation.
	Params Params
	// Identity is the verified caller, set by the authenticate stage; nil
	// for anonymous requests.
	Identity *identity.Identity
	// Target serves the exchange once the request stages let it through:
	// the matched API's upstream proxy. Set by the route stage.
	Target http.Handler
	// Pipeline is the pipeline of the configuration snapshot that handles
	// this exchange; the upstream's response hook runs its response stages.
	Pipeline *Pipeline

	// Decisions is the trail of what each stage decided, in order.
	Decisions []Decision

	// Status is the status code sent to the client (set when the response is written).
	Status int
	// UpstreamLatency is the time spent waiting for the upstream, zero if none was called.
	UpstreamLatency time.Duration
	// Upstream is the upstream URL the request was sent to, "" if none.
	Upstream string
	// Retries is how many times the request was retried against the upstream.
	Retries int
	// BytesIn and BytesOut count the request and response body bytes.
	BytesIn, BytesOut int64

	// RequestClasses and ResponseClasses are the sensitive-data classes
	// ("pan", "iban", ...) found in the bodies, for the audit log and the
	// inventory. Never the values.
	RequestClasses, ResponseClasses []string
	// ObjectIDs are hashes (policy.HashID) of the object ids an
	// authorization decision was made about, for the detectors;
	// ObjectParam names the path parameter the first came from.
	ObjectIDs   []string
	ObjectParam string
	// ReturnedIDs are hashes (policy.HashID) of the object ids a
	// successful JSON response returned to an authenticated caller, for
	// ownership learning (stage observe).
	ReturnedIDs []string
	// SampleBodies marks an exchange whose body shapes the inventory
	// samples; RequestSchema, ResponseSchema and BodyParams are what was
	// learned: types and names, never values (stage observe).
	SampleBodies                  bool
	RequestSchema, ResponseSchema map[string]any
	BodyParams                    []event.Param

	// ResponseHeaders are headers a stage wants on the response to the
	// client whatever the outcome (RateLimit, RateLimit-Policy): set on an
	// upstream response and on a problem alike.
	ResponseHeaders []Header
	// Username is the hash of a login attempt's username (brute_force),
	// for the response stage, the audit log and the detectors; never the
	// username itself.
	Username string
	// Slot is held by a stage for the life of the exchange (a throttle
	// slot); the gateway releases it when the exchange ends.
	Slot Releaser

	bodies bodyState
	// clientKey and subjectHash cache ClientKey and SubjectHash: several
	// stages and the event ask for them on one request.
	clientKey, subjectHash string
}

// Header is one response header set by a stage.
type Header struct{ Name, Value string }

// Releaser is something an exchange holds until it ends. Release is
// called exactly once, after the response is written, before the
// exchange is recorded.
type Releaser interface {
	Release(x *Exchange)
}

// Reset clears the exchange for reuse, keeping the capacity of its slices.
func (x *Exchange) Reset() {
	d, p, h := x.Decisions[:0], x.Params[:0], x.ResponseHeaders[:0]
	clear(x.Decisions[:cap(x.Decisions)])
	*x = Exchange{Decisions: d, Params: p, ResponseHeaders: h}
}

// clientIPv6Prefix groups IPv6 clients by /64 in ClientKey: a subscriber
// usually holds a whole /64 and can rotate through it at will, so a
// per-address counter would not count anyone.
const clientIPv6Prefix = 64

// ClientKey is the client address as abuse counters key on it: an IPv4
// address as is, an IPv6 address by its /64.
func (x *Exchange) ClientKey() string {
	if x.clientKey == "" {
		x.clientKey = x.clientKeyOf()
	}
	return x.clientKey
}

func (x *Exchange) clientKeyOf() string {
	a := x.ClientAddr
	if !a.IsValid() {
		a = x.Client.Addr().Unmap()
	}
	if a.Is6() {
		if p, err := a.Prefix(clientIPv6Prefix); err == nil {
			return p.String()
		}
	}
	return a.String()
}

// SubjectHash is the pseudonym (package pseudo: keyed by
// privacy.pseudonym_secret) of the authenticated caller's provider and
// subject: the one key identity rate limits, the detectors' cool-downs
// and exchange events use for a caller, so none of them holds the
// identity itself. "" when the exchange is anonymous.
func (x *Exchange) SubjectHash() string {
	if x.Identity == nil {
		return ""
	}
	if x.subjectHash == "" {
		x.subjectHash = pseudo.Of2(x.Identity.Provider, x.Identity.Subject)
	}
	return x.subjectHash
}

// Record appends a decision to the trail.
func (x *Exchange) Record(d Decision) { x.Decisions = append(x.Decisions, d) }

// Mode is how a protection acts on what it finds.
type Mode uint8

const (
	// Enforce stops the exchange when a stage says stop. It is the default.
	Enforce Mode = iota
	// Monitor records what a stage would have done and lets the request through.
	Monitor
)

func (m Mode) String() string {
	if m == Monitor {
		return "monitor"
	}
	return "enforce"
}

// Action is what a stage decided.
type Action uint8

const (
	// Allow lets the exchange continue; recorded only when a stage wants it on the trail.
	Allow Action = iota
	// Annotate adds information to the trail without changing the outcome.
	Annotate
	// Stop ends the exchange with Status and Reason (in enforce mode).
	Stop
)

func (a Action) String() string {
	switch a {
	case Annotate:
		return "annotate"
	case Stop:
		return "stop"
	default:
		return "allow"
	}
}

// Decision is one stage's verdict on an exchange.
type Decision struct {
	// Stage is the name of the stage that decided.
	Stage string
	// Action is what it decided.
	Action Action
	// Status is the HTTP status for a Stop (for example 403, 429).
	Status int
	// Reason is a short machine-readable reason ("no_api_match", "rate_limited").
	// It is recorded in the audit log and metrics, so it must never contain
	// request data (tokens, ids, bodies).
	Reason string
	// Detail is a human-readable explanation safe to show the client.
	Detail string
	// Enforced is false when a Stop was recorded in monitor mode and the request
	// went on.
	Enforced bool
	// Headers are extra response headers for a Stop (for example Retry-After).
	Headers http.Header
	// Rules are the ids of the rules behind the decision (WAF rule ids,
	// schema violations by field path), recorded in the audit log; never
	// request data.
	Rules []string
	// Monitor asks for a Stop to be recorded but not enforced, whatever the
	// API's mode: a protection configured with its own mode: monitor.
	Monitor bool
}

// Continue is the zero decision: allow, and record nothing.
var Continue = Decision{}

// Halt returns a Stop decision with the given status and reason.
func Halt(status int, reason, detail string) Decision {
	return Decision{Action: Stop, Status: status, Reason: reason, Detail: detail}
}

type ctxKey struct{}

// NewContext returns ctx carrying the exchange, so that code below the
// stages (the upstream transport, the error handler) can reach it.
func NewContext(ctx context.Context, x *Exchange) context.Context {
	return context.WithValue(ctx, ctxKey{}, x)
}

// FromContext returns the exchange carried by ctx, or nil.
func FromContext(ctx context.Context) *Exchange {
	x, _ := ctx.Value(ctxKey{}).(*Exchange)
	return x
}
