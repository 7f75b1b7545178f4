package bank

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// openAPI is the part of the document the tests look at; the schemas are
// also kept as generic maps for the small validator below.
type openAPI struct {
	OpenAPI  string                          `yaml:"openapi"`
	Servers  []struct{ URL string }          `yaml:"servers"`
	Security []map[string][]string           `yaml:"security"`
	Paths    map[string]map[string]operation `yaml:"paths"`
	Comps    struct {
		SecuritySchemes map[string]map[string]any `yaml:"securitySchemes"`
		Parameters      map[string]parameter      `yaml:"parameters"`
	} `yaml:"components"`
}

type operation struct {
	OperationID string                 `yaml:"operationId"`
	Tags        []string               `yaml:"tags"`
	Deprecated  bool                   `yaml:"deprecated"`
	Security    *[]map[string][]string `yaml:"security"`
	Admin       bool                   `yaml:"x-bulwark-admin"`
	Parameters  []parameter            `yaml:"parameters"`
	RequestBody *struct {
		Content map[string]struct {
			Schema map[string]any `yaml:"schema"`
		} `yaml:"content"`
	} `yaml:"requestBody"`
}

type parameter struct {
	Ref      string         `yaml:"$ref"`
	Name     string         `yaml:"name"`
	In       string         `yaml:"in"`
	Required bool           `yaml:"required"`
	Schema   map[string]any `yaml:"schema"`
}

var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

func loadSpec(t *testing.T) (openAPI, map[string]any) {
	t.Helper()
	var doc openAPI
	if err := yaml.Unmarshal(Spec(), &doc); err != nil {
		t.Fatalf("parse embedded spec: %v", err)
	}
	var raw map[string]any
	if err := yaml.Unmarshal(Spec(), &raw); err != nil {
		t.Fatalf("parse embedded spec: %v", err)
	}
	return doc, raw
}

func TestSpecMatchesRoutes(t *testing.T) {
	doc, _ := loadSpec(t)
	if doc.OpenAPI != "3.0.3" {
		t.Errorf("openapi = %q, want 3.0.3", doc.OpenAPI)
	}
	if len(doc.Servers) != 1 || doc.Servers[0].URL != BasePath {
		t.Errorf("servers = %+v, want one with url %s", doc.Servers, BasePath)
	}
	if len(doc.Security) != 1 || doc.Security[0]["bearerAuth"] == nil {
		t.Errorf("global security = %v, want bearerAuth", doc.Security)
	}
	if s := doc.Comps.SecuritySchemes["bearerAuth"]; s["type"] != "http" || s["scheme"] != "bearer" || s["bearerFormat"] != "JWT" {
		t.Errorf("bearerAuth scheme = %v", s)
	}

	inSpec := map[string]operation{}
	for path, item := range doc.Paths {
		for method, op := range item {
			if !slices.Contains(httpMethods, method) {
				continue
			}
			inSpec[strings.ToUpper(method)+" "+path] = op
		}
	}
	inMux := map[string]bool{}
	h := New(Options{Seed: 1}).Handler().(fallback)
	for _, rt := range Routes() {
		key := rt.Method + " " + rt.Path
		inMux[key] = true
		op, ok := inSpec[key]
		if !ok {
			t.Errorf("route %s is registered but not in the spec", key)
			continue
		}
		if op.OperationID != rt.OperationID {
			t.Errorf("%s: operationId %q in spec, %q in code", key, op.OperationID, rt.OperationID)
		}
		// The mux really serves this route.
		req := httptest.NewRequest(rt.Method, BasePath+strings.NewReplacer(
			"{customerId}", "cus_aaaaaaaaaaaa", "{accountId}", "acc_aaaaaaaaaaaa",
			"{cardId}", "card_aaaaaaaaaaaa", "{paymentId}", "pay_aaaaaaaaaaaa").Replace(rt.Path), nil)
		if _, pattern := h.mux.Handler(req); pattern != rt.Method+" "+BasePath+rt.Path {
			t.Errorf("%s: mux matched %q", key, pattern)
		}
		checkPathParams(t, doc, key, op)
	}
	for key := range inSpec {
		if !inMux[key] {
			t.Errorf("operation %s is in the spec but not registered", key)
		}
	}

	for key, op := range inSpec {
		public := key == "POST /login" || key == "GET /health"
		if public != (op.Security != nil && len(*op.Security) == 0) {
			t.Errorf("%s: security = %v; want [] exactly on login and health", key, op.Security)
		}
		statement := key == "GET /accounts/{accountId}/statement"
		if op.Deprecated != statement {
			t.Errorf("%s: deprecated = %v", key, op.Deprecated)
		}
		admin := key == "GET /admin/customers"
		if admin != slices.Contains(op.Tags, "admin") || admin != op.Admin {
			t.Errorf("%s: tags %v, x-bulwark-admin %v", key, op.Tags, op.Admin)
		}
	}
}

var pathParamRe = regexp.MustCompile(`\{([^}]+)\}`)

func checkPathParams(t *testing.T, doc openAPI, key string, op operation) {
	t.Helper()
	params := map[string]parameter{}
	for _, p := range op.Parameters {
		if p.Ref != "" {
			p = doc.Comps.Parameters[strings.TrimPrefix(p.Ref, "#/components/parameters/")]
		}
		params[p.In+":"+p.Name] = p
	}
	for _, m := range pathParamRe.FindAllStringSubmatch(key, -1) {
		p, ok := params["path:"+m[1]]
		if !ok || !p.Required || p.Schema["type"] != "string" || p.Schema["pattern"] == nil {
			t.Errorf("%s: path parameter %s missing or without a required string schema with a pattern: %+v", key, m[1], p)
		}
	}
}

func TestSpecRequestBodiesAreClosed(t *testing.T) {
	doc, raw := loadSpec(t)
	for path, item := range doc.Paths {
		for method, op := range item {
			if op.RequestBody == nil {
				continue
			}
			s := resolve(raw, op.RequestBody.Content["application/json"].Schema)
			if s["additionalProperties"] != false {
				t.Errorf("%s %s: request body schema is not closed (additionalProperties: false)", method, path)
			}
		}
	}
}

// --- a small OpenAPI 3.0 schema validator, enough for this document ---------

func resolve(raw map[string]any, s map[string]any) map[string]any {
	for {
		ref, ok := s["$ref"].(string)
		if !ok {
			return s
		}
		cur := any(raw)
		for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
			cur = cur.(map[string]any)[part]
		}
		s = cur.(map[string]any)
	}
}

func validate(raw map[string]any, s map[string]any, v any, at string) []string {
	s = resolve(raw, s)
	var errs []string
	fail := func(f string, args ...any) { errs = append(errs, at+": "+fmt.Sprintf(f, args...)) }
	if all, ok := s["allOf"].([]any); ok {
		for _, sub := range all {
			errs = append(errs, validate(raw, sub.(map[string]any), v, at)...)
		}
	}
	if enum, ok := s["enum"].([]any); ok && !slices.Contains(enum, v) {
		fail("%v not in enum %v", v, enum)
	}
	switch s["type"] {
	case "object":
		obj, ok := v.(map[string]any)
		if !ok {
			fail("want object, got %T", v)
			return errs
		}
		props, _ := s["properties"].(map[string]any)
		for _, r := range asSlice(s["required"]) {
			if _, ok := obj[r.(string)]; !ok {
				fail("required property %q missing", r)
			}
		}
		for k, pv := range obj {
			ps, ok := props[k].(map[string]any)
			if !ok {
				if s["additionalProperties"] == false {
					fail("property %q not in schema", k)
				}
				continue
			}
			errs = append(errs, validate(raw, ps, pv, at+"."+k)...)
		}
	case "array":
		arr, ok := v.([]any)
		if !ok {
			fail("want array, got %T", v)
			return errs
		}
		for i, item := range arr {
			errs = append(errs, validate(raw, s["items"].(map[string]any), item, at+"["+strconv.Itoa(i)+"]")...)
		}
	case "integer":
		f, ok := v.(float64)
		if !ok || f != float64(int64(f)) {
			fail("want integer, got %v", v)
		}
	case "string":
		str, ok := v.(string)
		if !ok {
			fail("want string, got %T", v)
			return errs
		}
		if p, ok := s["pattern"].(string); ok && !regexp.MustCompile(p).MatchString(str) {
			fail("%q does not match %s", str, p)
		}
		if n, ok := s["maxLength"].(int); ok && len([]rune(str)) > n {
			fail("longer than %d", n)
		}
		if n, ok := s["minLength"].(int); ok && len([]rune(str)) < n {
			fail("shorter than %d", n)
		}
		switch s["format"] {
		case "date-time":
			if _, err := time.Parse(time.RFC3339, str); err != nil {
				fail("not a date-time: %q", str)
			}
		case "date":
			if _, err := time.Parse(time.DateOnly, str); err != nil {
				fail("not a date: %q", str)
			}
		}
	}
	return errs
}

func asSlice(v any) []any { s, _ := v.([]any); return s }

// checkResponse validates a recorded response against the operation's
// response for its status and content type.
func checkResponse(t *testing.T, raw map[string]any, operationID string, rec *httptest.ResponseRecorder) {
	t.Helper()
	var op map[string]any
	for _, item := range raw["paths"].(map[string]any) {
		for _, o := range item.(map[string]any) {
			if m, ok := o.(map[string]any); ok && m["operationId"] == operationID {
				op = m
			}
		}
	}
	if op == nil {
		t.Fatalf("operation %s not in spec", operationID)
	}
	resp, ok := op["responses"].(map[string]any)[strconv.Itoa(rec.Code)].(map[string]any)
	if !ok {
		t.Errorf("%s: status %d not documented", operationID, rec.Code)
		return
	}
	resp = resolve(raw, resp)
	for name := range asMap(resp["headers"]) {
		if rec.Header().Get(name) == "" {
			t.Errorf("%s: documented header %s missing", operationID, name)
		}
	}
	mt, _, _ := mime.ParseMediaType(rec.Header().Get("Content-Type"))
	media, ok := asMap(resp["content"])[mt].(map[string]any)
	if !ok {
		t.Errorf("%s %d: content type %q not documented", operationID, rec.Code, mt)
		return
	}
	var body any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Errorf("%s: body is not JSON: %v", operationID, err)
		return
	}
	for _, e := range validate(raw, media["schema"].(map[string]any), body, "body") {
		t.Errorf("%s %d: %s", operationID, rec.Code, e)
	}
}

func asMap(v any) map[string]any { m, _ := v.(map[string]any); return m }

func TestValidatorCatchesDrift(t *testing.T) {
	_, raw := loadSpec(t)
	schema := map[string]any{"$ref": "#/components/schemas/Account"}
	b := New(Options{Seed: 3})
	good, _ := json.Marshal(b.Accounts("")[0])
	var v map[string]any
	_ = json.Unmarshal(good, &v)
	if errs := validate(raw, schema, v, "account"); len(errs) != 0 {
		t.Fatalf("valid account rejected: %v", errs)
	}
	tests := map[string]func(m map[string]any){
		"extra property":   func(m map[string]any) { m["overdraftLimit"] = "100.00" },
		"missing required": func(m map[string]any) { delete(m, "iban") },
		"bad pattern":      func(m map[string]any) { m["accountId"] = "acc_1" },
		"bad enum":         func(m map[string]any) { m["status"] = "Frozen" },
		"nested":           func(m map[string]any) { m["balance"] = map[string]any{"amount": 12, "currency": "GBP"} },
		"bad date-time":    func(m map[string]any) { m["openedAt"] = "yesterday" },
	}
	for name, mut := range tests {
		var m map[string]any
		_ = json.Unmarshal(good, &m)
		mut(m)
		if errs := validate(raw, schema, m, "account"); len(errs) == 0 {
			t.Errorf("%s: not detected", name)
		}
	}
}
