package traffic

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// MinBlockedPercent is the demo's bar for every attack kind: at least
// this share of its attempts must be stopped. Not 100, because a few
// protections engage only after an attack has shown itself (a login
// limiter's burst, a detector's threshold), and that is how they should
// work: judging earlier would refuse legitimate customers.
const MinBlockedPercent = 95.0

// Recorder tallies outcomes; it is safe for concurrent use.
type Recorder struct {
	mu       sync.Mutex
	start    time.Time
	tallies  map[Kind]*tally
	panLeaks int // customers' responses carrying a full card number
}

type tally struct {
	attempts, blocked, errors int
	reasons                   map[string]int
}

// NewRecorder starts counting now.
func NewRecorder() *Recorder {
	return &Recorder{start: time.Now(), tallies: map[Kind]*tally{}}
}

func (r *Recorder) tally(k Kind) *tally {
	t := r.tallies[k]
	if t == nil {
		t = &tally{reasons: map[string]int{}}
		r.tallies[k] = t
	}
	return t
}

// Record counts one classified response.
func (r *Recorder) Record(k Kind, o Outcome) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.tally(k)
	t.attempts++
	if o.Blocked {
		t.blocked++
	}
	if o.Reason != "" {
		t.reasons[o.Reason]++
	}
}

// Error counts a request that got no response (connection failure,
// timeout). It is an attempt that was neither blocked nor passed.
func (r *Recorder) Error(k Kind) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.tally(k)
	t.attempts++
	t.errors++
	t.reasons["transport_error"]++
}

// FullPAN counts a response to a customer that carried a full card number:
// not a refusal, but a sign that card data leaves unmasked.
func (r *Recorder) FullPAN() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.panLeaks++
}

// AttackStats are one attack kind's numbers.
type AttackStats struct {
	Kind           Kind           `json:"kind"`
	Attempts       int            `json:"attempts"`
	Blocked        int            `json:"blocked"`
	NotBlocked     int            `json:"not_blocked"`
	Errors         int            `json:"errors"`
	BlockedPercent float64        `json:"blocked_percent"`
	Reasons        map[string]int `json:"reasons"`
}

// BenignStats are the legitimate customers' numbers.
type BenignStats struct {
	Requests int            `json:"requests"`
	Passed   int            `json:"passed"`
	Blocked  int            `json:"blocked"`
	Errors   int            `json:"errors"`
	Reasons  map[string]int `json:"reasons"`
	// FullPANs counts responses to customers that carried a full card
	// number; with data.mask [pan] it stays 0 (customers see 411111******1111).
	FullPANs int `json:"full_pans"`
}

// Summary is the outcome of a run: what the table shows and --report writes.
type Summary struct {
	DurationSeconds   float64       `json:"duration_seconds"`
	MinBlockedPercent float64       `json:"min_blocked_percent"`
	Attacks           []AttackStats `json:"attacks"`
	Benign            BenignStats   `json:"benign"`
	// OK: every attack kind was attempted and blocked in at least
	// MinBlockedPercent of its attempts, and no benign request was
	// blocked or failed.
	OK bool `json:"ok"`
}

// Summary is a snapshot of the counts so far.
func (r *Recorder) Summary() Summary {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := Summary{DurationSeconds: time.Since(r.start).Round(time.Millisecond).Seconds(), MinBlockedPercent: MinBlockedPercent, OK: true}
	for _, k := range AttackKinds {
		t := r.tally(k)
		a := AttackStats{Kind: k, Attempts: t.attempts, Blocked: t.blocked, NotBlocked: t.attempts - t.blocked - t.errors,
			Errors: t.errors, Reasons: maps.Clone(t.reasons)}
		if t.attempts > 0 {
			a.BlockedPercent = 100 * float64(t.blocked) / float64(t.attempts)
		}
		if t.attempts == 0 || a.BlockedPercent < MinBlockedPercent {
			s.OK = false
		}
		s.Attacks = append(s.Attacks, a)
	}
	b := r.tally(Benign)
	s.Benign = BenignStats{Requests: b.attempts, Passed: b.attempts - b.blocked - b.errors, Blocked: b.blocked, Errors: b.errors, Reasons: maps.Clone(b.reasons), FullPANs: r.panLeaks}
	if b.attempts == 0 || b.blocked > 0 || b.errors > 0 {
		s.OK = false
	}
	return s
}

// topReasons renders a reason tally as "object_denied 40, cool_down 17",
// largest first, at most n entries.
func topReasons(m map[string]int, n int) string {
	type kv struct {
		k string
		v int
	}
	var all []kv
	for k, v := range m {
		all = append(all, kv{k, v})
	}
	slices.SortFunc(all, func(a, b kv) int {
		if c := cmp.Compare(b.v, a.v); c != 0 {
			return c
		}
		return strings.Compare(a.k, b.k)
	})
	var parts []string
	for i, e := range all {
		if i == n {
			parts = append(parts, "...")
			break
		}
		parts = append(parts, fmt.Sprintf("%s %d", e.k, e.v))
	}
	return strings.Join(parts, ", ")
}

// tableReasons is how many reasons a table row names: enough to show
// which layers stopped an attack, short enough for one line.
const tableReasons = 3

// WriteTable prints the summary as aligned tables.
func (s Summary) WriteTable(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%-20s %9s %9s %9s  %-4s  %s\n", "ATTACK", "ATTEMPTS", "BLOCKED", "BLOCKED%", "", "STOPPED BY (top reasons)")
	for _, a := range s.Attacks {
		mark := "ok"
		if a.Attempts == 0 || a.BlockedPercent < s.MinBlockedPercent {
			mark = "FAIL"
		}
		fmt.Fprintf(&b, "%-20s %9d %9d %8.1f%%  %-4s  %s\n", a.Kind, a.Attempts, a.Blocked, a.BlockedPercent, mark, topReasons(a.Reasons, tableReasons))
	}
	fmt.Fprintf(&b, "\n%-20s %9s %9s %9s %9s  %s\n", "BENIGN", "REQUESTS", "PASSED", "BLOCKED", "ERRORS", "FULL PANS SEEN")
	fmt.Fprintf(&b, "%-20s %9d %9d %9d %9d  %d\n", "customers", s.Benign.Requests, s.Benign.Passed, s.Benign.Blocked, s.Benign.Errors, s.Benign.FullPANs)
	if s.OK {
		fmt.Fprintf(&b, "\nPASS: every attack kind blocked in at least %.0f%% of its attempts; no legitimate request blocked (%.0fs of traffic).\n", s.MinBlockedPercent, s.DurationSeconds)
	} else {
		fmt.Fprintf(&b, "\nFAIL: the bar is every attack kind blocked in at least %.0f%% of its attempts and no legitimate request blocked or failed (%.0fs of traffic).\n", s.MinBlockedPercent, s.DurationSeconds)
		if len(s.Benign.Reasons) > 0 && (s.Benign.Blocked > 0 || s.Benign.Errors > 0) {
			fmt.Fprintf(&b, "Benign outcomes: %s\n", topReasons(s.Benign.Reasons, 8))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON writes the summary to path as indented JSON.
func (s Summary) WriteJSON(path string) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}
