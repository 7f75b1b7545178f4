// Package route is the route stage: it matches a request to one configured
// API by host and path prefix, then, where the API has an OpenAPI spec, to
// one operation with its path parameters.
//
// Host matching: exact names first, then "*.suffix" wildcards (longest
// suffix first), then APIs that name no host. Within each tier the longest
// path prefix wins, and prefixes match whole segments: "/api" matches "/api"
// and "/api/x" but never "/apix".
package route

import (
	"context"
	"net/http"
	"sort"
	"strings"

	"github.com/bulwarkapi/bulwark/internal/pipeline"
	"github.com/bulwarkapi/bulwark/internal/spec"
)

// API is one routable API of a configuration snapshot.
type API struct {
	Name       string
	Mode       pipeline.Mode
	Hosts      []string // lower-case; "*.example.com" wildcards; empty = any
	PathPrefix string
	Spec       *spec.Router // nil when the API has no spec
	Handler    http.Handler // the upstream proxy
}

// Stage matches requests to APIs and operations.
type Stage struct {
	exact    map[string][]*API
	wildcard []wildcard
	anyHost  []*API
}

type wildcard struct {
	suffix string // ".example.com"
	apis   []*API
}

var _ pipeline.Stage = (*Stage)(nil)

// New builds the routing table. The APIs are not modified.
func New(apis []*API) *Stage {
	s := &Stage{exact: map[string][]*API{}}
	wild := map[string][]*API{}
	for _, a := range apis {
		if len(a.Hosts) == 0 {
			s.anyHost = append(s.anyHost, a)
			continue
		}
		for _, h := range a.Hosts {
			h = strings.ToLower(h)
			if strings.HasPrefix(h, "*.") {
				wild[h[1:]] = append(wild[h[1:]], a)
			} else {
				s.exact[h] = append(s.exact[h], a)
			}
		}
	}
	byPrefix := func(l []*API) {
		sort.SliceStable(l, func(i, j int) bool { return len(l[i].PathPrefix) > len(l[j].PathPrefix) })
	}
	for h := range s.exact {
		byPrefix(s.exact[h])
	}
	for suf, l := range wild {
		byPrefix(l)
		s.wildcard = append(s.wildcard, wildcard{suffix: suf, apis: l})
	}
	sort.Slice(s.wildcard, func(i, j int) bool { return len(s.wildcard[i].suffix) > len(s.wildcard[j].suffix) })
	byPrefix(s.anyHost)
	return s
}

// Name implements pipeline.Stage.
func (s *Stage) Name() string { return "route" }

// Handle implements pipeline.Stage.
func (s *Stage) Handle(_ context.Context, x *pipeline.Exchange) pipeline.Decision {
	r := x.Request
	path := r.URL.EscapedPath()
	a := s.Lookup(r.Host, path)
	if a == nil {
		return pipeline.Halt(http.StatusNotFound, "no_route", "No API is configured for this host and path.")
	}
	x.API = a.Name
	x.Mode = a.Mode
	x.Target = a.Handler
	if a.Spec == nil {
		return pipeline.Continue
	}
	var buf [8]string
	m := a.Spec.Match(r.Method, path, buf[:0])
	switch m.Status {
	case spec.Matched:
		x.Operation = m.Op.Key
		x.OperationID = m.Op.ID
		for i, name := range m.Op.PathParams {
			if i < len(m.Values) {
				x.Params = append(x.Params, pipeline.Param{Name: name, Value: m.Values[i]})
			}
		}
		return pipeline.Continue
	case spec.MethodNotAllowed:
		return pipeline.Decision{Action: pipeline.Annotate, Reason: "method_not_in_spec"}
	default:
		return pipeline.Decision{Action: pipeline.Annotate, Reason: "path_not_in_spec"}
	}
}

// Lookup returns the API for a host (with or without port) and escaped path.
func (s *Stage) Lookup(host, path string) *API {
	host = normalizeHost(host)
	if l, ok := s.exact[host]; ok {
		if a := byPath(l, path); a != nil {
			return a
		}
	}
	for _, w := range s.wildcard {
		if len(host) > len(w.suffix) && strings.HasSuffix(host, w.suffix) {
			if a := byPath(w.apis, path); a != nil {
				return a
			}
		}
	}
	return byPath(s.anyHost, path)
}

func byPath(l []*API, path string) *API {
	for _, a := range l {
		if HasPathPrefix(path, a.PathPrefix) {
			return a
		}
	}
	return nil
}

// HasPathPrefix reports whether prefix matches path on segment boundaries.
func HasPathPrefix(path, prefix string) bool {
	prefix = strings.TrimSuffix(prefix, "/")
	if prefix == "" {
		return true
	}
	if !strings.HasPrefix(path, prefix) {
		return false
	}
	return len(path) == len(prefix) || path[len(prefix)] == '/'
}

// normalizeHost lower-cases the host and drops a port and a trailing dot.
func normalizeHost(h string) string {
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.Contains(h[i:], "]") {
		h = h[:i]
	}
	h = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSuffix(h, "]"), "["), ".")
	for i := 0; i < len(h); i++ {
		if c := h[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(h)
		}
	}
	return h
}
