package inventory

import (
	"sort"
	"strings"
	"time"

	"github.com/bulwarkapi/bulwark/internal/event"
	"github.com/bulwarkapi/bulwark/internal/finding"
)

// Spec status of an endpoint.
const (
	// StatusDocumented: the spec declares this method on this path.
	StatusDocumented = "documented"
	// StatusShadow: the API has a spec, and it declares neither the path
	// nor (ShadowReason "method") this method on it.
	StatusShadow = "shadow"
	// StatusZombie: the operation is deprecated in the spec and still called.
	StatusZombie = "zombie"
	// StatusUnspecified: the API has no spec to compare with.
	StatusUnspecified = "unspecified"
)

// Reasons an endpoint is a shadow.
const (
	ShadowPath   = "path"
	ShadowMethod = "method"
)

// Exposure of an endpoint.
const (
	// ExposureNorthSouth: at least one caller came from outside.
	ExposureNorthSouth = "north-south"
	// ExposureEastWest: only internal or mTLS service callers.
	ExposureEastWest = "east-west"
)

// Client kinds recorded per endpoint.
const (
	clientExternal = "external"
	clientInternal = "internal"
	clientMTLS     = "mtls"
)

// Bounds of per-endpoint sets: values come from traffic and must not grow
// an endpoint without limit. Each is far above what one endpoint sees
// legitimately; beyond it new values are dropped.
const (
	maxHosts      = 32  // virtual hosts serving one endpoint
	maxAuthTypes  = 16  // event.Auth* has six
	maxClasses    = 32  // dlp has twelve classes
	maxParams     = 128 // distinct parameters (in + name)
	maxStatusCode = 999 // larger or negative codes are counted as 0
)

// endpointIDKind is the kind part of an endpoint id.
const endpointIDKind = "endpoint"

// authUnknown stands for an event whose source could not tell how the
// caller authenticated.
const authUnknown = "unknown"

// EndpointID is the stable id of an endpoint: a hash of api, method and
// template, like finding ids.
func EndpointID(api, method, tmpl string) string {
	return finding.MakeID(endpointIDKind, api, method, tmpl)
}

// Endpoint is one method on one path template of one API, as seen in
// traffic. It is a copy: changing it changes nothing in the inventory. It
// holds the sketches behind its summaries (latency buckets, identity
// hashes or HyperLogLog registers), so that persisting Endpoints and
// passing them to Restore loses nothing.
type Endpoint struct {
	ID         string   `json:"id"`
	API        string   `json:"api,omitempty"`
	Method     string   `json:"method"`
	Template   string   `json:"template"`
	PathParams []string `json:"path_params,omitempty"`
	// Operation is the spec's key ("GET /accounts/{AccountId}", without
	// the base path) when documented or zombie.
	Operation    string `json:"operation,omitempty"`
	SpecStatus   string `json:"spec_status"`
	ShadowReason string `json:"shadow_reason,omitempty"`

	Hosts     []string       `json:"hosts,omitempty"`
	FirstSeen time.Time      `json:"first_seen"`
	LastSeen  time.Time      `json:"last_seen"`
	Count     uint64         `json:"count"`
	Status    map[int]uint64 `json:"status,omitempty"` // by HTTP status code
	Latency   Latency        `json:"latency"`

	// Auth lists the auth types seen (event.Auth*); Unauthenticated counts
	// calls without authentication.
	Auth            []string   `json:"auth,omitempty"`
	Unauthenticated uint64     `json:"unauthenticated,omitempty"`
	Identities      Identities `json:"identities"`

	RequestClasses  []string `json:"request_classes,omitempty"`
	ResponseClasses []string `json:"response_classes,omitempty"`
	// UnauthenticatedClasses are response data classes of unauthenticated
	// calls.
	UnauthenticatedClasses []string `json:"unauthenticated_response_classes,omitempty"`

	// Exposure is north-south or east-west ("" when no caller was
	// classified); Clients lists external, internal, mtls as seen.
	Exposure string   `json:"exposure,omitempty"`
	Clients  []string `json:"clients,omitempty"`

	// Params are the parameters seen; UndocumentedParams those not in the
	// spec operation (path parameters are judged by the template instead).
	Params             []event.Param `json:"params,omitempty"`
	UndocumentedParams []event.Param `json:"undocumented_params,omitempty"`

	// RequestSchema and ResponseSchema merge the sampled body shapes
	// (responses with a 1xx-3xx status only).
	RequestSchema  map[string]any `json:"request_schema,omitempty"`
	ResponseSchema map[string]any `json:"response_schema,omitempty"`
}

// Latency summarises response latency. Buckets are the counts of a fixed
// log-scale histogram: bucket i holds latencies up to 0.01 ms * 1.25^i.
type Latency struct {
	P50MS   float64  `json:"p50_ms"`
	P99MS   float64  `json:"p99_ms"`
	Buckets []uint64 `json:"buckets,omitempty"`
}

// Identities counts distinct callers (subject hashes, or mTLS identities).
// Up to 1000 the count is exact and Hashes holds them (64-bit hashes, not
// the identities); beyond, Estimated is true and Sketch holds HyperLogLog
// registers (about 2.3% standard error).
type Identities struct {
	Count     uint64   `json:"count"`
	Estimated bool     `json:"estimated,omitempty"`
	Hashes    []uint64 `json:"hashes,omitempty"`
	Sketch    []byte   `json:"sketch,omitempty"`
}

// epKey identifies an endpoint.
type epKey struct{ api, method, tmpl string }

// paramKey identifies a parameter.
type paramKey struct{ in, name string }

// endpoint is the live aggregate behind an Endpoint.
type endpoint struct {
	id           string
	key          epKey
	pathParams   []string
	operation    string
	status       string
	shadowReason string

	hosts       stringSet
	first, last time.Time
	count       uint64
	codes       map[int]uint64
	lat         latencyHist

	auth        stringSet
	unauth      uint64
	identities  identitySet
	reqClasses  stringSet
	respClasses stringSet
	unauthResp  stringSet
	clients     stringSet

	params       map[paramKey]string
	undocumented map[paramKey]string

	reqSchema, respSchema map[string]any
}

func newEndpoint(k epKey, pathParams []string) *endpoint {
	return &endpoint{
		id:         EndpointID(k.api, k.method, k.tmpl),
		key:        k,
		pathParams: pathParams,
		codes:      map[int]uint64{},
	}
}

// record adds one exchange; undocumented tells whether a parameter is
// missing from the spec operation (nil: not judged).
func (e *endpoint) record(ev *event.Exchange, at time.Time, undocumented func(event.Param) bool) {
	e.count++
	if e.first.IsZero() || at.Before(e.first) {
		e.first = at
	}
	if at.After(e.last) {
		e.last = at
	}
	e.hosts.add(ev.Host, maxHosts)
	code := ev.Status
	if code < 0 || code > maxStatusCode {
		code = 0
	}
	e.codes[code]++
	e.lat[bucketOf(ev.LatencyMS)]++

	// An empty Auth is unknown (an access log records no credentials):
	// it is neither an auth type nor evidence of an unauthenticated call.
	auth := ev.Auth
	if auth == "" {
		auth = authUnknown
	} else {
		e.auth.add(auth, maxAuthTypes)
	}
	switch {
	case ev.Subject != "":
		e.identities.add(hashIdentity(ev.Subject))
	case ev.MTLSIdentity != "":
		e.identities.add(hashIdentity(ev.MTLSIdentity) ^ mtlsHashSalt)
	}
	for _, c := range ev.RequestClasses {
		e.reqClasses.add(c, maxClasses)
	}
	for _, c := range ev.ResponseClasses {
		e.respClasses.add(c, maxClasses)
	}
	if auth == event.AuthNone {
		e.unauth++
		for _, c := range ev.ResponseClasses {
			e.unauthResp.add(c, maxClasses)
		}
	}
	switch ev.ClientClass {
	case event.ClientExternal:
		e.clients.add(clientExternal, maxAuthTypes)
	case event.ClientInternal:
		e.clients.add(clientInternal, maxAuthTypes)
	}
	if ev.MTLSIdentity != "" || auth == event.AuthMTLS {
		e.clients.add(clientMTLS, maxAuthTypes)
	}
	// A request the gateway refused (an injection, a forged token) does
	// not teach the endpoint its parameters: an attacker's payload would
	// otherwise fix a parameter's type, or add one, for good.
	for _, p := range ev.Params {
		if ev.Blocked {
			break
		}
		k := paramKey{p.In, p.Name}
		if _, ok := e.params[k]; !ok && len(e.params) < maxParams {
			if e.params == nil {
				e.params = map[paramKey]string{}
			}
			e.params[k] = p.Type
		}
		if undocumented != nil && undocumented(p) {
			if _, ok := e.undocumented[k]; !ok && len(e.undocumented) < maxParams {
				if e.undocumented == nil {
					e.undocumented = map[paramKey]string{}
				}
				e.undocumented[k] = p.Type
			}
		}
	}
	if ev.RequestSchema != nil {
		e.reqSchema = mergeSchema(e.reqSchema, ev.RequestSchema, 0)
	}
	if ev.ResponseSchema != nil && ev.Status < 400 {
		e.respSchema = mergeSchema(e.respSchema, ev.ResponseSchema, 0)
	}
}

// mtlsHashSalt keeps an mTLS identity from counting as the subject hash
// with the same text.
const mtlsHashSalt = 0x6d746c73 // "mtls"

// merge adds o into e (same endpoint after re-templating or restore).
func (e *endpoint) merge(o *endpoint) {
	e.count += o.count
	if !o.first.IsZero() && (e.first.IsZero() || o.first.Before(e.first)) {
		e.first = o.first
	}
	if o.last.After(e.last) {
		e.last = o.last
	}
	for _, h := range o.hosts.sorted() {
		e.hosts.add(h, maxHosts)
	}
	for c, n := range o.codes {
		e.codes[c] += n
	}
	for i, n := range o.lat {
		e.lat[i] += n
	}
	for _, a := range o.auth.sorted() {
		e.auth.add(a, maxAuthTypes)
	}
	e.unauth += o.unauth
	e.identities.merge(&o.identities)
	mergeSet(&e.reqClasses, &o.reqClasses, maxClasses)
	mergeSet(&e.respClasses, &o.respClasses, maxClasses)
	mergeSet(&e.unauthResp, &o.unauthResp, maxClasses)
	mergeSet(&e.clients, &o.clients, maxAuthTypes)
	e.params = mergeParams(e.params, o.params)
	e.undocumented = mergeParams(e.undocumented, o.undocumented)
	if o.reqSchema != nil {
		e.reqSchema = mergeSchema(e.reqSchema, o.reqSchema, 0)
	}
	if o.respSchema != nil {
		e.respSchema = mergeSchema(e.respSchema, o.respSchema, 0)
	}
	if o.status == StatusZombie && e.status == StatusDocumented {
		e.status = StatusZombie
	}
}

func mergeSet(dst, src *stringSet, max int) {
	for v := range src.m {
		dst.add(v, max)
	}
}

func mergeParams(dst, src map[paramKey]string) map[paramKey]string {
	for k, t := range src {
		if _, ok := dst[k]; !ok && len(dst) < maxParams {
			if dst == nil {
				dst = map[paramKey]string{}
			}
			dst[k] = t
		}
	}
	return dst
}

// exposure derives north-south or east-west from the clients seen.
func (e *endpoint) exposure() string {
	switch {
	case e.clients.has(clientExternal):
		return ExposureNorthSouth
	case e.clients.has(clientInternal), e.clients.has(clientMTLS):
		return ExposureEastWest
	}
	return ""
}

// export copies e into an Endpoint.
func (e *endpoint) export() Endpoint {
	out := Endpoint{
		ID:           e.id,
		API:          e.key.api,
		Method:       e.key.method,
		Template:     e.key.tmpl,
		PathParams:   append([]string(nil), e.pathParams...),
		Operation:    e.operation,
		SpecStatus:   e.status,
		ShadowReason: e.shadowReason,
		Hosts:        e.hosts.sorted(),
		FirstSeen:    e.first,
		LastSeen:     e.last,
		Count:        e.count,
		Latency: Latency{
			P50MS:   e.lat.quantile(0.50),
			P99MS:   e.lat.quantile(0.99),
			Buckets: e.lat.compact(),
		},
		Auth:                   e.auth.sorted(),
		Unauthenticated:        e.unauth,
		RequestClasses:         e.reqClasses.sorted(),
		ResponseClasses:        e.respClasses.sorted(),
		UnauthenticatedClasses: e.unauthResp.sorted(),
		Exposure:               e.exposure(),
		Clients:                e.clients.sorted(),
		Params:                 sortedParams(e.params),
		UndocumentedParams:     sortedParams(e.undocumented),
		RequestSchema:          copySchema(e.reqSchema),
		ResponseSchema:         copySchema(e.respSchema),
	}
	if len(e.codes) > 0 {
		out.Status = make(map[int]uint64, len(e.codes))
		for c, n := range e.codes {
			out.Status[c] = n
		}
	}
	out.Identities.Count, out.Identities.Estimated = e.identities.count()
	out.Identities.Hashes = e.identities.hashes()
	if e.identities.hll != nil {
		out.Identities.Sketch = append([]byte(nil), e.identities.hll...)
	}
	return out
}

// importEndpoint rebuilds a live aggregate from a persisted Endpoint.
func importEndpoint(ep Endpoint) *endpoint {
	k := epKey{ep.API, strings.ToUpper(ep.Method), ep.Template}
	e := newEndpoint(k, append([]string(nil), ep.PathParams...))
	e.operation, e.status, e.shadowReason = ep.Operation, ep.SpecStatus, ep.ShadowReason
	for _, h := range ep.Hosts {
		e.hosts.add(h, maxHosts)
	}
	e.first, e.last, e.count = ep.FirstSeen, ep.LastSeen, ep.Count
	for c, n := range ep.Status {
		if c < 0 || c > maxStatusCode {
			c = 0
		}
		e.codes[c] += n
	}
	for i, n := range ep.Latency.Buckets {
		if i < latencyBuckets {
			e.lat[i] += n
		}
	}
	for _, a := range ep.Auth {
		e.auth.add(a, maxAuthTypes)
	}
	e.unauth = ep.Unauthenticated
	if len(ep.Identities.Sketch) == hllRegisters {
		e.identities.hll = append([]uint8(nil), ep.Identities.Sketch...)
	} else {
		for _, h := range ep.Identities.Hashes {
			e.identities.add(h)
		}
	}
	for _, c := range ep.RequestClasses {
		e.reqClasses.add(c, maxClasses)
	}
	for _, c := range ep.ResponseClasses {
		e.respClasses.add(c, maxClasses)
	}
	for _, c := range ep.UnauthenticatedClasses {
		e.unauthResp.add(c, maxClasses)
	}
	for _, c := range ep.Clients {
		e.clients.add(c, maxAuthTypes)
	}
	for _, p := range ep.Params {
		e.params = mergeParams(e.params, map[paramKey]string{{p.In, p.Name}: p.Type})
	}
	for _, p := range ep.UndocumentedParams {
		e.undocumented = mergeParams(e.undocumented, map[paramKey]string{{p.In, p.Name}: p.Type})
	}
	if ep.RequestSchema != nil {
		e.reqSchema = normalizeSchema(ep.RequestSchema, 0)
	}
	if ep.ResponseSchema != nil {
		e.respSchema = normalizeSchema(ep.ResponseSchema, 0)
	}
	return e
}

func sortedParams(m map[paramKey]string) []event.Param {
	if len(m) == 0 {
		return nil
	}
	out := make([]event.Param, 0, len(m))
	for k, t := range m {
		out = append(out, event.Param{Name: k.name, In: k.in, Type: t})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].In != out[j].In {
			return out[i].In < out[j].In
		}
		return out[i].Name < out[j].Name
	})
	return out
}
