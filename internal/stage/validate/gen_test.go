package validate

import (
	"fmt"
	"regexp/syntax"
	"sort"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

// gen builds real-looking values from schemas: enum values, examples that
// validate, name-aware samples (currencies, amounts, countries, names),
// format-aware values (uuid, date-time, email) and strings generated from
// patterns. Every candidate is checked against its schema before it is used.
type gen struct {
	s        *shared
	response bool     // include readOnly (responses) rather than writeOnly (requests)
	misses   []string // values no candidate satisfied, for the report
}

const genMaxDepth = 12

func (g *gen) opts() []openapi3.SchemaValidationOption {
	o := append([]openapi3.SchemaValidationOption{}, g.s.schemaOpts...)
	if g.response {
		return append(o, openapi3.VisitAsResponse())
	}
	return append(o, openapi3.VisitAsRequest())
}

func (g *gen) fits(s *openapi3.Schema, v any) bool {
	return s.VisitJSON(v, g.opts()...) == nil
}

// value generates a value for schema s found under property name.
func (g *gen) value(s *openapi3.Schema, name string, depth int) any {
	if s == nil {
		return "sample"
	}
	if depth > genMaxDepth {
		return nil
	}
	if len(s.Enum) > 0 {
		return s.Enum[0]
	}
	if len(s.AllOf) > 0 {
		return g.allOf(s, name, depth)
	}
	if len(s.OneOf) > 0 || len(s.AnyOf) > 0 {
		branches := append(append(openapi3.SchemaRefs{}, s.OneOf...), s.AnyOf...)
		for _, b := range branches {
			if b == nil || b.Value == nil {
				continue
			}
			v := g.value(b.Value, name, depth+1)
			if m, ok := v.(map[string]any); ok && len(s.Properties) > 0 {
				for k, pv := range g.object(s, depth).(map[string]any) {
					m[k] = pv
				}
			}
			if g.fits(s, v) {
				return v
			}
		}
	}
	switch {
	case s.Type.Is(openapi3.TypeObject) || s.Type == nil && len(s.Properties) > 0:
		return g.object(s, depth)
	case s.Type.Is(openapi3.TypeArray):
		n := int(s.MinItems)
		if n == 0 {
			n = 1
		}
		var item *openapi3.Schema
		if s.Items != nil {
			item = s.Items.Value
		}
		arr := make([]any, 0, n)
		for range n {
			arr = append(arr, g.value(item, name, depth+1))
		}
		return arr
	case s.Type.Is(openapi3.TypeInteger):
		return g.number(s, true)
	case s.Type.Is(openapi3.TypeNumber):
		return g.number(s, false)
	case s.Type.Is(openapi3.TypeBoolean):
		return true
	default:
		return g.str(s, name)
	}
}

func (g *gen) allOf(s *openapi3.Schema, name string, depth int) any {
	var merged map[string]any
	var other any
	for _, m := range s.AllOf {
		if m == nil || m.Value == nil {
			continue
		}
		v := g.value(m.Value, name, depth+1)
		if obj, ok := v.(map[string]any); ok {
			if merged == nil {
				merged = map[string]any{}
			}
			for k, pv := range obj {
				merged[k] = pv
			}
		} else if other == nil {
			other = v
		}
	}
	if len(s.Properties) > 0 {
		if merged == nil {
			merged = map[string]any{}
		}
		for k, pv := range g.object(s, depth).(map[string]any) {
			merged[k] = pv
		}
	}
	if merged != nil {
		return merged
	}
	return other
}

// object fills required properties, and optional scalar ones for a
// real-looking body, never readOnly (requests) or writeOnly (responses).
func (g *gen) object(s *openapi3.Schema, depth int) any {
	out := map[string]any{}
	required := map[string]bool{}
	for _, r := range s.Required {
		required[r] = true
	}
	names := make([]string, 0, len(s.Properties))
	for n := range s.Properties {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		ref := s.Properties[n]
		if ref == nil || ref.Value == nil {
			continue
		}
		p := ref.Value
		if !g.response && p.ReadOnly || g.response && p.WriteOnly {
			continue
		}
		scalar := p.Type != nil && (p.Type.Is(openapi3.TypeString) || p.Type.Is(openapi3.TypeInteger) ||
			p.Type.Is(openapi3.TypeNumber) || p.Type.Is(openapi3.TypeBoolean)) && len(p.OneOf)+len(p.AnyOf)+len(p.AllOf) == 0
		if !required[n] && !(scalar && depth < 3) {
			continue
		}
		out[n] = g.value(p, n, depth+1)
	}
	if len(out) == 0 && s.AdditionalProperties.Schema != nil && s.MinProps > 0 {
		out["entry"] = g.value(s.AdditionalProperties.Schema.Value, "entry", depth+1)
	}
	return out
}

func (g *gen) number(s *openapi3.Schema, integer bool) any {
	cands := []float64{}
	if s.Min != nil {
		cands = append(cands, *s.Min, *s.Min+1)
	}
	if s.Max != nil {
		cands = append(cands, *s.Max, *s.Max-1)
	}
	cands = append(cands, 42, 1, 0, 10.5)
	for _, c := range cands {
		var v any = c
		if integer {
			v = int64(c)
		}
		if g.fits(s, v) {
			return v
		}
	}
	g.misses = append(g.misses, "number")
	return 1
}

// samples are name-keyed real-looking strings, tried before generic ones.
var samples = []struct{ word, value string }{
	{"currency", "GBP"}, {"country", "GB"}, {"amount", "10.00"}, {"rate", "1.25"},
	{"iban", "GB82WEST12345698765432"}, {"bic", "NWBKGB2L"}, {"email", "ann.oneil@example.com"},
	{"phone", "+44-2079460123"}, {"postcode", "SW1A 1AA"}, {"townname", "London"},
	{"streetname", "Acacia Avenue"}, {"buildingnumber", "22"}, {"schemename", "UK.OBIE.SortCodeAccountNumber"},
	{"identification", "20000319470104"}, {"secondaryidentification", "0002"}, {"name", "Ann O'Neil"},
	{"reference", "INV-2026-0042"}, {"unstructured", "Rent for March"}, {"ip", "203.0.113.7"},
	{"useragent", "Mozilla/5.0 (X11; Linux x86_64)"}, {"authorization", "Bearer 8f3a29c1d7e40b5a41c07be2a9d3f618"},
	{"interaction", "3f6c1a2e-9b4d-4c8e-a1f2-7d5e6b8c9a01"}, {"idempotency", "b2e9d04f7a1c6e35-0042"},
	{"authdate", "Sun, 10 Sep 2017 19:43:31 UTC"}, {"consentid", "cns_8f3a29c1d7e40b5a"},
	{"accountid", "acc_41c07be2a9d3f618"}, {"paymentid", "pmt_b2e9d04f7a1c6e35"}, {"id", "id_0d5f8a3b2c9e7f14"},
}

func (g *gen) str(s *openapi3.Schema, name string) string {
	var cands []string
	switch s.Format {
	case "uuid":
		cands = append(cands, "3f6c1a2e-9b4d-4c8e-a1f2-7d5e6b8c9a01")
	case "date-time":
		cands = append(cands, "2026-03-28T09:30:00+00:00", "2026-03-28T09:30:00Z")
	case "date":
		cands = append(cands, "2026-03-28")
	case "email":
		cands = append(cands, "ann.oneil@example.com")
	case "uri", "url":
		cands = append(cands, "https://tpp.example.com/callback")
	case "byte":
		cands = append(cands, "aGVsbG8gd29ybGQ=")
	case "ipv4":
		cands = append(cands, "203.0.113.7")
	case "ipv6":
		cands = append(cands, "2001:db8::7")
	}
	if ex, ok := s.Example.(string); ok {
		cands = append(cands, ex)
	}
	lower := strings.ToLower(strings.NewReplacer("-", "", "_", "").Replace(name))
	for _, sm := range samples {
		if strings.Contains(lower, sm.word) {
			cands = append(cands, sm.value)
		}
	}
	if s.Pattern != "" {
		for _, grow := range []int{0, 1, 3, 8} {
			if v, ok := genRegex(s.Pattern, grow); ok {
				cands = append(cands, v)
			}
		}
	}
	base := "Sample " + name
	if name == "" {
		base = "Sample text"
	}
	cands = append(cands, base, "sample", "x")
	for _, c := range cands {
		c = fitLength(s, c)
		if g.fits(s, c) {
			return c
		}
	}
	g.misses = append(g.misses, fmt.Sprintf("%s (pattern %q)", name, s.Pattern))
	return cands[0]
}

// fitLength pads or cuts a candidate without a pattern to the length bounds.
func fitLength(s *openapi3.Schema, c string) string {
	if s.Pattern != "" || len(s.Enum) > 0 || s.Format != "" {
		return c
	}
	for uint64(len(c)) < s.MinLength {
		c += "x"
	}
	if s.MaxLength != nil && uint64(len(c)) > *s.MaxLength {
		c = c[:*s.MaxLength]
	}
	return c
}

// genRegex generates a string matching pattern: the first branch of each
// alternation, optional parts taken `grow` times, classes by a preferred rune.
func genRegex(pattern string, grow int) (string, bool) {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		stripped, ok := stripLookarounds(pattern)
		if !ok {
			return "", false
		}
		if re, err = syntax.Parse(stripped, syntax.Perl); err != nil {
			return "", false
		}
	}
	var b strings.Builder
	emit(re.Simplify(), &b, grow)
	return b.String(), true
}

func emit(re *syntax.Regexp, b *strings.Builder, grow int) {
	switch re.Op {
	case syntax.OpLiteral:
		b.WriteString(string(re.Rune))
	case syntax.OpCharClass:
		b.WriteRune(pickRune(re.Rune))
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		b.WriteByte('a')
	case syntax.OpCapture:
		emit(re.Sub[0], b, grow)
	case syntax.OpConcat:
		for _, s := range re.Sub {
			emit(s, b, grow)
		}
	case syntax.OpAlternate:
		emit(re.Sub[0], b, grow)
	case syntax.OpStar:
		for range grow {
			emit(re.Sub[0], b, grow)
		}
	case syntax.OpPlus:
		for range 1 + grow {
			emit(re.Sub[0], b, grow)
		}
	case syntax.OpQuest:
		if grow > 0 {
			emit(re.Sub[0], b, grow)
		}
	case syntax.OpRepeat:
		n := re.Min
		if grow > 0 && (re.Max < 0 || re.Max > n) {
			n++
		}
		for range n {
			emit(re.Sub[0], b, grow)
		}
	}
}

// pickRune picks a printable rune of a class: a preferred one when the
// class has it, else the middle of its first printable range.
func pickRune(ranges []rune) rune {
	in := func(r rune) bool {
		for i := 0; i+1 < len(ranges); i += 2 {
			if ranges[i] <= r && r <= ranges[i+1] {
				return true
			}
		}
		return false
	}
	for _, r := range "M4ak7" {
		if in(r) {
			return r
		}
	}
	for i := 0; i+1 < len(ranges); i += 2 {
		lo, hi := max(ranges[i], '!'), min(ranges[i+1], '~')
		if lo <= hi {
			return lo + (hi-lo)/2
		}
	}
	if len(ranges) > 0 {
		return ranges[0]
	}
	return 'a'
}
