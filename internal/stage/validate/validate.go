// Package validate holds exchanges to an API's OpenAPI contract: the request
// stage checks parameters, content types and bodies (with mass-assignment
// protection: properties the schema forbids or marks readOnly are refused);
// the response stage checks status codes and bodies and finds undocumented
// properties (excessive data exposure), which it flags, strips or blocks.
//
// Parameter decoding and schema validation are openapi3filter's
// (kin-openapi); this package adds what it does not do: the unknown-operation
// and unknown-query-parameter policies, a readOnly walk through nested
// objects, arrays and composed schemas, the undocumented-property walk of
// responses, and the rendering of violations as short, value-free
// "field path: kind" strings.
//
// Violations never echo request data: a path segment is kept only when it is
// a name the spec itself declares (or a short array index); anything else is
// rendered "*". A Stop decision carries the violations in Rules (for the
// audit log) and a bounded list in Detail (for the client's problem).
package validate

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/routers"

	"github.com/bulwarkapi/bulwark/internal/config"
	"github.com/bulwarkapi/bulwark/internal/spec"
)

const (
	// maxViolations bounds the violations kept per exchange (Rules). A
	// hostile body can produce thousands; the first few tell the story and
	// the audit record stays small.
	maxViolations = 16

	// maxDetailItems bounds the violations listed in the client's Detail,
	// which must stay a readable sentence.
	maxDetailItems = 5

	// maxRuleLen bounds one rule string; a longer path keeps its tail
	// (the innermost, most telling part).
	maxRuleLen = 120

	// maxNameLen bounds a spec-declared name used in a path: specs are
	// trusted, but a rule string must stay short.
	maxNameLen = 64

	// maxIndexDigits bounds an array index kept in a path ("[123456]");
	// longer digit runs are rendered "*".
	maxIndexDigits = 6

	// maxSchemaDepth bounds the walks over schemas and JSON values (readOnly,
	// undocumented properties, vocabulary): specs are trees of a few levels,
	// recursive schemas are cut by a visited set, and this guards the rest.
	maxSchemaDepth = 64
)

// Reasons recorded on decisions.
const (
	ReasonUnknownOperation       = "unknown_operation"
	ReasonMethodNotAllowed       = "method_not_allowed"
	ReasonUnsupportedMediaType   = "unsupported_media_type"
	ReasonRequestInvalid         = "request_invalid"
	ReasonBodyTooLarge           = "body_too_large"
	ReasonBodyUnreadable         = "body_unreadable"
	ReasonResponseNotValidated   = "response_not_validated"
	ReasonResponseUndocumented   = "response_undocumented_properties"
	ReasonResponsePropsStripped  = "response_properties_stripped"
	ReasonResponseInvalid        = "response_invalid"
	routeReasonMethodNotInSpec   = "method_not_in_spec"
	policyReject, policyAllow    = "reject", "allow"
	policyFlag, policyStrip      = "flag", "strip"
	policyBlock, modeMonitor     = "block", "monitor"
	kindAdditional, kindReadOnly = "additional property", "readOnly"
)

// Options configures the validation stages of one API.
type Options struct {
	// API names the API (for errors).
	API string
	// Spec is the API's loaded document.
	Spec *spec.Document
	// Config is the API's validate block, already defaulted and validated.
	Config config.Validate
	// MaxRequestBytes bounds the request body validated; 0 leaves the
	// bound to limits.max_body_bytes, which already applies.
	MaxRequestBytes int64
}

// shared is the precomputed, immutable state of both stages.
type shared struct {
	api     string
	cfg     config.Validate
	monitor bool
	is31    bool
	ops     map[string]*opInfo // by Operation.Key
	vocab   map[string]struct{}
	router  *spec.Router
	// schemaOpts are passed to every schema validation: the lenient regex
	// compiler for ECMAScript patterns Go cannot compile.
	schemaOpts []openapi3.SchemaValidationOption
	degraded   []string
	rc         *regexCache
	// shapes caches shapeOf for single schemas (*openapi3.Schema -> *shape).
	shapes sync.Map
}

// opInfo is what validation needs about one operation, computed once.
type opInfo struct {
	op    *spec.Operation
	route *routers.Route
	// query holds the query parameter names the operation accepts
	// (declared parameters, exploded object properties, apiKey schemes).
	query map[string]struct{}
	// queryPrefixes are deepObject parameters ("filter[").
	queryPrefixes []string
	body          *openapi3.RequestBody
	// readOnly is true when some request body schema declares a readOnly
	// property, so the readOnly walk is worth a decode.
	readOnly bool
}

// New builds the request and response validation stages. Either is nil when
// its half of the config is disabled.
func New(o Options) (*Request, *Response, error) {
	if !o.Config.Requests && !o.Config.Responses {
		return nil, nil, nil
	}
	if o.Spec == nil || o.Spec.T == nil {
		return nil, nil, fmt.Errorf("validate %s: validation needs the API's spec", o.API)
	}
	var errs []error
	for _, c := range []struct{ name, v string }{
		{"unknown_operations", o.Config.UnknownOperations},
		{"unknown_query_params", o.Config.UnknownQueryParams},
		{"undocumented_properties", o.Config.UndocumentedProperties},
	} {
		if c.v == "" {
			errs = append(errs, fmt.Errorf("validate %s: %s is not set (config defaults were not applied)", o.API, c.name))
		}
	}
	if o.Config.Responses && o.Config.MaxResponseBytes <= 0 {
		errs = append(errs, fmt.Errorf("validate %s: max_response_bytes must be positive", o.API))
	}
	router, err := spec.NewRouter(o.Spec)
	if err != nil {
		errs = append(errs, fmt.Errorf("validate %s: %w", o.API, err))
	}
	if len(errs) > 0 {
		return nil, nil, errors.Join(errs...)
	}
	s := &shared{
		api:     o.API,
		cfg:     o.Config,
		monitor: o.Config.Mode == modeMonitor,
		is31:    o.Spec.T.IsOpenAPI31OrLater(),
		ops:     make(map[string]*opInfo, len(o.Spec.Operations)),
		vocab:   map[string]struct{}{},
		router:  router,
	}
	rc := &regexCache{}
	s.rc = rc
	s.schemaOpts = []openapi3.SchemaValidationOption{
		openapi3.SetSchemaRegexCompiler(rc.compile),
		openapi3.WithStringFormatValidators(stringFormats()),
	}
	apiKeyQuery := apiKeyQueryNames(o.Spec.T)
	v := &vocabWalker{names: s.vocab, seen: map[*openapi3.Schema]bool{}}
	for _, op := range o.Spec.Operations {
		oi := &opInfo{
			op:    op,
			route: &routers.Route{Spec: o.Spec.T, Path: op.Path, PathItem: op.PathItem, Method: op.Method, Operation: op.Op},
			query: map[string]struct{}{},
		}
		for n := range apiKeyQuery {
			oi.query[n] = struct{}{}
		}
		for _, p := range effectiveParams(op) {
			s.vocab[p.Name] = struct{}{}
			v.schemaRef(p.Schema, 0)
			for _, mt := range p.Content {
				v.schemaRef(mt.Schema, 0)
			}
			if p.In == openapi3.ParameterInQuery {
				oi.addQuery(p)
			}
		}
		if op.Op.RequestBody != nil && op.Op.RequestBody.Value != nil {
			oi.body = op.Op.RequestBody.Value
			for _, mt := range oi.body.Content {
				if mt == nil {
					continue
				}
				v.schemaRef(mt.Schema, 0)
				if mt.Schema != nil && hasReadOnly(mt.Schema.Value, map[*openapi3.Schema]bool{}, 0) {
					oi.readOnly = true
				}
			}
		}
		if op.Op.Responses != nil {
			for _, rr := range op.Op.Responses.Map() {
				if rr == nil || rr.Value == nil {
					continue
				}
				for _, mt := range rr.Value.Content {
					if mt != nil {
						v.schemaRef(mt.Schema, 0)
					}
				}
			}
		}
		s.ops[op.Key] = oi
	}
	if o.Spec.T.Components != nil {
		for _, sr := range o.Spec.T.Components.Schemas {
			v.schemaRef(sr, 0)
		}
	}
	// Compile every pattern now, so a pattern Go cannot run is known (and
	// reported by Degraded) before the first request.
	for sch := range v.seen {
		if sch.Pattern != "" {
			_, _ = rc.compile(sch.Pattern)
		}
	}
	for _, oi := range s.ops {
		for _, p := range effectiveParams(oi.op) {
			if p.Schema != nil && p.Schema.Value != nil && p.Schema.Value.Pattern != "" {
				_, _ = rc.compile(p.Schema.Value.Pattern)
			}
		}
	}
	s.degraded = rc.degradedList()

	var req *Request
	var resp *Response
	if o.Config.Requests {
		req = newRequest(s, o.MaxRequestBytes)
	}
	if o.Config.Responses {
		resp = newResponse(s)
	}
	return req, resp, nil
}

// Degraded lists the spec's patterns that Go's regexp cannot compile as
// written (ECMAScript lookarounds, backreferences). Lookarounds are removed,
// which accepts a superset; a pattern still refused matches everything.
// Either way no valid request is refused for a pattern the gateway cannot run.
func (r *Request) Degraded() []string { return r.s.degraded }

func (oi *opInfo) addQuery(p *openapi3.Parameter) {
	oi.query[p.Name] = struct{}{}
	var sch *openapi3.Schema
	if p.Schema != nil {
		sch = p.Schema.Value
	}
	sm, err := p.SerializationMethod()
	if err != nil || sch == nil || !sch.Type.Is(openapi3.TypeObject) {
		return
	}
	switch {
	case sm.Style == openapi3.SerializationDeepObject:
		oi.queryPrefixes = append(oi.queryPrefixes, p.Name+"[")
	case sm.Style == openapi3.SerializationForm && sm.Explode:
		for name := range sch.Properties {
			oi.query[name] = struct{}{}
		}
	}
}

// queryAllowed reports whether the operation accepts a query parameter name.
func (oi *opInfo) queryAllowed(name string) bool {
	if _, ok := oi.query[name]; ok {
		return true
	}
	for _, p := range oi.queryPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// effectiveParams lists the operation's parameters, operation-level ones
// overriding path-item ones of the same location and name.
func effectiveParams(op *spec.Operation) []*openapi3.Parameter {
	var out []*openapi3.Parameter
	for _, pr := range op.Op.Parameters {
		if pr != nil && pr.Value != nil {
			out = append(out, pr.Value)
		}
	}
	if op.PathItem != nil {
		for _, pr := range op.PathItem.Parameters {
			if pr == nil || pr.Value == nil {
				continue
			}
			if op.Op.Parameters.GetByInAndName(pr.Value.In, pr.Value.Name) != nil {
				continue
			}
			out = append(out, pr.Value)
		}
	}
	return out
}

// apiKeyQueryNames lists the query parameter names of apiKey security
// schemes: credentials the authenticate stage owns, never "unknown".
func apiKeyQueryNames(t *openapi3.T) map[string]struct{} {
	out := map[string]struct{}{}
	if t.Components == nil {
		return out
	}
	for _, ref := range t.Components.SecuritySchemes {
		if ref != nil && ref.Value != nil && ref.Value.Type == "apiKey" && ref.Value.In == "query" {
			out[ref.Value.Name] = struct{}{}
		}
	}
	return out
}

// vocabWalker collects every property name the document declares: the only
// names a violation path may show.
type vocabWalker struct {
	names map[string]struct{}
	seen  map[*openapi3.Schema]bool
}

func (v *vocabWalker) schemaRef(r *openapi3.SchemaRef, depth int) {
	if r != nil {
		v.schema(r.Value, depth)
	}
}

func (v *vocabWalker) schema(s *openapi3.Schema, depth int) {
	if s == nil || v.seen[s] || depth > maxSchemaDepth {
		return
	}
	v.seen[s] = true
	for name, p := range s.Properties {
		v.names[name] = struct{}{}
		v.schemaRef(p, depth+1)
	}
	for _, name := range s.Required {
		v.names[name] = struct{}{}
	}
	for _, l := range []openapi3.SchemaRefs{s.AllOf, s.OneOf, s.AnyOf} {
		for _, r := range l {
			v.schemaRef(r, depth+1)
		}
	}
	v.schemaRef(s.Items, depth+1)
	v.schemaRef(s.Not, depth+1)
	v.schemaRef(s.AdditionalProperties.Schema, depth+1)
}

// hasReadOnly reports whether a schema declares a readOnly property anywhere.
func hasReadOnly(s *openapi3.Schema, seen map[*openapi3.Schema]bool, depth int) bool {
	if s == nil || seen[s] || depth > maxSchemaDepth {
		return false
	}
	seen[s] = true
	for _, p := range s.Properties {
		if p != nil && p.Value != nil && (p.Value.ReadOnly || hasReadOnly(p.Value, seen, depth+1)) {
			return true
		}
	}
	for _, l := range []openapi3.SchemaRefs{s.AllOf, s.OneOf, s.AnyOf} {
		for _, r := range l {
			if r != nil && hasReadOnly(r.Value, seen, depth+1) {
				return true
			}
		}
	}
	if s.Items != nil && hasReadOnly(s.Items.Value, seen, depth+1) {
		return true
	}
	if r := s.AdditionalProperties.Schema; r != nil && hasReadOnly(r.Value, seen, depth+1) {
		return true
	}
	return false
}

// regexCache compiles spec patterns, degrading the ones Go's RE2 syntax
// cannot express instead of failing every value (kin-openapi would report a
// compile error on each validation otherwise).
type regexCache struct {
	mu       sync.Mutex
	degraded map[string]struct{}
}

// lookaround matches the start of an ECMAScript lookaround group.
var lookaround = regexp.MustCompile(`\(\?<?[=!]`)

func (c *regexCache) compile(expr string) (openapi3.RegexMatcher, error) {
	if re, err := regexp.Compile(expr); err == nil {
		return re, nil
	}
	c.mu.Lock()
	if c.degraded == nil {
		c.degraded = map[string]struct{}{}
	}
	c.degraded[expr] = struct{}{}
	c.mu.Unlock()
	if stripped, ok := stripLookarounds(expr); ok {
		if re, err := regexp.Compile(stripped); err == nil {
			return re, nil
		}
	}
	return matchAll{}, nil
}

// regexMatcher compiles a pattern as validation does.
func (s *shared) regexMatcher(p string) (openapi3.RegexMatcher, error) { return s.rc.compile(p) }

func (c *regexCache) degradedList() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.degraded))
	for p := range c.degraded {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// stringFormats are the string formats checked beyond kin-openapi's
// defaults (date, date-time, byte), which leave uuid and email unchecked.
// They are per-validation options: the library's global registry is left
// alone.
func stringFormats() map[string]openapi3.StringFormatValidator {
	return map[string]openapi3.StringFormatValidator{
		"byte":      openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringByte),
		"date":      openapi3.NewRegexpFormatValidator(`^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$`),
		"date-time": openapi3.NewCallbackValidator(checkDateTime),
		"uuid":      openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForUUIDOfRFC9562),
		"email":     openapi3.NewCallbackValidator(checkEmail),
		"ipv4":      openapi3.NewIPValidator(true),
		"ipv6":      openapi3.NewIPValidator(false),
	}
}

var errFormat = errors.New("does not match the format")

// checkDateTime accepts RFC 3339 date-times (with a time zone).
func checkDateTime(v string) error {
	if _, err := time.Parse(time.RFC3339Nano, v); err != nil {
		return errFormat
	}
	return nil
}

// checkEmail accepts a bare addr-spec: one '@', a non-empty local part and a
// dotted domain, no spaces or angle brackets (net/mail would also accept
// display names).
func checkEmail(v string) error {
	local, domain, ok := strings.Cut(v, "@")
	if !ok || local == "" || len(v) > 254 || !strings.Contains(domain, ".") ||
		strings.ContainsAny(v, " <>\t\r\n\"") || strings.Contains(domain, "@") ||
		strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") {
		return errFormat
	}
	return nil
}

// matchAll stands in for a pattern that cannot be run.
type matchAll struct{}

func (matchAll) MatchString(string) bool { return true }

// stripLookarounds removes (?=...), (?!...), (?<=...) and (?<!...) groups.
// They are zero-width, so the result accepts a superset of the original.
func stripLookarounds(expr string) (string, bool) {
	var b strings.Builder
	changed, inClass := false, false
	for i := 0; i < len(expr); {
		if expr[i] == '\\' && i+1 < len(expr) {
			b.WriteString(expr[i : i+2])
			i += 2
			continue
		}
		switch {
		case inClass:
			inClass = expr[i] != ']'
			b.WriteByte(expr[i])
			i++
			continue
		case expr[i] == '[':
			inClass = true
			b.WriteByte(expr[i])
			i++
			continue
		}
		if loc := lookaround.FindStringIndex(expr[i:]); loc != nil && loc[0] == 0 {
			end, ok := closingParen(expr, i)
			if !ok {
				return "", false
			}
			i = end + 1
			changed = true
			continue
		}
		b.WriteByte(expr[i])
		i++
	}
	return b.String(), changed
}

// closingParen returns the index of the ')' closing the group opened at i.
func closingParen(expr string, i int) (int, bool) {
	depth, inClass := 0, false
	for j := i; j < len(expr); j++ {
		switch c := expr[j]; {
		case c == '\\':
			j++
		case inClass:
			if c == ']' {
				inClass = false
			}
		case c == '[':
			inClass = true
		case c == '(':
			depth++
		case c == ')':
			depth--
			if depth == 0 {
				return j, true
			}
		}
	}
	return 0, false
}
