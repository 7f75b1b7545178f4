package detect

import (
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/bulwarkapi/bulwark/internal/finding"
)

// OCSF constants: the Detection Finding class of OCSF 1.3.
const (
	// OCSFVersion is the schema version OCSF writes in metadata.version.
	OCSFVersion = "1.3.0"
	// OCSFClassUID is the Detection Finding class.
	OCSFClassUID = 2004
	// OCSFCategoryUID is the Findings category.
	OCSFCategoryUID = 2
	// OCSF activities of a finding.
	OCSFActivityCreate = 1
	OCSFActivityUpdate = 2

	ocsfProduct = "Bulwark"
	ocsfVendor  = "Bulwark"
	// ocsfAnalyticBehavioral is analytic.type_id Behavioral.
	ocsfAnalyticBehavioral = 2
	// Observable type_ids.
	ocsfObservableIP     = 2
	ocsfObservableSubnet = 12
	ocsfObservableOther  = 99
)

// ocsfSeverities maps finding.Severity to OCSF severity_id and caption;
// anything else is 0, Unknown.
var ocsfSeverities = map[finding.Severity]struct {
	id      int
	caption string
}{
	finding.Info:     {1, "Informational"},
	finding.Low:      {2, "Low"},
	finding.Medium:   {3, "Medium"},
	finding.High:     {4, "High"},
	finding.Critical: {5, "Critical"},
}

// OCSF renders a finding as an OCSF 1.3 Detection Finding (class_uid
// 2004, category_uid 2), ready for JSON encoding. The mapping:
//
//   - activity_id: 1 Create when Evidence[EvidenceReports] is absent or
//     1 (a new finding), 2 Update after; type_uid is 200400 + activity_id.
//   - severity_id: Info 1, Low 2, Medium 3, High 4, Critical 5, anything
//     else 0 Unknown; severity is the caption.
//   - time: LastSeen in Unix milliseconds; count: Count; message: Detail
//     (Title when there is none).
//   - finding_info: uid ID, title Title, desc Detail, types [Kind],
//     first_seen_time and last_seen_time (ms), analytic {name and uid
//     Kind, type_id 2 Behavioral}.
//   - metadata: product {name, vendor_name "Bulwark"}, version
//     OCSFVersion, labels Tags.
//   - evidences: one artifact with actor.user.uid Subject,
//     src_endpoint.ip Client (src_endpoint.name when Client is not an IP
//     address), api {operation Endpoint, service.name API} and user.uid
//     the username hash of distributed guessing.
//   - observables: the subject hash (type_id 99 Other: it is a hash, not
//     a name), the client (2 IP Address, 12 Subnet for a prefix, else 99)
//     and the username hash (99), each named by its path in evidences.
//   - unmapped: evidence (the whole Evidence map) and labels (Labels).
//
// Empty values are left out. The result shares no maps with f.
func OCSF(f finding.Finding) map[string]any {
	activity, activityName := OCSFActivityCreate, "Create"
	if reportsOf(f.Evidence) > 1 {
		activity, activityName = OCSFActivityUpdate, "Update"
	}
	sev, ok := ocsfSeverities[f.Severity]
	if !ok {
		sev.caption = "Unknown"
	}
	message := f.Detail
	if message == "" {
		message = f.Title
	}
	info := map[string]any{
		"uid":   f.ID,
		"title": f.Title,
	}
	putString(info, "desc", f.Detail)
	if f.Kind != "" {
		info["types"] = []string{f.Kind}
		info["analytic"] = map[string]any{"name": f.Kind, "uid": f.Kind, "type_id": ocsfAnalyticBehavioral, "type": "Behavioral"}
	}
	putTime(info, "first_seen_time", f.FirstSeen)
	putTime(info, "last_seen_time", f.LastSeen)

	meta := map[string]any{
		"product": map[string]any{"name": ocsfProduct, "vendor_name": ocsfVendor},
		"version": OCSFVersion,
	}
	if len(f.Tags) > 0 {
		meta["labels"] = slices.Clone(f.Tags)
	}

	out := map[string]any{
		"activity_id":   activity,
		"activity_name": activityName,
		"category_uid":  OCSFCategoryUID,
		"category_name": "Findings",
		"class_uid":     OCSFClassUID,
		"class_name":    "Detection Finding",
		"type_uid":      OCSFClassUID*100 + activity,
		"type_name":     "Detection Finding: " + activityName,
		"severity_id":   sev.id,
		"severity":      sev.caption,
		"message":       message,
		"finding_info":  info,
		"metadata":      meta,
	}
	// time is required: the latest sighting, else the first, else 0.
	out["time"] = int64(0)
	putTime(out, "time", f.FirstSeen)
	putTime(out, "time", f.LastSeen)
	if f.Count > 0 {
		out["count"] = f.Count
	}

	ev, obs := map[string]any{}, []any{}
	if f.Subject != "" {
		ev["actor"] = map[string]any{"user": map[string]any{"uid": f.Subject}}
		obs = append(obs, observable("evidences.actor.user.uid", ocsfObservableOther, f.Subject))
	}
	if f.Client != "" {
		src, o := clientEndpoint(f.Client)
		ev["src_endpoint"] = src
		obs = append(obs, o)
	}
	if f.Endpoint != "" || f.API != "" {
		api := map[string]any{}
		putString(api, "operation", f.Endpoint)
		if f.API != "" {
			api["service"] = map[string]any{"name": f.API}
		}
		ev["api"] = api
	}
	if u, _ := f.Evidence["username"].(string); u != "" {
		ev["user"] = map[string]any{"uid": u}
		obs = append(obs, observable("evidences.user.uid", ocsfObservableOther, u))
	}
	if len(ev) > 0 {
		out["evidences"] = []any{ev}
	}
	if len(obs) > 0 {
		out["observables"] = obs
	}

	unmapped := map[string]any{}
	if len(f.Evidence) > 0 {
		unmapped["evidence"] = maps.Clone(f.Evidence)
	}
	if len(f.Labels) > 0 {
		unmapped["labels"] = maps.Clone(f.Labels)
	}
	if len(unmapped) > 0 {
		out["unmapped"] = unmapped
	}
	return out
}

// Reports is how many times Observe has returned f (1: new), read from
// Evidence[EvidenceReports] as set by Observe or decoded from JSON; 0
// when absent.
func Reports(f finding.Finding) int { return reportsOf(f.Evidence) }

// reportsOf reads Evidence[EvidenceReports]; 0 when absent.
func reportsOf(ev map[string]any) int {
	switch v := ev[EvidenceReports].(type) {
	case int:
		return v
	case int64:
		return int(v)
	case float64:
		return int(v)
	}
	return 0
}

// clientEndpoint maps a client address (an IP, an IP:port or a prefix
// such as an IPv6 /64) to an OCSF network endpoint and its observable.
func clientEndpoint(c string) (map[string]any, map[string]any) {
	if a, err := netip.ParseAddr(c); err == nil {
		return map[string]any{"ip": a.String()}, observable("evidences.src_endpoint.ip", ocsfObservableIP, a.String())
	}
	if ap, err := netip.ParseAddrPort(c); err == nil {
		ip := ap.Addr().String()
		return map[string]any{"ip": ip, "port": int(ap.Port())}, observable("evidences.src_endpoint.ip", ocsfObservableIP, ip)
	}
	if _, err := netip.ParsePrefix(c); err == nil {
		return map[string]any{"name": c}, observable("evidences.src_endpoint.name", ocsfObservableSubnet, c)
	}
	return map[string]any{"name": c}, observable("evidences.src_endpoint.name", ocsfObservableOther, c)
}

func observable(name string, typeID int, value string) map[string]any {
	o := map[string]any{"name": name, "type_id": typeID, "value": value}
	switch typeID {
	case ocsfObservableIP:
		o["type"] = "IP Address"
	case ocsfObservableSubnet:
		o["type"] = "Subnet"
	default:
		o["type"] = "Other"
	}
	return o
}

func putString(m map[string]any, k, v string) {
	if v != "" {
		m[k] = v
	}
}

func putTime(m map[string]any, k string, t time.Time) {
	if !t.IsZero() {
		m[k] = t.UnixMilli()
	}
}
