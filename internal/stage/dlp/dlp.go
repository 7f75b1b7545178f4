// Package dlp is the sensitive-data stage ("data"): it scans response
// bodies with the detectors of internal/dlp and, per data class, records
// (observe), masks or blocks what it finds, as the API's data block says.
// When the API asks for it, it also records the classes found in request
// bodies; that side never blocks or modifies anything.
//
// Only textual bodies are inspected (JSON and +json, text/*, form, XML, or
// no Content-Type at all); a gzip-encoded body is decoded for inspection and
// sent on decoded. At most max_scan_bytes of a body are read. A body larger
// than that is scanned as far as it was read and then sent on unchanged:
// masking needs the whole body, so a class to mask found in that prefix is
// only recorded ("data_scan_truncated"), while a class to block still stops
// the response. Values never leave the stage: decisions carry class names only.
//
// Decisions (Rules are data classes, never values):
//
//   - a class to block: Stop, 502 sensitive_data_blocked with a generic
//     detail; with data.mode monitor the stop is only recorded
//     (Decision.Monitor) and the body goes on unchanged;
//   - a class to mask: the body is masked in place (lengths kept, JSON kept
//     valid), Content-Length set and ETag/digest headers dropped; annotated
//     sensitive_data_masked. In monitor mode (data.mode or the API's mode)
//     nothing is modified: sensitive_data_mask_monitored;
//   - classes only observed: sensitive_data_observed;
//   - a body read in part (larger than max_scan_bytes): data_scan_truncated;
//     a body that could not be read or decoded (br, zstd, deflate, corrupt
//     gzip): data_not_inspected with rule "encoding" or "read".
//
// Every class found is added to Exchange.ResponseClasses (RequestClasses for
// request bodies) for the audit log and the inventory.
package dlp

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/bulwarkapi/bulwark/internal/config"
	"github.com/bulwarkapi/bulwark/internal/dlp"
	"github.com/bulwarkapi/bulwark/internal/pipeline"
)

// StageName is the stage's name in decisions, metrics and the audit log.
const StageName = "data"

// Reasons recorded in decisions.
const (
	ReasonBlocked       = "sensitive_data_blocked"
	ReasonMasked        = "sensitive_data_masked"
	ReasonMaskMonitored = "sensitive_data_mask_monitored"
	ReasonObserved      = "sensitive_data_observed"
	ReasonTruncated     = "data_scan_truncated"
	ReasonNotInspected  = "data_not_inspected"
)

// staleHeaders describe the upstream's bytes and are wrong once the body
// is masked: they are removed rather than left to mislead caches and clients.
var staleHeaders = []string{"ETag", "Content-MD5", "Digest", "Content-Digest", "Repr-Digest"}

// blockedDetail is what the client is told; it names no class and no value.
const blockedDetail = "The response was withheld: it contained data this API must not return."

// Options configure the stage for one API.
type Options struct {
	API    string
	Config config.Data
}

// Stage inspects the bodies of one API.
type Stage struct {
	api     string
	scanner *dlp.Scanner
	mask    map[dlp.Class]bool
	block   map[dlp.Class]bool
	limit   int64
	monitor bool // the data block's own mode is monitor
	reqs    bool
}

var (
	_ pipeline.Stage         = (*Stage)(nil)
	_ pipeline.ResponseStage = (*Stage)(nil)
)

// New builds the stage. The config is expected validated (config.Validate);
// New still rejects unknown classes and a non-positive limit.
func New(o Options) (*Stage, error) {
	c := o.Config
	s := &Stage{api: o.API, mask: map[dlp.Class]bool{}, block: map[dlp.Class]bool{}, limit: int64(c.MaxScanBytes), monitor: c.Mode == "monitor", reqs: c.Requests}
	if s.limit <= 0 {
		s.limit = config.DefaultMaxScanBytes
	}
	known := map[dlp.Class]bool{}
	for _, k := range dlp.AllClasses {
		known[k] = true
	}
	var classes []dlp.Class
	var errs []string
	add := func(list []string, set map[dlp.Class]bool) {
		for _, name := range list {
			k := dlp.Class(name)
			if !known[k] {
				errs = append(errs, fmt.Sprintf("unknown data class %q", name))
				continue
			}
			classes = append(classes, k)
			if set != nil {
				set[k] = true
			}
		}
	}
	add(c.Observe, nil)
	observeAll := len(classes) == 0
	add(c.Mask, s.mask)
	add(c.Block, s.block)
	if len(errs) > 0 {
		return nil, fmt.Errorf("api %s data: %s", o.API, strings.Join(errs, "; "))
	}
	if observeAll {
		classes = nil // every class
	}
	s.scanner = dlp.NewScanner(classes)
	return s, nil
}

// Name implements pipeline.Stage and pipeline.ResponseStage.
func (s *Stage) Name() string { return StageName }

// Handle records the classes found in the request body when the API asks
// for it (data.requests); it never stops or modifies the request.
func (s *Stage) Handle(_ context.Context, x *pipeline.Exchange) pipeline.Decision {
	if !s.reqs || x.Request == nil || !textual(x.Request.Header.Get("Content-Type")) {
		return pipeline.Continue
	}
	body, err := x.RequestBody()
	if err != nil || len(body) == 0 {
		return pipeline.Continue
	}
	if int64(len(body)) > s.limit {
		body = body[:s.limit]
	}
	x.RequestClasses = merge(x.RequestClasses, dlp.Classes(s.scanner.Scan(body)))
	return pipeline.Continue
}

// HandleResponse scans the response body and observes, masks or blocks.
func (s *Stage) HandleResponse(_ context.Context, x *pipeline.Exchange, resp *http.Response) pipeline.Decision {
	if resp == nil || !textual(resp.Header.Get("Content-Type")) {
		return pipeline.Continue
	}
	body, complete, err := x.ResponseBody(resp, s.limit)
	if err != nil {
		rule := "read"
		if enc := strings.ToLower(strings.TrimSpace(resp.Header.Get("Content-Encoding"))); enc != "" && enc != "identity" {
			rule = "encoding"
		}
		return pipeline.Decision{Action: pipeline.Annotate, Reason: ReasonNotInspected, Rules: []string{rule}}
	}
	var matches []dlp.Match
	if len(body) > 0 {
		matches = s.scanner.Scan(body)
	}
	if len(matches) == 0 {
		if !complete {
			return pipeline.Decision{Action: pipeline.Annotate, Reason: ReasonTruncated}
		}
		return pipeline.Continue
	}
	found := dlp.Classes(matches)
	x.ResponseClasses = merge(x.ResponseClasses, found)
	blocked, masked := pick(found, s.block), pick(found, s.mask)
	monitor := s.monitor || x.Mode == pipeline.Monitor

	if len(blocked) > 0 {
		d := pipeline.Halt(http.StatusBadGateway, ReasonBlocked, blockedDetail)
		d.Rules, d.Monitor = blocked, s.monitor
		if len(masked) > 0 && monitor {
			// The response goes on (monitor): note what would be masked too.
			x.Record(pipeline.Decision{Stage: StageName, Action: pipeline.Annotate, Reason: ReasonMaskMonitored, Rules: masked})
		}
		return d
	}
	switch {
	case !complete:
		return pipeline.Decision{Action: pipeline.Annotate, Reason: ReasonTruncated, Rules: classNames(found)}
	case len(masked) > 0 && monitor:
		return pipeline.Decision{Action: pipeline.Annotate, Reason: ReasonMaskMonitored, Rules: masked}
	case len(masked) > 0:
		out := bytes.Clone(body)
		dlp.Mask(out, matches, s.mask)
		x.SetInspectedResponseBody(resp, out)
		for _, h := range staleHeaders {
			resp.Header.Del(h)
		}
		return pipeline.Decision{Action: pipeline.Annotate, Reason: ReasonMasked, Rules: masked}
	default:
		return pipeline.Decision{Action: pipeline.Annotate, Reason: ReasonObserved, Rules: classNames(found)}
	}
}

// textual reports whether a body of this media type is inspected.
func textual(ct string) bool {
	if ct == "" {
		return true // unlabelled: inspect (the scanner tells JSON from text itself)
	}
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.TrimSpace(mt)
	for i := 0; i < len(mt); i++ {
		if c := mt[i]; c >= 'A' && c <= 'Z' {
			mt = strings.ToLower(mt) // rare: allocate only for upper case
			break
		}
	}
	switch {
	case mt == "application/json", strings.HasSuffix(mt, "+json"), strings.HasPrefix(mt, "text/"),
		mt == "application/x-www-form-urlencoded", mt == "application/xml", strings.HasSuffix(mt, "+xml"),
		mt == "application/x-ndjson", mt == "application/jsonl":
		return true
	}
	return false
}

func pick(found []dlp.Class, set map[dlp.Class]bool) []string {
	var out []string
	for _, c := range found {
		if set[c] {
			out = append(out, string(c))
		}
	}
	return out
}

func classNames(cs []dlp.Class) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = string(c)
	}
	return out
}

// merge adds the classes of add to have, keeping it sorted and distinct.
func merge(have []string, add []dlp.Class) []string {
	for _, c := range add {
		dup := false
		for _, h := range have {
			if h == string(c) {
				dup = true
				break
			}
		}
		if !dup {
			have = append(have, string(c))
		}
	}
	for i := 1; i < len(have); i++ { // insertion sort: a handful of names
		for j := i; j > 0 && have[j] < have[j-1]; j-- {
			have[j], have[j-1] = have[j-1], have[j]
		}
	}
	return have
}
