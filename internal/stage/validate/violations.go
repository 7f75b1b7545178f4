package validate

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
)

// segment renders one path token: a declared name, a short array index, or
// "*" for anything that came from the request and not from the spec.
func (s *shared) segment(tok string) string {
	if isIndex(tok) {
		return "[" + tok + "]"
	}
	if _, ok := s.vocab[tok]; ok && len(tok) <= maxNameLen && printableName(tok) {
		return "." + tok
	}
	return ".*"
}

func isIndex(tok string) bool {
	if tok == "" || len(tok) > maxIndexDigits {
		return false
	}
	for i := 0; i < len(tok); i++ {
		if tok[i] < '0' || tok[i] > '9' {
			return false
		}
	}
	return true
}

// printableName reports whether a name is safe in a log line: printable
// ASCII without spaces or quotes.
func printableName(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return s != ""
}

// safeQueryName renders an undeclared query parameter name: a short token
// of letters, digits and _.-[] is shown (it tells the client what to drop
// and cannot carry markup or control characters); anything else is "*".
func safeQueryName(name string) string {
	if name == "" || len(name) > 32 {
		return "*"
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_.-[]", c) >= 0) {
			return "*"
		}
	}
	return name
}

// violation is one contract breach: where, and what kind.
type violation struct{ path, kind string }

// collector gathers violations, deduplicated and bounded.
type collector struct {
	list    []violation
	seen    map[violation]struct{}
	dropped int
}

func (c *collector) add(path, kind string) {
	v := violation{path, kind}
	if _, dup := c.seen[v]; dup {
		return
	}
	if c.seen == nil {
		c.seen = map[violation]struct{}{}
	}
	c.seen[v] = struct{}{}
	if len(c.list) >= maxViolations {
		c.dropped++
		return
	}
	c.list = append(c.list, v)
}

func (c *collector) empty() bool { return len(c.list) == 0 }

// rules renders the violations as "path: kind" strings.
func (c *collector) rules() []string {
	out := make([]string, len(c.list))
	for i, v := range c.list {
		out[i] = clipRule(v.path, ": "+v.kind)
	}
	return out
}

// detail is the client's one-sentence summary, value-free and bounded.
func (c *collector) detail(what string) string {
	n := len(c.list) + c.dropped
	var b strings.Builder
	b.WriteString(what)
	b.WriteString(" ")
	b.WriteString(strconv.Itoa(n))
	if n == 1 {
		b.WriteString(" violation: ")
	} else {
		b.WriteString(" violations: ")
	}
	for i, v := range c.list {
		if i == maxDetailItems {
			fmt.Fprintf(&b, ", and %d more", n-maxDetailItems)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(clipRule(v.path, " ("+v.kind+")"))
	}
	b.WriteString(".")
	return b.String()
}

// clipRule joins path and suffix within maxRuleLen, keeping the path's tail.
func clipRule(path, suffix string) string {
	if len(path)+len(suffix) <= maxRuleLen {
		return path + suffix
	}
	keep := maxRuleLen - len(suffix) - len("…")
	if keep < 1 {
		keep = 1
	}
	return "…" + path[len(path)-keep:] + suffix
}

// collectRequestError turns openapi3filter's errors into violations.
func (s *shared) collectRequestError(c *collector, err error, depth int) {
	if err == nil || depth > maxSchemaDepth {
		return
	}
	switch e := err.(type) {
	case openapi3.MultiError:
		for _, sub := range e {
			s.collectRequestError(c, sub, depth+1)
		}
	case *openapi3filter.RequestError:
		prefix := "request"
		switch {
		case e.Parameter != nil:
			prefix = e.Parameter.In + "." + clipName(e.Parameter.Name)
		case e.RequestBody != nil:
			prefix = "body"
		}
		s.collectCause(c, prefix, e.Err, e.Reason, depth+1)
	case *openapi3filter.SecurityRequirementsError:
		// The authenticate stage owns credentials; the filter runs with a
		// no-op authenticator, so this only appears for undeclared schemes.
	default:
		c.add("request", "invalid")
	}
}

// collectCause classifies the cause of one RequestError or ResponseError.
func (s *shared) collectCause(c *collector, prefix string, cause error, reason string, depth int) {
	var pe *openapi3filter.ParseError
	switch {
	case cause == nil:
		if strings.Contains(reason, "Content-Type") {
			c.add("content-type", "undocumented")
		} else {
			c.add(prefix, "invalid")
		}
	case errors.Is(cause, openapi3filter.ErrInvalidRequired):
		c.add(prefix, "required")
	case errors.Is(cause, openapi3filter.ErrInvalidEmptyValue):
		c.add(prefix, "empty")
	case errors.As(cause, &pe):
		if prefix == "body" {
			c.add(prefix, "malformed")
			return
		}
		path := prefix
		for _, p := range pe.Path() {
			path += s.segment(fmt.Sprint(p))
		}
		c.add(path, "type")
	default:
		s.collectSchema(c, prefix, cause, depth)
	}
}

// collectSchema turns schema errors into violations at their JSON paths.
func (s *shared) collectSchema(c *collector, prefix string, err error, depth int) {
	if err == nil || depth > maxSchemaDepth {
		return
	}
	switch e := err.(type) {
	case openapi3.MultiError:
		for _, sub := range e {
			s.collectSchema(c, prefix, sub, depth+1)
		}
	case *openapi3.SchemaError:
		field := e.SchemaField
		if field == "allOf" || field == "" || field == "$ref" {
			// allOf (and 3.1 wrappers) carry the precise errors inside.
			if subs := subErrors(e); len(subs) > 0 {
				for _, sub := range subs {
					s.collectSchema(c, prefix, sub, depth+1)
				}
				return
			}
		}
		path := prefix
		for _, tok := range e.JSONPointer() {
			path += s.segment(tok)
		}
		kind := field
		switch field {
		case "properties":
			// 3.0: `property "k" is unsupported` at the object's path.
			if k, ok := quoted(e.Reason); ok {
				path += s.segment(k)
			} else {
				path += ".*"
			}
			kind = kindAdditional
		case "additionalProperties", "unevaluatedProperties", "false":
			kind = kindAdditional
		case "":
			kind = "invalid"
		}
		c.add(path, kind)
	default:
		c.add(prefix, "invalid")
	}
}

// subErrors digs the nested errors out of a composed schema error.
func subErrors(e *openapi3.SchemaError) []error {
	err := e.Origin
	for i := 0; err != nil && i < 4; i++ {
		if me, ok := err.(openapi3.MultiError); ok {
			return me
		}
		err = errors.Unwrap(err)
	}
	return nil
}

// quoted returns the first Go-quoted string in s.
func quoted(s string) (string, bool) {
	i := strings.IndexByte(s, '"')
	if i < 0 {
		return "", false
	}
	q, err := strconv.QuotedPrefix(s[i:])
	if err != nil {
		return "", false
	}
	u, err := strconv.Unquote(q)
	return u, err == nil
}

func clipName(n string) string {
	if len(n) > maxNameLen {
		return n[:maxNameLen]
	}
	return n
}
