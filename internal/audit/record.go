package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"strconv"
	"time"
	"unicode/utf8"
)

// Limits on attacker-controlled and free-form strings. They bound the size of
// one line (well under MaxLineBytes even when every byte needs a \ufffd
// escape) so that a hostile request cannot bloat the log or the verifier.
const (
	// MaxPathBytes caps the request path (with query): longer than any
	// legitimate route, short enough that a scanner cannot fill the disk.
	MaxPathBytes = 2048
	// MaxHostBytes caps the Host header: a DNS name is at most 253 bytes.
	MaxHostBytes = 255
	// MaxFieldBytes caps the other short strings (request ID, API,
	// operation, method, client, mode, upstream, decision stage and action);
	// a request ID may come from a client header.
	MaxFieldBytes = 256
	// MaxReasonBytes caps a decision's reason, which may quote request data.
	MaxReasonBytes = 512
	// MaxDecisions caps the decision trail of one record; a pipeline has far
	// fewer stages than this.
	MaxDecisions = 64
	// MaxLineBytes is the longest line Verify and Open accept. Lines written
	// by this package are far shorter because of the limits above.
	MaxLineBytes = 1 << 20
)

// Decision is one pipeline stage's verdict on the exchange.
type Decision struct {
	Stage, Action, Reason string
	Status                int
	Enforced              bool
	Rules                 []string
}

// Record is one exchange as it goes into the audit log.
type Record struct {
	Time                                          time.Time
	RequestID, API, Operation, Method, Path, Host string
	Status                                        int
	Latency, UpstreamLatency                      time.Duration
	Client                                        string // client address ip:port
	// ForwardedFor is the client address a trusted proxy reported, when
	// it did (Client is then the proxy).
	ForwardedFor string
	// Username is the hash of a login attempt's username (brute_force).
	Username string
	Mode     string // "enforce" | "monitor"
	// DataClasses are the sensitive-data classes seen in the bodies.
	RequestClasses, ResponseClasses []string
	// Subject, Provider and Auth identify the authenticated caller (PCI DSS
	// 10.2.1: user identification); empty for anonymous requests. Never a
	// credential.
	Subject, Provider, Auth string
	Upstream                string
	Retries                 int
	BytesIn, BytesOut       int64
	Decisions               []Decision
}

// decisionJSON is the wire form of a Decision. Field names are stable.
type decisionJSON struct {
	Stage    string   `json:"stage"`
	Action   string   `json:"action"`
	Reason   string   `json:"reason"`
	Status   int      `json:"status"`
	Enforced bool     `json:"enforced"`
	Rules    []string `json:"rules,omitempty"`
}

const (
	msgExchange = "exchange"
	hashKey     = `,"hash":"`
	hexLen      = sha256.Size * 2
	// suffixLen is len(`,"hash":"` + 64 hex + `"}` + "\n").
	suffixLen = len(hashKey) + hexLen + 3
)

// zeroHash is the "prev" of the first record of a file.
var zeroHash = [hexLen]byte{
	'0', '0', '0', '0', '0', '0', '0', '0', '0', '0', '0', '0', '0', '0', '0', '0',
	'0', '0', '0', '0', '0', '0', '0', '0', '0', '0', '0', '0', '0', '0', '0', '0',
	'0', '0', '0', '0', '0', '0', '0', '0', '0', '0', '0', '0', '0', '0', '0', '0',
	'0', '0', '0', '0', '0', '0', '0', '0', '0', '0', '0', '0', '0', '0', '0', '0',
}

// encoder formats records into chained lines. It is not safe for concurrent
// use; the Writer's single background goroutine owns it.
type encoder struct {
	buf   bytes.Buffer // the slog handler writes one record here
	h     slog.Handler
	seq   uint64         // seq of the last record encoded
	prev  [hexLen]byte   // hash of the last record encoded
	decs  []decisionJSON // reused across records
	attrs []slog.Attr    // reused across records
}

func newEncoder(seq uint64, prev [hexLen]byte) *encoder {
	e := &encoder{seq: seq, prev: prev}
	e.h = slog.NewJSONHandler(&e.buf, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.LevelKey {
				return slog.Attr{} // an audit record has no level
			}
			return a
		},
	})
	return e
}

// append formats r as the next line of the chain, appends it to dst and
// advances the chain.
func (e *encoder) append(dst []byte, r *Record) []byte {
	t := r.Time
	if t.IsZero() || t.Year() < 0 || t.Year() > 9999 {
		t = time.Now() // slog cannot render such a time as RFC 3339
	}
	a := e.attrs[:0]
	a = append(a, slog.String("request_id", capString(r.RequestID, MaxFieldBytes)))
	if r.API != "" {
		a = append(a, slog.String("api", capString(r.API, MaxFieldBytes)))
	}
	if r.Operation != "" {
		a = append(a, slog.String("operation", capString(r.Operation, MaxFieldBytes)))
	}
	a = append(a,
		slog.String("method", capString(r.Method, MaxFieldBytes)),
		slog.String("path", capString(r.Path, MaxPathBytes)),
		slog.String("host", capString(r.Host, MaxHostBytes)),
		slog.Int("status", r.Status),
		slog.Float64("latency_ms", millis(r.Latency)),
		slog.Float64("upstream_latency_ms", millis(r.UpstreamLatency)),
		slog.String("client", capString(r.Client, MaxFieldBytes)),
		slog.String("mode", capString(r.Mode, MaxFieldBytes)),
	)
	if r.ForwardedFor != "" {
		a = append(a, slog.String("forwarded_for", capString(r.ForwardedFor, MaxFieldBytes)))
	}
	if r.Username != "" {
		a = append(a, slog.String("username_hash", capString(r.Username, MaxFieldBytes)))
	}
	if r.Subject != "" {
		a = append(a,
			slog.String("subject", capString(r.Subject, MaxFieldBytes)),
			slog.String("provider", capString(r.Provider, MaxFieldBytes)),
			slog.String("auth", capString(r.Auth, MaxFieldBytes)),
		)
	}
	if len(r.RequestClasses) > 0 {
		a = append(a, slog.Any("request_data", capList(r.RequestClasses)))
	}
	if len(r.ResponseClasses) > 0 {
		a = append(a, slog.Any("response_data", capList(r.ResponseClasses)))
	}
	if r.Upstream != "" {
		a = append(a, slog.String("upstream", capString(r.Upstream, MaxFieldBytes)))
	}
	a = append(a,
		slog.Int("retries", r.Retries),
		slog.Int64("bytes_in", r.BytesIn),
		slog.Int64("bytes_out", r.BytesOut),
	)
	if len(r.Decisions) > 0 {
		e.decs = e.decs[:0]
		for i := range r.Decisions[:min(len(r.Decisions), MaxDecisions)] {
			d := &r.Decisions[i]
			e.decs = append(e.decs, decisionJSON{
				Stage:    capString(d.Stage, MaxFieldBytes),
				Action:   capString(d.Action, MaxFieldBytes),
				Reason:   capString(d.Reason, MaxReasonBytes),
				Status:   d.Status,
				Enforced: d.Enforced,
				Rules:    capList(d.Rules),
			})
		}
		a = append(a, slog.Any("decisions", e.decs))
	}
	a = append(a,
		slog.Uint64("seq", e.seq+1),
		slog.String("prev", string(e.prev[:])),
	)
	e.attrs = a
	// One AddAttrs call: the Record copies the attrs once.
	rec := slog.NewRecord(t.UTC(), slog.LevelInfo, msgExchange, 0)
	rec.AddAttrs(a...)

	e.buf.Reset()
	// The JSONHandler only fails if its writer does; bytes.Buffer does not.
	_ = e.h.Handle(context.Background(), rec)
	line := e.buf.Bytes()
	// Trim the final "}\n": the hash covers everything before `,"hash"`.
	body := line[:len(line)-2]
	var sum [hexLen]byte
	hex.Encode(sum[:], sha256Sum(body))

	dst = append(dst, body...)
	dst = append(dst, hashKey...)
	dst = append(dst, sum[:]...)
	dst = append(dst, '"', '}', '\n')
	e.seq++
	e.prev = sum
	return dst
}

func sha256Sum(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

// millis converts d to milliseconds with microsecond precision.
func millis(d time.Duration) float64 {
	return float64(d.Microseconds()) / 1000
}

// capString cuts s to at most n bytes, backing off to a UTF-8 boundary when
// the cut would split a valid rune. Invalid UTF-8 is left for slog, which
// replaces it with U+FFFD; control characters (newlines) are escaped by slog,
// so a line never contains a raw newline.
func capString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for i := 0; i < utf8.UTFMax-1 && cut > 0 && !utf8.RuneStart(s[cut]); i++ {
		cut--
	}
	return s[:cut]
}

// lineInfo is the chain state parsed from one verified line.
type lineInfo struct {
	seq  uint64
	prev string
	hash [hexLen]byte
}

// checkLine validates one line (including its trailing newline) on its own:
// it must be a JSON object ending in the hash field, whose hash matches, and
// carry seq and prev. It returns a non-empty reason when the line is broken.
func checkLine(line []byte) (lineInfo, string) {
	var info lineInfo
	if len(line) == 0 || line[len(line)-1] != '\n' {
		return info, "torn last line"
	}
	var v struct {
		Seq  *uint64 `json:"seq"`
		Prev *string `json:"prev"`
	}
	if err := unmarshalLine(line, &v); err != "" {
		return info, err
	}
	n := len(line)
	if n < suffixLen || !bytes.Equal(line[n-suffixLen:n-suffixLen+len(hashKey)], []byte(hashKey)) ||
		string(line[n-3:]) != "\"}\n" {
		return info, "hash field missing or not last"
	}
	body := line[:n-suffixLen]
	var sum [hexLen]byte
	hex.Encode(sum[:], sha256Sum(body))
	if !bytes.Equal(sum[:], line[n-suffixLen+len(hashKey):n-3]) {
		return info, "record hash mismatch: line edited"
	}
	if v.Seq == nil || v.Prev == nil {
		return info, "seq or prev field missing"
	}
	info.seq, info.prev, info.hash = *v.Seq, *v.Prev, sum
	return info, ""
}

// chainReason checks info against the previous record (lineNo is the
// 1-based line number of info; last and lastSeq describe line lineNo-1).
func chainReason(info lineInfo, lineNo int, last [hexLen]byte, lastSeq uint64) string {
	if lineNo == 1 {
		if info.seq != 1 {
			return "seq " + strconv.FormatUint(info.seq, 10) + " expected 1: records removed from the head"
		}
		if info.prev != string(zeroHash[:]) {
			return "prev of the first record is not zero: records removed from the head"
		}
		return ""
	}
	if info.prev != string(last[:]) {
		return "prev does not match hash of line " + strconv.Itoa(lineNo-1) + ": record removed or reordered"
	}
	if info.seq != lastSeq+1 {
		return "seq " + strconv.FormatUint(info.seq, 10) + " expected " + strconv.FormatUint(lastSeq+1, 10)
	}
	return ""
}

// maxListItems bounds a list of short strings in a record (rule ids, data
// classes).
const maxListItems = 32

func capList(l []string) []string {
	if len(l) == 0 {
		return nil
	}
	out := make([]string, 0, min(len(l), maxListItems))
	for _, v := range l[:min(len(l), maxListItems)] {
		out = append(out, capString(v, MaxFieldBytes))
	}
	return out
}
