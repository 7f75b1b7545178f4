// Package inventory is the endpoint catalogue: it turns exchange events
// into endpoints (API, method, path template), aggregates what each one
// carries (traffic, status, latency, auth, identities, data classes,
// exposure, parameters, body shapes), compares them with the APIs' specs
// (documented, shadow, zombie, orphan, undocumented parameters), reports
// the differences as findings and exports what it learned as OpenAPI.
//
// Path templates come from the specs and configured hints first, and are
// learned from traffic otherwise (see Templater).
//
// An Inventory is safe for concurrent use: Ingest from the consuming
// goroutine, reads from any.
package inventory

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/bulwarkapi/bulwark/internal/event"
	"github.com/bulwarkapi/bulwark/internal/spec"
)

// DefaultMaxEndpoints bounds the endpoints an inventory keeps. Events for
// new endpoints beyond it are counted (Dropped) and otherwise ignored: a
// scanner spraying random paths must not exhaust memory. Large estates
// have a few thousand endpoints.
const DefaultMaxEndpoints = 20_000

// matchBuf is the capacity of the router's value buffer.
const matchBuf = 8

// Options configures an Inventory. Client classes (internal or external
// networks) are decided upstream and arrive on the events.
type Options struct {
	// Specs are the OpenAPI documents by API name (event.Exchange.API).
	Specs map[string]*spec.Document
	// Hints are configured path templates, applied to every API.
	Hints []string
	// MinDistinct is the templater's threshold (see TemplaterOptions).
	MinDistinct int
	// MaxEndpoints bounds the catalogue; 0 means DefaultMaxEndpoints.
	MaxEndpoints int
	// Start is when observation began, for orphan detection; zero means
	// the time New is called (or an earlier event or restored endpoint).
	Start time.Time
}

// Inventory aggregates exchange events into endpoints.
type Inventory struct {
	mu        sync.RWMutex
	opts      Options
	apis      map[string]*apiState
	endpoints map[epKey]*endpoint
	byID      map[string]*endpoint
	start     time.Time
	dropped   uint64
}

// apiState is what the inventory keeps per API.
type apiState struct {
	name   string
	doc    *spec.Document
	router *spec.Router
	tpl    *Templater
	// gen is the templater generation the endpoints were last
	// re-templated at.
	gen uint64
	// opsByKey caches event.Exchange.Operation lookups.
	opsByKey map[string]*spec.Operation
	// docParams caches the documented parameters per operation.
	docParams map[*spec.Operation]*opParams
}

// New validates o and returns an empty inventory.
func New(o Options) (*Inventory, error) {
	var errs []error
	for _, h := range o.Hints {
		if err := CheckTemplate(h); err != nil {
			errs = append(errs, fmt.Errorf("hint: %w", err))
		}
	}
	if o.MinDistinct < 0 {
		errs = append(errs, fmt.Errorf("min distinct %d: must not be negative", o.MinDistinct))
	}
	if o.MaxEndpoints < 0 {
		errs = append(errs, fmt.Errorf("max endpoints %d: must not be negative", o.MaxEndpoints))
	}
	if o.MaxEndpoints == 0 {
		o.MaxEndpoints = DefaultMaxEndpoints
	}
	inv := &Inventory{
		opts:      o,
		apis:      map[string]*apiState{},
		endpoints: map[epKey]*endpoint{},
		byID:      map[string]*endpoint{},
		start:     o.Start,
	}
	if inv.start.IsZero() {
		inv.start = time.Now()
	}
	names := make([]string, 0, len(o.Specs))
	for name := range o.Specs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		doc := o.Specs[name]
		if doc == nil {
			errs = append(errs, fmt.Errorf("api %q: nil spec", name))
			continue
		}
		r, err := spec.NewRouter(doc)
		if err != nil {
			errs = append(errs, fmt.Errorf("api %q: %w", name, err))
			continue
		}
		a := inv.newAPI(name)
		a.doc, a.router = doc, r
		a.tpl.AddSpec(doc)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("new inventory: %w", errors.Join(errs...))
	}
	return inv, nil
}

func (inv *Inventory) newAPI(name string) *apiState {
	a := &apiState{
		name:      name,
		tpl:       NewTemplater(TemplaterOptions{Hints: inv.opts.Hints, MinDistinct: inv.opts.MinDistinct}),
		opsByKey:  map[string]*spec.Operation{},
		docParams: map[*spec.Operation]*opParams{},
	}
	inv.apis[name] = a
	return a
}

// api returns the state of API name, creating it (without a spec).
func (inv *Inventory) api(name string) *apiState {
	if a := inv.apis[name]; a != nil {
		return a
	}
	return inv.newAPI(name)
}

// Templater returns the templater of an API (nil when the inventory has
// seen nothing of it), for callers that template paths the same way.
func (inv *Inventory) Templater(api string) *Templater {
	inv.mu.RLock()
	defer inv.mu.RUnlock()
	if a := inv.apis[api]; a != nil {
		return a.tpl
	}
	return nil
}

// Ingest aggregates a batch of events. It holds the write lock for the
// batch: readers wait at most one batch.
func (inv *Inventory) Ingest(events []event.Exchange) {
	if len(events) == 0 {
		return
	}
	inv.mu.Lock()
	defer inv.mu.Unlock()
	buf := make([]string, 0, matchBuf)
	var now time.Time
	for i := range events {
		ev := &events[i]
		at := ev.Time
		if at.IsZero() {
			if now.IsZero() {
				now = time.Now()
			}
			at = now
		}
		inv.ingest(ev, at, buf)
	}
	for _, a := range inv.apis {
		inv.retemplate(a)
	}
}

// ingest records one event; inv.mu is held.
func (inv *Inventory) ingest(ev *event.Exchange, at time.Time, buf []string) {
	if at.Before(inv.start) {
		inv.start = at
	}
	method := normalizeMethod(ev.Method)
	path := cleanPath(ev.Path)
	a := inv.api(ev.API)
	tmpl, params := a.tpl.learn(path)
	key := epKey{ev.API, method, tmpl}
	e := inv.endpoints[key]
	var op *spec.Operation
	if a.doc != nil {
		var status spec.MatchStatus
		op, status = inv.resolve(a, ev, method, path, buf)
		if e == nil {
			if e = inv.add(key, params); e == nil {
				return
			}
			switch {
			case op != nil:
				e.operation, e.status = op.Key, StatusDocumented
			case status == spec.MethodNotAllowed:
				e.status, e.shadowReason = StatusShadow, ShadowMethod
			default:
				e.status, e.shadowReason = StatusShadow, ShadowPath
			}
		}
		if op != nil && (op.Deprecated || ev.Deprecated) {
			e.status = StatusZombie
		}
	} else if e == nil {
		if e = inv.add(key, params); e == nil {
			return
		}
		e.status = StatusUnspecified
	}
	if op != nil {
		dp := a.params(op)
		e.record(ev, at, dp.undocumented)
		return
	}
	e.record(ev, at, nil)
}

// add creates an endpoint, or counts a drop at the cap.
func (inv *Inventory) add(k epKey, params []string) *endpoint {
	if len(inv.endpoints) >= inv.opts.MaxEndpoints {
		inv.dropped++
		return nil
	}
	e := newEndpoint(k, params)
	inv.endpoints[k] = e
	inv.byID[e.id] = e
	return e
}

// resolve finds the spec operation of an event: the gateway's own match
// when it made one, else the router's.
func (inv *Inventory) resolve(a *apiState, ev *event.Exchange, method, path string, buf []string) (*spec.Operation, spec.MatchStatus) {
	if ev.Operation != "" {
		if op, ok := a.opsByKey[ev.Operation]; ok {
			return op, spec.Matched
		}
		if op := a.doc.Operation(ev.Operation); op != nil {
			a.opsByKey[ev.Operation] = op
			return op, spec.Matched
		}
	}
	m := a.router.Match(method, path, buf)
	return m.Op, m.Status
}

// normalizeMethod upper-cases a method, allocating only when needed.
func normalizeMethod(m string) string {
	for i := 0; i < len(m); i++ {
		if c := m[i]; c >= 'a' && c <= 'z' {
			return strings.ToUpper(m)
		}
	}
	if m == "" {
		return http.MethodGet
	}
	return m
}

// cleanPath drops a query string and one trailing slash; "" is "/".
func cleanPath(p string) string {
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	if p == "" {
		return "/"
	}
	return trimTrailingSlash(p)
}

// retemplate moves endpoints whose template changed after the templater
// collapsed a position (a word-like segment turned out to be a value)
// into the new template, merging them. inv.mu is held.
func (inv *Inventory) retemplate(a *apiState) {
	gen := a.tpl.generation()
	if gen == a.gen {
		return
	}
	a.gen = gen
	var moved []*endpoint
	for k, e := range inv.endpoints {
		if k.api != a.name {
			continue
		}
		if t, _ := a.tpl.Template(k.tmpl); t != k.tmpl {
			moved = append(moved, e)
		}
	}
	// Deterministic merge order, whatever the map order.
	sort.Slice(moved, func(i, j int) bool { return moved[i].key.tmpl < moved[j].key.tmpl })
	for _, e := range moved {
		t, params := a.tpl.Template(e.key.tmpl)
		delete(inv.endpoints, e.key)
		delete(inv.byID, e.id)
		k := epKey{e.key.api, e.key.method, t}
		if dst := inv.endpoints[k]; dst != nil {
			dst.merge(e)
			continue
		}
		e.key, e.pathParams = k, params
		e.id = EndpointID(k.api, k.method, k.tmpl)
		inv.endpoints[k] = e
		inv.byID[e.id] = e
	}
}

// Endpoints returns a copy of every endpoint, sorted by API, template and
// method.
func (inv *Inventory) Endpoints() []Endpoint {
	inv.mu.RLock()
	defer inv.mu.RUnlock()
	out := make([]Endpoint, 0, len(inv.endpoints))
	for _, e := range inv.sorted() {
		out = append(out, e.export())
	}
	return out
}

// sorted returns the live endpoints in order; inv.mu is held.
func (inv *Inventory) sorted() []*endpoint {
	eps := make([]*endpoint, 0, len(inv.endpoints))
	for _, e := range inv.endpoints {
		eps = append(eps, e)
	}
	sort.Slice(eps, func(i, j int) bool {
		a, b := eps[i].key, eps[j].key
		if a.api != b.api {
			return a.api < b.api
		}
		if a.tmpl != b.tmpl {
			return a.tmpl < b.tmpl
		}
		return a.method < b.method
	})
	return eps
}

// Endpoint returns a copy of the endpoint with the given id.
func (inv *Inventory) Endpoint(id string) (Endpoint, bool) {
	inv.mu.RLock()
	defer inv.mu.RUnlock()
	e, ok := inv.byID[id]
	if !ok {
		return Endpoint{}, false
	}
	return e.export(), true
}

// Dropped returns how many events were not recorded because the endpoint
// cap was reached.
func (inv *Inventory) Dropped() uint64 {
	inv.mu.RLock()
	defer inv.mu.RUnlock()
	return inv.dropped
}

// Restore loads persisted endpoints (from Endpoints), merging them into
// the current state. Their templates are taught to the templater, and
// their spec status is judged again against the current specs.
func (inv *Inventory) Restore(eps []Endpoint) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	buf := make([]string, 0, matchBuf)
	for _, ep := range eps {
		if ep.Template == "" {
			continue
		}
		e := importEndpoint(ep)
		a := inv.api(e.key.api)
		tmpl, params := a.tpl.learn(e.key.tmpl)
		e.key.tmpl, e.pathParams = tmpl, params
		e.id = EndpointID(e.key.api, e.key.method, e.key.tmpl)
		inv.judge(a, e, buf)
		if !e.first.IsZero() && e.first.Before(inv.start) {
			inv.start = e.first
		}
		if dst := inv.endpoints[e.key]; dst != nil {
			dst.merge(e)
			continue
		}
		if len(inv.endpoints) >= inv.opts.MaxEndpoints {
			inv.dropped += e.count
			continue
		}
		inv.endpoints[e.key] = e
		inv.byID[e.id] = e
	}
	for _, a := range inv.apis {
		inv.retemplate(a)
	}
}

// judge sets a restored endpoint's spec status from the current spec.
func (inv *Inventory) judge(a *apiState, e *endpoint, buf []string) {
	if a.doc == nil {
		e.status, e.shadowReason, e.operation = StatusUnspecified, "", ""
		return
	}
	m := a.router.Match(e.key.method, e.key.tmpl, buf)
	switch {
	case m.Status == spec.Matched:
		e.status, e.shadowReason, e.operation = StatusDocumented, "", m.Op.Key
		if m.Op.Deprecated {
			e.status = StatusZombie
		}
	case m.Status == spec.MethodNotAllowed:
		e.status, e.shadowReason, e.operation = StatusShadow, ShadowMethod, ""
	default:
		e.status, e.shadowReason, e.operation = StatusShadow, ShadowPath, ""
	}
}
