// Package shape infers the type-only shape of JSON bodies (a JSON Schema
// fragment without values) and finds the object ids a body carries, for
// the inventory (learned request and response schemas, body parameters)
// and the detectors (ids returned to a caller). It keeps no value: only
// types, property names that look like names, and hashes of ids.
package shape

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"

	"github.com/bulwarkapi/bulwark/internal/event"
)

// Bounds of an inferred schema.
const (
	// MaxDepth is how many levels of a JSON body a schema describes;
	// deeper values are typed but not expanded. Real payload shapes rarely
	// nest deeper, and the bound keeps schemas of hostile bodies small.
	MaxDepth = 6
	// MaxProperties is how many properties of one JSON object a schema
	// keeps (and how many body parameters are recorded); the rest of a wide
	// object (usually a map keyed by data) is dropped.
	MaxProperties = 200
	// MaxNodes bounds the nodes of one inferred schema, so that depth
	// times width cannot make a 1 MiB body into a multi-MiB event.
	MaxNodes = 2000
)

// JSON types as Param.Type and schema "type" name them.
const (
	TypeString  = "string"
	TypeInteger = "integer"
	TypeNumber  = "number"
	TypeBoolean = "boolean"
	TypeArray   = "array"
	TypeObject  = "object"
	TypeNull    = "null"
)

// Name limits: see NameLike.
const (
	// maxNameBytes: a property or parameter name longer than this is data
	// (a key of a map keyed by content), not a name.
	maxNameBytes = 64
	// maxNameDigits: names hold few digits ("address2", "sha256"); ids,
	// phone numbers and UUIDs used as keys hold many.
	maxNameDigits = 4
)

// errSchema is a body that is not exactly one JSON value.
var errSchema = errors.New("not one JSON value")

// Infer returns the type-only JSON Schema of body and, when body is an
// object, its top-level properties as body parameters (sorted by name). It
// returns nils when body is not exactly one JSON value. No value is kept.
func Infer(body []byte) (map[string]any, []event.Param) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	w := walker{dec: dec, budget: MaxNodes}
	s, err := w.value(1, true)
	if err != nil {
		return nil, nil
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, nil // trailing data
	}
	slices.SortFunc(w.params, func(a, b event.Param) int { return strings.Compare(a.Name, b.Name) })
	return s, w.params
}

// walker infers a schema from a token stream.
type walker struct {
	dec    *json.Decoder
	budget int // schema nodes still allowed
	params []event.Param
}

// value reads one value at depth (the body is depth 1) and returns its
// schema.
func (w *walker) value(depth int, top bool) (map[string]any, error) {
	tok, err := w.dec.Token()
	if err != nil {
		return nil, err
	}
	w.budget--
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			return w.object(depth, top)
		case '[':
			return w.array(depth)
		}
		return nil, errSchema
	case string:
		return map[string]any{"type": TypeString}, nil
	case json.Number:
		return map[string]any{"type": numberType(string(t))}, nil
	case bool:
		return map[string]any{"type": TypeBoolean}, nil
	case nil:
		return map[string]any{"type": TypeNull}, nil
	}
	return nil, errSchema
}

// expand reports whether the children of a container at depth are
// described.
func (w *walker) expand(depth int) bool {
	return depth < MaxDepth && w.budget > 0
}

// object reads an object's members after its '{'.
func (w *walker) object(depth int, top bool) (map[string]any, error) {
	s := map[string]any{"type": TypeObject}
	var props, extra map[string]any
	for w.dec.More() {
		tok, err := w.dec.Token()
		if err != nil {
			return nil, err
		}
		key, ok := tok.(string)
		if !ok {
			return nil, errSchema
		}
		named := NameLike(key)
		_, dup := props[key]
		if !w.expand(depth) || dup || (named && len(props) >= MaxProperties) || (!named && extra != nil) {
			if err := skipValue(w.dec); err != nil {
				return nil, err
			}
			continue
		}
		child, err := w.value(depth+1, false)
		if err != nil {
			return nil, err
		}
		if !named {
			extra = child // a map keyed by data: one schema for its values
			continue
		}
		if props == nil {
			props = make(map[string]any)
		}
		props[key] = child
		if top {
			w.params = append(w.params, event.Param{Name: key, In: "body", Type: child["type"].(string)})
		}
	}
	if _, err := w.dec.Token(); err != nil { // '}'
		return nil, err
	}
	if props != nil {
		s["properties"] = props
	}
	if extra != nil {
		s["additionalProperties"] = extra
	}
	return s, nil
}

// array reads an array's elements after its '['; the first element stands
// for all.
func (w *walker) array(depth int) (map[string]any, error) {
	s := map[string]any{"type": TypeArray}
	first := true
	for w.dec.More() {
		if !first || !w.expand(depth) {
			if err := skipValue(w.dec); err != nil {
				return nil, err
			}
			continue
		}
		first = false
		items, err := w.value(depth+1, false)
		if err != nil {
			return nil, err
		}
		s["items"] = items
	}
	if _, err := w.dec.Token(); err != nil { // ']'
		return nil, err
	}
	return s, nil
}

// skipValue reads past one value without keeping it.
func skipValue(dec *json.Decoder) error {
	depth := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{', '[':
				depth++
			default:
				depth--
			}
		}
		if depth == 0 {
			return nil
		}
	}
}

// numberType is "integer" for a JSON number without fraction or exponent,
// else "number".
func numberType(n string) string {
	if strings.ContainsAny(n, ".eE") {
		return TypeNumber
	}
	return TypeInteger
}

// NameLike reports whether s looks like a property or parameter name
// rather than data used as a key: short, ASCII identifier characters (plus
// "-.$[]:" and a leading "@"), at least one letter and few digits. E-mail
// addresses, numbers, UUIDs and tokens fail.
func NameLike(s string) bool {
	if len(s) == 0 || len(s) > maxNameBytes {
		return false
	}
	letters, digits := 0, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
			letters++
		case '0' <= c && c <= '9':
			digits++
		case c == '_', c == '-', c == '.', c == '$', c == '[', c == ']', c == ':':
		case c == '@' && i == 0: // JSON-LD "@id", "@type"
		default:
			return false
		}
	}
	return letters > 0 && digits <= maxNameDigits
}

// GuessType is the type a query or form value suggests: integer, number,
// boolean or string.
func GuessType(v string) string {
	switch v {
	case "true", "false":
		return TypeBoolean
	}
	i := 0
	if i < len(v) && v[i] == '-' {
		i++
	}
	start := i
	for i < len(v) && '0' <= v[i] && v[i] <= '9' {
		i++
	}
	if i == start || len(v) > 40 {
		return TypeString
	}
	if i == len(v) {
		return TypeInteger
	}
	if v[i] == '.' {
		i++
		frac := i
		for i < len(v) && '0' <= v[i] && v[i] <= '9' {
			i++
		}
		if i == frac {
			return TypeString
		}
	}
	if i < len(v) && (v[i] == 'e' || v[i] == 'E') {
		i++
		if i < len(v) && (v[i] == '+' || v[i] == '-') {
			i++
		}
		exp := i
		for i < len(v) && '0' <= v[i] && v[i] <= '9' {
			i++
		}
		if i == exp {
			return TypeString
		}
	}
	if i != len(v) {
		return TypeString
	}
	return TypeNumber
}

// Depth is the number of levels of a schema Infer returned.
func Depth(s map[string]any) int {
	d := 0
	if props, ok := s["properties"].(map[string]any); ok {
		for _, c := range props {
			d = max(d, Depth(c.(map[string]any)))
		}
	}
	if items, ok := s["items"].(map[string]any); ok {
		d = max(d, Depth(items))
	}
	return d + 1
}

// Nodes counts the nodes of a schema Infer returned.
func Nodes(s map[string]any) int {
	n := 1
	if props, ok := s["properties"].(map[string]any); ok {
		for _, c := range props {
			n += Nodes(c.(map[string]any))
		}
	}
	for _, k := range []string{"items", "additionalProperties"} {
		if c, ok := s[k].(map[string]any); ok {
			n += Nodes(c)
		}
	}
	return n
}
