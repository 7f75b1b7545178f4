package importer

import (
	"bytes"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/bulwarkapi/bulwark/internal/inventory/shape"

	"github.com/bulwarkapi/bulwark/internal/event"
)

// Access log limits.
const (
	// timeLocalLayout is nginx's $time_local (Apache's %t).
	timeLocalLayout = "02/Jan/2006:15:04:05 -0700"
	// maxRequestTimeSeconds: a $request_time beyond a day is not a request
	// time but some other trailing number.
	maxRequestTimeSeconds = 86400
)

// combined is one parsed combined-format line. Its byte slices point into
// the line.
type combined struct {
	addr, user, timeRaw, request []byte
	status                       int
	bytes                        int64
	latencyMS                    float64
}

// parseCombined parses
//
//	$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" [extra...]
//
// The referer and user agent may be missing (the common log format).
// Quoted fields may hold backslash-escaped quotes. Of the extra fields the
// first decimal with a fraction (or rt=, request_time=) is taken for
// $request_time, in seconds.
func parseCombined(b []byte) (c combined, reason string) {
	i := bytes.IndexByte(b, ' ')
	if i <= 0 {
		return c, "no remote address"
	}
	c.addr = b[:i]
	open := bytes.IndexByte(b[i:], '[')
	if open < 0 {
		return c, "no [time]"
	}
	open += i
	// Between the address and '[': ident, then the user (which may hold
	// spaces).
	mid := bytes.TrimSpace(b[i:open])
	if sp := bytes.IndexByte(mid, ' '); sp >= 0 {
		c.user = bytes.TrimSpace(mid[sp+1:])
	}
	end := bytes.IndexByte(b[open:], ']')
	if end < 0 {
		return c, "no [time]"
	}
	end += open
	c.timeRaw = b[open+1 : end]
	i = skipSpaces(b, end+1)
	if i >= len(b) || b[i] != '"' {
		return c, "no quoted request"
	}
	start := i
	var ok bool
	if c.request, i, ok = quoted(b, start); ok {
		c.status, i, ok = statusAt(b, i)
	}
	if !ok {
		// An unescaped quote inside the request: the request ends at the
		// first quote followed by a status.
		if c.request, c.status, i, ok = requestByStatus(b, start); !ok {
			return c, "no request and status"
		}
	}
	i = skipSpaces(b, i)
	tok, next := b[i:], len(b)
	if sp := bytes.IndexByte(tok, ' '); sp >= 0 {
		tok, next = tok[:sp], i+sp
	}
	switch {
	case len(tok) == 0 || string(tok) == "-":
	case digitsOnly(tok) && len(tok) <= 18:
		c.bytes, _ = strconv.ParseInt(string(tok), 10, 64)
	default:
		return c, "invalid body_bytes_sent"
	}
	// Referer, user agent, extra fields.
	for i = skipSpaces(b, next); i < len(b); i = skipSpaces(b, i) {
		if b[i] == '"' {
			if _, i, ok = quoted(b, i); !ok {
				break // an unterminated trailing field is of no use
			}
			continue
		}
		j := bytes.IndexByte(b[i:], ' ')
		if j < 0 {
			j = len(b) - i
		}
		if c.latencyMS == 0 {
			c.latencyMS = requestTime(b[i : i+j])
		}
		i += j
	}
	return c, ""
}

// skipSpaces returns the index of the first non-space byte from i.
func skipSpaces(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
		i++
	}
	return i
}

// quoted reads a quoted field at b[i] == '"', honouring backslash escapes,
// and returns its raw contents and the index past the closing quote.
func quoted(b []byte, i int) ([]byte, int, bool) {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return b[i+1 : j], j + 1, true
		}
	}
	return nil, len(b), false
}

// statusAt reads " NNN" followed by a space or the end at b[i:].
func statusAt(b []byte, i int) (int, int, bool) {
	i = skipSpaces(b, i)
	if i+3 > len(b) || (i+3 < len(b) && b[i+3] != ' ') || !digitsOnly(b[i:i+3]) {
		return 0, i, false
	}
	return int(b[i]-'0')*100 + int(b[i+1]-'0')*10 + int(b[i+2]-'0'), i + 3, true
}

// requestByStatus finds the request of a line whose request holds an
// unescaped quote: it ends at the first quote after start followed by a
// status.
func requestByStatus(b []byte, start int) ([]byte, int, int, bool) {
	for j := start + 1; j < len(b); j++ {
		if b[j] != '"' || j+1 >= len(b) || b[j+1] != ' ' {
			continue
		}
		if status, i, ok := statusAt(b, j+1); ok {
			return b[start+1 : j], status, i, true
		}
	}
	return nil, 0, 0, false
}

// digitsOnly reports whether b is non-empty ASCII digits.
func digitsOnly(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

// requestTime reads a $request_time in seconds from an extra field ("0.123",
// "rt=0.123", "request_time=0.123") as milliseconds, or 0.
func requestTime(tok []byte) float64 {
	if k := bytes.IndexByte(tok, '='); k >= 0 {
		if key := string(tok[:k]); key != "rt" && key != "request_time" {
			return 0
		}
		tok = tok[k+1:]
	}
	if bytes.IndexByte(tok, '.') < 0 || len(tok) > 20 || shape.GuessType(string(tok)) != shape.TypeNumber {
		return 0
	}
	s, err := strconv.ParseFloat(string(tok), 64)
	if err != nil || s < 0 || s > maxRequestTimeSeconds {
		return 0
	}
	return math.Round(s*1e6) / 1e3 // microsecond precision, in ms
}

// unescapeLog undoes the escaping of a logged field: \" \\ and nginx's
// \xHH.
func unescapeLog(b []byte) string {
	if bytes.IndexByte(b, '\\') < 0 {
		return string(b)
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c != '\\' || i+1 >= len(b) {
			out = append(out, c)
			continue
		}
		i++
		switch b[i] {
		case 'x':
			if i+2 < len(b) {
				if v, err := strconv.ParseUint(string(b[i+1:i+3]), 16, 8); err == nil {
					out = append(out, byte(v))
					i += 2
					continue
				}
			}
			out = append(out, '\\', 'x')
		default:
			out = append(out, b[i])
		}
	}
	return string(out)
}

// target is a parsed request target.
type target struct {
	host, path string
	query      []pair
}

// parseRequestLine splits "METHOD target [HTTP/x.y]" and parses the
// target: origin form ("/p?q") or absolute form ("http://h/p?q").
func parseRequestLine(line string) (method string, t target, reason string) {
	method, rest, ok := strings.Cut(line, " ")
	if !ok || !methodLike(method) {
		return "", t, "malformed request line"
	}
	// The target may hold raw spaces (logged unescaped); the protocol is
	// the last word when it is one.
	tgt := rest
	if i := strings.LastIndexByte(rest, ' '); i >= 0 {
		if !strings.HasPrefix(rest[i+1:], "HTTP/") {
			return "", t, "malformed request line"
		}
		tgt = rest[:i]
	}
	t, reason = parseTarget(tgt)
	return method, t, reason
}

// parseTarget parses a path or URL with its query.
func parseTarget(tgt string) (target, string) {
	var t target
	switch {
	case strings.HasPrefix(tgt, "/"):
		tgt, _, _ = strings.Cut(tgt, "#")
		p, q, _ := strings.Cut(tgt, "?")
		t.path, t.query = cleanPath(p), splitQuery(q)
	case hasHTTPScheme(tgt):
		u, err := url.Parse(tgt)
		if err != nil || u.Host == "" {
			return t, "unparseable URL"
		}
		t.host, t.path, t.query = strings.ToLower(u.Host), cleanPath(u.EscapedPath()), splitQuery(u.RawQuery)
	default:
		return t, "request target is not a path"
	}
	return t, ""
}

// hasHTTPScheme reports whether s starts with http:// or https://.
func hasHTTPScheme(s string) bool {
	l := strings.ToLower(s[:min(len(s), 8)])
	return strings.HasPrefix(l, "http://") || strings.HasPrefix(l, "https://")
}

// timeCache remembers the last parsed timestamp: consecutive log lines
// mostly share their second.
type timeCache struct {
	raw string
	t   time.Time
}

// parse parses a $time_local.
func (tc *timeCache) parse(raw []byte) (time.Time, bool) {
	if string(raw) == tc.raw && tc.raw != "" {
		return tc.t, true
	}
	t, ok := parseTimeLocal(raw)
	if !ok || !saneTime(t) {
		return time.Time{}, false
	}
	tc.raw, tc.t = string(raw), t
	return t, true
}

// months are the month abbreviations of $time_local.
const months = "JanFebMarAprMayJunJulAugSepOctNovDec"

// parseTimeLocal parses "02/Jan/2006:15:04:05 -0700" into UTC, several
// times faster than time.Parse: it is most of the cost of a log line.
func parseTimeLocal(b []byte) (time.Time, bool) {
	if len(b) != len(timeLocalLayout) || b[2] != '/' || b[6] != '/' || b[11] != ':' || b[14] != ':' ||
		b[17] != ':' || b[20] != ' ' || (b[21] != '+' && b[21] != '-') {
		return time.Time{}, false
	}
	num := func(s []byte) int {
		n := 0
		for _, c := range s {
			if c < '0' || c > '9' {
				return -1
			}
			n = n*10 + int(c-'0')
		}
		return n
	}
	m := strings.Index(months, string(b[3:6]))
	day, year, hour, minute, sec := num(b[0:2]), num(b[7:11]), num(b[12:14]), num(b[15:17]), num(b[18:20])
	offH, offM := num(b[22:24]), num(b[24:26])
	if m < 0 || m%3 != 0 || day < 1 || year < 0 || hour > 23 || minute > 59 || sec > 59 || hour < 0 || minute < 0 ||
		sec < 0 || offH < 0 || offH > 23 || offM < 0 || offM > 59 {
		return time.Time{}, false
	}
	t := time.Date(year, time.Month(m/3+1), day, hour, minute, sec, 0, time.UTC)
	if t.Day() != day { // 31/Feb
		return time.Time{}, false
	}
	off := time.Duration(offH)*time.Hour + time.Duration(offM)*time.Minute
	if b[21] == '-' {
		off = -off
	}
	return t.Add(-off), true
}

// nginxLine makes the exchange of combined-format line n.
func (im *importer) nginxLine(n int, line []byte) (event.Exchange, string) {
	c, reason := parseCombined(line)
	if reason != "" {
		return event.Exchange{}, reason
	}
	t, ok := im.times.parse(c.timeRaw)
	if !ok {
		return event.Exchange{}, "unparseable [time]"
	}
	method, tgt, reason := parseRequestLine(unescapeLog(c.request))
	if reason != "" {
		return event.Exchange{}, reason
	}
	x := event.Exchange{
		Time:          t,
		Source:        SourceAccessLog,
		API:           im.o.API,
		Host:          tgt.host,
		Method:        method,
		Path:          tgt.path,
		Status:        c.status,
		LatencyMS:     c.latencyMS,
		Client:        string(c.addr),
		ResponseBytes: c.bytes,
		Params:        pairParams(tgt.query, "query"),
	}
	logCredentials(&x, unescapeLog(c.user), tgt.query)
	x.ID = digest(SourceAccessLog, strconv.Itoa(n), x.Client, string(c.timeRaw), x.Method, x.Host,
		x.Path, paramKey(x.Params), strconv.Itoa(x.Status), strconv.FormatInt(x.ResponseBytes, 10))
	return x, ""
}

// logCredentials sets what an access log tells of authentication: a
// $remote_user is Basic; credentials in the query. Otherwise Auth stays ""
// (unknown): logs do not record the Authorization header.
func logCredentials(x *event.Exchange, user string, query []pair) {
	if s := userSubject(user); s != "" {
		x.Auth, x.Subject = event.AuthBasic, s
		return
	}
	if c, ok := fromQuery(query); ok {
		x.Auth, x.Subject = c.auth, c.subject
	}
}
