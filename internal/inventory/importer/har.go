package importer

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/bulwarkapi/bulwark/internal/inventory/shape"

	"github.com/bulwarkapi/bulwark/internal/event"
)

// HAR 1.2 (http://www.softwareishard.com/blog/har-12-spec/), the parts an
// exchange needs. Numbers are float64 because exporters write 12.0 for
// sizes and statuses.
type (
	harEntry struct {
		StartedDateTime string      `json:"startedDateTime"`
		Time            float64     `json:"time"`
		Request         harRequest  `json:"request"`
		Response        harResponse `json:"response"`
	}
	harRequest struct {
		Method   string       `json:"method"`
		URL      string       `json:"url"`
		Headers  []harNV      `json:"headers"`
		PostData *harPostData `json:"postData"`
		BodySize float64      `json:"bodySize"`
	}
	harPostData struct {
		MimeType string  `json:"mimeType"`
		Text     string  `json:"text"`
		Params   []harNV `json:"params"`
	}
	harResponse struct {
		Status   float64    `json:"status"`
		Headers  []harNV    `json:"headers"`
		Content  harContent `json:"content"`
		BodySize float64    `json:"bodySize"`
	}
	harContent struct {
		Size     float64 `json:"size"`
		MimeType string  `json:"mimeType"`
		Text     string  `json:"text"`
		Encoding string  `json:"encoding"`
	}
	harNV struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	}
)

// errTooLarge is a HAR entry or token beyond its byte limit.
var errTooLarge = errors.New("too large")

// capReader counts what a JSON decoder reads and fails a read beyond limit
// bytes past the last mark, so that one value cannot take unbounded
// memory. The decoder reads only while its current value is incomplete, so
// a value within the limit never fails.
type capReader struct {
	r            io.Reader
	n, end, size int64
}

// mark starts a new value of at most size bytes.
func (c *capReader) mark() { c.end = c.n + c.size }

func (c *capReader) Read(p []byte) (int, error) {
	room := c.end - c.n
	if room <= 0 {
		return 0, errTooLarge
	}
	if int64(len(p)) > room {
		p = p[:room]
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// harDoc walks a HAR document token by token, decoding one entry at a time.
type harDoc struct {
	im  *importer
	dec *json.Decoder
	cr  *capReader
}

// har imports a HAR document; entryLimit bounds one entry's bytes.
func (im *importer) har(r io.Reader, entryLimit int64) error {
	cr := &capReader{r: r, size: entryLimit}
	d := harDoc{im: im, dec: json.NewDecoder(cr), cr: cr}
	if err := d.delim('{'); err != nil {
		return fmt.Errorf("importer: not a HAR document: %w", err)
	}
	found := false
	for d.dec.More() {
		key, err := d.key()
		if err != nil {
			return err
		}
		if key != "log" {
			if err := d.skip(); err != nil {
				return err
			}
			continue
		}
		found = true
		if err := d.log(); err != nil {
			return err
		}
	}
	if err := d.delim('}'); err != nil {
		return err
	}
	if !found {
		return errors.New("importer: not a HAR document: no log")
	}
	return nil
}

// token reads one token of at most the entry limit.
func (d *harDoc) token() (json.Token, error) {
	d.cr.mark()
	tok, err := d.dec.Token()
	if errors.Is(err, errTooLarge) {
		return nil, fmt.Errorf("importer: HAR token larger than %d bytes: %w", d.cr.size, err)
	}
	if err != nil {
		return nil, fmt.Errorf("importer: HAR: %w", err)
	}
	return tok, nil
}

// delim reads the delimiter want.
func (d *harDoc) delim(want json.Delim) error {
	tok, err := d.token()
	if err != nil {
		return err
	}
	if got, ok := tok.(json.Delim); !ok || got != want {
		return fmt.Errorf("importer: HAR: got %v, want %v", tok, want)
	}
	return nil
}

// key reads an object key.
func (d *harDoc) key() (string, error) {
	tok, err := d.token()
	if err != nil {
		return "", err
	}
	k, ok := tok.(string)
	if !ok {
		return "", fmt.Errorf("importer: HAR: got %v, want a key", tok)
	}
	return k, nil
}

// skip reads past one value, token by token.
func (d *harDoc) skip() error {
	depth := 0
	for {
		tok, err := d.token()
		if err != nil {
			return err
		}
		if dl, ok := tok.(json.Delim); ok {
			if dl == '{' || dl == '[' {
				depth++
			} else {
				depth--
			}
		}
		if depth == 0 {
			return nil
		}
	}
}

// log reads the "log" object.
func (d *harDoc) log() error {
	if err := d.delim('{'); err != nil {
		return err
	}
	for d.dec.More() {
		key, err := d.key()
		if err != nil {
			return err
		}
		if key != "entries" {
			if err := d.skip(); err != nil {
				return err
			}
			continue
		}
		if err := d.entries(); err != nil {
			return err
		}
	}
	return d.delim('}')
}

// entries reads the entries array, importing each entry.
func (d *harDoc) entries() error {
	if err := d.delim('['); err != nil {
		return err
	}
	im := d.im
	for d.dec.More() {
		if err := im.ctx.Err(); err != nil {
			return fmt.Errorf("importer: entry %d: %w", im.st.Read+1, err)
		}
		im.st.Read++
		n := im.st.Read
		where := "entry " + strconv.Itoa(n)
		var e harEntry
		d.cr.mark()
		if err := d.dec.Decode(&e); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) { // the entry was read whole; go on
				im.st.skip(where, fmt.Sprintf("field %s: unexpected JSON %s", te.Field, te.Value))
				continue
			}
			if errors.Is(err, errTooLarge) {
				return fmt.Errorf("importer: %s: larger than %d bytes: %w", where, d.cr.size, err)
			}
			return fmt.Errorf("importer: %s: %w", where, err)
		}
		x, reason := im.harExchange(n, &e)
		if reason != "" {
			im.st.skip(where, reason)
			continue
		}
		if err := im.deliver(where, x); err != nil {
			return err
		}
	}
	return d.delim(']')
}

// harTimeLayouts are the startedDateTime forms exporters write: ISO 8601
// with or without a colon in the offset.
var harTimeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999Z0700"}

// harExchange makes the exchange of entry n, or says why it is skipped.
func (im *importer) harExchange(n int, e *harEntry) (event.Exchange, string) {
	req, resp := &e.Request, &e.Response
	if !methodLike(req.Method) {
		return event.Exchange{}, "invalid method"
	}
	u, err := url.Parse(req.URL)
	if err != nil {
		return event.Exchange{}, "unparseable URL"
	}
	if s := strings.ToLower(u.Scheme); s != "http" && s != "https" {
		return event.Exchange{}, "not an HTTP URL"
	}
	if u.Host == "" {
		return event.Exchange{}, "URL without host"
	}
	status := sizeOf(resp.Status)
	if status <= 0 {
		return event.Exchange{}, "no response (status 0)"
	}
	if status > 999 {
		return event.Exchange{}, "invalid status"
	}
	x := event.Exchange{
		Source:      SourceHAR,
		API:         im.o.API,
		Host:        strings.ToLower(u.Host),
		Method:      req.Method,
		Path:        cleanPath(u.EscapedPath()),
		Status:      int(status),
		ClientClass: event.ClientExternal,
	}
	if e.Time > 0 && !math.IsInf(e.Time, 0) {
		x.LatencyMS = e.Time
	}
	for _, layout := range harTimeLayouts {
		if t, err := time.Parse(layout, e.StartedDateTime); err == nil && saneTime(t) {
			x.Time = t.UTC()
			break
		}
	}
	if x.Time.IsZero() {
		im.st.problem("entry "+strconv.Itoa(n), "unparseable startedDateTime; time left zero")
	}

	query := splitQuery(u.RawQuery)
	x.Params = pairParams(query, "query")
	c := harCredentials(req.Headers, query)
	x.Auth, x.Subject = c.auth, c.subject

	im.harRequestBody(&x, req)
	im.harResponseBody(&x, resp)
	x.ID = digest(SourceHAR, strconv.Itoa(n), e.StartedDateTime, x.Method, x.Host, x.Path,
		paramKey(x.Params), strconv.Itoa(x.Status))
	return x, ""
}

// harCredentials finds a request's credentials: the Authorization header,
// an API key header, then the query; none otherwise.
func harCredentials(headers []harNV, query []pair) credentials {
	apiKey := false
	for _, h := range headers {
		if strings.EqualFold(h.Name, "Authorization") {
			if c, ok := fromAuthorization(h.Value); ok {
				return c
			}
		}
		if apiKeyName(h.Name) && h.Value != "" {
			apiKey = true
		}
	}
	if apiKey {
		return credentials{auth: event.AuthAPIKey}
	}
	if c, ok := fromQuery(query); ok {
		return c
	}
	return credentials{auth: event.AuthNone}
}

// harRequestBody sets the request size, body parameters, schema and
// classes.
func (im *importer) harRequestBody(x *event.Exchange, req *harRequest) {
	x.RequestBytes = sizeOf(req.BodySize)
	pd := req.PostData
	if pd == nil {
		return
	}
	if x.RequestBytes <= 0 {
		x.RequestBytes = int64(len(pd.Text))
	}
	if len(pd.Text) > im.o.MaxBodyBytes {
		return
	}
	mime := mediaType(pd.MimeType)
	switch {
	case pd.Text != "" && isJSONBody(mime, []byte(pd.Text)):
		body := []byte(pd.Text)
		var params []event.Param
		x.RequestSchema, params = shape.Infer(body)
		x.Params = append(x.Params, params...)
		x.RequestClasses = im.classify(body)
		return
	case pd.Text != "" && strings.Contains(mime, "x-www-form-urlencoded"):
		x.Params = append(x.Params, pairParams(splitQuery(pd.Text), "body")...)
	case pd.Text == "" && len(pd.Params) > 0: // multipart, or a form without text
		pairs := make([]pair, 0, min(len(pd.Params), MaxQueryParams))
		for _, p := range pd.Params[:min(len(pd.Params), MaxQueryParams)] {
			pairs = append(pairs, pair{p.Name, p.Value})
		}
		x.Params = append(x.Params, pairParams(pairs, "body")...)
	}
	if pd.Text != "" && isTextBody(mime) {
		x.RequestClasses = im.classify([]byte(pd.Text))
	}
}

// harResponseBody sets the response size, schema and classes.
func (im *importer) harResponseBody(x *event.Exchange, resp *harResponse) {
	c := &resp.Content
	var body []byte
	size := int64(len(c.Text))
	if strings.EqualFold(c.Encoding, "base64") {
		size = int64(base64.StdEncoding.DecodedLen(len(c.Text)))
		if size <= int64(im.o.MaxBodyBytes) {
			b, err := base64.StdEncoding.DecodeString(c.Text)
			if err != nil {
				b, err = base64.RawStdEncoding.DecodeString(c.Text)
			}
			if err == nil {
				body, size = b, int64(len(b))
			}
		}
	} else if len(c.Text) <= im.o.MaxBodyBytes {
		body = []byte(c.Text)
	}
	switch {
	case sizeOf(resp.BodySize) > 0:
		x.ResponseBytes = sizeOf(resp.BodySize)
	case sizeOf(c.Size) > 0:
		x.ResponseBytes = sizeOf(c.Size)
	default:
		x.ResponseBytes = size
	}
	if len(body) == 0 || len(body) > im.o.MaxBodyBytes {
		return
	}
	mime := mediaType(c.MimeType)
	if isJSONBody(mime, body) {
		x.ResponseSchema, _ = shape.Infer(body)
	}
	if isTextBody(mime) || isJSONBody(mime, body) {
		x.ResponseClasses = im.classify(body)
	}
}

// sizeOf converts a HAR number to a non-negative integer (-1 means
// unknown), 0 for anything out of range.
func sizeOf(f float64) int64 {
	if !(f >= 0 && f < 1<<53) { // also false for NaN
		return 0
	}
	return int64(f)
}

// methodLike reports whether m is an HTTP method token of reasonable
// length: an upper-case letter, then upper-case letters, digits, '-' and
// '_'.
func methodLike(m string) bool {
	if m == "" || len(m) > 32 || m[0] < 'A' || m[0] > 'Z' {
		return false
	}
	for i := 0; i < len(m); i++ {
		c := m[i]
		if !('A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// cleanPath makes a request path printable ASCII: "" becomes "/", bytes
// outside '!'..'~' are percent-encoded (as on the wire).
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	clean := true
	for i := 0; i < len(p); i++ {
		if p[i] <= ' ' || p[i] > '~' {
			clean = false
			break
		}
	}
	if clean {
		return p
	}
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(p) + 8)
	for i := 0; i < len(p); i++ {
		if c := p[i]; c <= ' ' || c > '~' {
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}
