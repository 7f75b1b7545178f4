package inventory

import (
	"strings"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/bulwarkapi/bulwark/internal/event"
	"github.com/bulwarkapi/bulwark/internal/spec"
)

// Where a parameter was seen (event.Param.In).
const (
	inPath   = "path"
	inQuery  = "query"
	inHeader = "header"
	inBody   = "body"
)

// maxSchemaWalk bounds the allOf members followed when collecting body
// properties (specs compose bodies a level or two deep).
const maxSchemaWalk = 32

// opParams is what a spec operation documents.
type opParams struct {
	params map[paramKey]bool // header names lower-cased
	// body: top-level JSON body properties; openBody: the body accepts
	// properties it does not list (no schema, or additionalProperties).
	body     map[string]bool
	openBody bool
}

// params returns (caching) the documented parameters of op.
func (a *apiState) params(op *spec.Operation) *opParams {
	if p, ok := a.docParams[op]; ok {
		return p
	}
	p := documented(op)
	a.docParams[op] = p
	return p
}

func documented(op *spec.Operation) *opParams {
	p := &opParams{params: map[paramKey]bool{}, body: map[string]bool{}}
	add := func(ps openapi3.Parameters) {
		for _, ref := range ps {
			if ref == nil || ref.Value == nil {
				continue
			}
			name := ref.Value.Name
			if ref.Value.In == inHeader {
				name = strings.ToLower(name)
			}
			p.params[paramKey{ref.Value.In, name}] = true
		}
	}
	if op.PathItem != nil {
		add(op.PathItem.Parameters)
	}
	if op.Op == nil {
		p.openBody = true
		return p
	}
	add(op.Op.Parameters)
	rb := op.Op.RequestBody
	if rb == nil || rb.Value == nil {
		return p // no body documented: every body property is undocumented
	}
	var schema *openapi3.Schema
	for ct, mt := range rb.Value.Content {
		if mt != nil && mt.Schema != nil && mt.Schema.Value != nil && strings.Contains(ct, "json") {
			schema = mt.Schema.Value
			break
		}
	}
	if schema == nil {
		p.openBody = true
		return p
	}
	walk := 0
	var collect func(s *openapi3.Schema)
	collect = func(s *openapi3.Schema) {
		if s == nil || walk >= maxSchemaWalk {
			return
		}
		walk++
		for name := range s.Properties {
			p.body[name] = true
		}
		if s.AdditionalProperties.Has != nil && *s.AdditionalProperties.Has || s.AdditionalProperties.Schema != nil {
			p.openBody = true
		}
		for _, sub := range s.AllOf {
			if sub != nil {
				collect(sub.Value)
			}
		}
		for _, alt := range append(append(openapi3.SchemaRefs{}, s.OneOf...), s.AnyOf...) {
			if alt != nil {
				collect(alt.Value)
			}
		}
	}
	collect(schema)
	if len(p.body) == 0 {
		p.openBody = true // a body without listed properties accepts any
	}
	return p
}

// undocumented reports whether the spec operation lacks parameter q.
// Path parameters are judged by the template, not here; of headers, only
// custom (X-) ones.
func (p *opParams) undocumented(q event.Param) bool {
	switch q.In {
	case inPath:
		return false
	case inBody:
		return !p.openBody && !p.body[q.Name]
	case inHeader:
		// Only custom headers are judged: standard ones (Accept,
		// Content-Type, ...) are rarely declared and never a finding.
		name := strings.ToLower(q.Name)
		return strings.HasPrefix(name, "x-") && !p.params[paramKey{q.In, name}]
	}
	return !p.params[paramKey{q.In, q.Name}]
}
