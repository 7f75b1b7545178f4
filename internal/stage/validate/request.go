package validate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"

	"github.com/bulwarkapi/bulwark/internal/pipeline"
)

// Request is the request validation stage of one API.
type Request struct {
	s        *shared
	maxBytes int64
	// withBody and noBody are the filter options, shared by all requests
	// (openapi3filter only reads them). noBody skips the body when the
	// stage has already judged it (wrong or undecodable media type).
	withBody, noBody *openapi3filter.Options
}

var _ pipeline.Stage = (*Request)(nil)

func newRequest(s *shared, maxBytes int64) *Request {
	base := openapi3filter.Options{
		MultiError:         true,
		AuthenticationFunc: openapi3filter.NoopAuthenticationFunc,
		// The gateway forwards what it received: defaults are never
		// written into the request.
		SkipSettingDefaults:     true,
		SchemaValidationOptions: s.schemaOpts,
	}
	noBody := base
	noBody.ExcludeRequestBody = true
	return &Request{s: s, maxBytes: maxBytes, withBody: &base, noBody: &noBody}
}

// Name implements pipeline.Stage.
func (r *Request) Name() string { return "validate" }

func (r *Request) halt(status int, reason, detail string) pipeline.Decision {
	d := pipeline.Halt(status, reason, detail)
	d.Monitor = r.s.monitor
	return d
}

// Handle implements pipeline.Stage.
func (r *Request) Handle(ctx context.Context, x *pipeline.Exchange) pipeline.Decision {
	if x.Operation == "" {
		return r.unknown(x)
	}
	oi := r.s.ops[x.Operation]
	if oi == nil {
		return r.unknown(x)
	}
	req := x.Request
	body, err := x.RequestBody()
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return r.halt(http.StatusRequestEntityTooLarge, ReasonBodyTooLarge, "The request body is too large.")
		}
		return r.halt(http.StatusBadRequest, ReasonBodyUnreadable, "The request body could not be read.")
	}
	if r.maxBytes > 0 && int64(len(body)) > r.maxBytes {
		return r.halt(http.StatusRequestEntityTooLarge, ReasonBodyTooLarge, "The request body is too large to validate.")
	}

	var c collector
	opts := r.withBody
	var media string // the body's media type, when it is to be walked for readOnly
	var bodySchema *openapi3.Schema
	if len(body) > 0 {
		switch {
		case oi.body == nil:
			c.add("body", "not allowed")
			opts = r.noBody
		case len(oi.body.Content) == 0:
			opts = r.noBody
		default:
			ct := req.Header.Get("Content-Type")
			mt := oi.body.Content.Get(ct)
			if ct == "" || mt == nil {
				return r.halt(http.StatusUnsupportedMediaType, ReasonUnsupportedMediaType,
					"The request's Content-Type is not one this operation accepts.")
			}
			m, _, err := mime.ParseMediaType(ct)
			if err != nil {
				return r.halt(http.StatusUnsupportedMediaType, ReasonUnsupportedMediaType,
					"The request's Content-Type is malformed.")
			}
			switch {
			case mt.Schema == nil || !decodable(m):
				// Accepted media type without a schema, or one the gateway
				// does not decode (application/jose+jwe): type checked only.
				opts = r.noBody
			case isJSON(m) && !json.Valid(body):
				// openapi3filter would read the first value and ignore
				// trailing data; a body must be exactly one JSON value.
				c.add("body", "malformed")
				opts = r.noBody
			case isJSON(m) && oi.readOnly:
				media, bodySchema = m, mt.Schema.Value
			case m == "application/x-www-form-urlencoded":
				r.s.formAdditional(&c, mt.Schema.Value, body)
			}
		}
	}

	q := req.URL.Query()
	if r.s.cfg.UnknownQueryParams == policyReject {
		for name := range q {
			if !oi.queryAllowed(name) {
				c.add("query."+safeQueryName(name), "undocumented")
			}
		}
	}

	var pathParams map[string]string
	if len(x.Params) > 0 {
		pathParams = make(map[string]string, len(x.Params))
		for _, p := range x.Params {
			pathParams[p.Name] = p.Value
		}
	}
	// A shallow copy with its own body reader: the filter reads the body
	// and the exchange's request must stay as received.
	rc := req.WithContext(ctx)
	rc.Body = io.NopCloser(bytes.NewReader(body))
	rc.GetBody = nil
	input := &openapi3filter.RequestValidationInput{
		Request:     rc,
		PathParams:  pathParams,
		QueryParams: q,
		Route:       oi.route,
		Options:     opts,
	}
	if err := validateRequest(ctx, input); err != nil {
		r.s.collectRequestError(&c, err, 0)
	}

	if media != "" && bodySchema != nil {
		var v any
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		if dec.Decode(&v) == nil {
			r.s.readOnlyWalk(&c, v, []*openapi3.Schema{bodySchema}, "body", 0)
		}
	}

	if c.empty() {
		return pipeline.Continue
	}
	d := r.halt(http.StatusBadRequest, ReasonRequestInvalid, c.detail("The request does not match the API contract:"))
	d.Rules = c.rules()
	return d
}

// validateRequest runs the filter, turning a panic inside it (hostile input
// reaching a library bug) into an error instead of a crashed request.
func validateRequest(ctx context.Context, input *openapi3filter.RequestValidationInput) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = errors.New("validator failure")
		}
	}()
	return openapi3filter.ValidateRequest(ctx, input)
}

// unknown applies the unknown_operations policy to a request the spec does
// not describe.
func (r *Request) unknown(x *pipeline.Exchange) pipeline.Decision {
	if r.s.cfg.UnknownOperations == policyAllow {
		return pipeline.Continue
	}
	if routeSaid(x, routeReasonMethodNotInSpec) && x.Request != nil {
		var buf [8]string
		m := r.s.router.Match(x.Request.Method, x.Request.URL.EscapedPath(), buf[:0])
		if len(m.Allowed) > 0 {
			d := r.halt(http.StatusMethodNotAllowed, ReasonMethodNotAllowed, "The API does not describe this method for this path.")
			d.Headers = http.Header{"Allow": {strings.Join(m.Allowed, ", ")}}
			return d
		}
	}
	return r.halt(http.StatusNotFound, ReasonUnknownOperation, "The API does not describe this operation.")
}

// routeSaid reports whether the route stage annotated the exchange with reason.
func routeSaid(x *pipeline.Exchange, reason string) bool {
	for i := range x.Decisions {
		if x.Decisions[i].Stage == "route" && x.Decisions[i].Reason == reason {
			return true
		}
	}
	return false
}

// decodable reports whether openapi3filter can decode a body of media type m.
func decodable(m string) bool {
	return openapi3filter.RegisteredBodyDecoder(m) != nil || strings.HasSuffix(m, "+json")
}

func isJSON(m string) bool { return m == "application/json" || strings.HasSuffix(m, "+json") }

// readOnlyWalk refuses properties marked readOnly anywhere in a request body:
// nested objects, array items, and properties declared through allOf, oneOf
// and anyOf (a property readOnly in any declaring schema is refused).
func (s *shared) readOnlyWalk(c *collector, v any, schemas []*openapi3.Schema, path string, depth int) {
	if depth > maxSchemaDepth || len(schemas) == 0 {
		return
	}
	switch val := v.(type) {
	case map[string]any:
		sh := s.shapeOf(schemas)
		for _, k := range sortedKeys(val) {
			child := val[k]
			decl := sh.props[k]
			if len(decl) == 0 {
				if len(sh.additional) > 0 {
					s.readOnlyWalk(c, child, sh.additional, path+s.segment(k), depth+1)
				}
				continue
			}
			ro := false
			for _, d := range decl {
				ro = ro || d.ReadOnly
			}
			if ro {
				c.add(path+s.segment(k), kindReadOnly)
				continue
			}
			s.readOnlyWalk(c, child, decl, path+s.segment(k), depth+1)
		}
	case []any:
		items := itemsOf(schemas)
		for i, child := range val {
			s.readOnlyWalk(c, child, items, path+s.segment(itoa(i)), depth+1)
		}
	}
}

// formAdditional refuses form fields a closed schema (additionalProperties:
// false) does not declare: openapi3filter's form decoder only reads the
// declared ones, so it would let them through unseen.
func (s *shared) formAdditional(c *collector, sch *openapi3.Schema, body []byte) {
	if sch == nil {
		return
	}
	if has := sch.AdditionalProperties.Has; has == nil || *has || sch.AdditionalProperties.Schema != nil {
		return
	}
	vals, err := url.ParseQuery(string(body))
	if err != nil {
		c.add("body", "malformed")
		return
	}
	sh := s.shapeOf([]*openapi3.Schema{sch})
	keys := make([]string, 0, len(vals))
	for k := range vals {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		name, _, _ := strings.Cut(k, "[") // deepObject-style fields name their property first
		if len(sh.props[name]) == 0 {
			c.add("body"+s.segment(name), kindAdditional)
		}
	}
}
