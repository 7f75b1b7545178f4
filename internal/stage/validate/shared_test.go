package validate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/bulwarkapi/bulwark/internal/pipeline"
	"github.com/bulwarkapi/bulwark/internal/spec"
)

// sharedSpecDir holds the project's real-world specs, outside the repository.
const sharedSpecDir = "../../../../shared/testdata/specs"

// remoteStubs maps remote $refs of the shared specs to local stand-ins
// (spec.Load refuses remote refs), as internal/spec's tests do.
var remoteStubs = map[string]string{
	"https://raw.githubusercontent.com/moov-io/base/master/api/common.yaml": "../../spec/testdata/stubs/moov-base-common.yaml",
}

func sharedSpecFiles(t testing.TB) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(sharedSpecDir, "*.yaml"))
	if len(files) == 0 {
		t.Skipf("shared specs not found in %s (they live outside the repository); skipping", sharedSpecDir)
	}
	sort.Strings(files)
	return files
}

func loadSharedSpec(t testing.TB, file string) *spec.Document {
	t.Helper()
	docMu.Lock()
	if d, ok := docCache[file]; ok {
		docMu.Unlock()
		return d
	}
	docMu.Unlock()
	doc, err := spec.Load(context.Background(), file)
	if err != nil {
		var rre *spec.RemoteRefError
		if !errors.As(err, &rre) {
			t.Fatalf("load %s: %v", file, err)
		}
		data, rerr := os.ReadFile(file)
		if rerr != nil {
			t.Fatal(rerr)
		}
		for remote, local := range remoteStubs {
			abs, aerr := filepath.Abs(local)
			if aerr != nil {
				t.Fatal(aerr)
			}
			data = bytes.ReplaceAll(data, []byte(remote), []byte(filepath.ToSlash(abs)))
		}
		if doc, err = spec.LoadData(context.Background(), data, file); err != nil {
			t.Fatalf("load %s with local stand-ins: %v", file, err)
		}
	}
	docMu.Lock()
	docCache[file] = doc
	docMu.Unlock()
	return doc
}

// genRequest is a generated request for one operation, kept as parts so
// variants can change one of them.
type genRequest struct {
	op      *spec.Operation
	path    map[string]string // path parameter values
	query   url.Values
	header  http.Header
	cookies map[string]string
	ctype   string
	body    any    // JSON/form value; nil when none
	raw     []byte // a non-JSON body
	bodySch *openapi3.Schema
}

func (g *gen) request(op *spec.Operation) *genRequest {
	gr := &genRequest{op: op, path: map[string]string{}, query: url.Values{}, header: http.Header{}, cookies: map[string]string{}}
	for _, p := range effectiveParams(op) {
		if p.In != openapi3.ParameterInPath && !p.Required {
			continue
		}
		var sch *openapi3.Schema
		if p.Schema != nil {
			sch = p.Schema.Value
		}
		v := fmt.Sprint(g.value(sch, p.Name, 0))
		switch p.In {
		case openapi3.ParameterInPath:
			gr.path[p.Name] = v
		case openapi3.ParameterInQuery:
			gr.query.Set(p.Name, v)
		case openapi3.ParameterInHeader:
			gr.header.Set(p.Name, v)
		case openapi3.ParameterInCookie:
			gr.cookies[p.Name] = v
		}
	}
	if rb := op.Op.RequestBody; rb != nil && rb.Value != nil && len(rb.Value.Content) > 0 {
		ct := pickContentType(rb.Value.Content)
		gr.ctype = ct
		mt := rb.Value.Content[ct]
		var sch *openapi3.Schema
		if mt.Schema != nil {
			sch = mt.Schema.Value
		}
		gr.bodySch = sch
		switch m := mediaType(ct); {
		case isJSON(m), m == "application/x-www-form-urlencoded":
			gr.body = g.value(sch, "", 0)
		default:
			gr.raw = []byte("sample")
			if sch != nil && sch.Type.Is(openapi3.TypeString) {
				gr.raw = []byte(g.str(sch, "body"))
			}
		}
	}
	return gr
}

// pickContentType prefers JSON, then form, then whatever is declared.
func pickContentType(c openapi3.Content) string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, want := range []func(string) bool{
		func(k string) bool { return mediaType(k) == "application/json" },
		func(k string) bool { return isJSON(mediaType(k)) },
		func(k string) bool { return mediaType(k) == "application/x-www-form-urlencoded" },
	} {
		for _, k := range keys {
			if want(k) {
				return k
			}
		}
	}
	return keys[0]
}

// build renders the request under base path bp.
func (gr *genRequest) build(t testing.TB, bp string) *http.Request {
	t.Helper()
	p := gr.op.Path
	for name, v := range gr.path {
		p = strings.Replace(p, "{"+name+"}", url.PathEscape(v), 1)
	}
	target := "https://api.example" + bp + p
	if len(gr.query) > 0 {
		target += "?" + gr.query.Encode()
	}
	var body []byte
	switch {
	case gr.raw != nil:
		body = gr.raw
	case gr.body != nil && mediaType(gr.ctype) == "application/x-www-form-urlencoded":
		form := url.Values{}
		if m, ok := gr.body.(map[string]any); ok {
			for k, v := range m {
				form.Set(k, fmt.Sprint(v))
			}
		}
		body = []byte(form.Encode())
	case gr.body != nil:
		var err error
		if body, err = json.Marshal(gr.body); err != nil {
			t.Fatal(err)
		}
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	r := httptest.NewRequest(gr.op.Method, target, rd)
	for k, v := range gr.header {
		r.Header[k] = v
	}
	if gr.ctype != "" && body != nil {
		r.Header.Set("Content-Type", gr.ctype)
	}
	for k, v := range gr.cookies {
		r.AddCookie(&http.Cookie{Name: k, Value: v})
	}
	return r
}

func (gr *genRequest) clone() *genRequest {
	c := *gr
	c.path = maps(gr.path)
	c.query = url.Values{}
	for k, v := range gr.query {
		c.query[k] = slices.Clone(v)
	}
	c.header = gr.header.Clone()
	c.cookies = maps(gr.cookies)
	c.body = deepCopy(gr.body)
	return &c
}

func maps(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func deepCopy(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[k] = deepCopy(e)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = deepCopy(e)
		}
		return out
	}
	return v
}

// variant is an invalid request and the rule it must produce.
type variant struct {
	name string
	gr   *genRequest
	want string
}

// variants derives invalid requests from a valid one: wrong types, missing
// required values, out-of-enum values, extra properties in closed objects.
func (h *harness) variants(gr *genRequest) []variant {
	var out []variant
	s := h.req.s
	for _, p := range effectiveParams(gr.op) {
		if p.Schema == nil || p.Schema.Value == nil {
			continue
		}
		sch := p.Schema.Value
		set := func(v string) *genRequest {
			c := gr.clone()
			switch p.In {
			case openapi3.ParameterInPath:
				c.path[p.Name] = v
			case openapi3.ParameterInQuery:
				c.query.Set(p.Name, v)
			case openapi3.ParameterInHeader:
				c.header.Set(p.Name, v)
			case openapi3.ParameterInCookie:
				c.cookies[p.Name] = v
			}
			return c
		}
		at := p.In + "." + p.Name
		switch {
		case len(sch.Enum) > 0:
			out = append(out, variant{"param out of enum", set("NotInEnum"), at + ": enum"})
		case sch.Type.Is(openapi3.TypeInteger) || sch.Type.Is(openapi3.TypeNumber):
			out = append(out, variant{"param wrong type", set("not-a-number"), at + ": type"})
		case sch.Format == "date-time" || sch.Format == "uuid" || sch.Format == "date":
			out = append(out, variant{"param bad format", set("not-a-" + sch.Format), at + ": format"})
		case sch.Pattern != "" && !strings.Contains(sch.Pattern, "(?"):
			if !h.matches(sch.Pattern, "~~") {
				out = append(out, variant{"param bad pattern", set("~~"), at + ": pattern"})
			}
		case sch.MaxLength != nil && *sch.MaxLength < 200:
			out = append(out, variant{"param too long", set(strings.Repeat("x", int(*sch.MaxLength)+1)), at + ": maxLength"})
		}
		if p.Required && p.In != openapi3.ParameterInPath {
			c := gr.clone()
			switch p.In {
			case openapi3.ParameterInQuery:
				c.query.Del(p.Name)
			case openapi3.ParameterInHeader:
				c.header.Del(p.Name)
			case openapi3.ParameterInCookie:
				delete(c.cookies, p.Name)
			}
			out = append(out, variant{"param missing", c, at + ": required"})
		}
	}
	if gr.bodySch == nil || !isJSON(mediaType(gr.ctype)) {
		return out
	}
	if _, ok := gr.body.(map[string]any); !ok {
		return out
	}
	found := map[string]bool{}
	var walk func(v any, sch []*openapi3.Schema, ptr []string, depth int)
	walk = func(v any, schs []*openapi3.Schema, ptr []string, depth int) {
		obj, ok := v.(map[string]any)
		if !ok || depth > 8 || len(schs) == 0 {
			return
		}
		for _, sc := range schs {
			if len(sc.OneOf)+len(sc.AnyOf) > 0 {
				return // errors inside a choice are reported at the choice
			}
		}
		sh := s.shapeOf(schs)
		path := "body"
		for _, k := range ptr {
			path += s.segment(k)
		}
		closed := false
		for _, sc := range schs {
			if has := sc.AdditionalProperties.Has; has != nil && !*has {
				closed = true
			}
		}
		mutate := func(kind string, f func(m map[string]any)) *genRequest {
			c := gr.clone()
			m := c.body.(map[string]any)
			for _, k := range ptr {
				m = m[k].(map[string]any)
			}
			f(m)
			return c
		}
		if closed && !found["extra"] {
			found["extra"] = true
			out = append(out, variant{"extra property (unknown name)", mutate("extra", func(m map[string]any) { m["zzUnexpectedField"] = true }), path + ".*: " + kindAdditional})
			// A name the spec knows elsewhere is shown by name.
			for _, name := range sortedVocab(s) {
				if len(sh.props[name]) == 0 {
					out = append(out, variant{"extra property (known name)", mutate("extra", func(m map[string]any) { m[name] = "x" }), path + "." + name + ": " + kindAdditional})
					break
				}
			}
		}
		keys := sortedKeys(obj)
		for _, k := range keys {
			decl := sh.props[k]
			if len(decl) != 1 {
				continue
			}
			ps := decl[0]
			kp := path + s.segment(k)
			switch {
			case len(ps.Enum) > 0 && ps.Type.Is(openapi3.TypeString) && !found["enum"]:
				found["enum"] = true
				out = append(out, variant{"body out of enum", mutate("enum", func(m map[string]any) { m[k] = "NotInEnum" }), kp + ": enum"})
			case ps.Type.Is(openapi3.TypeString) && len(ps.Enum) == 0 && len(ps.AllOf) == 0 && !found["type"]:
				found["type"] = true
				out = append(out, variant{"body wrong type", mutate("type", func(m map[string]any) { m[k] = 12345 }), kp + ": type"})
			}
		}
		for _, sc := range schs {
			for _, k := range sc.Required {
				if _, ok := obj[k]; ok && !found["required"] {
					found["required"] = true
					out = append(out, variant{"body missing required", mutate("required", func(m map[string]any) { delete(m, k) }), path + s.segment(k) + ": required"})
				}
			}
		}
		for _, k := range keys {
			if decl := sh.props[k]; len(decl) > 0 {
				walk(obj[k], decl, append(slices.Clone(ptr), k), depth+1)
			}
		}
	}
	walk(gr.body, []*openapi3.Schema{gr.bodySch}, nil, 0)
	return out
}

func (h *harness) matches(pattern, v string) bool {
	re, err := h.req.s.regexMatcher(pattern)
	return err == nil && re.MatchString(v)
}

func sortedVocab(s *shared) []string {
	out := make([]string, 0, len(s.vocab))
	for k := range s.vocab {
		if printableName(k) && len(k) <= maxNameLen {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// TestSharedSpecs is the must-show: for every operation of the real specs a
// generated valid request passes; invalid variants get precise violations;
// a response with an extra property is flagged.
func TestSharedSpecs(t *testing.T) {
	for _, file := range sharedSpecFiles(t) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			doc := loadSharedSpec(t, file)
			h := newHarness(t, doc, defaults())
			g := &gen{s: h.req.s}
			bp := doc.BasePaths[0]
			var passed, variantsOK, variantsAll, respFlagged, respChecked int
			for _, op := range doc.Operations {
				gr := g.request(op)
				x := h.exchange(t, gr.build(t, bp))
				if x.Operation != op.Key {
					t.Errorf("%s: routed to %q", op.Key, x.Operation)
					continue
				}
				d := h.req.Handle(context.Background(), x)
				if d.Action != pipeline.Allow {
					t.Errorf("%s: generated valid request refused: %d %s %q", op.Key, d.Status, d.Reason, d.Rules)
					continue
				}
				passed++
				for _, v := range h.variants(gr) {
					variantsAll++
					x := h.exchange(t, v.gr.build(t, bp))
					d := h.req.Handle(context.Background(), x)
					if d.Action != pipeline.Stop || !slices.Contains(d.Rules, v.want) {
						t.Errorf("%s: %s: got %v %s %q, want rule %q", op.Key, v.name, d.Action, d.Reason, d.Rules, v.want)
						continue
					}
					variantsOK++
				}
				if ok, checked := h.extraResponseProperty(t, g, op, bp); checked {
					respChecked++
					if ok {
						respFlagged++
					}
				}
			}
			t.Logf("%s: %d operations, %d generated valid requests passed; %d/%d invalid variants with the exact rule; %d/%d responses with an extra property flagged; generator misses: %q",
				filepath.Base(file), len(doc.Operations), passed, variantsOK, variantsAll, respFlagged, respChecked, g.misses)
		})
	}
}

// extraResponseProperty generates the first 2xx JSON response of op, adds
// an undocumented property and checks it is flagged.
func (h *harness) extraResponseProperty(t *testing.T, g *gen, op *spec.Operation, bp string) (flagged, checked bool) {
	t.Helper()
	if op.Op.Responses == nil {
		return false, false
	}
	codes := op.Op.Responses.Keys()
	sort.Strings(codes)
	for _, code := range codes {
		rr := op.Op.Responses.Value(code)
		if !strings.HasPrefix(code, "2") || len(code) != 3 || rr == nil || rr.Value == nil {
			continue
		}
		for ct, mt := range rr.Value.Content {
			if !isJSON(mediaType(ct)) || mt.Schema == nil || mt.Schema.Value == nil {
				continue
			}
			rg := &gen{s: g.s, response: true}
			body, ok := rg.value(mt.Schema.Value, "", 0).(map[string]any)
			if !ok || h.resp.s.shapeOf([]*openapi3.Schema{mt.Schema.Value}).free {
				continue
			}
			body["internalRiskScore"] = 87
			data, _ := json.Marshal(body)
			status := 200
			fmt.Sscan(code, &status)
			resp := upstream(status, ct, string(data))
			gr := g.request(op)
			x := h.exchange(t, gr.build(t, bp))
			d := h.resp.HandleResponse(context.Background(), x, resp)
			flagged = slices.Contains(d.Rules, "body.internalRiskScore") || slices.Contains(d.Rules, "body.internalRiskScore: undocumented")
			if !flagged {
				t.Errorf("%s %s: extra response property not flagged: %v %s %q", op.Key, code, d.Action, d.Reason, d.Rules)
			}
			return flagged, true
		}
	}
	return false, false
}
