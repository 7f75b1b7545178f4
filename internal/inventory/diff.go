package inventory

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/bulwarkapi/bulwark/internal/finding"
)

// Compliance tags of inventory findings, kept short: the requirement an
// auditor would look up.
const (
	// tagPCIInventory: PCI DSS v4.0 6.3.2, an inventory of bespoke and
	// custom software (APIs included) is maintained.
	tagPCIInventory = "pci-dss:6.3.2"
	// tagPCIPAN: PCI DSS v4.0 3.4.1, PAN is masked when displayed.
	tagPCIPAN = "pci-dss:3.4.1"
	// tagGDPRSecurity: GDPR art. 32, security of processing.
	tagGDPRSecurity = "gdpr:32"
	// tagOWASPInventory: OWASP API Security Top 10 (2023) API9, improper
	// inventory management.
	tagOWASPInventory = "owasp-api:API9:2023"
	// tagOWASPExposure: API3, broken object property level authorization
	// (excessive data exposure).
	tagOWASPExposure = "owasp-api:API3:2023"
)

// Data classes (dlp.Class names) whose presence in an unauthenticated
// response is a finding. Email, phone and the like are excluded: public
// sign-up and contact endpoints return them by design.
const (
	classPAN        = "pan"
	classIBAN       = "iban"
	classUSSSN      = "us_ssn"
	classUKNINO     = "uk_nino"
	classPrivateKey = "private_key"
	classCloudKey   = "cloud_key"
)

// sensitiveSeverity is the severity of class in an unauthenticated
// response; 0 for a class that is not a finding.
func sensitiveSeverity(class string) finding.Severity {
	switch class {
	case classPAN:
		return finding.Critical
	case classIBAN, classUSSSN, classUKNINO, classPrivateKey, classCloudKey:
		return finding.High
	}
	return 0
}

// Findings compares the inventory with the specs at time now:
//
//   - shadow endpoints (path, or method on a path, not in the spec): Medium;
//   - zombie endpoints (deprecated operation still called): Medium;
//   - orphan operations (in the spec, no traffic in the last orphanWindow,
//     reported only once the inventory has observed for orphanWindow;
//     0 disables): Low;
//   - undocumented parameters, one finding each: Low;
//   - unauthenticated calls answered with sensitive data classes: High,
//     Critical for PAN.
//
// Ids are stable (finding.MakeID over kind, API, method and template, and
// the parameter for undocumented ones), so findings update rather than
// duplicate. They are sorted by severity, most severe first, then id.
func (inv *Inventory) Findings(now time.Time, orphanWindow time.Duration) []finding.Finding {
	inv.mu.RLock()
	defer inv.mu.RUnlock()
	var out []finding.Finding
	for _, e := range inv.sorted() {
		out = append(out, endpointFindings(e)...)
	}
	if orphanWindow > 0 && now.Sub(inv.start) >= orphanWindow {
		out = append(out, inv.orphans(now, orphanWindow)...)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Severity != out[j].Severity {
			return out[i].Severity > out[j].Severity
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// endpointFindings returns the findings about one endpoint.
func endpointFindings(e *endpoint) []finding.Finding {
	var out []finding.Finding
	k := e.key
	name := k.method + " " + k.tmpl
	base := func(kind string, sev finding.Severity, title, detail string, parts ...string) finding.Finding {
		return finding.Finding{
			ID:        finding.MakeID(kind, append([]string{k.api, k.method, k.tmpl}, parts...)...),
			Kind:      kind,
			Severity:  sev,
			Title:     title,
			Detail:    detail,
			API:       k.api,
			Endpoint:  name,
			FirstSeen: e.first,
			LastSeen:  e.last,
			Count:     int(min(e.count, uint64(maxInt))),
			Evidence: map[string]any{
				"endpoint_id": e.id,
				"calls":       e.count,
				"hosts":       e.hosts.sorted(),
			},
		}
	}
	switch e.status {
	case StatusShadow:
		what := "is not in the spec"
		if e.shadowReason == ShadowMethod {
			what = "is in the spec, but not for method " + k.method
		}
		f := base(finding.KindShadow, finding.Medium, "Shadow endpoint "+name,
			fmt.Sprintf("Traffic reached %s, whose path %s%s; undocumented endpoints escape review, validation and deprecation.", name, what, apiSuffix(k.api)))
		f.Evidence["reason"] = e.shadowReason
		f.Tags = []string{tagPCIInventory, tagOWASPInventory}
		out = append(out, f)
	case StatusZombie:
		f := base(finding.KindZombie, finding.Medium, "Zombie endpoint "+name,
			fmt.Sprintf("Operation %s is deprecated in the spec%s and still called; retire it or move its callers.", e.operation, apiSuffix(k.api)))
		f.Evidence["operation"] = e.operation
		f.Tags = []string{tagPCIInventory, tagOWASPInventory}
		out = append(out, f)
	}
	if e.status == StatusDocumented || e.status == StatusZombie {
		for _, p := range sortedParams(e.undocumented) {
			f := base(finding.KindUndocumentedParam, finding.Low,
				fmt.Sprintf("Undocumented %s parameter %q on %s", p.In, p.Name, name),
				fmt.Sprintf("Requests to %s carry %s parameter %q, which operation %s does not declare; unvalidated inputs invite mass assignment and injection.", name, p.In, p.Name, e.operation),
				p.In, p.Name)
			f.Evidence["parameter"] = p.Name
			f.Evidence["in"] = p.In
			f.Evidence["type"] = p.Type
			f.Tags = []string{tagPCIInventory, tagOWASPInventory}
			out = append(out, f)
		}
	}
	var classes []string
	var sev finding.Severity
	for _, c := range e.unauthResp.sorted() {
		if s := sensitiveSeverity(c); s > 0 {
			classes = append(classes, c)
			sev = max(sev, s)
		}
	}
	if len(classes) > 0 {
		f := base(finding.KindUnauthSensitive, sev, "Unauthenticated access to sensitive data on "+name,
			fmt.Sprintf("Calls without authentication to %s received responses with %s.", name, strings.Join(classes, ", ")))
		f.Evidence["classes"] = classes
		f.Evidence["unauthenticated_calls"] = e.unauth
		f.Tags = []string{tagOWASPExposure, tagGDPRSecurity}
		for _, c := range classes {
			if c == classPAN {
				f.Tags = append([]string{tagPCIPAN}, f.Tags...)
			}
		}
		out = append(out, f)
	}
	return out
}

// maxInt bounds a count converted to int.
const maxInt = int(^uint(0) >> 1)

func apiSuffix(api string) string {
	if api == "" {
		return ""
	}
	return fmt.Sprintf(" of API %q", api)
}

// orphans returns the spec operations without traffic in the window;
// inv.mu is held.
func (inv *Inventory) orphans(now time.Time, window time.Duration) []finding.Finding {
	type opKey struct{ api, key string }
	last := map[opKey]time.Time{}
	for k, e := range inv.endpoints {
		if e.operation == "" {
			continue
		}
		ok := opKey{k.api, e.operation}
		if e.last.After(last[ok]) {
			last[ok] = e.last
		}
	}
	names := make([]string, 0, len(inv.apis))
	for name, a := range inv.apis {
		if a.doc != nil {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	var out []finding.Finding
	for _, name := range names {
		for _, op := range inv.apis[name].doc.Operations {
			seen := last[opKey{name, op.Key}]
			if !seen.IsZero() && now.Sub(seen) <= window {
				continue
			}
			detail := fmt.Sprintf("Operation %s%s has had no traffic for %s; unused operations widen the attack surface: remove them or confirm they are needed.", op.Key, apiSuffix(name), window)
			ev := map[string]any{"window": window.String(), "observed_since": inv.start}
			if !seen.IsZero() {
				ev["last_seen"] = seen
			}
			out = append(out, finding.Finding{
				ID:        finding.MakeID(finding.KindOrphan, name, op.Key),
				Kind:      finding.KindOrphan,
				Severity:  finding.Low,
				Title:     "Orphan operation " + op.Key,
				Detail:    detail,
				API:       name,
				Endpoint:  op.Key,
				Evidence:  ev,
				Tags:      []string{tagPCIInventory, tagOWASPInventory},
				FirstSeen: inv.start,
				LastSeen:  now,
				Count:     1,
			})
		}
	}
	return out
}
