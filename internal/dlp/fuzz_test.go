package dlp

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// checkScan asserts the properties every scan must have: matches in
// bounds, in order and non-overlapping; PANs (13+ digits) Luhn-valid;
// IBANs mod-97 valid; masking keeps the length and, for a JSON document,
// its validity.
func checkScan(t *testing.T, s *Scanner, data []byte) []Match {
	t.Helper()
	ms := s.Scan(data)
	ungated := *s
	ungated.noGate = true
	if all := ungated.Scan(data); !sameMatches(ms, all) {
		t.Fatalf("the gate hides matches:\n gated   %v\n ungated %v", ms, all)
	}
	prev := 0
	for _, m := range ms {
		if m.Start < prev || m.End <= m.Start || m.End > len(data) {
			t.Fatalf("match %+v out of order or bounds (prev end %d, len %d)", m, prev, len(data))
		}
		prev = m.End
		v := data[m.Start:m.End]
		switch m.Class {
		case PAN:
			n := 0
			for _, c := range v {
				if isDigit(c) {
					n++
				}
			}
			if n >= 13 && !Luhn(v) {
				t.Fatalf("PAN %q fails Luhn", v)
			}
		case IBAN:
			var e []byte
			for _, c := range v {
				if c != ' ' {
					e = append(e, upper(c))
				}
			}
			if !IBANValid(string(e)) {
				t.Fatalf("IBAN %q is invalid", v)
			}
		}
	}
	masked := bytes.Clone(data)
	Mask(masked, ms, nil)
	if len(masked) != len(data) {
		t.Fatalf("Mask changed the length")
	}
	if t0 := bytes.TrimLeft(data, " \t\r\n"); len(t0) > 0 && (t0[0] == '{' || t0[0] == '[') && json.Valid(data) && !json.Valid(masked) {
		t.Fatalf("masking broke JSON:\n%s\n%s", data, masked)
	}
	return ms
}

func fuzzDetector(f *testing.F, seeds []string, classes ...Class) {
	for _, sd := range seeds {
		f.Add([]byte(sd))
	}
	s := NewScanner(classes)
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, m := range checkScan(t, s, data) {
			ok := false
			for _, c := range classes {
				ok = ok || m.Class == c
			}
			if !ok {
				t.Fatalf("class %s reported by a scanner for %v", m.Class, classes)
			}
		}
		// The same value as a JSON string and under its context key.
		q, _ := json.Marshal(string(data))
		checkScan(t, s, []byte(`{"cardNumber": `+string(q)+`, "iban": `+string(q)+`, "ssn": `+string(q)+`, "routingNumber": `+string(q)+`, "bic": `+string(q)+`, "phone": `+string(q)+`, "cvv": `+string(q)+`}`))
	})
}

func FuzzPAN(f *testing.F) {
	fuzzDetector(f, []string{"4111111111111111", "4111 1111 1111 1111", "3782-822463-10005", "6011111111111117", "5555555555554444 x", "4111111111111112", "x4111111111111111", "4111-1111 1111-1111"}, PAN)
}

func FuzzIBAN(f *testing.F) {
	fuzzDetector(f, []string{"DE89370400440532013000", "GB82 WEST 1234 5698 7654 32", "de89370400440532013000", "NO9386011117947", "DE88370400440532013000"}, IBAN)
}

func FuzzIDs(f *testing.F) {
	fuzzDetector(f, []string{"123-45-6789", "123456789", "021000021", "DEUTDEFF", "HSBCGB2L", "COBADEFFXXX", "AB123456C", "AB 12 34 56 C"}, USSSN, ABARouting, SWIFTBIC, UKNINO)
}

func FuzzContact(f *testing.F) {
	fuzzDetector(f, []string{"john.smith@bank.example.com", "+44 20 7946 0958", "+1 (555) 123-4567", "192.168.0.1", "2001:db8::1", "fe80::1%eth0"}, Email, Phone, IPAddress)
}

func FuzzSecrets(f *testing.F) {
	fuzzDetector(f, []string{
		"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxIn0.sig",
		"-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----",
		"-----BEGIN ENCRYPTED PRIVATE KEY-----\\nMIIB\\n-----END ENCRYPTED PRIVATE KEY-----",
		"AKIAIOSFODNN7EXAMPLE", "ghp_" + strings.Repeat("a", 36), "xoxb-1234567890-abc", "AIza" + strings.Repeat("x", 35),
	}, JWT, PrivateKey, CloudKey)
}

// FuzzJSONWalker feeds arbitrary bytes (valid and broken JSON) to the
// walker with every detector on.
func FuzzJSONWalker(f *testing.F) {
	for _, sd := range []string{
		`{"cardNumber": 4111111111111111, "cvv": "123", "a": [1, 2.5e3, true, null, {"iban": "DE89370400440532013000"}]}`,
		`[{"email": "a@b.com"}, "x\"y\\z\u0041", -1, {}] {"next": "doc"}`,
		`{"a": "unterminated \u00`, `{"a" 1}`, `[[[[[[`, `{"k\u0065y": "v"}`, `{"ssn": 123456789}`,
	} {
		f.Add([]byte(sd))
	}
	s := NewScanner(nil)
	f.Fuzz(func(t *testing.T, data []byte) {
		checkScan(t, s, data)
	})
}

// FuzzStream checks that any chunking gives the matches of Scan.
func FuzzStream(f *testing.F) {
	f.Add([]byte(`{"cardNumber": "4111 1111 1111 1111", "iban": "GB82 WEST 1234 5698 7654 32"}`), uint16(7), uint16(3))
	f.Add([]byte("pay 4111111111111111 to DE89370400440532013000 +44 20 7946 0958"), uint16(1), uint16(5))
	s := NewScanner(nil)
	f.Fuzz(func(t *testing.T, data []byte, a, b uint16) {
		want := s.Scan(data)
		sizes := []int{int(a%9000) + 1, int(b%50) + 1}
		if got := scanChunked(s, data, sizes); !sameMatches(got, want) {
			t.Fatalf("chunks %v:\n got  %v\n want %v", sizes, got, want)
		}
	})
}
