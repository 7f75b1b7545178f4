package throttle

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func TestNewValidation(t *testing.T) {
	tooBig := int(int64(MaxMaxConcurrency) + 1) // wraps on 32-bit platforms: still invalid
	tests := []struct {
		name    string
		o       Options
		wantErr []string // substrings, one per reported problem; empty means valid
	}{
		{name: "minimal", o: Options{MaxConcurrency: 1}},
		{name: "full", o: Options{MaxConcurrency: 100, QueueSize: 50, QueueTimeout: time.Second, Adaptive: true,
			MinConcurrency: 10, TargetLatency: 50 * time.Millisecond, Tolerance: 1.5, Now: time.Now}},
		{name: "min equals max", o: Options{MaxConcurrency: 4, MinConcurrency: 4, Adaptive: true}},
		{name: "adaptive fields without adaptive", o: Options{MaxConcurrency: 4, MinConcurrency: 2, Tolerance: 3}},
		{name: "max zero", o: Options{}, wantErr: []string{"MaxConcurrency 0 must be positive"}},
		{name: "max negative", o: Options{MaxConcurrency: -1}, wantErr: []string{"MaxConcurrency -1 must be positive"}},
		{name: "max too big", o: Options{MaxConcurrency: tooBig}, wantErr: []string{"MaxConcurrency"}},
		{name: "queue negative", o: Options{MaxConcurrency: 1, QueueSize: -1}, wantErr: []string{"QueueSize -1"}},
		{name: "timeout negative", o: Options{MaxConcurrency: 1, QueueTimeout: -time.Second}, wantErr: []string{"QueueTimeout -1s"}},
		{name: "min negative", o: Options{MaxConcurrency: 1, MinConcurrency: -1}, wantErr: []string{"MinConcurrency -1"}},
		{name: "min above max", o: Options{MaxConcurrency: 2, MinConcurrency: 3, Adaptive: true}, wantErr: []string{"MinConcurrency 3 exceeds MaxConcurrency 2"}},
		{name: "target negative", o: Options{MaxConcurrency: 1, TargetLatency: -1}, wantErr: []string{"TargetLatency"}},
		{name: "tolerance NaN", o: Options{MaxConcurrency: 1, Tolerance: math.NaN()}, wantErr: []string{"finite"}},
		{name: "tolerance Inf", o: Options{MaxConcurrency: 1, Tolerance: math.Inf(1)}, wantErr: []string{"finite"}},
		{name: "tolerance negative", o: Options{MaxConcurrency: 1, Tolerance: -2}, wantErr: []string{"must not be negative"}},
		{name: "tolerance one", o: Options{MaxConcurrency: 1, Tolerance: 1}, wantErr: []string{"greater than 1"}},
		{name: "tolerance below one", o: Options{MaxConcurrency: 1, Tolerance: 0.5}, wantErr: []string{"greater than 1"}},
		{name: "all at once", o: Options{MaxConcurrency: -5, QueueSize: -1, QueueTimeout: -1, MinConcurrency: -1,
			TargetLatency: -1, Tolerance: 0.9},
			wantErr: []string{"MaxConcurrency", "QueueSize", "QueueTimeout", "MinConcurrency", "TargetLatency", "Tolerance"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := New(tt.o)
			if len(tt.wantErr) == 0 {
				if err != nil || l == nil {
					t.Fatalf("New() = %v, %v; want a limiter", l, err)
				}
				return
			}
			if err == nil || l != nil {
				t.Fatalf("New() = %v, %v; want errors %q", l, err, tt.wantErr)
			}
			if !errors.Is(err, ErrInvalidOptions) {
				t.Errorf("error %v does not wrap ErrInvalidOptions", err)
			}
			joined, ok := err.(interface{ Unwrap() []error })
			if !ok {
				t.Fatalf("error %T is not an errors.Join result", err)
			}
			if got := len(joined.Unwrap()); got != len(tt.wantErr) {
				t.Errorf("got %d problems (%v); want %d", got, err, len(tt.wantErr))
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	tests := []struct {
		o       Options
		wantMin int
	}{
		{Options{MaxConcurrency: 1, Adaptive: true}, 1},
		{Options{MaxConcurrency: 9, Adaptive: true}, 1},
		{Options{MaxConcurrency: 50, Adaptive: true}, 5},
		{Options{MaxConcurrency: 50, Adaptive: true, MinConcurrency: 7}, 7},
		{Options{MaxConcurrency: 50}, 50}, // static: the floor is the ceiling
	}
	for _, tt := range tests {
		l := mustNew(t, tt.o)
		if l.minConc != tt.wantMin {
			t.Errorf("%+v: min = %d; want %d", tt.o, l.minConc, tt.wantMin)
		}
		if l.queueTimeout != DefaultQueueTimeout {
			t.Errorf("%+v: queue timeout = %s; want %s", tt.o, l.queueTimeout, DefaultQueueTimeout)
		}
		if l.tolerance != DefaultTolerance {
			t.Errorf("%+v: tolerance = %v; want %v", tt.o, l.tolerance, DefaultTolerance)
		}
		if l.now == nil {
			t.Errorf("%+v: no clock", tt.o)
		}
		if s := l.Stats(); s.Limit != tt.o.MaxConcurrency {
			t.Errorf("%+v: initial limit = %d; want MaxConcurrency", tt.o, s.Limit)
		}
	}
}

func TestOutcomeString(t *testing.T) {
	for o, want := range map[Outcome]string{Success: "success", Failure: "failure", Ignore: "ignore", 9: "ignore(unknown)"} {
		if got := o.String(); got != want {
			t.Errorf("Outcome(%d).String() = %q; want %q", o, got, want)
		}
	}
}
