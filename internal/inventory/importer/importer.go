// Package importer turns recorded traffic — HAR files and web server access
// logs — into exchange events, so that `bulwark inventory import FILE` feeds
// the inventory through the same event path as live traffic.
//
// Three formats are read: HAR 1.2 (browser and proxy exports), the nginx
// "combined" access log format (also Apache's, and the common format without
// its last two fields) and JSON lines (one access-log object per line).
// Gzip-compressed input is decompressed transparently.
//
// Like a gateway's events, imported events hold no raw sensitive values: no
// bodies, no header or query values, no tokens; subjects only as hashes;
// bodies only as type-only JSON Schema fragments, top-level parameter names
// and the data classes the caller's classifier reports. Property and
// parameter names that look like data rather than names (e-mail addresses,
// ids, numbers) are folded into additionalProperties or dropped.
//
// Input is untrusted: lines, HAR entries, bodies, schema depth and width
// and the number of parameters are all bounded, and malformed records are
// skipped and counted rather than failing the import.
package importer

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"time"

	"github.com/bulwarkapi/bulwark/internal/pseudo"

	"github.com/bulwarkapi/bulwark/internal/inventory/shape"

	"github.com/bulwarkapi/bulwark/internal/event"
)

// Format is an input format.
type Format string

// The input formats.
const (
	// FormatHAR is an HTTP Archive (HAR 1.2) document.
	FormatHAR Format = "har"
	// FormatNginx is the nginx combined log format (Apache's is the same),
	// optionally followed by extra fields such as $request_time.
	FormatNginx Format = "nginx"
	// FormatJSONL is one JSON access-log object per line.
	FormatJSONL Format = "jsonl"
	// FormatAuto sniffs the format from the first bytes (see Detect). The
	// empty Format means the same.
	FormatAuto Format = "auto"
)

// Event sources set on imported exchanges.
const (
	// SourceHAR marks an exchange read from a HAR file.
	SourceHAR = "har"
	// SourceAccessLog marks an exchange read from an access log (combined
	// or JSON lines).
	SourceAccessLog = "access_log"
)

// Limits and defaults.
const (
	// DefaultMaxBodyBytes is the default Options.MaxBodyBytes. Schema
	// inference and classification cost time and memory in proportion to a
	// body, and the payloads that shape an API inventory are small; a
	// larger body (a download, an image) is counted but not inspected.
	DefaultMaxBodyBytes = 1 << 20
	// DefaultMaxLineBytes is the default Options.MaxLineBytes. Web servers
	// refuse request lines beyond a few KiB (nginx: 8 KiB by default), so
	// 64 KiB holds any real log line with room for long user agents.
	DefaultMaxLineBytes = 64 << 10
	// MaxLineBytesLimit is the largest Options.MaxLineBytes accepted: the
	// line buffer is allocated at that size up front.
	MaxLineBytesLimit = 16 << 20
	// MaxHAREntryBytes bounds the encoded size of one HAR entry (and of any
	// single token of the document outside the entries). An entry is
	// decoded whole, so this is what bounds memory; browser exports reach a
	// few MiB for an entry with an embedded bundle or image. An import
	// meeting a larger entry stops with an error: a JSON stream cannot be
	// resynchronised past it.
	MaxHAREntryBytes = 64 << 20
	// MaxSchemaDepth, MaxSchemaProperties and MaxSchemaNodes bound the
	// schema inferred from one JSON body: see package shape.
	MaxSchemaDepth      = shape.MaxDepth
	MaxSchemaProperties = shape.MaxProperties
	MaxSchemaNodes      = shape.MaxNodes
	// MaxQueryParams is how many query (or form) parameters of one request
	// are considered; a URL with thousands of names is hostile or broken.
	MaxQueryParams = 100
	// maxProblems is how many problems Stats.Errors keeps: enough to see
	// what is wrong with a file without echoing all of a broken one.
	maxProblems = 20
	// detectHeadBytes is how much input Import peeks at to detect a format:
	// enough to pass a HAR's creator and pages and reach "entries".
	detectHeadBytes = 64 << 10
)

// Options tune an import.
type Options struct {
	// Format is the input format; "" or FormatAuto detects it.
	Format Format
	// API is the API name set on every event ("" leaves it unset).
	API string
	// MaxBodyBytes: bodies larger than this are not inspected (no schema,
	// no classes, no body parameters). 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int
	// Classify returns the data classes found in a body; the caller passes
	// the DLP detectors. Nil records no classes.
	Classify func(body []byte) []string
	// MaxLineBytes is the longest access-log line accepted; longer lines
	// are skipped and counted. 0 means DefaultMaxLineBytes.
	MaxLineBytes int
}

// Stats count what an import read.
type Stats struct {
	// Read is the number of records (HAR entries, non-blank lines) read.
	Read int `json:"read"`
	// Imported is the number of events emitted.
	Imported int `json:"imported"`
	// Skipped is the number of records not imported (malformed, too long,
	// not HTTP, no response).
	Skipped int `json:"skipped"`
	// Errors are the first problems met, each with its line or entry
	// number. They never quote the input.
	Errors []string `json:"errors,omitempty"`
}

// problem records a problem about a record ("line 3", "entry 2").
func (s *Stats) problem(where, reason string) {
	if len(s.Errors) < maxProblems {
		s.Errors = append(s.Errors, where+": "+reason)
	}
}

// skip counts a record as skipped and records why.
func (s *Stats) skip(where, reason string) {
	s.Skipped++
	s.problem(where, reason)
}

// Import reads r in the format of o and calls emit with every exchange
// read, in input order. Malformed records are skipped and counted in the
// returned Stats; the error is non-nil only when the input as a whole cannot
// be read (an I/O error, a HAR that is not JSON, an oversized HAR entry),
// when ctx is done, or when emit fails, and then Stats counts what was done
// before.
func Import(ctx context.Context, r io.Reader, o Options, emit func(event.Exchange) error) (Stats, error) {
	var st Stats
	if emit == nil {
		return st, errors.New("importer: nil emit function")
	}
	o, err := o.normalize()
	if err != nil {
		return st, err
	}
	bufSize := max(o.MaxLineBytes+2, detectHeadBytes) // +2: the line's "\r\n"
	br := bufio.NewReaderSize(r, bufSize)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return st, fmt.Errorf("importer: gzip: %w", err)
		}
		defer zr.Close()
		br = bufio.NewReaderSize(zr, bufSize)
	}
	f := o.Format
	if f == FormatAuto {
		head, err := br.Peek(detectHeadBytes)
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
			return st, fmt.Errorf("importer: read: %w", err)
		}
		f = Detect(head)
	}
	im := &importer{ctx: ctx, o: o, emit: emit, st: &st}
	switch f {
	case FormatHAR:
		err = im.har(br, MaxHAREntryBytes)
	case FormatNginx:
		err = im.lines(br, im.nginxLine)
	case FormatJSONL:
		err = im.lines(br, im.jsonLine)
	}
	return st, err
}

// normalize applies defaults and checks o.
func (o Options) normalize() (Options, error) {
	switch o.Format {
	case "":
		o.Format = FormatAuto
	case FormatAuto, FormatHAR, FormatNginx, FormatJSONL:
	default:
		return o, fmt.Errorf("importer: unknown format %q (want har, nginx, jsonl or auto)", o.Format)
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.MaxLineBytes <= 0 {
		o.MaxLineBytes = DefaultMaxLineBytes
	}
	if o.MaxLineBytes > MaxLineBytesLimit {
		return o, fmt.Errorf("importer: MaxLineBytes %d above the limit of %d", o.MaxLineBytes, MaxLineBytesLimit)
	}
	return o, nil
}

// Detect sniffs a format from the first bytes of an input: a JSON object
// holding "log" and "entries" is a HAR; input whose first line is a JSON
// object is JSON lines; anything else is taken for a combined access log.
// A JSON document that mentions "log" but does not start with a one-line
// object is a HAR whose entries lie beyond head, and a first line starting
// with '{' but not complete within head is a long JSON line.
func Detect(head []byte) Format {
	s := bytes.TrimPrefix(head, []byte("\xef\xbb\xbf")) // UTF-8 BOM
	s = bytes.TrimLeft(s, " \t\r\n")
	if len(s) == 0 || s[0] != '{' {
		return FormatNginx
	}
	hasLog := bytes.Contains(s, []byte(`"log"`))
	if hasLog && bytes.Contains(s, []byte(`"entries"`)) {
		return FormatHAR
	}
	first, _, complete := bytes.Cut(s, []byte("\n"))
	switch {
	case json.Valid(first):
		return FormatJSONL
	case hasLog:
		return FormatHAR
	case !complete && len(first) > 1 && first[1] == '"':
		return FormatJSONL
	}
	return FormatNginx
}

// importer is the state of one import.
type importer struct {
	ctx  context.Context
	o    Options
	emit func(event.Exchange) error
	st   *Stats
	// times caches the last access-log timestamp parsed.
	times timeCache
}

// deliver emits x, counting it.
func (im *importer) deliver(where string, x event.Exchange) error {
	if err := im.emit(x); err != nil {
		return fmt.Errorf("importer: emit %s: %w", where, err)
	}
	im.st.Imported++
	return nil
}

// classify runs the caller's classifier on a body, returning its classes
// sorted and without duplicates, or nil.
func (im *importer) classify(body []byte) []string {
	if im.o.Classify == nil || len(body) == 0 || len(body) > im.o.MaxBodyBytes {
		return nil
	}
	cs := im.o.Classify(body)
	if len(cs) == 0 {
		return nil
	}
	out := make([]string, 0, len(cs))
	for _, c := range cs {
		if c != "" {
			out = append(out, c)
		}
	}
	sort.Strings(out)
	out = compactStrings(out)
	if len(out) == 0 {
		return nil
	}
	return out
}

// compactStrings removes adjacent duplicates of a sorted slice.
func compactStrings(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// lineFunc turns one non-blank line into an exchange, or says why not.
type lineFunc func(n int, line []byte) (event.Exchange, string)

// lines runs parse over every line of br.
func (im *importer) lines(br *bufio.Reader, parse lineFunc) error {
	lr := lineReader{br: br, max: im.o.MaxLineBytes}
	for {
		line, tooLong, err := lr.next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("importer: line %d: %w", lr.n, err)
		}
		if err := im.ctx.Err(); err != nil {
			return fmt.Errorf("importer: line %d: %w", lr.n, err)
		}
		where := "line " + strconv.Itoa(lr.n)
		if tooLong {
			im.st.Read++
			im.st.skip(where, "longer than "+strconv.Itoa(im.o.MaxLineBytes)+" bytes")
			continue
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		im.st.Read++
		x, reason := parse(lr.n, line)
		if reason != "" {
			im.st.skip(where, reason)
			continue
		}
		if err := im.deliver(where, x); err != nil {
			return err
		}
	}
}

// lineReader reads lines of bounded length.
type lineReader struct {
	br  *bufio.Reader
	max int
	n   int // number of the line last returned, from 1
}

// next returns the next line without its terminator, valid until the next
// call; tooLong (and no line) when it exceeds the limit, the rest of it
// being discarded; io.EOF at the end.
func (l *lineReader) next() (line []byte, tooLong bool, err error) {
	b, err := l.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		for errors.Is(err, bufio.ErrBufferFull) {
			_, err = l.br.ReadSlice('\n')
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, false, err
		}
		l.n++
		return nil, true, nil
	}
	if err != nil {
		if !errors.Is(err, io.EOF) || len(b) == 0 {
			return nil, false, err
		}
		// A last line without a newline.
	}
	l.n++
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	if len(b) > l.max {
		return nil, true, nil
	}
	return b, false, nil
}

// digest is a deterministic id: hex SHA-256 of the length-prefixed parts,
// truncated to 16 bytes.
func digest(parts ...string) string {
	var stack [512]byte
	b := stack[:0]
	for _, p := range parts {
		b = binary.AppendUvarint(b, uint64(len(p)))
		b = append(b, p...)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// saneTime reports whether t is an event time: within the years 1 to
// 9999 that RFC 3339 (and so the event's JSON) can hold. A timestamp moved
// to UTC by its offset can leave that range.
func saneTime(t time.Time) bool {
	y := t.Year()
	return y >= 1 && y <= 9999
}

// hashValue is how identities are recorded: the pseudonym of v, the form
// policy.HashID gives object ids.
func hashValue(v string) string { return pseudo.Of(v) }
