package record

import (
	"fmt"
	"testing"
)

func TestSplitCounter(t *testing.T) {
	tests := []struct {
		id, prefix string
		n          uint64
		ok         bool
	}{
		{"1041", "", 1041, true},
		{"acc-0042", "acc-", 42, true},
		{"INV2026", "INV", 2026, true},
		{"acc_z4al6t3b7dqc", "", 0, false},                         // no trailing digits
		{"550e8400-e29b-41d4-a716-446655440000", "", 0, false},     // UUID: digits in the prefix
		{"4111111111111111111", "", 0, false},                      // 19 digits
		{"x", "", 0, false},                                        // none
		{"", "", 0, false},                                         //
		{"a-very-long-prefix-that-is-a-name-000001", "", 0, false}, // prefix over 32
		{"000000000000000000", "", 0, true},                        // 18 zeros
		{"999999999999999999", "", 999999999999999999, true},       // the largest
	}
	for _, tt := range tests {
		p, n, ok := splitCounter(tt.id)
		if ok != tt.ok || (ok && (p != tt.prefix || n != tt.n)) {
			t.Errorf("splitCounter(%q) = %q %d %v, want %q %d %v", tt.id, p, n, ok, tt.prefix, tt.n, tt.ok)
		}
	}
}

func TestSteps(t *testing.T) {
	s := NewSteps()
	step := func(who, op, id string) bool { return s.Step(who, "bank", op, "accountId", id) }
	// A walk: every id after the first is a step, up or down.
	for i, id := range []string{"acc-1000", "acc-1001", "acc-1002", "acc-1005", "acc-1004"} {
		if got := step("walker", "GET /accounts/{accountId}", id); got != (i > 0) {
			t.Errorf("walker %s: %v", id, got)
		}
	}
	// Too far, the same id again, another prefix, another operation or
	// another caller: no step.
	for _, tt := range []struct{ who, op, id string }{
		{"walker", "GET /accounts/{accountId}", "acc-1009"},
		{"walker", "GET /accounts/{accountId}", "acc-1009"},
		{"walker", "GET /accounts/{accountId}", "sav-1010"},
		{"walker", "GET /accounts/{accountId}/transactions", "acc-1010"},
		{"customer", "GET /accounts/{accountId}", "acc-1010"},
		{"walker", "GET /accounts/{accountId}", "acc_z4al6t3b7dqc"},
	} {
		if step(tt.who, tt.op, tt.id) {
			t.Errorf("%+v: a step", tt)
		}
	}
	// Bounded: a flood of callers never grows it past MaxStepKeys.
	for i := range 3 * MaxStepKeys {
		step(fmt.Sprint("caller", i), "GET /accounts/{accountId}", "1")
	}
	n := 0
	for i := range s.shards {
		n += len(s.shards[i].last)
	}
	if n > MaxStepKeys {
		t.Fatalf("%d keys", n)
	}
}

// FuzzSteps: any id splits into a digit-free prefix of at most
// maxStepPrefix bytes and the number of its digits, or not at all; the
// same id twice is never a step.
func FuzzSteps(f *testing.F) {
	for _, s := range []string{"acc-0042", "1041", "550e8400-e29b-41d4-a716-446655440000", "", "ä1"} {
		f.Add(s)
	}
	s := NewSteps()
	f.Fuzz(func(t *testing.T, id string) {
		p, n, ok := splitCounter(id)
		if ok {
			if len(p) > maxStepPrefix || fmt.Sprint(n) == "" || len(id)-len(p) > maxStepDigits || id[:len(p)] != p {
				t.Fatalf("splitCounter(%q) = %q %d", id, p, n)
			}
		}
		s.Step("w", "a", "o", "p", id)
		if s.Step("w", "a", "o", "p", id) {
			t.Fatalf("%q after itself is a step", id)
		}
	})
}
