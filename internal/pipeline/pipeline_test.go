package pipeline

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

type fixedStage struct {
	name string
	d    Decision
	runs *int
}

func (s fixedStage) Name() string { return s.name }
func (s fixedStage) Handle(context.Context, *Exchange) Decision {
	*s.runs++
	return s.d
}

type timer struct{ n map[string]int }

func (t *timer) ObserveStage(stage string, _ time.Duration) { t.n[stage]++ }

func TestRunRequestModes(t *testing.T) {
	tests := []struct {
		name      string
		mode      Mode
		decisions []Decision
		wantStop  string // stage name of the stopping decision, "" for none
		wantRuns  []int
		wantTrail int
		enforced  []bool
	}{
		{"all allow", Enforce, []Decision{Continue, Continue}, "", []int{1, 1}, 0, nil},
		{"annotate recorded", Enforce, []Decision{{Action: Annotate, Reason: "note"}, Continue}, "", []int{1, 1}, 1, []bool{false}},
		{"stop enforced", Enforce, []Decision{Halt(403, "nope", ""), Continue}, "a", []int{1, 0}, 1, []bool{true}},
		{"stop monitored", Monitor, []Decision{Halt(403, "nope", ""), Continue}, "", []int{1, 1}, 1, []bool{false}},
		{"two monitored stops", Monitor, []Decision{Halt(403, "x", ""), Halt(429, "y", "")}, "", []int{1, 1}, 2, []bool{false, false}},
		{"late stop enforced", Enforce, []Decision{{Action: Annotate, Reason: "n"}, Halt(429, "rate", "")}, "b", []int{1, 1}, 2, []bool{false, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runs := make([]int, 2)
			tm := &timer{n: map[string]int{}}
			p := New(tm, []Stage{
				fixedStage{"a", tt.decisions[0], &runs[0]},
				fixedStage{"b", tt.decisions[1], &runs[1]},
			}, nil)
			x := &Exchange{Mode: tt.mode}
			stop := p.RunRequest(context.Background(), x)
			switch {
			case tt.wantStop == "" && stop != nil:
				t.Fatalf("unexpected stop %+v", stop)
			case tt.wantStop != "" && (stop == nil || stop.Stage != tt.wantStop):
				t.Fatalf("stop = %+v, want stage %s", stop, tt.wantStop)
			}
			if runs[0] != tt.wantRuns[0] || runs[1] != tt.wantRuns[1] {
				t.Errorf("runs = %v, want %v", runs, tt.wantRuns)
			}
			if len(x.Decisions) != tt.wantTrail {
				t.Fatalf("trail = %+v", x.Decisions)
			}
			for i, e := range tt.enforced {
				if x.Decisions[i].Enforced != e {
					t.Errorf("decision %d enforced = %v", i, x.Decisions[i].Enforced)
				}
				if x.Decisions[i].Stage == "" {
					t.Errorf("decision %d has no stage", i)
				}
			}
			if tm.n["a"] != tt.wantRuns[0] {
				t.Errorf("timer saw %v", tm.n)
			}
		})
	}
}

func TestWriteProblem(t *testing.T) {
	rec := httptest.NewRecorder()
	d := Halt(http.StatusTooManyRequests, "rate_limited", "Slow down.")
	d.Headers = http.Header{"Retry-After": {"3"}}
	WriteDecision(rec, &d, "req-123456789")
	if rec.Code != 429 || rec.Header().Get("Content-Type") != ContentTypeProblem || rec.Header().Get("Retry-After") != "3" {
		t.Fatalf("code %d headers %v", rec.Code, rec.Header())
	}
	var p Problem
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	want := Problem{Type: ProblemTypeBase + "rate_limited", Title: "Too Many Requests", Status: 429, Detail: "Slow down.", RequestID: "req-123456789", Reason: "rate_limited"}
	if p != want {
		t.Fatalf("problem = %+v, want %+v", p, want)
	}
}

func TestExchangeReset(t *testing.T) {
	x := &Exchange{API: "a", Params: Params{{"id", "1"}}, Decisions: []Decision{{Reason: "r", Headers: http.Header{"A": {"b"}}}}}
	x.Reset()
	if x.API != "" || len(x.Params) != 0 || len(x.Decisions) != 0 || cap(x.Decisions) == 0 {
		t.Fatalf("reset left %+v", x)
	}
	if x.Decisions[:1][0].Headers != nil {
		t.Fatal("reset kept a reference to old headers")
	}
	if v, ok := (Params{{"a", "1"}, {"b", "2"}}).Get("b"); !ok || v != "2" {
		t.Fatal("Params.Get")
	}
}
