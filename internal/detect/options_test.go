package detect

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

func TestNewDefaults(t *testing.T) {
	d, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := Options{
		Window: DefaultWindow, MaxDistinctObjects: DefaultMaxDistinctObjects, MinFailureShare: DefaultMinFailureShare,
		MinFailures: DefaultMinFailures, MinSequentialSteps: DefaultMinSequentialSteps, StuffingUsernames: DefaultStuffingUsernames, StuffingFailures: DefaultStuffingFailures,
		DistributedClients: DefaultDistributedClients, OwnershipMinSubjects: DefaultOwnershipMinSubjects,
		MaxTracked: DefaultMaxTracked, MaxOwners: DefaultMaxOwners, CoolDown: DefaultCoolDown,
	}
	got := d.o
	if got.Now == nil {
		t.Error("no clock")
	}
	got.Now = nil
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
		t.Errorf("defaults\n got %+v\nwant %+v", got, want)
	}
	sum := 0
	for _, tab := range d.keys {
		sum += tab.max
	}
	if sum != DefaultMaxTracked {
		t.Errorf("tables hold %d keys in all, want %d", sum, DefaultMaxTracked)
	}
}

func TestNewValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		errs []string // substrings, one per expected error; none: valid
	}{
		{"zero is all defaults", Options{}, nil},
		{"smallest", Options{Window: MinWindow, MaxDistinctObjects: 1, MinFailureShare: 1, MinFailures: 1, MinSequentialSteps: 1, StuffingUsernames: 1,
			StuffingFailures: 1, DistributedClients: 1, OwnershipMinSubjects: 1, MaxTracked: MinTracked, MaxOwners: 1, CoolDown: 1}, nil},
		{"largest", Options{Window: MaxWindow, MaxDistinctObjects: MaxThreshold, CoolDown: MaxCoolDown}, nil},
		{"negative window", Options{Window: -time.Second}, []string{"window"}},
		{"short window", Options{Window: 500 * time.Millisecond}, []string{"window"}},
		{"long window", Options{Window: MaxWindow + 1}, []string{"window"}},
		{"negative threshold", Options{MaxDistinctObjects: -1}, []string{"max_distinct_objects"}},
		{"huge threshold", Options{StuffingUsernames: MaxThreshold + 1}, []string{"stuffing_usernames"}},
		{"share above one", Options{MinFailureShare: 1.5}, []string{"min_failure_share"}},
		{"negative share", Options{MinFailureShare: -0.1}, []string{"min_failure_share"}},
		{"NaN share", Options{MinFailureShare: math.NaN()}, []string{"min_failure_share"}},
		{"too few tracked", Options{MaxTracked: MinTracked - 1}, []string{"max_tracked"}},
		{"negative owners", Options{MaxOwners: -1}, []string{"max_owners"}},
		{"negative cool-down", Options{CoolDown: -time.Second}, []string{"cool_down"}},
		{"long cool-down", Options{CoolDown: MaxCoolDown + 1}, []string{"cool_down"}},
		{"every error at once", Options{Window: -1, MinFailures: -1, MinSequentialSteps: -1, StuffingFailures: -1, DistributedClients: -1,
			OwnershipMinSubjects: -1, MinFailureShare: 2, MaxTracked: -1, MaxOwners: -1, CoolDown: -1},
			[]string{"window", "min_failures", "min_sequential_steps", "stuffing_failures", "distributed_clients", "ownership_min_subjects",
				"min_failure_share", "max_tracked", "max_owners", "cool_down"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := New(tc.o)
			if len(tc.errs) == 0 {
				if err != nil || d == nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || d != nil {
				t.Fatalf("New accepted %+v", tc.o)
			}
			if !errors.Is(err, ErrInvalidOptions) {
				t.Errorf("%v does not wrap ErrInvalidOptions", err)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tc.errs) {
				t.Fatalf("%d errors, want %d:\n%v", len(lines), len(tc.errs), err)
			}
			for i, want := range tc.errs {
				if !strings.Contains(lines[i], want) {
					t.Errorf("error %d %q does not mention %q", i, lines[i], want)
				}
			}
		})
	}
}
