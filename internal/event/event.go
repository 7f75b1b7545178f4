// Package event is the exchange event: what the gateway tells the rest of
// Bulwark (inventory, detectors, the collector of a multi-node deployment)
// about every request it handled, and a bounded asynchronous bus that
// carries it without ever blocking a request.
//
// An event holds metadata and classifications, never raw sensitive values:
// no bodies, no header values, no tokens; identities, usernames and object
// ids only as hashes. It imports nothing internal.
package event

import "time"

// Auth types an event reports.
const (
	AuthNone          = "none"
	AuthJWT           = "jwt"
	AuthAPIKey        = "api_key"
	AuthMTLS          = "mtls"
	AuthIntrospection = "introspection"
	AuthBasic         = "basic"
)

// Client classes: whether the caller came from a configured internal
// network (east-west) or from outside (north-south).
const (
	ClientInternal = "internal"
	ClientExternal = "external"
)

// Param is one parameter seen on a request: its name, where it was
// (path, query, body) and the JSON type of its value (string, integer,
// number, boolean, array, object, null). Never its value.
type Param struct {
	Name string `json:"name"`
	In   string `json:"in"`
	Type string `json:"type"`
}

// Exchange is one request/response pair as seen by a gateway.
type Exchange struct {
	// ID is unique per exchange (the request id): the idempotency key of
	// at-least-once delivery.
	ID      string    `json:"id"`
	Time    time.Time `json:"time"`
	Gateway string    `json:"gateway,omitempty"` // the node that saw it
	Source  string    `json:"source,omitempty"`  // "gateway", "har", "access_log"

	API    string `json:"api,omitempty"`
	Host   string `json:"host"`
	Method string `json:"method"`
	// Path is the raw request path without the query string.
	Path string `json:"path"`
	// Operation is "METHOD /template" when a spec matched, else "".
	Operation string `json:"operation,omitempty"`
	// Deprecated is true when the matched operation is deprecated in the spec.
	Deprecated bool `json:"deprecated,omitempty"`

	Status    int     `json:"status"`
	LatencyMS float64 `json:"latency_ms"`
	// Blocked is true when the gateway (not the upstream) answered.
	Blocked bool `json:"blocked,omitempty"`
	// Reasons are the stop reasons of the gateway's decisions ("stage:reason").
	Reasons []string `json:"reasons,omitempty"`

	Auth string `json:"auth"`
	// Subject is a hash of the authenticated subject ("" when anonymous).
	Subject string `json:"subject,omitempty"`
	// MTLSIdentity is the client certificate's identity (SPIFFE ID or
	// subject) of a service caller; not personal data.
	MTLSIdentity string `json:"mtls_identity,omitempty"`
	// Client is the client address; ClientClass is internal or external.
	Client      string `json:"client,omitempty"`
	ClientClass string `json:"client_class,omitempty"`
	// Username is the hash of a login attempt's username.
	Username string `json:"username,omitempty"`

	RequestClasses  []string `json:"request_classes,omitempty"`
	ResponseClasses []string `json:"response_classes,omitempty"`
	Params          []Param  `json:"params,omitempty"`
	// ObjectIDs are hashes of the object ids an authorization decision was
	// about; ObjectParam names the path parameter they came from.
	ObjectIDs   []string `json:"object_ids,omitempty"`
	ObjectParam string   `json:"object_param,omitempty"`
	// ObjectStep is true when the object id is within a few of the
	// previous one the same caller requested through the same parameter
	// (acc-1041 after acc-1040): a step of a sequential walk. The ids
	// themselves stay in the gateway.
	ObjectStep bool `json:"object_step,omitempty"`
	// ReturnedIDs are hashes of object ids found in the response body (for
	// ownership learning): ids first returned to one subject.
	ReturnedIDs []string `json:"returned_ids,omitempty"`

	RequestBytes  int64 `json:"request_bytes"`
	ResponseBytes int64 `json:"response_bytes"`

	// RequestSchema and ResponseSchema are sampled JSON shapes of the
	// bodies (types only, as a JSON Schema fragment), when sampled.
	RequestSchema  map[string]any `json:"request_schema,omitempty"`
	ResponseSchema map[string]any `json:"response_schema,omitempty"`
}
