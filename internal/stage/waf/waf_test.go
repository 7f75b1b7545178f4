package waf

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/bulwarkapi/bulwark/internal/config"
	"github.com/bulwarkapi/bulwark/internal/pipeline"
)

func jsonRequest(t testing.TB, target string, body any) *http.Request {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodPost, target, bytes.NewReader(b))
	r.Host = "api.bank.example"
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("User-Agent", "BankApp/5.12.1 (Android 14; Pixel 8; build 51201)")
	r.Header.Set("Accept", "application/json")
	return r
}

func handle(s *Stage, r *http.Request, operation string) pipeline.Decision {
	x := &pipeline.Exchange{RequestID: "t", Request: r, Operation: operation}
	return s.Handle(context.Background(), x)
}

func TestExclusions(t *testing.T) {
	const xss = "<script>alert(document.cookie)</script>"
	s, err := New(Options{API: "bank", Config: config.WAF{
		CRS: true, Paranoia: 1, AnomalyThreshold: 5,
		Exclusions: []config.WAFExclusion{
			// Operation-scoped: the XSS rules, for secure messages only.
			{Operation: "POST /v1/messages", Rules: []string{"941000-941999"}},
			// Target-scoped, every operation: the XSS rules, for one field.
			{Rules: []string{"941000-941999"}, Targets: []string{"ARGS:json.note"}},
			// Global removal of one rule.
			{Rules: []string{"942100"}},
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.byOp) != 1 || s.byOp["POST /v1/messages"] == nil {
		t.Fatalf("operation WAFs: %v", s.byOp)
	}
	tests := []struct {
		name, op, field string
		blocked         bool
	}{
		{"excluded operation", "POST /v1/messages", "body", false},
		{"other operation", "POST /v1/payments", "body", true},
		{"no operation", "", "body", true},
		{"excluded target", "POST /v1/payments", "note", false},
		{"excluded target, other field", "POST /v1/payments", "subject", true},
		{"excluded target in excluded operation", "POST /v1/messages", "note", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := handle(s, jsonRequest(t, "/v1/x", map[string]string{tc.field: xss}), tc.op)
			if got := d.Action == pipeline.Stop; got != tc.blocked {
				t.Errorf("blocked = %v (%v %v), want %v", got, d.Action, d.Rules, tc.blocked)
			}
		})
	}
	t.Run("removed rule", func(t *testing.T) {
		d := handle(s, jsonRequest(t, "/v1/x", map[string]string{"q": "1' UNION SELECT password FROM users--"}), "")
		if d.Action != pipeline.Stop {
			t.Fatalf("SQL injection not blocked by the other rules: %v %v", d.Action, d.Rules)
		}
		if slices.Contains(d.Rules, "942100") {
			t.Errorf("removed rule 942100 still matched: %v", d.Rules)
		}
	})
}

func TestNewErrors(t *testing.T) {
	base := config.WAF{CRS: true, Paranoia: 1, AnomalyThreshold: 5}
	tests := []struct {
		name string
		mod  func(*config.WAF)
		want string
	}{
		{"paranoia", func(c *config.WAF) { c.Paranoia = 5 }, "paranoia"},
		{"bad range", func(c *config.WAF) {
			c.Exclusions = []config.WAFExclusion{{Rules: []string{"942100"}}, {Rules: []string{"9-1"}}}
		}, "exclusions[1]"},
		{"bad target", func(c *config.WAF) {
			c.Exclusions = []config.WAFExclusion{{Rules: []string{"942100"}, Targets: []string{`ARGS:a"b`}}}
		}, "exclusions[0]"},
		{"unknown rule", func(c *config.WAF) {
			c.Exclusions = []config.WAFExclusion{{Rules: []string{"942100"}}, {Operation: "POST /p", Rules: []string{"942999"}}}
		}, "exclusions[1]: rule 942999"},
		{"unknown rule with target", func(c *config.WAF) {
			c.Exclusions = []config.WAFExclusion{{Rules: []string{"942100"}, Targets: []string{"ARGS:a"}}, {Rules: []string{"123456"}, Targets: []string{"ARGS:a"}}}
		}, "exclusions[1]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			tc.mod(&c)
			_, err := New(Options{API: "bank", Config: c})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestMonitor(t *testing.T) {
	s, err := New(Options{API: "bank", Config: config.WAF{CRS: true, Paranoia: 1, AnomalyThreshold: 5, Mode: "monitor"}})
	if err != nil {
		t.Fatal(err)
	}
	d := handle(s, jsonRequest(t, "/v1/payments", map[string]string{"creditorName": "' OR '1'='1"}), "")
	if d.Action != pipeline.Stop || !d.Monitor || d.Reason != ReasonBlocked || len(d.Rules) == 0 {
		t.Fatalf("decision = %+v, want a monitored stop with rules", d)
	}
	// Through the pipeline: recorded, not enforced.
	p := pipeline.New(nil, []pipeline.Stage{s}, nil)
	x := &pipeline.Exchange{Request: jsonRequest(t, "/v1/payments", map[string]string{"creditorName": "' OR '1'='1"})}
	if stop := p.RunRequest(context.Background(), x); stop != nil {
		t.Fatalf("monitor mode stopped the request: %+v", stop)
	}
	if len(x.Decisions) != 1 || x.Decisions[0].Enforced || x.Decisions[0].Stage != "waf" {
		t.Fatalf("trail = %+v", x.Decisions)
	}
}

func TestDecisions(t *testing.T) {
	s := pl1(t)
	t.Run("clean GET", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodGet, "/v1/accounts?limit=50", nil)
		if d := handle(s, r, ""); d.Action != pipeline.Allow || d.Reason != "" {
			t.Fatalf("got %+v", d)
		}
	})
	t.Run("below threshold", func(t *testing.T) {
		// A numeric Host is a CRS warning (920350, 3 points): recorded,
		// not blocked at threshold 5.
		r := httptest.NewRequest(http.MethodGet, "/v1/accounts", nil)
		r.Host = "203.0.113.5"
		d := handle(s, r, "")
		if d.Action != pipeline.Annotate || d.Reason != ReasonMatched || !slices.Contains(d.Rules, "920350") {
			t.Fatalf("got %+v", d)
		}
	})
	t.Run("unparsable JSON", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodPost, "/v1/payments", strings.NewReader(`{"creditorName":`))
		r.Header.Set("Content-Type", "application/json")
		d := handle(s, r, "")
		if d.Action != pipeline.Stop || d.Status != http.StatusBadRequest || d.Reason != ReasonUnparsable {
			t.Fatalf("got %+v", d)
		}
	})
	t.Run("body over the gateway limit", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodPost, "/v1/payments", nil)
		r.Header.Set("Content-Type", "application/json")
		r.Body = http.MaxBytesReader(nil, io.NopCloser(strings.NewReader(`{"a":"0123456789"}`)), 4)
		r.ContentLength = -1
		d := handle(s, r, "")
		if d.Action != pipeline.Stop || d.Status != http.StatusRequestEntityTooLarge || d.Reason != ReasonTooLarge {
			t.Fatalf("got %+v", d)
		}
	})
	t.Run("body stays replayable", func(t *testing.T) {
		body := `{"creditorName":"O'Brien & Sons Ltd","amount":"12.50"}`
		r := httptest.NewRequest(http.MethodPost, "/v1/payments", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		x := &pipeline.Exchange{Request: r}
		if d := s.Handle(context.Background(), x); d.Action != pipeline.Allow {
			t.Fatalf("got %+v", d)
		}
		got, _ := io.ReadAll(r.Body)
		if string(got) != body {
			t.Fatalf("upstream would see %q", got)
		}
	})
	t.Run("payload never in the decision", func(t *testing.T) {
		const p = "<script>alert('bulwark-canary')</script>"
		d := handle(s, jsonRequest(t, "/v1/messages", map[string]string{"body": p}), "")
		if d.Action != pipeline.Stop {
			t.Fatalf("got %+v", d)
		}
		all := d.Reason + d.Detail + strings.Join(d.Rules, ",")
		if strings.Contains(all, "canary") || d.Detail != detailBlocked {
			t.Fatalf("decision carries request data: %+v", d)
		}
	})
	t.Run("rules bounded", func(t *testing.T) {
		// Many attacks at once match many rules.
		q := "a=" + strings.Join([]string{
			"%3Cscript%3Ealert(1)%3C%2Fscript%3E", "1'%20UNION%20SELECT%20password%20FROM%20users--",
			"..%2f..%2fetc%2fpasswd", "%3Bcat%20%2Fetc%2Fpasswd", "%3Ciframe%20src%3Djavascript%3Aalert(1)%3E",
		}, "&a=")
		d := handle(s, httptest.NewRequest(http.MethodGet, "/v1/x?"+q, nil), "")
		if d.Action != pipeline.Stop || len(d.Rules) == 0 || len(d.Rules) > MaxRules || !slices.Contains(d.Rules, "949110") {
			t.Fatalf("got %d rules %v", len(d.Rules), d.Rules)
		}
		if !slices.IsSorted(d.Rules) { // CRS ids are all six digits
			t.Errorf("rules not sorted: %v", d.Rules)
		}
	})
}

// TestConcurrent runs the corpora from several goroutines on the shared
// stage (under -race this checks the stage and Coraza share nothing per
// request) and compares with the sequential verdicts.
func TestConcurrent(t *testing.T) {
	s := pl1(t)
	cases := append(loadCorpus(t, "attacks.jsonl"), loadCorpus(t, "benign.jsonl")[:60]...)
	want := make([]pipeline.Action, len(cases))
	for i, c := range cases {
		want[i] = s.Handle(context.Background(), c.exchange(t)).Action
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := g; i < len(cases); i += 4 {
				if got := s.Handle(context.Background(), cases[i].exchange(t)).Action; got != want[i] {
					t.Errorf("%q: concurrent %v, sequential %v", cases[i].Name, got, want[i])
				}
			}
		})
	}
	wg.Wait()
}

// TestParanoia2 documents the attacks paranoia 1 lets through
// (testdata/pl1_misses.jsonl): paranoia 2 blocks them, and the benign
// corpus shows its cost.
func TestParanoia2(t *testing.T) {
	pl1s := pl1(t)
	misses := loadCorpus(t, "pl1_misses.jsonl")
	for _, c := range misses {
		if d := pl1s.Handle(context.Background(), c.exchange(t)); d.Action == pipeline.Stop {
			t.Logf("pl1_misses.jsonl:%d %q is now blocked at paranoia 1: move it to attacks.jsonl", c.line, c.Name)
		}
	}
	s, err := New(Options{API: "bank", Config: config.WAF{CRS: true, Paranoia: 2, AnomalyThreshold: 5, Exclusions: bankExclusions}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range misses {
		if d := s.Handle(context.Background(), c.exchange(t)); d.Action != pipeline.Stop {
			t.Errorf("pl1_misses.jsonl:%d %q: not blocked at paranoia 2: %v %v", c.line, c.Name, d.Action, d.Rules)
		}
	}
	if testing.Short() || raceEnabled {
		return
	}
	benign := loadCorpus(t, "benign.jsonl")
	blocked, matched := 0, 0
	rules := map[string]int{}
	for _, c := range benign {
		d := s.Handle(context.Background(), c.exchange(t))
		switch d.Action {
		case pipeline.Stop:
			blocked++
			for _, id := range d.Rules {
				rules[id]++
			}
		case pipeline.Annotate:
			matched++
		}
	}
	t.Logf("paranoia 2 on the benign corpus: %d of %d blocked (rules %v), %d matched below the threshold", blocked, len(benign), rules, matched)
}

func TestClose(t *testing.T) {
	s, err := New(Options{API: "bank", Config: config.WAF{CRS: true, Paranoia: 1, AnomalyThreshold: 5,
		Exclusions: []config.WAFExclusion{{Operation: "POST /v1/messages", Rules: []string{"941100"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.wafs()) != 2 {
		t.Fatalf("%d WAFs", len(s.wafs()))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
