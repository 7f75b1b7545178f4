package validate

import (
	"bytes"
	"context"
	"errors"
	"mime"
	"net/http"
	"sort"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"

	"github.com/bulwarkapi/bulwark/internal/pipeline"
)

// Response is the response validation stage of one API.
type Response struct {
	s     *shared
	limit int64
	opts  *openapi3filter.Options
	// noBody is opts without body validation: a JSON body is validated
	// by the stage itself, on the one decoding the undocumented-property
	// walk also reads (the filter would decode it a second time).
	noBody *openapi3filter.Options
}

var _ pipeline.ResponseStage = (*Response)(nil)

func newResponse(s *shared) *Response {
	r := &Response{
		s:     s,
		limit: int64(s.cfg.MaxResponseBytes),
		opts: &openapi3filter.Options{
			MultiError:              true,
			IncludeResponseStatus:   true,
			AuthenticationFunc:      openapi3filter.NoopAuthenticationFunc,
			SkipSettingDefaults:     true,
			SchemaValidationOptions: s.schemaOpts,
		},
	}
	nb := *r.opts
	nb.ExcludeResponseBody = true
	r.noBody = &nb
	return r
}

// Name implements pipeline.ResponseStage.
func (r *Response) Name() string { return "validate_response" }

// HandleResponse implements pipeline.ResponseStage.
func (r *Response) HandleResponse(ctx context.Context, x *pipeline.Exchange, resp *http.Response) pipeline.Decision {
	oi := r.s.ops[x.Operation]
	if oi == nil || resp == nil || x.Request == nil {
		return pipeline.Continue
	}
	switch resp.StatusCode {
	case http.StatusNotModified, http.StatusMovedPermanently, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return pipeline.Continue // redirects and revalidations carry no contract body
	}
	responses := oi.op.Op.Responses
	if responses.Len() == 0 {
		return pipeline.Continue
	}
	var c collector
	rr := responses.Status(resp.StatusCode)
	if rr == nil {
		rr = responses.Default()
	}
	if rr == nil || rr.Value == nil {
		c.add("status", "undocumented")
		return r.decide(x, resp, &c, nil, nil)
	}
	if x.Request.Method == http.MethodHead {
		return pipeline.Continue
	}

	var body []byte
	if len(rr.Value.Content) > 0 {
		b, complete, err := x.ResponseBody(resp, r.limit)
		if err != nil || !complete {
			return pipeline.Decision{Action: pipeline.Annotate, Reason: ReasonResponseNotValidated, Monitor: r.s.monitor}
		}
		body = b
	}

	ct := resp.Header.Get("Content-Type")
	mt := rr.Value.Content.Get(ct)
	jsonBody := mt != nil && mt.Schema != nil && mt.Schema.Value != nil && len(body) > 0 && isJSON(mediaType(ct))
	opts := r.opts
	if jsonBody {
		opts = r.noBody // status, content type and headers only: the body is checked below
	}
	input := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: x.Request, Route: oi.route, Options: opts},
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Options:                opts,
	}
	input.SetBodyBytes(body)
	if err := validateResponse(ctx, input); err != nil {
		if r.collectResponseError(&c, err) && mt != nil && !jsonBody {
			// A header error stops the filter before the body: check it here.
			r.bodySchema(&c, mt, ct, body)
		}
	}

	// The body against its schema, and its undocumented properties, on one
	// decoding (in order when a strip re-encodes the body as written,
	// minus what is stripped).
	var tree any
	var undoc []string
	if jsonBody {
		strip := r.s.cfg.UndocumentedProperties == policyStrip && !r.monitoring(x)
		v, err := decodeJSONAny(body) // plain maps: fast; member order only matters when stripping
		if err != nil {
			c.add("body", "malformed")
		} else {
			r.visitBody(&c, mt, v)
		}
		if err == nil && strip {
			v, err = decodeOrdered(body)
		}
		if err == nil {
			found := map[string]struct{}{}
			r.s.undocWalk(v, []*openapi3.Schema{mt.Schema.Value}, "body", strip, found, 0)
			for p := range found {
				undoc = append(undoc, p)
			}
			sort.Strings(undoc)
			if strip && len(undoc) > 0 {
				tree = v
			}
		}
	}
	return r.decide(x, resp, &c, undoc, tree)
}

func (r *Response) monitoring(x *pipeline.Exchange) bool {
	return r.s.monitor || x.Mode == pipeline.Monitor
}

// decide turns what was found into the decision, applying the policy.
// tree is the stripped body to send, when the policy is strip.
func (r *Response) decide(x *pipeline.Exchange, resp *http.Response, c *collector, undoc []string, tree any) pipeline.Decision {
	if c.empty() && len(undoc) == 0 {
		return pipeline.Continue
	}
	policy := r.s.cfg.UndocumentedProperties
	d := pipeline.Decision{Action: pipeline.Annotate, Monitor: r.s.monitor}
	mixed := func(kind string) []string {
		rules := c.rules()
		for _, p := range undoc {
			if len(rules) >= maxViolations {
				break
			}
			rules = append(rules, clipRule(p, ": "+kind))
		}
		return rules
	}
	switch {
	case policy == policyBlock:
		d.Action, d.Status, d.Reason = pipeline.Stop, http.StatusBadGateway, ReasonResponseInvalid
		d.Detail = "The upstream response does not match the API contract."
		d.Rules = mixed("undocumented")
		return d
	case tree != nil:
		var buf bytes.Buffer
		if err := encodeOrdered(&buf, tree); err == nil {
			x.SetInspectedResponseBody(resp, buf.Bytes())
		} else {
			tree = nil
		}
	}
	switch {
	case !c.empty():
		d.Reason = ReasonResponseInvalid
		kind := "undocumented"
		if tree != nil {
			kind = "stripped"
		}
		d.Rules = mixed(kind)
	case tree != nil:
		d.Reason = ReasonResponsePropsStripped
		d.Rules = capList(undoc)
	default:
		d.Reason = ReasonResponseUndocumented
		d.Rules = capList(undoc)
	}
	return d
}

func capList(l []string) []string {
	if len(l) > maxViolations {
		l = l[:maxViolations]
	}
	out := make([]string, len(l))
	for i, p := range l {
		out[i] = clipRule(p, "")
	}
	return out
}

// validateResponse runs the filter, turning a panic into an error.
func validateResponse(ctx context.Context, input *openapi3filter.ResponseValidationInput) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = errors.New("validator failure")
		}
	}()
	return openapi3filter.ValidateResponse(ctx, input)
}

// collectResponseError turns the filter's response errors into violations.
// It reports whether the error was about a header (the filter then stopped
// before the body).
func (r *Response) collectResponseError(c *collector, err error) (header bool) {
	var re *openapi3filter.ResponseError
	if !errors.As(err, &re) {
		c.add("response", "invalid")
		return false
	}
	switch reason := re.Reason; {
	case strings.HasPrefix(reason, "status is not supported"):
		c.add("status", "undocumented")
	case strings.Contains(reason, "Content-Type"):
		c.add("content-type", "undocumented")
	case strings.HasPrefix(reason, "response header ") || strings.HasPrefix(reason, "unable to decode header ") ||
		strings.HasPrefix(reason, "unable to get header "):
		name, _ := quoted(reason)
		kind := "invalid"
		if strings.HasSuffix(reason, "missing") {
			kind = "required"
		}
		c.add("header."+clipName(safeHeaderName(name)), kind)
		return true
	case strings.HasPrefix(reason, "failed to decode"):
		c.add("body", "malformed")
	case re.Err != nil:
		r.s.collectSchema(c, "body", re.Err, 0)
	default:
		c.add("response", "invalid")
	}
	return false
}

// bodySchema validates a response body against its media type's schema,
// as the filter would have.
func (r *Response) bodySchema(c *collector, mt *openapi3.MediaType, ct string, body []byte) {
	if mt.Schema == nil || mt.Schema.Value == nil || !isJSON(mediaType(ct)) {
		return
	}
	v, err := decodeJSONAny(body)
	if err != nil {
		c.add("body", "malformed")
		return
	}
	r.visitBody(c, mt, v)
}

// visitBody validates a decoded response body against its media type's
// schema.
func (r *Response) visitBody(c *collector, mt *openapi3.MediaType, v any) {
	opts := append([]openapi3.SchemaValidationOption{openapi3.MultiErrors(), openapi3.VisitAsResponse()}, r.s.schemaOpts...)
	if r.s.is31 {
		opts = append(opts, openapi3.EnableJSONSchema2020())
	}
	if err := mt.Schema.Value.VisitJSON(v, opts...); err != nil {
		r.s.collectSchema(c, "body", err, 0)
	}
}

// undocWalk finds the properties of a response body its schema does not
// declare, recording their paths (array items as "[]") and removing them
// when strip is set.
func (s *shared) undocWalk(v any, schemas []*openapi3.Schema, path string, strip bool, found map[string]struct{}, depth int) {
	if depth > maxSchemaDepth || len(schemas) == 0 {
		return
	}
	switch val := v.(type) {
	case *object:
		sh := s.shapeOf(schemas)
		if sh.free {
			return
		}
		kept := val.members[:0]
		for _, m := range val.members {
			decl := sh.props[m.key]
			switch {
			case len(decl) > 0:
				s.undocWalk(m.val, decl, path+respSegment(m.key), strip, found, depth+1)
			case len(sh.additional) > 0:
				s.undocWalk(m.val, sh.additional, path+".*", strip, found, depth+1)
			default:
				found[path+respSegment(m.key)] = struct{}{}
				if strip {
					continue
				}
			}
			kept = append(kept, m)
		}
		clear(val.members[len(kept):])
		val.members = kept
	case map[string]any: // decoded without order: never stripped
		sh := s.shapeOf(schemas)
		if sh.free {
			return
		}
		for k, child := range val {
			decl := sh.props[k]
			switch {
			case len(decl) > 0:
				s.undocWalk(child, decl, path+respSegment(k), false, found, depth+1)
			case len(sh.additional) > 0:
				s.undocWalk(child, sh.additional, path+".*", false, found, depth+1)
			default:
				found[path+respSegment(k)] = struct{}{}
			}
		}
	case []any:
		items := itemsOf(schemas)
		for _, e := range val {
			s.undocWalk(e, items, path+"[]", strip, found, depth+1)
		}
	}
}

// respSegment renders a response property name: upstream data, not client
// input, but still bounded and kept free of anything a log line should not
// carry.
func respSegment(k string) string {
	if k == "" || len(k) > maxNameLen {
		return ".*"
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_-$@", c) >= 0) {
			return ".*"
		}
	}
	return "." + k
}

func safeHeaderName(n string) string {
	if !printableName(n) {
		return "*"
	}
	return n
}

func mediaType(ct string) string {
	m, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return ""
	}
	return m
}
