package traffic

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// record adds n outcomes of kind k, blocked of them blocked.
func record(r *Recorder, k Kind, n, blocked int, reason string) {
	for i := range n {
		r.Record(k, Outcome{Blocked: i < blocked, Reason: reason})
	}
}

func TestSummaryBar(t *testing.T) {
	full := func() *Recorder {
		r := NewRecorder()
		for _, k := range AttackKinds {
			record(r, k, 100, 100, "object_denied")
		}
		record(r, Benign, 50, 0, "upstream_200")
		return r
	}
	if s := full().Summary(); !s.OK {
		t.Fatalf("all blocked, no benign refused: not OK: %+v", s)
	}

	r := full()
	record(r, RequestFlood, 6, 0, "upstream_200") // 100 of 106: 94.3%
	if s := r.Summary(); s.OK {
		t.Fatal("an attack kind under 95% passed the bar")
	}

	r = full()
	record(r, RequestFlood, 5, 0, "upstream_200") // 100 of 105: 95.2%
	if s := r.Summary(); !s.OK {
		t.Fatal("95.2% failed the bar")
	}

	r = full()
	r.Record(Benign, Outcome{Blocked: true, Reason: "rate_limited"})
	if s := r.Summary(); s.OK || s.Benign.Blocked != 1 || s.Benign.Passed != 50 {
		t.Fatalf("one benign request refused: %+v", s.Benign)
	}

	r = full()
	r.Error(Benign)
	if s := r.Summary(); s.OK || s.Benign.Errors != 1 || s.Benign.Requests != 51 {
		t.Fatalf("one benign request failed: %+v", s.Benign)
	}

	r = full()
	r.Error(SQLInjection) // an error is not a block
	if s := r.Summary(); s.Attacks[4].Kind != SQLInjection || s.Attacks[4].Blocked != 100 || s.Attacks[4].Attempts != 101 || s.Attacks[4].Errors != 1 {
		t.Fatalf("attack error: %+v", s.Attacks[4])
	}

	r = full()
	r.FullPAN()
	if s := r.Summary(); s.Benign.FullPANs != 1 || !s.OK {
		t.Fatalf("a full PAN seen by its owner is counted, not a refusal: %+v", s.Benign)
	}

	r = NewRecorder()
	record(r, Benign, 5, 0, "upstream_200")
	if s := r.Summary(); s.OK || len(s.Attacks) != len(AttackKinds) {
		t.Fatal("attack kinds never attempted passed the bar")
	}
}

func TestSummaryTableAndJSON(t *testing.T) {
	r := NewRecorder()
	for i, k := range AttackKinds {
		record(r, k, 200, 200-i, "rate_limited")
		r.Record(k, Outcome{Blocked: true, Reason: "cool_down"})
	}
	record(r, Benign, 40, 0, "upstream_200")
	s := r.Summary()
	var b strings.Builder
	if err := s.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	lines := strings.Split(out, "\n")
	if !strings.HasPrefix(lines[0], "ATTACK") || !strings.Contains(out, "PASS:") {
		t.Fatalf("table:\n%s", out)
	}
	// Aligned: the percentage column ends at the same offset on every row.
	col := strings.Index(lines[0], "BLOCKED%") + len("BLOCKED%")
	for _, l := range lines[1 : 1+len(AttackKinds)] {
		if len(l) < col || l[col-1] != '%' {
			t.Fatalf("misaligned row %q (column %d):\n%s", l, col, out)
		}
	}
	if !strings.Contains(out, "request_flood              201       195     97.0%  ok    rate_limited 200, cool_down 1") {
		t.Fatalf("flood row:\n%s", out)
	}

	path := filepath.Join(t.TempDir(), "r.json")
	if err := s.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	var back Summary
	if err := json.Unmarshal(data, &back); err != nil || !back.OK || back.Attacks[0].Reasons["cool_down"] != 1 || back.Benign.Passed != 40 {
		t.Fatalf("report round trip: %v %s", err, data)
	}
	for _, key := range []string{`"kind": "bola_enumeration"`, `"blocked_percent"`, `"benign"`, `"passed": 40`, `"full_pans": 0`, `"ok": true`} {
		if !strings.Contains(string(data), key) {
			t.Errorf("report lacks %s", key)
		}
	}
}
