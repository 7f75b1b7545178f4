package dashboard

import (
	"net/url"
	"slices"
	"sort"
	"strings"
	"unicode"

	"github.com/bulwarkapi/bulwark/internal/admin"
	"github.com/bulwarkapi/bulwark/internal/dlp"
	"github.com/bulwarkapi/bulwark/internal/finding"
	"github.com/bulwarkapi/bulwark/internal/inventory"
)

// maxFilterLen bounds a free-text filter value; longer ones are cut.
const maxFilterLen = 128

// specStatuses are the spec statuses an inventory filter accepts.
var specStatuses = []string{inventory.StatusDocumented, inventory.StatusShadow, inventory.StatusZombie, inventory.StatusUnspecified}

// exposures are the exposures an inventory filter accepts.
var exposures = []string{inventory.ExposureNorthSouth, inventory.ExposureEastWest}

// dataClasses are the data classes offered by the class filter: the dlp
// detectors' classes. "sensitive" in the filter means any of the admin
// API's sensitive classes.
func dataClasses() []string {
	out := make([]string, 0, len(dlp.AllClasses))
	for _, c := range dlp.AllClasses {
		out = append(out, string(c))
	}
	return out
}

// sortKeys are the inventory orders.
var sortKeys = []string{"count", "last_seen", "template"}

// inventoryFilter is a parsed inventory query. The zero value matches
// every endpoint.
type inventoryFilter struct {
	API             string
	Status          string // one of specStatuses, or ""
	Sensitive       bool   // any sensitive response class (admin.EndpointMatches)
	Class           string // one response data class, or ""
	Unauthenticated bool
	Exposure        string // one of exposures, or ""
	Search          string // substring of the template
	Sort            string // one of sortKeys, or "" (count)
}

// cleanText keeps a printable, bounded value.
func cleanText(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > maxFilterLen {
		s = s[:maxFilterLen]
	}
	s = strings.Map(func(r rune) rune {
		if r == unicode.ReplacementChar || !unicode.IsPrint(r) {
			return -1
		}
		return r
	}, s)
	return strings.TrimSpace(s)
}

// oneOf returns v when it is one of allowed, else "".
func oneOf(v string, allowed []string) string {
	v = strings.ToLower(strings.TrimSpace(v))
	if slices.Contains(allowed, v) {
		return v
	}
	return ""
}

// truthy reads a checkbox or flag value.
func truthy(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true", "1", "on", "yes":
		return true
	}
	return false
}

// parseInventoryFilter reads an inventory query. Unknown values are
// dropped rather than refused: a filter link never errors.
func parseInventoryFilter(q url.Values) inventoryFilter {
	return inventoryFilter{
		API:             cleanText(q.Get("api")),
		Status:          oneOf(q.Get("status"), specStatuses),
		Sensitive:       truthy(q.Get("sensitive")),
		Class:           classParam(q.Get("class")),
		Unauthenticated: truthy(q.Get("unauthenticated")),
		Exposure:        oneOf(q.Get("exposure"), exposures),
		Search:          cleanText(q.Get("q")),
		Sort:            oneOf(q.Get("sort"), sortKeys),
	}
}

// classParam accepts a data class name: lower-case letters, digits and
// underscores.
func classParam(v string) string {
	v = strings.ToLower(strings.TrimSpace(v))
	if v == "" || len(v) > 32 {
		return ""
	}
	for _, r := range v {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '_' {
			return ""
		}
	}
	return v
}

// Query encodes the filter back into a query (the inverse of
// parseInventoryFilter for parsed filters).
func (f inventoryFilter) Query() url.Values {
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("api", f.API)
	set("status", f.Status)
	if f.Sensitive {
		q.Set("sensitive", "true")
	}
	set("class", f.Class)
	if f.Unauthenticated {
		q.Set("unauthenticated", "true")
	}
	set("exposure", f.Exposure)
	set("q", f.Search)
	set("sort", f.Sort)
	return q
}

// IsZero reports whether the filter matches everything (in any order).
func (f inventoryFilter) IsZero() bool {
	return f == inventoryFilter{Sort: f.Sort}
}

// matches applies the filter: the admin API's semantics for api, status,
// sensitive, unauthenticated and exposure, plus class and search.
func (f inventoryFilter) matches(ep inventory.Endpoint) bool {
	q := map[string]string{"api": f.API, "status": f.Status, "exposure": f.Exposure}
	if f.Sensitive {
		q["sensitive"] = "true"
	}
	if f.Unauthenticated {
		q["unauthenticated"] = "true"
	}
	if !admin.EndpointMatches(ep, q) {
		return false
	}
	if f.Class != "" && !slices.Contains(ep.ResponseClasses, f.Class) && !slices.Contains(ep.RequestClasses, f.Class) {
		return false
	}
	if f.Search != "" && !strings.Contains(strings.ToLower(ep.Template), strings.ToLower(f.Search)) {
		return false
	}
	return true
}

// sortEndpoints orders endpoints for the table.
func sortEndpoints(eps []inventory.Endpoint, key string) {
	switch key {
	case "last_seen":
		sort.SliceStable(eps, func(i, j int) bool { return eps[i].LastSeen.After(eps[j].LastSeen) })
	case "template":
		// Endpoints() is already by API, template and method.
	default:
		sort.SliceStable(eps, func(i, j int) bool { return eps[i].Count > eps[j].Count })
	}
}

// findingsFilter is a parsed findings query.
type findingsFilter struct {
	Kind        string
	MinSeverity finding.Severity // 0: any
}

// parseFindingsFilter reads a findings query; unknown values are dropped.
func parseFindingsFilter(q url.Values) findingsFilter {
	f := findingsFilter{Kind: kindParam(q.Get("kind"))}
	if s, ok := finding.ParseSeverity(strings.TrimSpace(q.Get("severity"))); ok {
		f.MinSeverity = s
	}
	return f
}

// kindParam accepts a finding kind: lower-case letters, digits and
// underscores, at most 64.
func kindParam(v string) string {
	v = strings.TrimSpace(v)
	if v == "" || len(v) > 64 {
		return ""
	}
	for _, r := range v {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '_' {
			return ""
		}
	}
	return v
}

// Severity returns the severity name of the filter ("" for any).
func (f findingsFilter) Severity() string {
	if f.MinSeverity == 0 {
		return ""
	}
	return f.MinSeverity.String()
}

// Query encodes the filter.
func (f findingsFilter) Query() url.Values {
	q := url.Values{}
	if f.Kind != "" {
		q.Set("kind", f.Kind)
	}
	if f.MinSeverity != 0 {
		q.Set("severity", f.MinSeverity.String())
	}
	return q
}

// knownKinds are the finding kinds offered in the kind filter, in addition
// to those present in the store.
var knownKinds = []string{
	finding.KindShadow, finding.KindZombie, finding.KindOrphan, finding.KindUndocumentedParam,
	finding.KindUnauthSensitive, finding.KindEnumeration, finding.KindOwnershipAnomaly, finding.KindCredentialStuffing,
}
