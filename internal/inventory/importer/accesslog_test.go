package importer

import (
	"testing"
	"time"
)

func TestParseTimeLocal(t *testing.T) {
	for _, s := range []string{
		"02/Jan/2025:03:04:05 +0000", "29/Feb/2024:23:59:59 -0930", "01/Dec/1999:00:00:00 +1400", "31/Jul/2025:12:00:00 +0545",
		"31/Feb/2025:00:00:00 +0000", "02/Jxn/2025:03:04:05 +0000", "02/an/2025:03:04:05 +0000", "02/Jan/2025:24:04:05 +0000",
		"02/Jan/2025:03:60:05 +0000", "02/Jan/2025:03:04:05 0000", "2/Jan/2025:03:04:05 +0000", "00/Jan/2025:03:04:05 +0000",
		"02/Jan/2025:03:04:05 +00:0", "02/Jan/-025:03:04:05 +0000", "",
	} {
		want, werr := time.Parse(timeLocalLayout, s)
		got, ok := parseTimeLocal([]byte(s))
		if ok != (werr == nil) || (ok && !got.Equal(want)) {
			t.Errorf("%q: %v %v, time.Parse %v %v", s, got, ok, want, werr)
		}
	}
}

func FuzzParseTimeLocal(f *testing.F) {
	f.Add("02/Jan/2025:03:04:05 +0000")
	f.Fuzz(func(t *testing.T, s string) {
		want, werr := time.Parse(timeLocalLayout, s)
		got, ok := parseTimeLocal([]byte(s))
		if ok && (werr != nil || !got.Equal(want)) {
			t.Fatalf("%q: %v, time.Parse %v %v", s, got, want, werr)
		}
	})
}
