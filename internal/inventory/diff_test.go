package inventory

import (
	"slices"
	"testing"
	"time"

	"github.com/bulwarkapi/bulwark/internal/finding"
)

func TestFindings(t *testing.T) {
	inv := newBank(t)
	inv.Ingest(bankTraffic())
	now := t0.Add(7 * 24 * time.Hour)
	got := inv.Findings(now, 7*24*time.Hour)

	type want struct {
		kind, endpoint string
		sev            finding.Severity
		parts          []string // MakeID parts after kind
	}
	wants := []want{
		{finding.KindShadow, "DELETE /api/v1/accounts/{AccountId}", finding.Medium, []string{bankAPI, "DELETE", "/api/v1/accounts/{AccountId}"}},
		{finding.KindShadow, "GET /api/v1/internal/debug/{debugId}", finding.Medium, []string{bankAPI, "GET", "/api/v1/internal/debug/{debugId}"}},
		{finding.KindZombie, "GET /api/v1/legacy/statements/{StatementId}", finding.Medium, []string{bankAPI, "GET", "/api/v1/legacy/statements/{StatementId}"}},
		{finding.KindUnauthSensitive, "GET /api/v1/accounts/{AccountId}/cards", finding.Critical, []string{bankAPI, "GET", "/api/v1/accounts/{AccountId}/cards"}},
		{finding.KindUndocumentedParam, "GET /api/v1/accounts", finding.Low, []string{bankAPI, "GET", "/api/v1/accounts", "query", "debug"}},
		{finding.KindUndocumentedParam, "POST /api/v1/accounts", finding.Low, []string{bankAPI, "POST", "/api/v1/accounts", "body", "isAdmin"}},
		{finding.KindOrphan, "GET /health", finding.Low, []string{bankAPI, "GET /health"}},
	}
	byID := map[string]finding.Finding{}
	for _, f := range got {
		byID[f.ID] = f
	}
	for _, w := range wants {
		id := finding.MakeID(w.kind, w.parts...)
		f, ok := byID[id]
		if !ok {
			t.Errorf("missing %s %s (id %s)", w.kind, w.endpoint, id)
			continue
		}
		if f.Kind != w.kind || f.Endpoint != w.endpoint || f.Severity != w.sev || f.API != bankAPI {
			t.Errorf("%s: got kind %s endpoint %q severity %v", id, f.Kind, f.Endpoint, f.Severity)
		}
		if len(f.Tags) == 0 || f.Title == "" || f.Detail == "" {
			t.Errorf("%s: no tags, title or detail: %+v", id, f)
		}
		delete(byID, id)
	}
	for _, f := range byID {
		t.Errorf("unexpected finding %s %s %s: %s", f.Kind, f.Severity, f.Endpoint, f.Detail)
	}

	// The PAN finding carries the PCI DSS mapping and only the sensitive classes.
	pan := got[0]
	if pan.Kind != finding.KindUnauthSensitive || !slices.Contains(pan.Tags, tagPCIPAN) {
		t.Errorf("first finding %s tags %q, want the critical PAN one with %s", pan.Kind, pan.Tags, tagPCIPAN)
	}
	if cls, _ := pan.Evidence["classes"].([]string); !slices.Equal(cls, []string{"pan"}) {
		t.Errorf("PAN evidence classes %v", pan.Evidence["classes"])
	}

	// Ids are stable: the same facts give the same findings.
	inv.Ingest(bankTraffic())
	again := inv.Findings(now, 7*24*time.Hour)
	if len(again) != len(got) {
		t.Fatalf("%d findings, then %d", len(got), len(again))
	}
	for i := range got {
		if got[i].ID != again[i].ID {
			t.Errorf("finding %d id %s then %s", i, got[i].ID, again[i].ID)
		}
	}
}

func TestFindingsOrphanWindow(t *testing.T) {
	inv := newBank(t)
	inv.Ingest(bankTraffic())
	count := func(now time.Time, window time.Duration) int {
		n := 0
		for _, f := range inv.Findings(now, window) {
			if f.Kind == finding.KindOrphan {
				n++
			}
		}
		return n
	}
	// Observed for less than the window: no conclusion.
	if n := count(t0.Add(time.Hour), 24*time.Hour); n != 0 {
		t.Errorf("orphans before the window elapsed: %d", n)
	}
	// Disabled.
	if n := count(t0.Add(48*time.Hour), 0); n != 0 {
		t.Errorf("orphans with window 0: %d", n)
	}
	// After a long quiet period every operation is an orphan.
	if n, all := count(t0.Add(30*24*time.Hour), 24*time.Hour), len(loadBank(t).Operations); n != all {
		t.Errorf("orphans after a quiet month: %d, want %d", n, all)
	}
}

func TestFindingsWithoutSpec(t *testing.T) {
	inv, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	evs := bankTraffic()
	for i := range evs {
		evs[i].API = ""
	}
	inv.Ingest(evs)
	for _, f := range inv.Findings(t0.Add(30*24*time.Hour), time.Hour) {
		if f.Kind != finding.KindUnauthSensitive {
			t.Errorf("without a spec: unexpected %s %s", f.Kind, f.Endpoint)
		}
	}
	for _, ep := range inv.Endpoints() {
		if ep.SpecStatus != StatusUnspecified {
			t.Errorf("%s %s: status %s", ep.Method, ep.Template, ep.SpecStatus)
		}
	}
}
