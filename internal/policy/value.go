package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"reflect"
	"strconv"

	"github.com/bulwarkapi/bulwark/internal/pseudo"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
)

// MaxBodyBytes is the largest body decoded for expressions. A larger body
// is null: decoding costs memory and time proportional to its size on
// every request, and authorization ids live in small bodies. Expressions
// that need the body therefore fail (closed) on a larger one.
const MaxBodyBytes = 1 << 20

// HashID returns the hex SHA-256 of v truncated to 16 bytes: what an object
// decision records on the exchange, so detectors can correlate object ids
// without the audit log ever holding one.
func HashID(v string) string { return pseudo.Of(v) }

// jsonValue decodes data as one JSON value for CEL, or null when data is
// empty, larger than MaxBodyBytes, or not exactly one JSON value. The
// Content-Type is deliberately not consulted: an upstream may parse JSON
// whatever the header says, so a rule must not be bypassed by changing it.
func jsonValue(data []byte) ref.Val {
	v, ok := decodeJSON(data)
	if !ok {
		return types.NullValue
	}
	return types.DefaultTypeAdapter.NativeToValue(v)
}

// decodeJSON decodes one JSON value. Numbers become int64 when integral
// and within range, float64 otherwise, so CEL sees ints for ids and
// amounts without a fraction (CEL compares int and double across types).
func decodeJSON(data []byte) (any, bool) {
	if len(data) == 0 || len(data) > MaxBodyBytes {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, false
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, false // trailing data: not one JSON value
	}
	v, ok := convertNumbers(v)
	return v, ok
}

// convertNumbers replaces json.Number in v, in place. It fails on a number
// out of float64 range.
func convertNumbers(v any) (any, bool) {
	switch t := v.(type) {
	case json.Number:
		return number(t)
	case map[string]any:
		for k, e := range t {
			c, ok := convertNumbers(e)
			if !ok {
				return nil, false
			}
			t[k] = c
		}
	case []any:
		for i, e := range t {
			c, ok := convertNumbers(e)
			if !ok {
				return nil, false
			}
			t[i] = c
		}
	}
	return v, true
}

func number(n json.Number) (any, bool) {
	if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		return i, true
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || math.IsInf(f, 0) {
		return nil, false
	}
	if f == math.Trunc(f) && f >= -(1<<63) && f < 1<<63 {
		return int64(f), true // 1e3, 10.0
	}
	return f, true
}

// lazyMap is a CEL map(string, dyn) whose values are computed on first
// access, so that an expression reading request.method never reads or
// decodes the body. Operations on the whole map (iteration, equality,
// size, conversion) compute every value.
type lazyMap struct {
	fns   map[string]func() ref.Val
	vals  map[string]ref.Val
	whole traits.Mapper
}

var _ traits.Mapper = (*lazyMap)(nil)

func newLazyMap(fns map[string]func() ref.Val) *lazyMap {
	return &lazyMap{fns: fns, vals: make(map[string]ref.Val, len(fns))}
}

func (m *lazyMap) get(k string) (ref.Val, bool) {
	if v, ok := m.vals[k]; ok {
		return v, true
	}
	fn, ok := m.fns[k]
	if !ok {
		return nil, false
	}
	v := fn()
	m.vals[k] = v
	return v, true
}

func (m *lazyMap) materialize() traits.Mapper {
	if m.whole == nil {
		all := make(map[ref.Val]ref.Val, len(m.fns))
		for k := range m.fns {
			v, _ := m.get(k)
			all[types.String(k)] = v
		}
		m.whole = types.NewRefValMap(types.DefaultTypeAdapter, all)
	}
	return m.whole
}

// Find implements traits.Mapper.
func (m *lazyMap) Find(key ref.Val) (ref.Val, bool) {
	k, ok := key.(types.String)
	if !ok {
		if types.IsUnknownOrError(key) {
			return key, false
		}
		return nil, false
	}
	return m.get(string(k))
}

// Get implements traits.Indexer.
func (m *lazyMap) Get(key ref.Val) ref.Val {
	v, found := m.Find(key)
	if found {
		return v
	}
	if v != nil {
		return v
	}
	return types.NewErr("no such key: %v", key)
}

// Contains implements traits.Container.
func (m *lazyMap) Contains(key ref.Val) ref.Val {
	k, ok := key.(types.String)
	if !ok {
		return types.False
	}
	_, found := m.fns[string(k)]
	return types.Bool(found)
}

// Size implements traits.Sizer.
func (m *lazyMap) Size() ref.Val { return types.Int(len(m.fns)) }

// Iterator implements traits.Iterable.
func (m *lazyMap) Iterator() traits.Iterator { return m.materialize().Iterator() }

// ConvertToNative implements ref.Val.
func (m *lazyMap) ConvertToNative(t reflect.Type) (any, error) {
	return m.materialize().ConvertToNative(t)
}

// ConvertToType implements ref.Val.
func (m *lazyMap) ConvertToType(t ref.Type) ref.Val {
	if t == types.MapType {
		return m
	}
	if t == types.TypeType {
		return types.MapType
	}
	return m.materialize().ConvertToType(t)
}

// Equal implements ref.Val.
func (m *lazyMap) Equal(other ref.Val) ref.Val { return m.materialize().Equal(other) }

// Type implements ref.Val.
func (m *lazyMap) Type() ref.Type { return types.MapType }

// Value implements ref.Val.
func (m *lazyMap) Value() any { return m.materialize().Value() }
