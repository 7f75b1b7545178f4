package detect

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkapi/bulwark/internal/event"
	"github.com/bulwarkapi/bulwark/internal/finding"
)

// goldenFindings runs a deterministic scenario raising one finding of
// each detector and returns the first (Create) and the latest (Update)
// report of each, sorted by kind, id and report.
func goldenFindings(t *testing.T) []finding.Finding {
	t.Helper()
	d, c := newTest(t, Options{})
	alice, bob, mallory := hash("alice"), hash("bob"), hash("mallory")
	evs := walk(mallory, "198.51.100.7", 30, 1, 10*time.Second, 403)
	evs = append(evs, list(base, alice, "192.0.2.1", "a-1", "a-2", "a-3"))
	for i, a := range []string{"a-1", "a-2", "a-3", "a-1"} {
		evs = append(evs, objectGet(base.Add(time.Duration(2+i)*time.Second), bob, "[2001:db8::7]:443", a, 200))
	}
	for i := range 12 {
		evs = append(evs, login(base.Add(time.Duration(i)*500*time.Millisecond), fmt.Sprintf("v%d", i), "2001:db8:1:2::/64", 401))
		evs = append(evs, login(base.Add(time.Duration(i)*500*time.Millisecond), "ceo", fmt.Sprintf("100.64.0.%d", i+1), 401))
	}
	slices.SortStableFunc(evs, func(a, b event.Exchange) int { return a.Time.Compare(b.Time) })
	first, latest := map[string]finding.Finding{}, map[string]finding.Finding{}
	for _, f := range flat(run(d, c, evs)) {
		if _, ok := first[f.ID]; !ok {
			first[f.ID] = f
		}
		latest[f.ID] = f
	}
	var out []finding.Finding
	for id, f := range first {
		out = append(out, f)
		if l := latest[id]; reportsOf(l.Evidence) > 1 {
			out = append(out, l)
		}
	}
	slices.SortFunc(out, func(a, b finding.Finding) int {
		if c := strings.Compare(a.Kind, b.Kind); c != 0 {
			return c
		}
		if c := strings.Compare(a.ID, b.ID); c != 0 {
			return c
		}
		return reportsOf(a.Evidence) - reportsOf(b.Evidence)
	})
	return out
}

func TestOCSFGolden(t *testing.T) {
	fs := goldenFindings(t)
	kinds, activities := map[string]map[string]bool{}, map[int]int{}
	for _, f := range fs {
		if kinds[f.Kind] == nil {
			kinds[f.Kind] = map[string]bool{}
		}
		kinds[f.Kind][f.ID] = true
	}
	if len(kinds[finding.KindEnumeration]) != 1 || len(kinds[finding.KindOwnershipAnomaly]) != 1 || len(kinds[finding.KindCredentialStuffing]) != 2 {
		t.Fatalf("scenario raised %v", kinds)
	}
	docs := make([]map[string]any, 0, len(fs))
	for _, f := range fs {
		docs = append(docs, OCSF(f))
	}
	got, err := json.MarshalIndent(docs, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", "golden", "ocsf.json")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the output (run with -update after checking):\n%s", path, got)
	}
	var decoded []map[string]any
	if err := json.Unmarshal(want, &decoded); err != nil {
		t.Fatal(err)
	}
	for i, doc := range decoded {
		if doc["class_uid"] != float64(2004) || doc["category_uid"] != float64(2) {
			t.Errorf("document %d: class_uid %v category_uid %v", i, doc["class_uid"], doc["category_uid"])
		}
		activities[int(doc["activity_id"].(float64))]++
		info, _ := doc["finding_info"].(map[string]any)
		if info["uid"] != fs[i].ID || info["title"] == "" {
			t.Errorf("document %d: finding_info %v", i, info)
		}
	}
	if activities[OCSFActivityCreate] != 4 || activities[OCSFActivityUpdate] == 0 {
		t.Errorf("activities %v, want a Create per finding and Updates", activities)
	}
}

func TestOCSFMapping(t *testing.T) {
	at := time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		sev     finding.Severity
		id      int
		caption string
	}{
		{finding.Info, 1, "Informational"},
		{finding.Low, 2, "Low"},
		{finding.Medium, 3, "Medium"},
		{finding.High, 4, "High"},
		{finding.Critical, 5, "Critical"},
		{0, 0, "Unknown"},
		{42, 0, "Unknown"},
	} {
		doc := OCSF(finding.Finding{ID: "x", Kind: finding.KindEnumeration, Title: "t", Severity: tc.sev, FirstSeen: at, LastSeen: at})
		if doc["severity_id"] != tc.id || doc["severity"] != tc.caption {
			t.Errorf("%v: severity %v %v", tc.sev, doc["severity_id"], doc["severity"])
		}
	}
	for _, tc := range []struct {
		reports  any
		activity int
		typeUID  int
	}{
		{nil, 1, 200401},
		{1, 1, 200401},
		{2, 2, 200402},
		{float64(3), 2, 200402}, // a finding decoded from JSON
	} {
		f := finding.Finding{ID: "x", Title: "t", LastSeen: at}
		if tc.reports != nil {
			f.Evidence = map[string]any{EvidenceReports: tc.reports}
		}
		doc := OCSF(f)
		if doc["activity_id"] != tc.activity || doc["type_uid"] != tc.typeUID || doc["time"] != at.UnixMilli() {
			t.Errorf("reports %v: activity %v type %v time %v", tc.reports, doc["activity_id"], doc["type_uid"], doc["time"])
		}
	}
	for client, want := range map[string]string{
		"192.0.2.1":          `"src_endpoint":{"ip":"192.0.2.1"}`,
		"[2001:db8::1]:8443": `"src_endpoint":{"ip":"2001:db8::1","port":8443}`,
		"2001:db8::/64":      `"src_endpoint":{"name":"2001:db8::/64"}`,
		"edge-proxy":         `"src_endpoint":{"name":"edge-proxy"}`,
	} {
		b, err := json.Marshal(OCSF(finding.Finding{ID: "x", Title: "t", Client: client}))
		if err != nil || !bytes.Contains(b, []byte(want)) {
			t.Errorf("client %q: %s %v", client, b, err)
		}
	}
	// The result shares no map with the finding.
	f := finding.Finding{ID: "x", Title: "t", Evidence: map[string]any{"a": 1}, Labels: map[string]string{"env": "prod"}}
	doc := OCSF(f)
	doc["unmapped"].(map[string]any)["evidence"].(map[string]any)["a"] = 2
	if f.Evidence["a"] != 1 {
		t.Error("OCSF aliases the evidence map")
	}
}
