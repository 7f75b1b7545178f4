package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/bulwarkapi/bulwark/internal/finding"
	"github.com/bulwarkapi/bulwark/internal/inventory"
	"github.com/bulwarkapi/bulwark/internal/store"
)

// maxRows bounds the inventory table; a narrower filter shows the rest.
const maxRows = 500

// maxTopReasons is the length of the overview's block reasons table.
const maxTopReasons = 10

// sensitiveClasses mirror the admin API's: payment and identity data,
// secrets.
var sensitiveClasses = []string{"pan", "iban", "us_ssn", "uk_nino", "aba_routing", "private_key", "cloud_key", "jwt"}

func isSensitiveClass(c string) bool { return slices.Contains(sensitiveClasses, c) }

// severities from most to least severe.
var severities = []finding.Severity{finding.Critical, finding.High, finding.Medium, finding.Low, finding.Info}

// sevCount is a count of findings of one severity.
type sevCount struct {
	Severity finding.Severity
	Count    int
}

type overviewData struct {
	TimelineOn        bool
	Window            string
	Requests, Blocked uint64
	BlockedShare      float64
	Traffic, Blocks   chart
	TopReasons        []reasonCount

	InventoryOn            bool
	Endpoints              int
	Calls                  uint64
	Shadow, Zombie         int
	Sensitive, Unauth, Ext int

	FindingsOn     bool
	FindingsErr    bool
	FindingsTotal  int
	FindingsCapped bool
	BySeverity     []sevCount
}

func (d *dashboard) overview(w http.ResponseWriter, r *http.Request, s *session) {
	var o overviewData
	if t := d.o.Timeline; t != nil {
		o.TimelineOn = true
		bs := t.Snapshot(d.now())
		o.Window = span(t.BucketWidth() * time.Duration(len(bs)))
		var reasons []reasonCount
		o.Requests, o.Blocked, reasons = windowTotals(bs)
		if o.Requests > 0 {
			o.BlockedShare = 100 * float64(o.Blocked) / float64(o.Requests)
		}
		if len(reasons) > maxTopReasons {
			reasons = reasons[:maxTopReasons]
		}
		o.TopReasons = reasons
		o.Traffic, o.Blocks = trafficCharts(bs, t.BucketWidth())
	}
	if inv := d.inventory(); inv != nil {
		o.InventoryOn = true
		for _, ep := range inv.Endpoints() {
			o.Endpoints++
			o.Calls += ep.Count
			switch ep.SpecStatus {
			case inventory.StatusShadow:
				o.Shadow++
			case inventory.StatusZombie:
				o.Zombie++
			}
			if (inventoryFilter{Sensitive: true}).matches(ep) {
				o.Sensitive++
			}
			if ep.Unauthenticated > 0 {
				o.Unauth++
			}
			if ep.Exposure == inventory.ExposureNorthSouth {
				o.Ext++
			}
		}
	}
	if d.o.Findings != nil {
		o.FindingsOn = true
		fs, err := d.findings(r.Context(), store.FindingFilter{Limit: maxFindings})
		if err != nil {
			o.FindingsErr = true
		}
		o.FindingsTotal, o.FindingsCapped = len(fs), len(fs) >= maxFindings
		for _, sev := range severities {
			n := 0
			for _, f := range fs {
				if f.Severity == sev {
					n++
				}
			}
			o.BySeverity = append(o.BySeverity, sevCount{sev, n})
		}
	}
	d.render(w, http.StatusOK, "overview", view{Title: "Overview", Nav: "overview", Signed: true, CSRF: s.csrf, Page: o})
}

// findings calls the Findings func, logging a failure.
func (d *dashboard) findings(ctx context.Context, f store.FindingFilter) ([]finding.Finding, error) {
	fs, err := d.o.Findings(ctx, f)
	if err != nil {
		d.o.Logger.Warn("dashboard: list findings", "error", err.Error())
		return nil, err
	}
	return fs, nil
}

// quickLink is a one-click inventory filter.
type quickLink struct {
	Label, Href string
	Active      bool
}

type inventoryData struct {
	On               bool
	Filter           inventoryFilter
	APIs             []string
	Statuses         []string
	Exposures        []string
	Classes          []string
	Sorts            []string
	Quick            []quickLink
	Rows             []inventory.Endpoint
	Total, Matched   int
	Capped, Filtered bool
}

func (d *dashboard) inventoryPage(w http.ResponseWriter, r *http.Request, s *session) {
	f := parseInventoryFilter(r.URL.Query())
	data := inventoryData{
		Filter: f, Statuses: specStatuses, Exposures: exposures, Classes: dataClasses(),
		Sorts: sortKeys, Filtered: !f.IsZero(),
	}
	data.Quick = []quickLink{
		{Label: "All", Href: "/ui/inventory", Active: f.IsZero()},
		{Label: "Shadow", Href: "/ui/inventory?status=shadow", Active: f == inventoryFilter{Status: inventory.StatusShadow}},
		{Label: "Zombie", Href: "/ui/inventory?status=zombie", Active: f == inventoryFilter{Status: inventory.StatusZombie}},
		{Label: "Sensitive data", Href: "/ui/inventory?sensitive=true", Active: f == inventoryFilter{Sensitive: true}},
		{Label: "Unauthenticated", Href: "/ui/inventory?unauthenticated=true", Active: f == inventoryFilter{Unauthenticated: true}},
		{Label: "External (north-south)", Href: "/ui/inventory?exposure=north-south", Active: f == inventoryFilter{Exposure: inventory.ExposureNorthSouth}},
	}
	if inv := d.inventory(); inv != nil {
		data.On = true
		eps := inv.Endpoints()
		data.Total = len(eps)
		apis := map[string]bool{}
		var rows []inventory.Endpoint
		for _, ep := range eps {
			apis[ep.API] = true
			if f.matches(ep) {
				rows = append(rows, ep)
			}
		}
		for a := range apis {
			data.APIs = append(data.APIs, a)
		}
		sort.Strings(data.APIs)
		data.Matched = len(rows)
		sortEndpoints(rows, f.Sort)
		if len(rows) > maxRows {
			rows, data.Capped = rows[:maxRows], true
		}
		data.Rows = rows
	}
	d.render(w, http.StatusOK, "inventory", view{Title: "Inventory", Nav: "inventory", Signed: true, CSRF: s.csrf, Page: data})
}

type statusRow struct {
	Code  int
	Count uint64
}

type endpointData struct {
	EP       inventory.Endpoint
	Status   chart
	Codes    []statusRow
	Findings []finding.Finding
	// RequestBody and ResponseBody are the sampled body schemas as rows.
	RequestBody, ResponseBody []schemaRow
}

// schemaRow is one property of a sampled body schema: its path
// ("accounts[].balance.amount") and type.
type schemaRow struct{ Path, Type string }

// maxSchemaRows bounds the rows of a schema on the endpoint page.
const maxSchemaRows = 300

// schemaRows flattens a type-only JSON schema (inventory's sampled body
// shapes) into rows, depth first, properties in name order; "[]" marks
// array items, "{*}" the values of a map keyed by data.
func schemaRows(s map[string]any) []schemaRow {
	var rows []schemaRow
	var walk func(path string, s map[string]any)
	walk = func(path string, s map[string]any) {
		if len(rows) >= maxSchemaRows || s == nil {
			return
		}
		t, _ := s["type"].(string)
		if path != "" {
			rows = append(rows, schemaRow{path, t})
		}
		if props, ok := s["properties"].(map[string]any); ok {
			names := make([]string, 0, len(props))
			for n := range props {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				c, _ := props[n].(map[string]any)
				if path == "" {
					walk(n, c)
				} else {
					walk(path+"."+n, c)
				}
			}
		}
		if items, ok := s["items"].(map[string]any); ok {
			walk(path+"[]", items)
		}
		if extra, ok := s["additionalProperties"].(map[string]any); ok {
			walk(path+"{*}", extra)
		}
	}
	if t, _ := s["type"].(string); t != "" && t != "object" {
		rows = append(rows, schemaRow{"(body)", t})
	}
	walk("", s)
	return rows
}

func (d *dashboard) endpointPage(w http.ResponseWriter, r *http.Request, s *session) {
	inv := d.inventory()
	if inv == nil {
		d.errorPage(w, http.StatusNotFound, s, "The inventory is disabled in this configuration, or its store has not opened yet.")
		return
	}
	ep, ok := inv.Endpoint(r.PathValue("id"))
	if !ok {
		d.errorPage(w, http.StatusNotFound, s, "No endpoint with this id: it may have been re-templated or pruned.")
		return
	}
	data := endpointData{EP: ep, Status: statusChart(ep.Status), RequestBody: schemaRows(ep.RequestSchema), ResponseBody: schemaRows(ep.ResponseSchema)}
	for c, n := range ep.Status {
		data.Codes = append(data.Codes, statusRow{c, n})
	}
	sort.Slice(data.Codes, func(i, j int) bool { return data.Codes[i].Code < data.Codes[j].Code })
	if d.o.Findings != nil {
		fs, _ := d.findings(r.Context(), store.FindingFilter{Limit: maxFindings})
		for _, f := range fs {
			if aboutEndpoint(f, ep) {
				data.Findings = append(data.Findings, f)
			}
		}
	}
	d.render(w, http.StatusOK, "endpoint", view{Title: ep.Method + " " + ep.Template, Nav: "inventory", Signed: true, CSRF: s.csrf, Page: data})
}

type findingsData struct {
	On         bool
	Err        bool
	Filter     findingsFilter
	Kinds      []string
	Severities []finding.Severity
	Rows       []finding.Finding
	Capped     bool
}

func (d *dashboard) findingsPage(w http.ResponseWriter, r *http.Request, s *session) {
	f := parseFindingsFilter(r.URL.Query())
	data := findingsData{Filter: f, Severities: severities}
	kinds := map[string]bool{}
	for _, k := range knownKinds {
		kinds[k] = true
	}
	status := http.StatusOK
	if d.o.Findings != nil {
		data.On = true
		fs, err := d.findings(r.Context(), store.FindingFilter{Kind: f.Kind, MinSeverity: f.MinSeverity, Limit: maxFindings})
		if err != nil {
			data.Err, status = true, http.StatusServiceUnavailable
		}
		for _, x := range fs {
			kinds[x.Kind] = true
		}
		data.Rows, data.Capped = fs, len(fs) >= maxFindings
	}
	if f.Kind != "" {
		kinds[f.Kind] = true
	}
	for k := range kinds {
		data.Kinds = append(data.Kinds, k)
	}
	sort.Strings(data.Kinds)
	d.render(w, status, "findings", view{Title: "Findings", Nav: "findings", Signed: true, CSRF: s.csrf, Page: data})
}

// evidence is one row of a finding's evidence table.
type evidence struct {
	Key, Value string
}

type findingData struct {
	F          finding.Finding
	Evidence   []evidence
	Labels     []evidence
	EndpointID string // the inventory endpoint of the finding, if known
}

func (d *dashboard) findingPage(w http.ResponseWriter, r *http.Request, s *session) {
	if d.o.Findings == nil {
		d.errorPage(w, http.StatusNotFound, s, "Findings are not kept in this configuration.")
		return
	}
	id := r.PathValue("id")
	fs, err := d.findings(r.Context(), store.FindingFilter{Limit: maxFindings})
	if err != nil {
		d.errorPage(w, http.StatusServiceUnavailable, s, "The findings store did not answer; retry shortly.")
		return
	}
	i := slices.IndexFunc(fs, func(f finding.Finding) bool { return f.ID == id })
	if i < 0 {
		d.errorPage(w, http.StatusNotFound, s, "No finding with this id among the latest findings.")
		return
	}
	f := fs[i]
	data := findingData{F: f, Evidence: kvRows(f.Evidence), Labels: labelRows(f.Labels)}
	data.EndpointID = d.findingEndpoint(f)
	d.render(w, http.StatusOK, "finding", view{Title: f.Title, Nav: "findings", Signed: true, CSRF: s.csrf, Page: data})
}

// aboutEndpoint reports whether a finding is about an endpoint: by the
// endpoint id in its evidence (inventory findings), by "METHOD
// /template", or by the spec operation (detector findings).
func aboutEndpoint(f finding.Finding, ep inventory.Endpoint) bool {
	if id, ok := f.Evidence["endpoint_id"].(string); ok {
		return id == ep.ID
	}
	if f.API != ep.API || f.Endpoint == "" {
		return false
	}
	return f.Endpoint == ep.Method+" "+ep.Template || (ep.Operation != "" && f.Endpoint == ep.Operation)
}

// findingEndpoint returns the id of the inventory endpoint a finding is
// about ("" when unknown).
func (d *dashboard) findingEndpoint(f finding.Finding) string {
	inv := d.inventory()
	if inv == nil {
		return ""
	}
	if id, ok := f.Evidence["endpoint_id"].(string); ok {
		if _, ok := inv.Endpoint(id); ok {
			return id
		}
	}
	if f.Endpoint == "" {
		return ""
	}
	if method, tmpl, ok := strings.Cut(f.Endpoint, " "); ok {
		id := inventory.EndpointID(f.API, method, tmpl)
		if _, ok := inv.Endpoint(id); ok {
			return id
		}
	}
	for _, ep := range inv.Endpoints() {
		if aboutEndpoint(f, ep) {
			return ep.ID
		}
	}
	return ""
}

// kvRows flattens evidence into sorted rows; values that are not strings
// are shown as JSON.
func kvRows(m map[string]any) []evidence {
	out := make([]evidence, 0, len(m))
	for k, v := range m {
		var s string
		switch x := v.(type) {
		case string:
			s = x
		default:
			b, err := json.Marshal(x)
			if err != nil {
				s = fmt.Sprint(x)
			} else {
				s = string(b)
			}
		}
		out = append(out, evidence{k, s})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

func labelRows(m map[string]string) []evidence {
	out := make([]evidence, 0, len(m))
	for k, v := range m {
		out = append(out, evidence{k, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

type configData struct {
	On   bool
	YAML string
	Err  bool
	File string
}

func (d *dashboard) configPage(w http.ResponseWriter, _ *http.Request, s *session) {
	var data configData
	status := http.StatusOK
	if d.o.Config != nil {
		if cfg := d.o.Config(); cfg != nil {
			data.On, data.File = true, cfg.File
			b, err := RedactedYAML(cfg)
			if err != nil {
				d.o.Logger.Error("dashboard: redact config", "error", err.Error())
				data.Err, status = true, http.StatusInternalServerError
			} else {
				data.YAML = string(b)
			}
		}
	}
	d.render(w, status, "config", view{Title: "Configuration", Nav: "config", Signed: true, CSRF: s.csrf, Page: data})
}

// span writes a window length for people: "1 h", "15 min", "90 s".
func span(d time.Duration) string {
	switch {
	case d >= time.Hour && d%time.Hour == 0:
		return fmt.Sprintf("%d h", d/time.Hour)
	case d >= time.Minute && d%time.Minute == 0:
		return fmt.Sprintf("%d min", d/time.Minute)
	}
	return d.String()
}
