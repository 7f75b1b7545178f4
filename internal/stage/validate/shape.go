package validate

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"sort"
	"strconv"
	"unicode/utf8"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/valyala/fastjson"
)

// shape is what a set of schemas declares about an object, merged
// conservatively: a property declared by any of them (directly or through
// allOf, oneOf, anyOf) is declared.
type shape struct {
	props map[string][]*openapi3.Schema
	// additional are additionalProperties schemas: a map whose keys are free.
	additional []*openapi3.Schema
	// free is true when nothing is declared (a bare `type: object`, `{}`),
	// or when a oneOf/anyOf branch declares nothing: no property can be
	// called undocumented.
	free bool
}

// shapeOf merges the declarations of schemas. The shape of a single schema
// is cached: response walks meet the same schema for every array item.
func (s *shared) shapeOf(schemas []*openapi3.Schema) *shape {
	if len(schemas) == 1 {
		if v, ok := s.shapes.Load(schemas[0]); ok {
			return v.(*shape)
		}
	}
	sh := &shape{props: map[string][]*openapi3.Schema{}}
	seen := map[*openapi3.Schema]bool{}
	for _, sc := range schemas {
		collectShape(sh, sc, seen, 0)
	}
	if len(sh.props) == 0 && len(sh.additional) == 0 {
		sh.free = true
	}
	if len(schemas) == 1 {
		s.shapes.Store(schemas[0], sh)
	}
	return sh
}

func collectShape(sh *shape, s *openapi3.Schema, seen map[*openapi3.Schema]bool, depth int) {
	if s == nil || seen[s] || depth > maxSchemaDepth {
		return
	}
	seen[s] = true
	for name, ref := range s.Properties {
		if ref != nil && ref.Value != nil {
			sh.props[name] = append(sh.props[name], ref.Value)
		}
	}
	if ref := s.AdditionalProperties.Schema; ref != nil && ref.Value != nil {
		sh.additional = append(sh.additional, ref.Value)
	}
	for _, ref := range s.AllOf {
		if ref != nil {
			collectShape(sh, ref.Value, seen, depth+1)
		}
	}
	for _, l := range []openapi3.SchemaRefs{s.OneOf, s.AnyOf} {
		for _, ref := range l {
			if ref == nil || ref.Value == nil {
				continue
			}
			branch := &shape{props: map[string][]*openapi3.Schema{}}
			collectShape(branch, ref.Value, map[*openapi3.Schema]bool{}, depth+1)
			if len(branch.props) == 0 && len(branch.additional) == 0 && branch.objectish(ref.Value) {
				sh.free = true
			}
			for k, v := range branch.props {
				sh.props[k] = append(sh.props[k], v...)
			}
			sh.additional = append(sh.additional, branch.additional...)
			sh.free = sh.free || branch.free
		}
	}
}

// objectish reports whether a schema with no declared properties may
// describe an object (so it stands for "any object").
func (*shape) objectish(s *openapi3.Schema) bool {
	return s.Type == nil || len(*s.Type) == 0 || s.Type.Includes(openapi3.TypeObject)
}

// itemsOf merges the item schemas of array schemas.
func itemsOf(schemas []*openapi3.Schema) []*openapi3.Schema {
	var out []*openapi3.Schema
	seen := map[*openapi3.Schema]bool{}
	var walk func(s *openapi3.Schema, depth int)
	walk = func(s *openapi3.Schema, depth int) {
		if s == nil || seen[s] || depth > maxSchemaDepth {
			return
		}
		seen[s] = true
		if s.Items != nil && s.Items.Value != nil {
			out = append(out, s.Items.Value)
		}
		for _, l := range []openapi3.SchemaRefs{s.AllOf, s.OneOf, s.AnyOf} {
			for _, r := range l {
				if r != nil {
					walk(r.Value, depth+1)
				}
			}
		}
	}
	for _, s := range schemas {
		walk(s, 0)
	}
	return out
}

func itoa(i int) string { return strconv.Itoa(i) }

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// object is a JSON object that keeps its member order, so a response with
// members stripped is re-encoded as the upstream wrote it, minus those.
type object struct{ members []member }

type member struct {
	key string
	val any
}

// errTrailing says a JSON document had data after its value.
var errTrailing = errors.New("data after the JSON value")

// decodeOrdered decodes one JSON value into objects, []any, string,
// json.Number, bool and nil.
func decodeOrdered(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := readValue(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errTrailing
	}
	return v, nil
}

func readValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return tok, nil
	}
	switch d {
	case '{':
		o := &object{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return nil, err
			}
			k, _ := kt.(string)
			v, err := readValue(dec)
			if err != nil {
				return nil, err
			}
			o.members = append(o.members, member{k, v})
		}
		if _, err := dec.Token(); err != nil {
			return nil, err
		}
		return o, nil
	case '[':
		arr := []any{}
		for dec.More() {
			v, err := readValue(dec)
			if err != nil {
				return nil, err
			}
			arr = append(arr, v)
		}
		if _, err := dec.Token(); err != nil {
			return nil, err
		}
		return arr, nil
	}
	return nil, errors.New("unexpected delimiter")
}

// encodeOrdered writes a value decoded by decodeOrdered back as JSON.
func encodeOrdered(buf *bytes.Buffer, v any) error {
	switch t := v.(type) {
	case *object:
		buf.WriteByte('{')
		for i, m := range t.members {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := encodeString(buf, m.key); err != nil {
				return err
			}
			buf.WriteByte(':')
			if err := encodeOrdered(buf, m.val); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
	case []any:
		buf.WriteByte('[')
		for i, e := range t {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := encodeOrdered(buf, e); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
	case string:
		return encodeString(buf, t)
	case json.Number:
		buf.WriteString(t.String())
	case bool:
		buf.WriteString(strconv.FormatBool(t))
	case nil:
		buf.WriteString("null")
	default:
		return errors.New("unexpected JSON value")
	}
	return nil
}

func encodeString(buf *bytes.Buffer, s string) error {
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		return err
	}
	buf.Truncate(buf.Len() - 1) // Encode's newline
	return nil
}

// decodeJSONAny decodes exactly one JSON value, numbers as json.Number,
// into the values encoding/json gives an any (maps, slices, strings,
// bools, nil). It parses with fastjson, pooled, several times faster than
// encoding/json's reflection on the response path; FuzzDecodeJSONAny
// holds it to encoding/json's result on every input both accept.
func decodeJSONAny(data []byte) (any, error) {
	// fastjson's parser is lenient (01, 1., NaN); its validator is as
	// strict as encoding/json. Invalid JSON goes to encoding/json for its
	// error, and so does invalid UTF-8, which encoding/json replaces with
	// U+FFFD in strings: rare, and both decoders then always agree.
	if fastjson.ValidateBytes(data) != nil || !utf8.Valid(data) || needsStd(data) {
		return decodeJSONStd(data)
	}
	p := anyParsers.Get()
	defer anyParsers.Put(p)
	v, err := p.ParseBytes(data)
	if err != nil {
		return decodeJSONStd(data)
	}
	return fastAny(v), nil
}

// needsStd reports what fastjson and encoding/json treat differently, so
// that such bodies go to encoding/json: an escaped UTF-16 surrogate
// (\uD800-\uDFFF: fastjson keeps a lone one as written, encoding/json
// makes it U+FFFD) and a raw control character (fastjson's validator
// lets some through inside strings).
func needsStd(data []byte) bool {
	for i := 0; i < len(data); i++ {
		switch c := data[i]; {
		case c < 0x20 && c != '\t' && c != '\n' && c != '\r':
			return true
		case c == '\\' && i+2 < len(data) && data[i+1] == 'u' && (data[i+2] == 'd' || data[i+2] == 'D'):
			return true
		case c == '\\':
			i++ // an escaped character is never the start of an escape
		}
	}
	return false
}

// anyParsers are reused by decodeJSONAny (a fastjson.Parser is not safe
// for concurrent use; its values live until the next parse).
var anyParsers fastjson.ParserPool

// fastAny copies a parsed value into plain Go values.
func fastAny(v *fastjson.Value) any {
	switch v.Type() {
	case fastjson.TypeObject:
		o, _ := v.Object()
		m := make(map[string]any, o.Len())
		o.Visit(func(k []byte, c *fastjson.Value) { m[string(k)] = fastAny(c) })
		return m
	case fastjson.TypeArray:
		a, _ := v.Array()
		out := make([]any, len(a))
		for i, c := range a {
			out[i] = fastAny(c)
		}
		return out
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		return string(b)
	case fastjson.TypeNumber:
		return json.Number(v.MarshalTo(nil))
	case fastjson.TypeTrue:
		return true
	case fastjson.TypeFalse:
		return false
	default:
		return nil
	}
}

// decodeJSONStd is decodeJSONAny with encoding/json.
func decodeJSONStd(data []byte) (any, error) {
	var v any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errTrailing
	}
	return v, nil
}
