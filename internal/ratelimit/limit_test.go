package ratelimit

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseRate(t *testing.T) {
	tests := []struct {
		in      string
		rate    int
		period  time.Duration
		wantErr string // substring; empty means success
	}{
		{in: "100/s", rate: 100, period: time.Second},
		{in: "5/m", rate: 5, period: time.Minute},
		{in: "1000/h", rate: 1000, period: time.Hour},
		{in: "10000/d", rate: 10000, period: 24 * time.Hour},
		{in: "1/s", rate: 1, period: time.Second},
		{in: "1000000000/s", rate: 1_000_000_000, period: time.Second},
		{in: "0/s", wantErr: "at least 1"},
		{in: "-1/s", wantErr: "positive whole number"},
		{in: "+1/s", wantErr: "positive whole number"},
		{in: "1.5/s", wantErr: "positive whole number"},
		{in: " 5/s", wantErr: "positive whole number"},
		{in: "5/x", wantErr: `unit "x"`},
		{in: "5/S", wantErr: `unit "S"`},
		{in: "5/", wantErr: `unit ""`},
		{in: "5/s/s", wantErr: `unit "s/s"`},
		{in: "/s", wantErr: "missing count"},
		{in: "abc", wantErr: "want <count>/<unit>"},
		{in: "", wantErr: "want <count>/<unit>"},
		{in: "99999999999999999999999/s", wantErr: "too large"},
		{in: "1000000001/s", wantErr: "more than one event per nanosecond"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			rate, period, err := ParseRate(tt.in)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseRate(%q) = %d, %s; want error containing %q", tt.in, rate, period, tt.wantErr)
				}
				if !errors.Is(err, ErrInvalidLimit) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseRate(%q) error = %v; want ErrInvalidLimit containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRate(%q): %v", tt.in, err)
			}
			if rate != tt.rate || period != tt.period {
				t.Fatalf("ParseRate(%q) = %d, %s; want %d, %s", tt.in, rate, period, tt.rate, tt.period)
			}
		})
	}
}

func FuzzParseRate(f *testing.F) {
	for _, s := range []string{"100/s", "5/m", "1000/h", "10000/d", "0/s", "-1/s", "5/x", "abc", "99999999999999999999/s", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		rate, period, err := ParseRate(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidLimit) {
				t.Fatalf("ParseRate(%q) error %v does not wrap ErrInvalidLimit", s, err)
			}
			return
		}
		if err := (Limit{Rate: rate, Period: period, Burst: 1}).Validate(); err != nil {
			t.Fatalf("ParseRate(%q) = %d, %s which does not validate: %v", s, rate, period, err)
		}
	})
}

func TestLimitValidate(t *testing.T) {
	tests := []struct {
		name    string
		l       Limit
		wantErr []string
	}{
		{name: "ok", l: Limit{Rate: 10, Period: time.Second, Burst: 5}},
		{name: "all bad reported together", l: Limit{Rate: 0, Period: -time.Second, Burst: 0},
			wantErr: []string{"rate 0", "period -1s", "burst 0"}},
		{name: "sub-nanosecond", l: Limit{Rate: 2, Period: time.Nanosecond, Burst: 1},
			wantErr: []string{"finer than one event per nanosecond"}},
		{name: "tolerance overflow", l: Limit{Rate: 1, Period: 24 * time.Hour, Burst: 1 << 40},
			wantErr: []string{"spans more than"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.l.Validate()
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Validate(%v): %v", tt.l, err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidLimit) {
				t.Fatalf("Validate(%v) = %v; want ErrInvalidLimit", tt.l, err)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate(%v) = %q; want it to mention %q", tt.l, err, w)
				}
			}
		})
	}
}
