package shape

import (
	"strings"

	"github.com/valyala/fastjson"
)

// Bounds of IDs.
const (
	// MaxIDs is how many ids IDs returns for one body: a page of a list
	// holds tens of resources; more is an export, not ownership.
	MaxIDs = 256
	// MaxIDDepth is how deep in objects ids are read: the resource
	// objects of a body ({"id"}, {"data":[{"id"}]},
	// {"Data":{"Account":[{"AccountId"}]}}), not the references nested in
	// them (a merchant inside a transaction). Arrays add no depth.
	MaxIDDepth = 3
	// maxIDBytes: a longer string is a document, not an id.
	maxIDBytes = 128
)

// parsers are reused: IDs runs on the response path. fastjson parses a
// body several times faster than encoding/json's token stream and
// allocates nothing once warm, which is what makes reading the ids of
// every authenticated JSON response affordable.
var parsers fastjson.ParserPool

// IDs returns hash(v) for every distinct object id in a JSON body: the
// string or integer value of an id-named property ("id", "uuid",
// "accountId", "account_id", "AccountID", ...) of an object at most
// MaxIDDepth objects deep, at most MaxIDs of them, in document order.
// Properties that name request plumbing rather than an object
// ("requestId", "traceId", "client_id", ...) are skipped. A body that is
// not exactly one JSON value has none. Values are only hashed, never kept.
func IDs(body []byte, hash func(string) string) []string {
	p := parsers.Get()
	defer parsers.Put(p)
	v, err := p.ParseBytes(body)
	if err != nil {
		return nil
	}
	c := idCollector{hash: hash}
	c.walk(v, 0)
	return c.out
}

type idCollector struct {
	hash func(string) string
	out  []string
	seen map[string]struct{}
	buf  []byte
}

func (c *idCollector) walk(v *fastjson.Value, depth int) {
	if len(c.out) >= MaxIDs {
		return
	}
	switch v.Type() {
	case fastjson.TypeArray:
		a, _ := v.Array()
		for _, e := range a {
			c.walk(e, depth)
			if len(c.out) >= MaxIDs {
				return
			}
		}
	case fastjson.TypeObject:
		if depth >= MaxIDDepth {
			return
		}
		o, _ := v.Object()
		o.Visit(func(key []byte, m *fastjson.Value) {
			if len(c.out) >= MaxIDs {
				return
			}
			switch m.Type() {
			case fastjson.TypeObject, fastjson.TypeArray:
				c.walk(m, depth+1)
			case fastjson.TypeString, fastjson.TypeNumber:
				// Every id name ends in d or D ("id", "uuid", "accountId"):
				// the test spares the other keys a string conversion.
				if len(key) > 0 && key[len(key)-1]|0x20 == 'd' && IDKey(string(key)) {
					c.add(m)
				}
			}
		})
	}
}

func (c *idCollector) add(v *fastjson.Value) {
	var s string
	if v.Type() == fastjson.TypeString {
		b, _ := v.StringBytes()
		if len(b) == 0 || len(b) > maxIDBytes {
			return
		}
		s = string(b)
	} else {
		c.buf = v.MarshalTo(c.buf[:0])
		if len(c.buf) > 40 || strings.ContainsAny(string(c.buf), ".eE") {
			return // a measure, not an id
		}
		s = string(c.buf)
	}
	if c.seen == nil {
		c.seen = make(map[string]struct{})
	}
	if _, dup := c.seen[s]; dup {
		return
	}
	c.seen[s] = struct{}{}
	c.out = append(c.out, c.hash(s))
}

// plumbing are the stems of id-named properties that identify a request,
// a message or a client application rather than an object a caller owns.
var plumbing = map[string]bool{
	"request": true, "trace": true, "span": true, "correlation": true, "idempotency": true,
	"session": true, "nonce": true, "client": true, "message": true, "event": true,
	"interaction": true, "parent": true, "x-request": true, "x-correlation": true,
}

// IDKey reports whether a property name names an object id: "id", "uuid",
// "_id", "@id", or a stem followed by "_id", "-id", "_uuid", "Id", "ID"
// or "Uuid" ("accountId", "account_id", "AccountID"), unless the stem is
// request plumbing (see plumbing).
func IDKey(k string) bool {
	if len(k) > 64 {
		return false
	}
	switch strings.ToLower(k) {
	case "id", "uuid", "_id", "@id", "guid":
		return true
	}
	var stem string
	switch {
	case hasSuffixFold(k, "_id") || hasSuffixFold(k, "-id"):
		stem = k[:len(k)-3]
	case hasSuffixFold(k, "_uuid"):
		stem = k[:len(k)-5]
	case len(k) > 4 && strings.HasSuffix(k, "Uuid") && isLowerOrDigit(k[len(k)-5]):
		stem = k[:len(k)-4]
	case len(k) > 2 && (strings.HasSuffix(k, "Id") || strings.HasSuffix(k, "ID")) && isLowerOrDigit(k[len(k)-3]):
		stem = k[:len(k)-2]
	default:
		return false
	}
	return stem != "" && !plumbing[strings.ToLower(stem)]
}

func hasSuffixFold(s, suffix string) bool {
	return len(s) > len(suffix) && strings.EqualFold(s[len(s)-len(suffix):], suffix)
}

func isLowerOrDigit(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }
