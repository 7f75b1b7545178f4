package gateway

import (
	"strings"
	"testing"
)

func TestRequestID(t *testing.T) {
	tests := []struct {
		in     string
		accept bool
		keep   bool
	}{
		{"0123456789abcdef", true, true},
		{"4bf92f3577b34da6a3ce929d0e0e4736", true, true},
		{"Root=1-67891233-abcdef012345678912345678", true, true},
		{"short", true, false},
		{"has space 0123456", true, false},
		{"new\nline-01234567", true, false},
		{`quote"0123456789`, true, false},
		{strings.Repeat("a", 129), true, false},
		{strings.Repeat("a", 128), true, true},
		{"0123456789abcdef", false, false},
		{"", true, false},
	}
	for _, tt := range tests {
		got := requestID(tt.in, tt.accept)
		if (got == tt.in) != tt.keep {
			t.Errorf("requestID(%q, %v) = %q, keep=%v", tt.in, tt.accept, got, tt.keep)
		}
		if !validRequestID(got) {
			t.Errorf("requestID(%q) produced invalid %q", tt.in, got)
		}
	}
}

func TestNewRequestIDIsUUIDv7(t *testing.T) {
	seen := map[string]bool{}
	prev := ""
	for i := 0; i < 1000; i++ {
		id := newRequestID()
		if len(id) != 36 || id[14] != '7' || !strings.ContainsRune("89ab", rune(id[19])) {
			t.Fatalf("not a UUIDv7: %s", id)
		}
		if seen[id] {
			t.Fatalf("duplicate id %s", id)
		}
		seen[id] = true
		if id[:13] < prev[:min(13, len(prev))] {
			t.Fatalf("ids not time-ordered: %s after %s", id, prev)
		}
		prev = id
	}
}

// FuzzRequestID: whatever a client sends, the id the gateway uses is
// well-formed (safe in headers, logs and JSON) and an accepted one is
// exactly what was sent.
func FuzzRequestID(f *testing.F) {
	for _, s := range []string{"0123456789abcdef", "trace:abc/def+ghi=", "bad id", "\x00\r\n0123456789", strings.Repeat("x", 200)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got := requestID(in, true)
		if !validRequestID(got) {
			t.Fatalf("invalid id %q from %q", got, in)
		}
		if got != in && validRequestID(in) {
			t.Fatalf("valid incoming id %q replaced", in)
		}
		for _, c := range got {
			if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
				t.Fatalf("unsafe character %q in %q", c, got)
			}
		}
	})
}

func BenchmarkNewRequestID(b *testing.B) {
	for b.Loop() {
		_ = newRequestID()
	}
}
