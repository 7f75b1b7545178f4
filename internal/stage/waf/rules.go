package waf

import (
	"fmt"
	"io/fs"
	"strconv"
	"strings"

	coreruleset "github.com/corazawaf/coraza-coreruleset/v4"
	"github.com/corazawaf/coraza/v3"
	"github.com/corazawaf/coraza/v3/debuglog"
	"github.com/corazawaf/coraza/v3/experimental"
	"github.com/corazawaf/coraza/v3/types"

	"github.com/bulwarkapi/bulwark/internal/config"
)

// allowedMethods replaces CRS's default (GET HEAD POST OPTIONS, rule
// 911100): REST banking APIs use PUT, PATCH and DELETE, and which methods
// an operation accepts is the route and validate stages' business.
const allowedMethods = "GET HEAD POST PUT PATCH DELETE OPTIONS"

// allowedContentTypes is CRS's default list (rule 920420) plus the JSON
// media types of REST APIs; each is parsed by the JSON body processor
// (rule 200006 of coraza.conf-recommended), so none is a bypass.
const allowedContentTypes = "|application/x-www-form-urlencoded| |multipart/form-data| |text/xml| |application/xml| |application/soap+xml| |application/json|" +
	" |application/merge-patch+json| |application/json-patch+json| |application/problem+json| |application/vnd.api+json|"

// directives is the engine and CRS set-up, in order:
//   - Coraza's recommended engine configuration: it selects the JSON body
//     processor for application/json and application/*+json (rules 200001,
//     200006) and rejects bodies that fail to parse (200002); URL-encoded
//     forms select their processor from the Content-Type header;
//   - then our overrides: blocking (not detection-only), request bodies
//     inspected, responses not (the response stages inspect those), no
//     Coraza audit log (the gateway's audit log records the decision);
//   - CRS's set-up file and the paranoia level and threshold;
//   - the request rules only: RESPONSE-*.conf would never run (no
//     response phase is processed) and would cost memory.
const directives = `Include @coraza.conf-recommended
SecRuleEngine On
SecRequestBodyAccess On
SecResponseBodyAccess Off
SecRequestBodyLimitAction Reject
SecAuditEngine Off
SecRxPreFilter Off
Include @crs-setup.conf.example
SecAction "id:900000,phase:1,pass,t:none,nolog,setvar:tx.blocking_paranoia_level=%[1]d"
SecAction "id:900001,phase:1,pass,t:none,nolog,setvar:tx.detection_paranoia_level=%[1]d"
SecAction "id:900110,phase:1,pass,t:none,nolog,setvar:tx.inbound_anomaly_score_threshold=%[2]d,setvar:tx.outbound_anomaly_score_threshold=4"
SecAction "id:900200,phase:1,pass,t:none,nolog,setvar:'tx.allowed_methods=%[3]s'"
SecAction "id:900220,phase:1,pass,t:none,nolog,setvar:'tx.allowed_request_content_type=%[4]s'"
Include @owasp_crs/REQUEST-*.conf
`

// exclusion is one configured exclusion compiled to directives.
type exclusion struct {
	index      int
	directives string
}

// compileExclusion turns exclusions[i] into SecRuleRemoveById (no
// targets) or one SecRuleUpdateTargetById per rule id or range.
func compileExclusion(i int, ex config.WAFExclusion) (exclusion, error) {
	e := exclusion{index: i}
	if len(ex.Rules) == 0 {
		return e, fmt.Errorf("exclusions[%d]: no rules", i)
	}
	for _, r := range ex.Rules {
		if _, _, ok := parseRange(r); !ok {
			return e, fmt.Errorf("exclusions[%d]: rule %q: must be an id or a range", i, r)
		}
	}
	var b strings.Builder
	if len(ex.Targets) == 0 {
		b.WriteString("SecRuleRemoveById")
		for _, r := range ex.Rules {
			b.WriteString(" " + r)
		}
		b.WriteByte('\n')
		e.directives = b.String()
		return e, nil
	}
	targets := make([]string, 0, len(ex.Targets))
	for _, t := range ex.Targets {
		t = strings.TrimPrefix(strings.TrimSpace(t), "!")
		if t == "" || strings.ContainsAny(t, " \t\r\n\"'`;|") {
			return e, fmt.Errorf("exclusions[%d]: target %q: must be one variable such as ARGS:reference", i, t)
		}
		targets = append(targets, "!"+t)
	}
	list := strings.Join(targets, "|")
	for _, r := range ex.Rules {
		// One directive per id: Coraza applies only the first id of a list.
		fmt.Fprintf(&b, "SecRuleUpdateTargetById %s \"%s\"\n", r, list)
	}
	e.directives = b.String()
	return e, nil
}

// parseRange parses "942100" or "942100-942999".
func parseRange(s string) (lo, hi int, ok bool) {
	a, b, isRange := strings.Cut(s, "-")
	lo, err := strconv.Atoi(a)
	if err != nil || lo <= 0 {
		return 0, 0, false
	}
	if !isRange {
		return lo, lo, true
	}
	hi, err = strconv.Atoi(b)
	if err != nil || hi < lo {
		return 0, 0, false
	}
	return lo, hi, true
}

// build compiles one WAF: the engine and CRS set-up, then the exclusions.
// observe, when not nil, sees every rule loaded (before exclusions remove
// any).
func build(c config.WAF, maxBody int64, excl []exclusion, observe func(types.RuleMetadata)) (coraza.WAF, error) {
	// The engine rejects a body whose length reaches its limit (>=), so it
	// sits one byte above the gateway's: anything the gateway let through
	// fits, in memory.
	limit := int(maxBody) + 1
	cfg := coraza.NewWAFConfig().
		WithRootFS(rootFS()).
		WithDebugLogger(debuglog.Noop()).
		WithRequestBodyLimit(limit).
		WithRequestBodyInMemoryLimit(limit).
		WithDirectives(fmt.Sprintf(directives, c.Paranoia, c.AnomalyThreshold, allowedMethods, allowedContentTypes))
	if observe != nil {
		cfg = experimental.WAFConfigWithRuleObserver(cfg, observe)
	}
	for _, e := range excl {
		cfg = cfg.WithDirectives(e.directives)
	}
	w, err := coraza.NewWAF(cfg)
	switch {
	case err == nil || len(excl) == 0:
		return w, err
	case len(excl) == 1:
		return nil, fmt.Errorf("exclusions[%d]: %w", excl[0].index, err)
	}
	// Name the exclusion at fault: build with each alone (the error path
	// only; a configuration with a broken exclusion is not served).
	for _, e := range excl {
		if _, err1 := build(c, maxBody, []exclusion{e}, nil); err1 != nil {
			return nil, err1
		}
	}
	return nil, err
}

// rootFS is the embedded CRS: @coraza.conf-recommended,
// @crs-setup.conf.example and @owasp_crs/.
func rootFS() fs.FS { return coreruleset.FS }
