// Package waf is the web application firewall stage: the OWASP Core Rule
// Set v4, embedded (coraza-coreruleset), run by the Coraza v3 engine on
// every request of an API — URI, headers and body (JSON, +json and
// URL-encoded forms are parsed into arguments).
//
// CRS scores what it matches (anomaly scoring); a request whose inbound
// score reaches the configured threshold is stopped with 403 and the ids of
// the rules that matched. A request that matched rules below the threshold
// is annotated with them, so tuning can start from evidence.
//
// Exclusions. Coraza knows nothing of Bulwark's operations, so:
//   - an exclusion without an operation is compiled into the API's WAF
//     (SecRuleRemoveById, or SecRuleUpdateTargetById "!TARGET" when it
//     names targets);
//   - operations with their own exclusions get their own WAF, built from
//     the same directives plus theirs; every other operation shares the
//     base WAF. A WAF costs memory and start-up time (see New), which is
//     why only operations that have exclusions get one.
//
// Targets are CRS variables: ARGS:reference for a query or form field,
// ARGS:json.creditor.name for a JSON body field (Coraza names JSON fields
// "json." followed by their dotted path; array items by their index),
// REQUEST_HEADERS:User-Agent, REQUEST_COOKIES:session.
//
// Decisions never carry request data: Reason and Detail are fixed strings
// and Rules holds rule ids only.
package waf

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/corazawaf/coraza/v3"
	"github.com/corazawaf/coraza/v3/types"

	"github.com/bulwarkapi/bulwark/internal/config"
	"github.com/bulwarkapi/bulwark/internal/pipeline"
)

// Reasons recorded on the exchange (audit log, metrics).
const (
	// ReasonBlocked: the inbound anomaly score reached the threshold.
	ReasonBlocked = "waf_blocked"
	// ReasonMatched: rules matched, below the threshold (Annotate).
	ReasonMatched = "waf_matched"
	// ReasonUnparsable: the body claimed a type (JSON, form) it is not, so
	// it cannot be inspected; CRS's engine rejects it (400).
	ReasonUnparsable = "waf_body_unparsable"
	// ReasonTooLarge: the body exceeded the gateway's body limit.
	ReasonTooLarge = "body_too_large"
	// ReasonUnreadable: the body could not be read (client went away).
	ReasonUnreadable = "body_unreadable"
	// ReasonError: the engine failed; the request is stopped (fail closed).
	ReasonError = "waf_error"
)

// MaxRules bounds the rule ids recorded per decision: an attack matching
// dozens of rules says no more with all of them, and the audit log line
// stays small.
const MaxRules = 16

const detailBlocked = "The request was blocked by the web application firewall."

// Options configure New.
type Options struct {
	// API is the name of the API, used in errors and logs.
	API string
	// Config is the API's validated, defaulted WAF configuration.
	Config config.WAF
	// MaxBodyBytes is the gateway's request body limit
	// (limits.max_body_bytes); 0 means config.DefaultMaxBodyBytes. Bodies
	// reach this stage already bounded by it; the engine's own limit is set
	// just above it so that it never truncates or rejects what the gateway
	// accepted, and keeps the whole body in memory (no temporary files).
	MaxBodyBytes int64
	// Logger receives the start-up summary and engine failures; nil
	// discards them.
	Logger *slog.Logger
}

// Stage runs CRS on requests. It is safe for concurrent use: Coraza WAFs
// are immutable once built and each request gets its own transaction.
type Stage struct {
	api     string
	monitor bool
	base    coraza.WAF
	byOp    map[string]coraza.WAF
	log     *slog.Logger
}

var _ pipeline.Stage = (*Stage)(nil)

// New builds the API's WAF (and one per operation that has exclusions of
// its own); do it once per configuration snapshot, and Close the stage of
// a retired snapshot. The first WAF of a process costs about 150 ms and
// 12 MiB (most of it Coraza's process-wide cache of compiled expressions,
// shared by later builds); each further WAF about 30 ms and 2 MiB. Every
// invalid exclusion is reported, each naming its index.
func New(o Options) (*Stage, error) {
	c := o.Config
	if c.Paranoia < 1 || c.Paranoia > 4 {
		return nil, fmt.Errorf("waf %s: paranoia %d: must be 1 to 4", o.API, c.Paranoia)
	}
	if c.AnomalyThreshold < 1 {
		return nil, fmt.Errorf("waf %s: anomaly threshold %d: must be at least 1", o.API, c.AnomalyThreshold)
	}
	maxBody := o.MaxBodyBytes
	if maxBody <= 0 {
		maxBody = config.DefaultMaxBodyBytes
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t0 := time.Now()

	// Global exclusions go into every WAF; operation ones only into theirs.
	var global []exclusion
	perOp := map[string][]exclusion{}
	var errs []error
	for i, ex := range c.Exclusions {
		e, err := compileExclusion(i, ex)
		if err != nil {
			errs = append(errs, fmt.Errorf("waf %s: %w", o.API, err))
			continue
		}
		if ex.Operation == "" {
			global = append(global, e)
		} else {
			perOp[ex.Operation] = append(perOp[ex.Operation], e)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	known := map[int]bool{}
	base, err := build(c, maxBody, global, func(r types.RuleMetadata) { known[r.ID()] = true })
	if err != nil {
		return nil, fmt.Errorf("waf %s: %w", o.API, err)
	}
	// A rule id that is not in CRS is a typo that would silently exclude
	// nothing: refuse it.
	for i, ex := range c.Exclusions {
		for _, r := range ex.Rules {
			if lo, hi, _ := parseRange(r); lo == hi && !known[lo] {
				errs = append(errs, fmt.Errorf("waf %s: exclusions[%d]: rule %d is not a rule of the loaded rule set", o.API, i, lo))
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	s := &Stage{api: o.API, monitor: c.Mode == "monitor", base: base, log: log}
	ops := make([]string, 0, len(perOp))
	for op := range perOp {
		ops = append(ops, op)
	}
	slices.Sort(ops)
	for _, op := range ops {
		w, err := build(c, maxBody, append(slices.Clip(global), perOp[op]...), nil)
		if err != nil {
			errs = append(errs, fmt.Errorf("waf %s: operation %q: %w", o.API, op, err))
			continue
		}
		if s.byOp == nil {
			s.byOp = map[string]coraza.WAF{}
		}
		s.byOp[op] = w
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	log.Info("waf built", "api", o.API, "paranoia", c.Paranoia, "anomaly_threshold", c.AnomalyThreshold,
		"rules", len(known), "operation_wafs", len(s.byOp), "took", time.Since(t0).Round(time.Millisecond))
	return s, nil
}

// Close releases what the stage's WAFs hold in Coraza's process-wide cache
// of compiled expressions. Call it once no request uses the stage any more
// (a configuration reload retired it); without it every reload leaks.
func (s *Stage) Close() error {
	var errs []error
	for _, w := range s.wafs() {
		if c, ok := w.(io.Closer); ok {
			errs = append(errs, c.Close())
		}
	}
	return errors.Join(errs...)
}

func (s *Stage) wafs() []coraza.WAF {
	l := []coraza.WAF{s.base}
	for _, w := range s.byOp {
		l = append(l, w)
	}
	return l
}

// Name implements pipeline.Stage.
func (s *Stage) Name() string { return "waf" }

// Handle implements pipeline.Stage.
func (s *Stage) Handle(_ context.Context, x *pipeline.Exchange) pipeline.Decision {
	r := x.Request
	if r == nil {
		return pipeline.Continue
	}
	w := s.base
	if x.Operation != "" && s.byOp != nil {
		if ow, ok := s.byOp[x.Operation]; ok {
			w = ow
		}
	}
	tx := w.NewTransactionWithID(x.RequestID)
	defer func() {
		tx.ProcessLogging()
		_ = tx.Close()
	}()

	if x.Client.IsValid() {
		sip, sport := serverAddr(r)
		tx.ProcessConnection(x.Client.Addr().Unmap().String(), int(x.Client.Port()), sip, sport)
	}
	uri := r.RequestURI
	if uri == "" && r.URL != nil {
		uri = r.URL.RequestURI()
	}
	proto := r.Proto
	if proto == "" {
		proto = "HTTP/1.1"
	}
	tx.ProcessURI(uri, r.Method, proto)
	// Path parameters of the matched operation are arguments like any
	// other (ARGS_PATH, part of ARGS): an injection in /accounts/{id} is
	// inspected by the rules that look at ARGS.
	for _, p := range x.Params {
		tx.AddPathRequestArgument(p.Name, p.Value)
	}
	if r.Host != "" {
		tx.AddRequestHeader("Host", r.Host)
	}
	for k, vs := range r.Header {
		if k == "Host" && r.Host != "" {
			continue
		}
		for _, v := range vs {
			tx.AddRequestHeader(k, v)
		}
	}
	// net/http moves framing out of the header map: put back what was on
	// the wire, or CRS sees a POST without Content-Length (920180).
	if r.Header.Get("Content-Length") == "" {
		if r.ContentLength > 0 {
			tx.AddRequestHeader("Content-Length", strconv.FormatInt(r.ContentLength, 10))
		} else if len(r.TransferEncoding) > 0 {
			tx.AddRequestHeader("Transfer-Encoding", strings.Join(r.TransferEncoding, ", "))
		}
	}
	if it := tx.ProcessRequestHeaders(); it != nil {
		return s.interrupted(tx, it)
	}

	if hasBody(r) && tx.IsRequestBodyAccessible() {
		body, err := x.RequestBody()
		if err != nil {
			if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
				return pipeline.Halt(http.StatusRequestEntityTooLarge, ReasonTooLarge, "The request body is too large.")
			}
			return pipeline.Halt(http.StatusBadRequest, ReasonUnreadable, "The request body could not be read.")
		}
		if len(body) > 0 {
			it, _, err := tx.WriteRequestBody(body)
			if err != nil {
				return s.failed(err)
			}
			if it != nil {
				return s.interrupted(tx, it)
			}
		}
	}
	it, err := tx.ProcessRequestBody()
	if err != nil {
		return s.failed(err)
	}
	if it != nil {
		return s.interrupted(tx, it)
	}
	if ids := matchedRules(tx, 0); len(ids) > 0 {
		return pipeline.Decision{Action: pipeline.Annotate, Reason: ReasonMatched, Rules: ids}
	}
	return pipeline.Continue
}

// interrupted turns an engine interruption into the stage's decision.
func (s *Stage) interrupted(tx types.Transaction, it *types.Interruption) pipeline.Decision {
	d := pipeline.Decision{
		Action:  pipeline.Stop,
		Status:  http.StatusForbidden,
		Reason:  ReasonBlocked,
		Detail:  detailBlocked,
		Rules:   matchedRules(tx, it.RuleID),
		Monitor: s.monitor,
	}
	switch it.Status {
	case http.StatusBadRequest:
		// The engine's own checks (coraza.conf-recommended): a body that
		// does not parse as what its Content-Type says, too many arguments.
		d.Status, d.Reason, d.Detail = http.StatusBadRequest, ReasonUnparsable, "The request could not be inspected: its body does not match its content type or has too many fields."
	case http.StatusRequestEntityTooLarge:
		d.Status, d.Reason, d.Detail = http.StatusRequestEntityTooLarge, ReasonTooLarge, "The request body is too large."
	}
	return d
}

// failed is an engine failure: stop the request rather than let it through
// uninspected.
func (s *Stage) failed(err error) pipeline.Decision {
	s.log.Error("waf engine failure", "api", s.api, "err", err)
	return pipeline.Decision{
		Action: pipeline.Stop, Status: http.StatusInternalServerError, Reason: ReasonError,
		Detail: "The request could not be inspected.", Monitor: s.monitor,
	}
}

// matchedRules returns the ids of the rules that scored (those with a
// severity: CRS's detection rules) plus the rule that interrupted, sorted,
// deduplicated and at most MaxRules.
func matchedRules(tx types.Transaction, interrupting int) []string {
	mrs := tx.MatchedRules()
	var buf [MaxRules + 1]int
	ids := buf[:0]
	if interrupting > 0 {
		ids = append(ids, interrupting)
	}
	for _, mr := range mrs {
		m := mr.Rule()
		if m.Severity() == types.RuleSeverityUnset {
			continue
		}
		if id := m.ID(); id > 0 && !slices.Contains(ids, id) {
			ids = append(ids, id)
			if len(ids) == cap(buf) {
				break
			}
		}
	}
	if len(ids) == 0 {
		return nil
	}
	slices.Sort(ids)
	if len(ids) > MaxRules {
		// Keep the interrupting rule when trimming.
		if interrupting > 0 && slices.Index(ids, interrupting) >= MaxRules {
			ids[MaxRules-1] = interrupting
		}
		ids = ids[:MaxRules]
	}
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = strconv.Itoa(id)
	}
	return out
}

// hasBody reports whether r may carry a body, without reading it.
func hasBody(r *http.Request) bool {
	return r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0
}

func serverAddr(r *http.Request) (string, int) {
	a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return "", 0
	}
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String(), ta.Port
	}
	return "", 0
}
