package importer

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkapi/bulwark/internal/event"
)

func TestInferJSON(t *testing.T) {
	tests := []struct {
		name, body string
		schema     string // JSON of the schema; "" for none
		params     string // "name:type,..." of body params
	}{
		{name: "object", body: `{"b":1,"a":"x","c":1.5,"d":true,"e":null,"f":[],"g":{}}`,
			schema: `{"properties":{"a":{"type":"string"},"b":{"type":"integer"},"c":{"type":"number"},"d":{"type":"boolean"},"e":{"type":"null"},"f":{"type":"array"},"g":{"type":"object"}},"type":"object"}`,
			params: "a:string,b:integer,c:number,d:boolean,e:null,f:array,g:object"},
		{name: "array by first element", body: `[{"id":1},{"other":"x"}]`,
			schema: `{"items":{"properties":{"id":{"type":"integer"}},"type":"object"},"type":"array"}`},
		{name: "exponent", body: `{"n":1e3}`, schema: `{"properties":{"n":{"type":"number"}},"type":"object"}`, params: "n:number"},
		{name: "map keyed by data", body: `{"alice@example.com":{"n":1},"bob@example.com":{"m":2},"123456":3,"ok":"x"}`,
			schema: `{"additionalProperties":{"properties":{"n":{"type":"integer"}},"type":"object"},"properties":{"ok":{"type":"string"}},"type":"object"}`,
			params: "ok:string"},
		{name: "duplicate key keeps first", body: `{"a":1,"a":"x"}`, schema: `{"properties":{"a":{"type":"integer"}},"type":"object"}`, params: "a:integer"},
		{name: "scalar", body: `"text"`, schema: `{"type":"string"}`},
		{name: "trailing data", body: `{"a":1} {"b":2}`},
		{name: "truncated", body: `{"a":[1,2`},
		{name: "not json", body: `a=1&b=2`},
		{name: "empty", body: ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ps := inferJSON([]byte(tt.body))
			got := ""
			if s != nil {
				b, _ := json.Marshal(s)
				got = string(b)
			}
			if got != tt.schema {
				t.Errorf("schema %s, want %s", got, tt.schema)
			}
			var pp []string
			for _, p := range ps {
				if p.In != "body" {
					t.Errorf("param %+v not in body", p)
				}
				pp = append(pp, p.Name+":"+p.Type)
			}
			if g := strings.Join(pp, ","); g != tt.params {
				t.Errorf("params %s, want %s", g, tt.params)
			}
		})
	}
}

// schemaDepth is the number of levels of a schema.
func schemaDepth(s map[string]any) int {
	d := 0
	if props, ok := s["properties"].(map[string]any); ok {
		for _, c := range props {
			d = max(d, schemaDepth(c.(map[string]any)))
		}
	}
	if items, ok := s["items"].(map[string]any); ok {
		d = max(d, schemaDepth(items))
	}
	return d + 1
}

// schemaNodes counts the nodes of a schema.
func schemaNodes(s map[string]any) int {
	n := 1
	if props, ok := s["properties"].(map[string]any); ok {
		for _, c := range props {
			n += schemaNodes(c.(map[string]any))
		}
	}
	for _, k := range []string{"items", "additionalProperties"} {
		if c, ok := s[k].(map[string]any); ok {
			n += schemaNodes(c)
		}
	}
	return n
}

func TestInferJSONLimits(t *testing.T) {
	deep := strings.Repeat(`{"a":[`, 5000) + strings.Repeat(`]}`, 5000)
	s, _ := inferJSON([]byte(deep))
	if s == nil || schemaDepth(s) != MaxSchemaDepth {
		t.Errorf("deep: depth %d, want %d", schemaDepth(s), MaxSchemaDepth)
	}

	var b strings.Builder
	b.WriteString("{")
	for i := range 500 {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`"k` + strings.Repeat("x", i%50) + string(rune('a'+i%26)) + string(rune('a'+i/26)) + `":1`)
	}
	b.WriteString("}")
	s, ps := inferJSON([]byte(b.String()))
	if props := s["properties"].(map[string]any); len(props) != MaxSchemaProperties || len(ps) != MaxSchemaProperties {
		t.Errorf("wide: %d properties, %d params", len(props), len(ps))
	}

	// Width times depth stays within the node budget.
	level := `{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"j":10}`
	for range 4 {
		level = `{"a":` + level + `,"b":` + level + `,"c":` + level + `,"d":` + level + `,"e":` + level + `,"f":` + level + `}`
	}
	s, _ = inferJSON([]byte(level))
	if n := schemaNodes(s); n > MaxSchemaNodes+1 || n < MaxSchemaNodes/2 {
		t.Errorf("bushy: %d nodes, budget %d", n, MaxSchemaNodes)
	}
}

func TestGuessType(t *testing.T) {
	for v, want := range map[string]string{
		"10": typeInteger, "-3": typeInteger, "007": typeInteger, "10.5": typeNumber, "1e3": typeNumber, "-1.5E-3": typeNumber,
		"true": typeBoolean, "false": typeBoolean, "True": typeString, "": typeString, "1.": typeString, ".5": typeString,
		"NaN": typeString, "Inf": typeString, "0x10": typeString, "1_000": typeString, "1e": typeString, "abc": typeString,
		strings.Repeat("9", 41): typeString,
	} {
		if got := guessType(v); got != want {
			t.Errorf("guessType(%q) = %s, want %s", v, got, want)
		}
	}
}

func TestNameLike(t *testing.T) {
	for name, want := range map[string]bool{
		"amount": true, "to_iban": true, "x-request-id": true, "@type": true, "filter[status]": true, "address2": true,
		"": false, "alice@example.com": false, "123456": false, "550e8400-e29b-41d4-a716-446655440000": false,
		"a b": false, "größe": false, strings.Repeat("a", 65): false, "a@b": false,
	} {
		if got := nameLike(name); got != want {
			t.Errorf("nameLike(%q) = %v", name, got)
		}
	}
}

func TestQueryParams(t *testing.T) {
	ps := pairParams(splitQuery("b=1&a=x&b=2&flag&alice%40example.com=1&%zz=1&c=%zz&=v&&d=true"), "query")
	var got []string
	for _, p := range ps {
		got = append(got, p.Name+":"+p.Type)
	}
	if g := strings.Join(got, ","); g != "a:string,b:array,c:string,d:boolean,flag:string" {
		t.Errorf("params %s", g)
	}
	if n := len(splitQuery(strings.Repeat("a=1&", 10*MaxQueryParams))); n != MaxQueryParams {
		t.Errorf("%d pairs, want %d", n, MaxQueryParams)
	}
}

func TestCredentials(t *testing.T) {
	const jwtNone = "eyJhbGciOiJub25lIn0.eyJzdWIiOjQyfQ." // {"sub":42}
	tests := []struct {
		value       string
		auth, subj  string
		notPresent  bool
		description string
	}{
		{value: "Bearer " + jwtNone, auth: event.AuthJWT, subj: hashValue("42")},
		{value: "bearer eyJhbGciOiJub25lIn0.bm90IGpzb24.sig", auth: event.AuthJWT},  // payload not JSON
		{value: "Bearer eyJhbGciOiJub25lIn0.eyJpc3MiOiJ4In0.", auth: event.AuthJWT}, // no sub
		{value: "Bearer a..b", auth: event.AuthIntrospection},
		{value: "Bearer 2YotnFZFEjr1zCsicMWpAA", auth: event.AuthIntrospection},
		{value: "Basic dXNlcjpwYXNz", auth: event.AuthBasic, subj: hashValue("user")},
		{value: "Basic !!!", auth: event.AuthBasic},
		{value: `Digest username="u", realm="r"`, auth: event.AuthBasic},
		{value: "ApiKey abc", auth: event.AuthAPIKey},
		{value: jwtNone, auth: event.AuthJWT, subj: hashValue("42")},
		{value: "  ", notPresent: true},
	}
	for _, tt := range tests {
		c, ok := fromAuthorization(tt.value)
		if ok == tt.notPresent || c.auth != tt.auth || c.subject != tt.subj {
			t.Errorf("%q: %+v %v, want %s %s", tt.value, c, ok, tt.auth, tt.subj)
		}
	}
	for _, name := range []string{"X-API-Key", "api-key", "apikey", "API_KEY", "x_api_key"} {
		if !apiKeyName(name) {
			t.Errorf("apiKeyName(%q) = false", name)
		}
	}
	if apiKeyName("key") || apiKeyName("x-api-keys-are-here") {
		t.Error("apiKeyName too broad")
	}
}

func TestJSONLFields(t *testing.T) {
	tests := []struct {
		line   string
		reason string
		check  func(event.Exchange) bool
	}{
		{line: `{"time":1735787045,"method":"GET","path":"/a"}`,
			check: func(x event.Exchange) bool { return x.Time.Equal(time.Unix(1735787045, 0)) && x.Auth == "" }},
		{line: `{"time":1735787045123456,"method":"GET","path":"/a"}`,
			check: func(x event.Exchange) bool { return x.Time.Equal(time.UnixMicro(1735787045123456)) }},
		{line: `{"time":"1735787045","method":"GET","path":"/a"}`,
			check: func(x event.Exchange) bool { return x.Time.Equal(time.Unix(1735787045, 0)) }},
		{line: `{"time":"02/Jan/2025:03:04:05 +0100","method":"GET","path":"/a","status":200.5}`,
			check: func(x event.Exchange) bool {
				return x.Time.Equal(time.Date(2025, 1, 2, 2, 4, 5, 0, time.UTC)) && x.Status == 0
			}},
		{line: `{"Method":"POST","METHOD":"GET","Path":"/a?x=1"}`,
			check: func(x event.Exchange) bool { return x.Method == "GET" && len(x.Params) == 1 }},
		{line: `{"method":"GET","path":"/a","request_time":"0.25"}`, check: func(x event.Exchange) bool { return x.LatencyMS == 250 }},
		{line: `{"method":"GET","path":"/a","request_time":"NaN","status":"x"}`, check: func(x event.Exchange) bool { return x.LatencyMS == 0 && x.Status == 0 }},
		{line: `{"method":"GET","path":"a"}`, reason: "request target is not a path"},
		{line: `{"method":"get it","path":"/a"}`, reason: "invalid method"},
		{line: `{"method":"GET"}`, reason: "no path"},
		{line: `{"path":"/a"}`, reason: "no method"},
		{line: `[1,2]`, reason: "not a JSON object"},
		{line: `null`, reason: "not a JSON object"},
	}
	for _, tt := range tests {
		im := &importer{o: Options{}, st: &Stats{}}
		x, reason := im.jsonLine(1, []byte(tt.line))
		if reason != tt.reason {
			t.Errorf("%s: reason %q, want %q", tt.line, reason, tt.reason)
			continue
		}
		if tt.check != nil && !tt.check(x) {
			t.Errorf("%s: event %+v", tt.line, x)
		}
	}
}
