package inventory

import "sort"

// Bounds of a merged body schema: sampled shapes come from traffic, so a
// hostile or very wide body must not grow an endpoint without limit.
const (
	// maxSchemaDepth bounds nesting; deeper values are recorded as {}.
	maxSchemaDepth = 8
	// maxSchemaProps bounds the properties kept per object.
	maxSchemaProps = 100
	// maxSchemaVariants bounds the alternatives kept when one position
	// has values of different types.
	maxSchemaVariants = 4
)

// JSON Schema keywords the merged shape keeps.
const (
	kwType       = "type"
	kwProperties = "properties"
	kwItems      = "items"
	kwFormat     = "format"
	kwAnyOf      = "anyOf"
)

// Types of JSON values.
const (
	typeObject  = "object"
	typeArray   = "array"
	typeString  = "string"
	typeInteger = "integer"
	typeNumber  = "number"
	typeBoolean = "boolean"
	typeNull    = "null"
)

// schemaType returns the single type of s ("" when it has none or
// several).
func schemaType(s map[string]any) string {
	switch t := s[kwType].(type) {
	case string:
		return t
	case []any:
		if len(t) == 1 {
			if v, ok := t[0].(string); ok {
				return v
			}
		}
	case []string:
		if len(t) == 1 {
			return t[0]
		}
	}
	return ""
}

// normalizeSchema copies a sampled shape into the canonical merged form:
// only type, properties, items, format and anyOf; a type list becomes
// anyOf; bounded in depth, width and variants.
func normalizeSchema(s map[string]any, depth int) map[string]any {
	out := map[string]any{}
	if s == nil || depth >= maxSchemaDepth {
		return out
	}
	var types []string
	switch t := s[kwType].(type) {
	case string:
		types = []string{t}
	case []any:
		for _, v := range t {
			if str, ok := v.(string); ok {
				types = append(types, str)
			}
		}
	case []string:
		types = append(types, t...)
	}
	if len(types) > 1 {
		var variants []any
		for _, ty := range types {
			if len(variants) >= maxSchemaVariants {
				break
			}
			one := map[string]any{kwType: ty}
			copyChildren(one, s, ty, depth)
			variants = append(variants, one)
		}
		out[kwAnyOf] = variants
		return out
	}
	if len(types) == 1 {
		out[kwType] = types[0]
		copyChildren(out, s, types[0], depth)
		return out
	}
	if alts, ok := s[kwAnyOf].([]any); ok {
		var variants []any
		for _, a := range alts {
			if m, ok := a.(map[string]any); ok && len(variants) < maxSchemaVariants {
				variants = append(variants, normalizeSchema(m, depth+1))
			}
		}
		if len(variants) > 0 {
			out[kwAnyOf] = variants
		}
	}
	return out
}

// copyChildren copies the properties, items or format of s that fit type
// ty into out.
func copyChildren(out, s map[string]any, ty string, depth int) {
	switch ty {
	case typeObject:
		if props, ok := s[kwProperties].(map[string]any); ok {
			names := make([]string, 0, len(props))
			for k := range props {
				names = append(names, k)
			}
			sort.Strings(names) // deterministic choice when over the bound
			np := map[string]any{}
			for _, k := range names {
				if len(np) >= maxSchemaProps {
					break
				}
				if m, ok := props[k].(map[string]any); ok {
					np[k] = normalizeSchema(m, depth+1)
				}
			}
			out[kwProperties] = np
		}
	case typeArray:
		if items, ok := s[kwItems].(map[string]any); ok {
			out[kwItems] = normalizeSchema(items, depth+1)
		}
	default:
		if f, ok := s[kwFormat].(string); ok {
			out[kwFormat] = f
		}
	}
}

// mergeSchema merges sampled shape src into canonical dst in place and
// returns dst (a new canonical copy when dst is nil). It allocates only
// for what is new in src.
func mergeSchema(dst, src map[string]any, depth int) map[string]any {
	if src == nil {
		return dst
	}
	if dst == nil {
		return normalizeSchema(src, depth)
	}
	if depth >= maxSchemaDepth {
		return dst
	}
	st, dt := schemaType(src), schemaType(dst)
	if st == "" {
		// Several types (or none) in src: merge each alternative.
		alts, _ := normalizeSchema(src, depth)[kwAnyOf].([]any)
		for _, v := range alts {
			if m, ok := v.(map[string]any); ok && schemaType(m) != "" {
				dst = mergeSchema(dst, m, depth)
			}
		}
		return dst
	}
	if dt == "" {
		alts, _ := dst[kwAnyOf].([]any)
		if len(alts) == 0 {
			// An empty schema ({}, from a bound) accepts anything.
			return dst
		}
		for i, a := range alts {
			am, ok := a.(map[string]any)
			if !ok {
				continue
			}
			if schemaType(am) == st || numeric(schemaType(am), st) {
				alts[i] = mergeSame(am, src, depth)
				return dst
			}
		}
		if len(alts) < maxSchemaVariants {
			dst[kwAnyOf] = append(alts, normalizeSchema(src, depth))
		}
		return dst
	}
	if dt == st || numeric(dt, st) {
		return mergeSame(dst, src, depth)
	}
	alt := map[string]any{}
	for k, v := range dst {
		alt[k] = v
		delete(dst, k)
	}
	dst[kwAnyOf] = []any{alt, normalizeSchema(src, depth)}
	return dst
}

// numeric reports whether a and b are integer and number in some order.
func numeric(a, b string) bool {
	return (a == typeInteger && b == typeNumber) || (a == typeNumber && b == typeInteger)
}

// mergeSame merges src into dst of the same (or a compatible numeric) type.
func mergeSame(dst, src map[string]any, depth int) map[string]any {
	st := schemaType(src)
	switch st {
	case typeObject:
		sp, _ := src[kwProperties].(map[string]any)
		if len(sp) == 0 {
			return dst
		}
		dp, _ := dst[kwProperties].(map[string]any)
		if dp == nil {
			dp = map[string]any{}
			dst[kwProperties] = dp
		}
		for k, v := range sp {
			m, ok := v.(map[string]any)
			if !ok {
				continue
			}
			if cur, ok := dp[k].(map[string]any); ok {
				dp[k] = mergeSchema(cur, m, depth+1)
			} else if len(dp) < maxSchemaProps {
				dp[k] = normalizeSchema(m, depth+1)
			}
		}
	case typeArray:
		si, _ := src[kwItems].(map[string]any)
		if si == nil {
			return dst
		}
		if di, ok := dst[kwItems].(map[string]any); ok {
			dst[kwItems] = mergeSchema(di, si, depth+1)
		} else {
			dst[kwItems] = normalizeSchema(si, depth+1)
		}
	default:
		if numeric(schemaType(dst), st) {
			dst[kwType] = typeNumber
		}
		if f, ok := dst[kwFormat].(string); ok && f != src[kwFormat] {
			delete(dst, kwFormat) // formats disagree: keep the type only
		}
	}
	return dst
}

// copySchema deep-copies a canonical schema.
func copySchema(s map[string]any) map[string]any {
	if s == nil {
		return nil
	}
	out := make(map[string]any, len(s))
	for k, v := range s {
		out[k] = copyValue(v)
	}
	return out
}

func copyValue(v any) any {
	switch t := v.(type) {
	case map[string]any:
		return copySchema(t)
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = copyValue(e)
		}
		return out
	}
	return v
}
