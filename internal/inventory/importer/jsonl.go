package importer

import (
	"cmp"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/bulwarkapi/bulwark/internal/inventory/shape"

	"github.com/bulwarkapi/bulwark/internal/event"
)

// Field names accepted in JSON lines, compared without case, in order of
// preference.
var (
	jsonTimeKeys   = []string{"time", "timestamp", "@timestamp"}
	jsonMethodKeys = []string{"method", "request_method"}
	// The raw forms that keep the query come first.
	jsonPathKeys         = []string{"request_uri", "url", "path", "uri"}
	jsonHostKeys         = []string{"host", "http_host"}
	jsonStatusKeys       = []string{"status", "status_code"}
	jsonClientKeys       = []string{"client", "remote_addr", "client_ip"}
	jsonBytesKeys        = []string{"bytes_sent", "body_bytes_sent", "response_bytes"}
	jsonRequestBytesKeys = []string{"request_length", "request_bytes"}
	jsonMillisKeys       = []string{"latency_ms", "duration_ms"}
	jsonTimeLayouts      = []string{time.RFC3339Nano, timeLocalLayout, "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999"}
)

// Unix timestamp magnitudes: a number above these is in milliseconds,
// microseconds or nanoseconds rather than seconds (1e11 seconds is the year
// 5138).
const (
	unixMillisAbove = 1e11
	unixMicrosAbove = 1e14
	unixNanosAbove  = 1e17
)

// jsonFields are a line's members by lower-case name.
type jsonFields map[string]json.RawMessage

// newJSONFields indexes m by lower-case key. When keys differ only in
// case, the lower-case one wins, then the smallest.
func newJSONFields(m map[string]json.RawMessage) jsonFields {
	f := make(jsonFields, len(m))
	from := make(map[string]string, len(m))
	for k, v := range m {
		lk := strings.ToLower(k)
		if prev, ok := from[lk]; ok && (prev == lk || (k != lk && prev < k)) {
			continue
		}
		f[lk], from[lk] = v, k
	}
	return f
}

// get returns the first member present (and not null) of names.
func (f jsonFields) get(names []string) (json.RawMessage, bool) {
	for _, n := range names {
		if v, ok := f[n]; ok && string(v) != "null" {
			return v, true
		}
	}
	return nil, false
}

// str returns the first member of names as a string (a number as its
// text).
func (f jsonFields) str(names ...string) string {
	raw, ok := f.get(names)
	if !ok {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	return ""
}

// num returns the first member of names as a finite number (a numeric
// string too).
func (f jsonFields) num(names ...string) (float64, bool) {
	raw, ok := f.get(names)
	if !ok {
		return 0, false
	}
	var v float64
	if json.Unmarshal(raw, &v) != nil {
		var s string
		if json.Unmarshal(raw, &s) != nil || shape.GuessType(s) == shape.TypeString || shape.GuessType(s) == shape.TypeBoolean {
			return 0, false
		}
		if v, ok = parseFloat(s); !ok {
			return 0, false
		}
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, false
	}
	return v, true
}

// parseFloat parses a decimal.
func parseFloat(s string) (float64, bool) {
	v, err := strconv.ParseFloat(s, 64)
	return v, err == nil
}

// jsonLine makes the exchange of JSON line n.
func (im *importer) jsonLine(n int, line []byte) (event.Exchange, string) {
	var m map[string]json.RawMessage
	if json.Unmarshal(line, &m) != nil || m == nil {
		return event.Exchange{}, "not a JSON object"
	}
	f := newJSONFields(m)
	where := "line " + strconv.Itoa(n)
	method, rawTarget := f.str(jsonMethodKeys...), f.str(jsonPathKeys...)
	if method == "" || rawTarget == "" {
		// nginx's escape=json logs often carry only $request.
		if m2, t2, ok := strings.Cut(f.str("request"), " "); ok {
			t2, _, _ = strings.Cut(t2, " ")
			method, rawTarget = cmp.Or(method, m2), cmp.Or(rawTarget, t2)
		}
	}
	if method == "" {
		return event.Exchange{}, "no method"
	}
	if !methodLike(method) {
		return event.Exchange{}, "invalid method"
	}
	if rawTarget == "" {
		return event.Exchange{}, "no path"
	}
	tgt, reason := parseTarget(rawTarget)
	if reason != "" {
		return event.Exchange{}, reason
	}
	x := event.Exchange{
		Source: SourceAccessLog,
		API:    im.o.API,
		Host:   tgt.host,
		Method: method,
		Path:   tgt.path,
		Client: f.str(jsonClientKeys...),
		Params: pairParams(tgt.query, "query"),
	}
	if h := f.str(jsonHostKeys...); h != "" && len(h) <= 255 {
		x.Host = strings.ToLower(h)
	}
	if len(x.Client) > 255 {
		x.Client = ""
	}
	if s, ok := f.num(jsonStatusKeys...); ok && s >= 0 && s <= 999 && s == math.Trunc(s) {
		x.Status = int(s)
	}
	if ms, ok := f.num(jsonMillisKeys...); ok && ms >= 0 && ms <= maxRequestTimeSeconds*1e3 {
		x.LatencyMS = ms
	} else if s, ok := f.num("request_time"); ok && s >= 0 && s <= maxRequestTimeSeconds {
		x.LatencyMS = math.Round(s*1e6) / 1e3
	}
	if b, ok := f.num(jsonBytesKeys...); ok && b >= 0 && b < 1<<53 {
		x.ResponseBytes = int64(b)
	}
	if b, ok := f.num(jsonRequestBytesKeys...); ok && b >= 0 && b < 1<<53 {
		x.RequestBytes = int64(b)
	}
	if _, present := f.get(jsonTimeKeys); present {
		t, ok := jsonTime(f)
		if !ok || !saneTime(t) {
			t = time.Time{}
			im.st.problem(where, "unparseable time; time left zero")
		}
		x.Time = t
	}
	logCredentials(&x, f.str("remote_user"), tgt.query)
	x.ID = digest(SourceAccessLog, strconv.Itoa(n), x.Client, f.str(jsonTimeKeys...), x.Method, x.Host,
		x.Path, paramKey(x.Params), strconv.Itoa(x.Status), strconv.FormatInt(x.ResponseBytes, 10))
	return x, ""
}

// jsonTime reads the time of a line: an RFC 3339 (or $time_local) string,
// or a Unix time in seconds (milli-, micro- or nanoseconds by magnitude).
func jsonTime(f jsonFields) (time.Time, bool) {
	raw, _ := f.get(jsonTimeKeys)
	var s string
	if json.Unmarshal(raw, &s) == nil {
		for _, layout := range jsonTimeLayouts {
			if t, err := time.Parse(layout, s); err == nil {
				return t.UTC(), true
			}
		}
	}
	v, ok := f.num(jsonTimeKeys...)
	if !ok {
		return time.Time{}, false
	}
	return unixTime(v)
}

// unixTime converts a Unix timestamp of any usual unit, rounded to the
// microsecond (float seconds carry no more).
func unixTime(v float64) (time.Time, bool) {
	switch {
	case !(v > 0) || v >= 1e19:
		return time.Time{}, false
	case v > unixNanosAbove:
		v /= 1e9
	case v > unixMicrosAbove:
		v /= 1e6
	case v > unixMillisAbove:
		v /= 1e3
	}
	sec := math.Floor(v)
	usec := math.Round((v - sec) * 1e6)
	return time.Unix(int64(sec), int64(usec)*1e3).UTC(), true
}
