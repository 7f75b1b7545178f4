package detect

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/bulwarkapi/bulwark/internal/finding"
)

// Evidence keys every finding of this package carries.
const (
	// EvidenceReports is how many times the finding has been returned by
	// Observe, this time included: 1 when it is new. OCSF reads it for
	// the activity (Create or Update).
	EvidenceReports = "reports"
	// EvidenceTrigger names the condition that held at the latest update
	// (distinct_objects, failure_share, sequential_walk, foreign_objects,
	// distinct_usernames, failed_logins, distinct_clients).
	EvidenceTrigger = "trigger"
)

// Credential-stuffing patterns, in the "pattern" evidence.
const (
	patternStuffing    = "credential_stuffing"
	patternDistributed = "distributed_guessing"
)

// Tags: the OWASP API Security Top 10 (2023) risk each kind belongs to.
const (
	tagBOLA     = "owasp-api-2023:API1" // Broken Object Level Authorization
	tagBrokenAu = "owasp-api-2023:API2" // Broken Authentication
)

// report is one finding's state across batches. Counters are a copy of
// the key's window at the finding's latest update.
type report struct {
	id  string
	det detector
	api string
	// endpoint is the operation of the latest event; param its object
	// parameter (enumeration).
	endpoint, param              string
	subject, client, username    string
	firstSeen, lastSeen          int64
	count, reports               int
	samples                      []string
	trigger                      string
	distinct, requests, failures int
	steps                        int // enumeration: sequential steps
	// cool is what the finding puts on cool-down; zero for nothing.
	cool    coolKey
	inBatch bool
}

// findingID is the stable id of the finding of det's key k:
// finding.MakeID(kind, api, subject-or-client-or-username, operation),
// the operation being "" for the detectors that aggregate across
// operations and the pattern for distributed guessing.
func findingID(det detector, k key) string {
	switch det {
	case detEnumeration:
		return finding.MakeID(finding.KindEnumeration, k.api, k.who, k.op)
	case detOwnership:
		return finding.MakeID(finding.KindOwnershipAnomaly, k.api, k.who, "")
	case detStuffing:
		return finding.MakeID(finding.KindCredentialStuffing, k.api, k.who, "")
	default:
		return finding.MakeID(finding.KindCredentialStuffing, k.api, k.who, patternDistributed)
	}
}

// finding renders the report; the result shares nothing with it.
func (r *report) finding(window time.Duration) finding.Finding {
	f := finding.Finding{
		ID:        r.id,
		API:       r.api,
		Endpoint:  r.endpoint,
		Subject:   r.subject,
		Client:    r.client,
		FirstSeen: time.Unix(0, r.firstSeen).UTC(),
		LastSeen:  time.Unix(0, r.lastSeen).UTC(),
		Count:     r.count,
	}
	ev := map[string]any{
		EvidenceReports:  r.reports,
		EvidenceTrigger:  r.trigger,
		"window_seconds": window.Seconds(),
	}
	if len(r.samples) > 0 {
		ev["sample_request_ids"] = slices.Clone(r.samples)
	}
	who := "One identity"
	if r.subject == "" {
		who = "One client address"
	}
	switch r.det {
	case detEnumeration:
		f.Kind, f.Severity, f.Tags = finding.KindEnumeration, finding.High, []string{tagBOLA}
		f.Title = "Object enumeration (BOLA probing) on " + orUnknown(r.endpoint)
		f.Detail = fmt.Sprintf("%s requested %d distinct %s values within %s; %d of its %d object requests were denied or not found.",
			who, r.distinct, orUnknown(r.param), window, r.failures, r.requests)
		ev["distinct_objects"] = r.distinct
		ev["object_requests"] = r.requests
		ev["failures"] = r.failures
		ev["failure_share"] = share(r.failures, r.requests)
		ev["sequential_steps"] = r.steps
		ev["operation"] = r.endpoint
		ev["object_param"] = r.param
	case detOwnership:
		f.Kind, f.Severity, f.Tags = finding.KindOwnershipAnomaly, finding.High, []string{tagBOLA}
		f.Title = "Requests for objects of other identities"
		f.Detail = fmt.Sprintf("%s requested %d distinct objects first seen with other identities within %s; %d of its %d such requests succeeded.",
			who, r.distinct, window, r.failures, r.requests)
		ev["foreign_objects"] = r.distinct
		ev["foreign_requests"] = r.requests
		ev["foreign_successes"] = r.failures
		ev["last_operation"] = r.endpoint
	case detStuffing:
		f.Kind, f.Severity, f.Tags = finding.KindCredentialStuffing, finding.High, []string{tagBrokenAu}
		f.Title = "Credential stuffing from one client address"
		f.Detail = fmt.Sprintf("Logins for %d distinct usernames failed %d times from one client address within %s.",
			r.distinct, r.requests, window)
		ev["pattern"] = patternStuffing
		ev["distinct_usernames"] = r.distinct
		ev["failed_logins"] = r.requests
	case detDistributed:
		f.Kind, f.Severity, f.Tags = finding.KindCredentialStuffing, finding.Medium, []string{tagBrokenAu}
		f.Title = "Distributed password guessing against one username"
		f.Detail = fmt.Sprintf("Logins for one username failed %d times from %d distinct client addresses within %s.",
			r.requests, r.distinct, window)
		ev["pattern"] = patternDistributed
		ev["username"] = r.username
		ev["distinct_clients"] = r.distinct
		ev["failed_logins"] = r.requests
	}
	f.Evidence = ev
	return f
}

func orUnknown(s string) string {
	if s == "" {
		return "(unknown)"
	}
	return s
}

// share is n/total rounded to 3 decimals, 0 for no total.
func share(n, total int) float64 {
	if total == 0 {
		return 0
	}
	return math.Round(float64(n)/float64(total)*1000) / 1000
}
