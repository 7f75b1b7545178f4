package shape

import (
	"encoding/json"
	"strings"
	"testing"
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
			s, ps := Infer([]byte(tt.body))
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

func TestInferJSONLimits(t *testing.T) {
	deep := strings.Repeat(`{"a":[`, 5000) + strings.Repeat(`]}`, 5000)
	s, _ := Infer([]byte(deep))
	if s == nil || Depth(s) != MaxDepth {
		t.Errorf("deep: depth %d, want %d", Depth(s), MaxDepth)
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
	s, ps := Infer([]byte(b.String()))
	if props := s["properties"].(map[string]any); len(props) != MaxProperties || len(ps) != MaxProperties {
		t.Errorf("wide: %d properties, %d params", len(props), len(ps))
	}

	// Width times depth stays within the node budget.
	level := `{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"j":10}`
	for range 4 {
		level = `{"a":` + level + `,"b":` + level + `,"c":` + level + `,"d":` + level + `,"e":` + level + `,"f":` + level + `}`
	}
	s, _ = Infer([]byte(level))
	if n := Nodes(s); n > MaxNodes+1 || n < MaxNodes/2 {
		t.Errorf("bushy: %d nodes, budget %d", n, MaxNodes)
	}
}

func TestGuessType(t *testing.T) {
	for v, want := range map[string]string{
		"10": TypeInteger, "-3": TypeInteger, "007": TypeInteger, "10.5": TypeNumber, "1e3": TypeNumber, "-1.5E-3": TypeNumber,
		"true": TypeBoolean, "false": TypeBoolean, "True": TypeString, "": TypeString, "1.": TypeString, ".5": TypeString,
		"NaN": TypeString, "Inf": TypeString, "0x10": TypeString, "1_000": TypeString, "1e": TypeString, "abc": TypeString,
		strings.Repeat("9", 41): TypeString,
	} {
		if got := GuessType(v); got != want {
			t.Errorf("GuessType(%q) = %s, want %s", v, got, want)
		}
	}
}

func TestNameLike(t *testing.T) {
	for name, want := range map[string]bool{
		"amount": true, "to_iban": true, "x-request-id": true, "@type": true, "filter[status]": true, "address2": true,
		"": false, "alice@example.com": false, "123456": false, "550e8400-e29b-41d4-a716-446655440000": false,
		"a b": false, "größe": false, strings.Repeat("a", 65): false, "a@b": false,
	} {
		if got := NameLike(name); got != want {
			t.Errorf("NameLike(%q) = %v", name, got)
		}
	}
}
