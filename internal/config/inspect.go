package config

import (
	"fmt"
	"strings"
)

// Validate is the OpenAPI contract enforcement of an API (needs a spec).
type Validate struct {
	// Requests validates parameters, content types and bodies.
	Requests bool `yaml:"requests"`
	// Responses validates status codes and bodies.
	Responses bool `yaml:"responses"`
	// UnknownOperations: reject (default) or allow requests the spec does
	// not describe.
	UnknownOperations string `yaml:"unknown_operations"`
	// UnknownQueryParams: reject (default) or allow query parameters the
	// operation does not declare.
	UnknownQueryParams string `yaml:"unknown_query_params"`
	// UndocumentedProperties in responses (excessive data exposure):
	// flag (default), strip or block.
	UndocumentedProperties string `yaml:"undocumented_properties"`
	// MaxBodyBytes bounds the bodies read for validation (default:
	// limits.max_body_bytes for requests, 1MiB for responses).
	MaxResponseBytes ByteSize `yaml:"max_response_bytes"`
	// Mode overrides the API's mode for validation only.
	Mode string `yaml:"mode"`
}

// Data is the sensitive-data policy of an API's responses: each data
// class is observed (recorded), masked or blocked.
type Data struct {
	Mask  []string `yaml:"mask"`
	Block []string `yaml:"block"`
	// Observe limits which classes are looked for; default: every class.
	Observe []string `yaml:"observe"`
	// MaxScanBytes bounds the part of a body that is scanned (default 1MiB).
	MaxScanBytes ByteSize `yaml:"max_scan_bytes"`
	// Requests also scans request bodies (observe only).
	Requests bool   `yaml:"requests"`
	Mode     string `yaml:"mode"`
}

// WAF is the OWASP Core Rule Set inspection of an API's requests.
type WAF struct {
	CRS      bool `yaml:"crs"`
	Paranoia int  `yaml:"paranoia"`
	// AnomalyThreshold is CRS's inbound anomaly score threshold (default 5).
	AnomalyThreshold int            `yaml:"anomaly_threshold"`
	Exclusions       []WAFExclusion `yaml:"exclusions"`
	Mode             string         `yaml:"mode"`
}

// WAFExclusion removes CRS rules, for one operation or the whole API.
type WAFExclusion struct {
	// Operation ("POST /payments"); empty means every operation.
	Operation string `yaml:"operation"`
	// Rules are CRS rule ids (942100) or ranges (942100-942999).
	Rules []string `yaml:"rules"`
	// Targets limits the exclusion to some variables (ARGS:reference,
	// REQUEST_HEADERS:User-Agent); empty means the whole rule.
	Targets []string `yaml:"targets"`
}

// Inspection defaults.
const (
	DefaultMaxResponseBytes = 1 << 20
	DefaultMaxScanBytes     = 1 << 20
	DefaultParanoia         = 1
	DefaultAnomalyThreshold = 5
)

// DataClasses are the sensitive-data classes the detectors know.
var DataClasses = []string{
	"pan", "iban", "us_ssn", "aba_routing", "swift_bic", "uk_nino", "email",
	"phone", "ip_address", "jwt", "private_key", "cloud_key",
}

func (c *Config) inspectDefaults() {
	for i := range c.APIs {
		a := &c.APIs[i]
		if v := a.Validate; v != nil {
			if v.UnknownOperations == "" {
				v.UnknownOperations = "reject"
			}
			if v.UnknownQueryParams == "" {
				v.UnknownQueryParams = "reject"
			}
			if v.UndocumentedProperties == "" {
				v.UndocumentedProperties = "flag"
			}
			if v.MaxResponseBytes == 0 {
				v.MaxResponseBytes = DefaultMaxResponseBytes
			}
		}
		if d := a.Data; d != nil && d.MaxScanBytes == 0 {
			d.MaxScanBytes = DefaultMaxScanBytes
		}
		if w := a.WAF; w != nil {
			if w.Paranoia == 0 {
				w.Paranoia = DefaultParanoia
			}
			if w.AnomalyThreshold == 0 {
				w.AnomalyThreshold = DefaultAnomalyThreshold
			}
		}
	}
}

func (c *Config) validateInspect(add func(string, string, ...any)) {
	for i, a := range c.APIs {
		p := fmt.Sprintf("apis[%d]", i)
		if v := a.Validate; v != nil {
			if a.Spec == "" && (v.Requests || v.Responses) {
				add(p+".validate", "validation needs the API's spec")
			}
			oneOf(add, p+".validate.unknown_operations", v.UnknownOperations, "reject", "allow")
			oneOf(add, p+".validate.unknown_query_params", v.UnknownQueryParams, "reject", "allow")
			oneOf(add, p+".validate.undocumented_properties", v.UndocumentedProperties, "flag", "strip", "block")
			if v.MaxResponseBytes < 1024 || v.MaxResponseBytes > 64<<20 {
				add(p+".validate.max_response_bytes", "must be between 1KiB and 64MiB")
			}
			checkMode(add, p+".validate.mode", v.Mode)
		}
		if d := a.Data; d != nil {
			seen := map[string]string{}
			for _, l := range []struct {
				key  string
				list []string
			}{{"mask", d.Mask}, {"block", d.Block}, {"observe", d.Observe}} {
				for j, cl := range l.list {
					if !contains(DataClasses, cl) {
						add(fmt.Sprintf("%s.data.%s[%d]", p, l.key, j), "unknown data class %q: use %s", clip(cl), strings.Join(DataClasses, ", "))
						continue
					}
					if l.key != "observe" {
						if prev, dup := seen[cl]; dup {
							add(fmt.Sprintf("%s.data.%s[%d]", p, l.key, j), "%s is already listed in %s", cl, prev)
						}
						seen[cl] = l.key
					}
				}
			}
			if d.MaxScanBytes < 1024 || d.MaxScanBytes > 64<<20 {
				add(p+".data.max_scan_bytes", "must be between 1KiB and 64MiB")
			}
			checkMode(add, p+".data.mode", d.Mode)
		}
		if w := a.WAF; w != nil {
			if w.Paranoia < 1 || w.Paranoia > 4 {
				add(p+".waf.paranoia", "must be 1 to 4")
			}
			if w.AnomalyThreshold < 1 || w.AnomalyThreshold > 1000 {
				add(p+".waf.anomaly_threshold", "must be 1 to 1000")
			}
			if !w.CRS {
				add(p+".waf.crs", "the WAF needs crs: true (the OWASP Core Rule Set is its rule set)")
			}
			for j, ex := range w.Exclusions {
				ep := fmt.Sprintf("%s.waf.exclusions[%d]", p, j)
				if ex.Operation != "" && !validOperationKey(ex.Operation) {
					add(ep+".operation", "must be an operation such as \"POST /payments\", got %q", clip(ex.Operation))
				}
				if len(ex.Rules) == 0 {
					add(ep+".rules", "at least one rule id or range")
				}
				for k, r := range ex.Rules {
					if !validRuleRange(r) {
						add(fmt.Sprintf("%s.rules[%d]", ep, k), "must be a rule id (942100) or range (942100-942999), got %q", clip(r))
					}
				}
				for k, tg := range ex.Targets {
					if tg == "" || strings.ContainsAny(tg, " \"'`;") {
						add(fmt.Sprintf("%s.targets[%d]", ep, k), "must be a variable such as ARGS:reference, got %q", clip(tg))
					}
				}
			}
			checkMode(add, p+".waf.mode", w.Mode)
		}
	}
}

func oneOf(add func(string, string, ...any), path, v string, allowed ...string) {
	if !contains(allowed, v) {
		add(path, "must be %s, got %q", strings.Join(allowed, " or "), clip(v))
	}
}

func validRuleRange(s string) bool {
	lo, hi, isRange := strings.Cut(s, "-")
	if !isDigits(lo) || isRange && !isDigits(hi) {
		return false
	}
	return !isRange || len(lo) < len(hi) || len(lo) == len(hi) && lo <= hi
}

func isDigits(s string) bool {
	if s == "" || len(s) > 9 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
