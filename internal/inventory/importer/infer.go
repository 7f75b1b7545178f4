package importer

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/url"
	"slices"
	"strings"

	"github.com/bulwarkapi/bulwark/internal/event"
)

// JSON types as Param.Type and schema "type" name them.
const (
	typeString  = "string"
	typeInteger = "integer"
	typeNumber  = "number"
	typeBoolean = "boolean"
	typeArray   = "array"
	typeObject  = "object"
	typeNull    = "null"
)

// Name limits: see nameLike.
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

// inferJSON returns the type-only JSON Schema of body and, when body is an
// object, its top-level properties as body parameters (sorted by name). It
// returns nils when body is not exactly one JSON value. No value is kept.
func inferJSON(body []byte) (map[string]any, []event.Param) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	w := walker{dec: dec, budget: MaxSchemaNodes}
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
		return map[string]any{"type": typeString}, nil
	case json.Number:
		return map[string]any{"type": numberType(string(t))}, nil
	case bool:
		return map[string]any{"type": typeBoolean}, nil
	case nil:
		return map[string]any{"type": typeNull}, nil
	}
	return nil, errSchema
}

// expand reports whether the children of a container at depth are
// described.
func (w *walker) expand(depth int) bool {
	return depth < MaxSchemaDepth && w.budget > 0
}

// object reads an object's members after its '{'.
func (w *walker) object(depth int, top bool) (map[string]any, error) {
	s := map[string]any{"type": typeObject}
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
		named := nameLike(key)
		_, dup := props[key]
		if !w.expand(depth) || dup || (named && len(props) >= MaxSchemaProperties) || (!named && extra != nil) {
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
	s := map[string]any{"type": typeArray}
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
		return typeNumber
	}
	return typeInteger
}

// nameLike reports whether s looks like a property or parameter name
// rather than data used as a key: short, ASCII identifier characters (plus
// "-.$[]:" and a leading "@"), at least one letter and few digits. E-mail
// addresses, numbers, UUIDs and tokens fail.
func nameLike(s string) bool {
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

// guessType is the type a query or form value suggests: integer, number,
// boolean or string.
func guessType(v string) string {
	switch v {
	case "true", "false":
		return typeBoolean
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
		return typeString
	}
	if i == len(v) {
		return typeInteger
	}
	if v[i] == '.' {
		i++
		frac := i
		for i < len(v) && '0' <= v[i] && v[i] <= '9' {
			i++
		}
		if i == frac {
			return typeString
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
			return typeString
		}
	}
	if i != len(v) {
		return typeString
	}
	return typeNumber
}

// pair is one decoded query or form parameter; its value is only looked at,
// never kept.
type pair struct{ name, value string }

// splitQuery decodes at most MaxQueryParams parameters of a query string
// or form body. Undecodable names are dropped; undecodable values are kept
// raw.
func splitQuery(raw string) []pair {
	var out []pair
	for raw != "" && len(out) < MaxQueryParams {
		var part string
		part, raw, _ = strings.Cut(raw, "&")
		if part == "" {
			continue
		}
		name, value, _ := strings.Cut(part, "=")
		n, err := url.QueryUnescape(name)
		if err != nil || n == "" {
			continue
		}
		if v, err := url.QueryUnescape(value); err == nil {
			value = v
		}
		out = append(out, pair{n, value})
	}
	return out
}

// pairParams returns the parameters of pairs sorted by name: a repeated
// name is an array, otherwise the first value's type.
func pairParams(pairs []pair, in string) []event.Param {
	var out []event.Param
	for _, p := range pairs {
		if !nameLike(p.name) {
			continue
		}
		// Linear: at most MaxQueryParams, mostly a handful.
		if i := slices.IndexFunc(out, func(q event.Param) bool { return q.Name == p.name }); i >= 0 {
			out[i].Type = typeArray
			continue
		}
		out = append(out, event.Param{Name: p.name, In: in, Type: guessType(p.value)})
	}
	slices.SortFunc(out, func(a, b event.Param) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// paramKey lists the names of params for an id.
func paramKey(ps []event.Param) string {
	var b strings.Builder
	for _, p := range ps {
		b.WriteString(p.In)
		b.WriteByte(':')
		b.WriteString(p.Name)
		b.WriteByte(',')
	}
	return b.String()
}

// isJSONBody reports whether a body of this media type (lower case) is
// JSON: the type says so, or it is absent and the body starts like JSON.
func isJSONBody(mime string, body []byte) bool {
	if strings.Contains(mime, "json") {
		return true
	}
	if mime != "" {
		return false
	}
	b := bytes.TrimLeft(body, " \t\r\n")
	return len(b) > 0 && (b[0] == '{' || b[0] == '[')
}

// isTextBody reports whether a body of this media type (lower case) is
// worth classifying: text, JSON, XML, forms, or an unknown type.
func isTextBody(mime string) bool {
	if mime == "" || strings.HasPrefix(mime, "text/") {
		return true
	}
	for _, s := range []string{"json", "xml", "x-www-form-urlencoded", "javascript", "graphql", "yaml", "csv"} {
		if strings.Contains(mime, s) {
			return true
		}
	}
	return false
}

// mediaType is the lower-case media type of a Content-Type, without
// parameters.
func mediaType(ct string) string {
	ct, _, _ = strings.Cut(ct, ";")
	return strings.ToLower(strings.TrimSpace(ct))
}
