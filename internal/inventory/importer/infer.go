package importer

import (
	"bytes"
	"net/url"
	"slices"
	"strings"

	"github.com/bulwarkapi/bulwark/internal/inventory/shape"

	"github.com/bulwarkapi/bulwark/internal/event"
)

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
		if !shape.NameLike(p.name) {
			continue
		}
		// Linear: at most MaxQueryParams, mostly a handful.
		if i := slices.IndexFunc(out, func(q event.Param) bool { return q.Name == p.name }); i >= 0 {
			out[i].Type = shape.TypeArray
			continue
		}
		out = append(out, event.Param{Name: p.name, In: in, Type: shape.GuessType(p.value)})
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
