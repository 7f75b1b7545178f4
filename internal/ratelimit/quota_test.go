package ratelimit

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseQuota(t *testing.T) {
	tests := []struct {
		in      string
		want    Quota
		wantErr string // substring; empty means success
	}{
		{in: "10000/day", want: Quota{Limit: 10000, Period: Day}},
		{in: "250000/month", want: Quota{Limit: 250000, Period: Month}},
		{in: "1/day", want: Quota{Limit: 1, Period: Day}},
		{in: "007/day", want: Quota{Limit: 7, Period: Day}},
		{in: "4503599627370496/month", want: Quota{Limit: 1 << 52, Period: Month}},
		{in: "4503599627370497/month", wantErr: "too large"},
		{in: "99999999999999999999999/day", wantErr: "too large"},
		{in: "0/day", wantErr: "at least 1"},
		{in: "-1/day", wantErr: "positive whole number"},
		{in: "+1/day", wantErr: "positive whole number"},
		{in: "1.5/day", wantErr: "positive whole number"},
		{in: " 5/day", wantErr: "positive whole number"},
		{in: "5/day ", wantErr: `unit "day "`},
		{in: "5/Day", wantErr: `unit "Day"`},
		{in: "5/d", wantErr: `unit "d"`},
		{in: "5/days", wantErr: `unit "days"`},
		{in: "5/week", wantErr: `unit "week"`},
		{in: "5/", wantErr: `unit ""`},
		{in: "5/day/day", wantErr: `unit "day/day"`},
		{in: "/day", wantErr: "missing count"},
		{in: "abc", wantErr: "want <count>/day"},
		{in: "", wantErr: "want <count>/day"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			q, err := ParseQuota(tt.in)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseQuota(%q) = %v; want error containing %q", tt.in, q, tt.wantErr)
				}
				if !errors.Is(err, ErrInvalidLimit) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseQuota(%q) error = %v; want ErrInvalidLimit containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseQuota(%q): %v", tt.in, err)
			}
			if q != tt.want {
				t.Fatalf("ParseQuota(%q) = %+v; want %+v", tt.in, q, tt.want)
			}
		})
	}
}

func TestQuotaValidate(t *testing.T) {
	tests := []struct {
		name    string
		q       Quota
		wantErr []string
	}{
		{name: "ok day", q: Quota{Limit: 1, Period: Day}},
		{name: "ok month", q: Quota{Limit: 1 << 52, Period: Month}},
		{name: "zero value", q: Quota{}, wantErr: []string{"quota 0 must be positive", "Period(0)"}},
		{name: "negative", q: Quota{Limit: -3, Period: Day}, wantErr: []string{"quota -3"}},
		{name: "too large", q: Quota{Limit: 1<<52 + 1, Period: Day}, wantErr: []string{"exceeds the maximum"}},
		{name: "unknown period", q: Quota{Limit: 5, Period: 7}, wantErr: []string{"Period(7)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.q.Validate()
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Validate(%+v): %v", tt.q, err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidLimit) {
				t.Fatalf("Validate(%+v) = %v; want ErrInvalidLimit", tt.q, err)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate(%+v) = %q; want it to mention %q", tt.q, err, w)
				}
			}
		})
	}
}

func TestPeriodWindow(t *testing.T) {
	utc := func(y int, m time.Month, d, h, mi, s, ns int) time.Time {
		return time.Date(y, m, d, h, mi, s, ns, time.UTC)
	}
	tokyo := time.FixedZone("UTC+9", 9*3600)
	tests := []struct {
		name   string
		at     time.Time
		p      Period
		wantID string
		end    time.Time
	}{
		{"day start", utc(2026, 1, 31, 0, 0, 0, 0), Day, "d20260131", utc(2026, 2, 1, 0, 0, 0, 0)},
		{"day last ns", utc(2026, 1, 31, 23, 59, 59, 999999999), Day, "d20260131", utc(2026, 2, 1, 0, 0, 0, 0)},
		{"day year end", utc(2026, 12, 31, 12, 0, 0, 0), Day, "d20261231", utc(2027, 1, 1, 0, 0, 0, 0)},
		{"leap day", utc(2028, 2, 29, 1, 0, 0, 0), Day, "d20280229", utc(2028, 3, 1, 0, 0, 0, 0)},
		{"month jan", utc(2026, 1, 31, 23, 59, 59, 0), Month, "m202601", utc(2026, 2, 1, 0, 0, 0, 0)},
		{"month dec", utc(2026, 12, 1, 0, 0, 0, 0), Month, "m202612", utc(2027, 1, 1, 0, 0, 0, 0)},
		{"month leap feb", utc(2028, 2, 29, 23, 0, 0, 0), Month, "m202802", utc(2028, 3, 1, 0, 0, 0, 0)},
		{"month plain feb", utc(2027, 2, 28, 23, 0, 0, 0), Month, "m202702", utc(2027, 3, 1, 0, 0, 0, 0)},
		// 08:00 on Feb 1 in UTC+9 is still Jan 31 in UTC: windows are UTC.
		{"zone ignored day", time.Date(2026, 2, 1, 8, 0, 0, 0, tokyo), Day, "d20260131", utc(2026, 2, 1, 0, 0, 0, 0)},
		{"zone ignored month", time.Date(2026, 2, 1, 8, 0, 0, 0, tokyo), Month, "m202601", utc(2026, 2, 1, 0, 0, 0, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, end := tt.p.window(tt.at)
			if id != tt.wantID || !end.Equal(tt.end) {
				t.Fatalf("%s.window(%s) = %q, %s; want %q, %s", tt.p, tt.at, id, end, tt.wantID, tt.end)
			}
		})
	}
}

func TestQuotaAndPolicyStrings(t *testing.T) {
	tests := []struct{ got, want string }{
		{Quota{Limit: 10000, Period: Day}.String(), "10000/day"},
		{Quota{Limit: 250000, Period: Month}.String(), "250000/month"},
		{Period(0).String(), "Period(0)"},
		{FallbackLocal.String(), "local"},
		{FallbackOpen.String(), "open"},
		{FallbackClosed.String(), "closed"},
		{FallbackPolicy(9).String(), "FallbackPolicy(9)"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q; want %q", tt.got, tt.want)
		}
	}
}

// FuzzParseQuota checks that ParseQuota never panics, that every error
// wraps ErrInvalidLimit, and that every accepted quota is valid and
// round-trips through Quota.String. Seeds live in testdata/fuzz.
func FuzzParseQuota(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		q, err := ParseQuota(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidLimit) {
				t.Fatalf("ParseQuota(%q) error %v does not wrap ErrInvalidLimit", s, err)
			}
			return
		}
		if err := q.Validate(); err != nil {
			t.Fatalf("ParseQuota(%q) = %+v which does not validate: %v", s, q, err)
		}
		back, err := ParseQuota(q.String())
		if err != nil || back != q {
			t.Fatalf("ParseQuota(%q) = %+v; ParseQuota(%q) = %+v, %v; want the same quota", s, q, q.String(), back, err)
		}
		// String is canonical: the input differs only by leading zeros.
		if strings.TrimLeft(s, "0") != q.String() && s != q.String() {
			t.Fatalf("ParseQuota(%q) = %q: input is not the canonical form up to leading zeros", s, q.String())
		}
	})
}
