package dlp

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// found renders matches as "class:value" for table tests.
func found(data []byte, ms []Match) []string {
	var out []string
	for _, m := range ms {
		out = append(out, fmt.Sprintf("%s:%s", m.Class, data[m.Start:m.End]))
	}
	return out
}

func TestDetectors(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string
	}{
		{"visa plain", "card 4111111111111111 ok", []string{"pan:4111111111111111"}},
		{"visa spaced", "card 4111 1111 1111 1111.", []string{"pan:4111 1111 1111 1111"}},
		{"visa hyphen", "4111-1111-1111-1111", []string{"pan:4111-1111-1111-1111"}},
		{"amex 4-6-5", "amex 3782 822463 10005", []string{"pan:3782 822463 10005"}},
		{"mixed separators", "4111-1111 1111-1111", nil},
		{"luhn fails", "4111111111111112", nil},
		{"longer run", "41111111111111110", nil},
		{"letter glued", "x4111111111111111", nil},
		{"all same", "4444444444444444 0000000000000000", nil},
		{"no brand", "1234567812345670", nil},
		{"epoch ms", "ts 1700000000000", nil},
		{"amount", "4111111111111111.50", nil},
		{"continues group", "9999 4111 1111 1111 1111", nil},
		{"iban", "pay DE89370400440532013000 now", []string{"iban:DE89370400440532013000"}},
		{"iban print", "IBAN: GB82 WEST 1234 5698 7654 32, thanks", []string{"iban:GB82 WEST 1234 5698 7654 32"}},
		{"iban bad check", "DE88370400440532013000", nil},
		{"iban bad length", "DE8937040044053201300", nil},
		{"ssn", "ssn 123-45-6789", []string{"us_ssn:123-45-6789"}},
		{"ssn area 666", "666-45-6789 000-12-3456 123-00-4567 123-45-0000 900-12-3456", nil},
		{"ssn bare text", "123456789", nil},
		{"nino", "NI AB123456C and QQ123456C", []string{"uk_nino:AB123456C"}},
		{"nino spaced", "AB 12 34 56 C", []string{"uk_nino:AB 12 34 56 C"}},
		{"nino bad prefix", "GB123456A BG123456A DA123456A AO123456A", nil},
		{"bic standalone", "to HSBCGB2L and DEUTDEFFXXX", []string{"swift_bic:HSBCGB2L", "swift_bic:DEUTDEFFXXX"}},
		{"bic words", "CUSTOMER ACCEPTED INSTRUCTION DEUTDEFF", nil},
		{"email", "mail john.smith+x@bank.example.co.uk.", []string{"email:john.smith+x@bank.example.co.uk"}},
		{"email bad", "a@b x@y.z @foo.com", nil},
		{"phone", "call +44 20 7946 0958 or +1 (555) 123-4567", []string{"phone:+44 20 7946 0958", "phone:+1 (555) 123-4567"}},
		{"phone short", "+150.00 +1234567", nil},
		{"ipv4", "from 192.168.1.20, not 1.2.3.4.5 or 256.1.1.1 or 01.2.3.4", []string{"ip_address:192.168.1.20"}},
		{"ipv6", "addr 2001:db8::8a2e:370:7334 and fe80::1 not 10:30:00", []string{"ip_address:2001:db8::8a2e:370:7334", "ip_address:fe80::1"}},
		{"jwt", "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", []string{"jwt:eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"}},
		{"jwt no alg", "eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiIxIn0.sig", nil},
		{"pem", "k: -----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIB\n-----END EC PRIVATE KEY----- done", []string{"private_key:-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIB\n-----END EC PRIVATE KEY-----"}},
		{"pem public", "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----", nil},
		{"aws", "AKIAIOSFODNN7EXAMPLE", []string{"cloud_key:AKIAIOSFODNN7EXAMPLE"}},
		{"github", "ghp_" + strings.Repeat("a1B2", 9), []string{"cloud_key:ghp_" + strings.Repeat("a1B2", 9)}},
		{"gcp", "AIza" + strings.Repeat("Sy-_x", 7), []string{"cloud_key:AIza" + strings.Repeat("Sy-_x", 7)}},
		{"slack", "xoxb-1234567890-abcdef", []string{"cloud_key:xoxb-1234567890-abcdef"}},
		{"uuid", "id 4111e111-1111-4111-8111-111111111111", nil},
		{"date", "2024-01-15T10:30:00Z", nil},
		// JSON with context
		{"json pan number", `{"cardNumber": 4111111111111111, "amount": 10}`, []string{"pan:4111111111111111"}},
		{"json pan context no brand", `{"cardNumber": "1234567812345670"}`, []string{"pan:1234567812345670"}},
		{"json cvv", `{"cvv": "123", "cvc": 4567, "count": 123}`, []string{"pan:123", "pan:4567"}},
		{"json ssn bare", `{"ssn": "123456789", "id": "123456789"}`, []string{"us_ssn:123456789"}},
		{"json aba", `{"routingNumber": "021000021", "other": "021000021", "aba": "021000022"}`, []string{"aba_routing:021000021"}},
		{"json bic ctx", `{"bic": "DEUTDEFF", "status": "DEUTDEFF"}`, []string{"swift_bic:DEUTDEFF"}},
		{"json phone ctx", `{"phone": "020 7946 0958", "ref": "020 7946 0958"}`, []string{"phone:020 7946 0958"}},
		{"json escapes", `{"note": "card\n4111111111111111\u0020x"}`, []string{"pan:4111111111111111"}},
		{"json array ctx", `{"cards": [], "cardNumber": ["1234567812345670", "4111111111111111"]}`, []string{"pan:1234567812345670", "pan:4111111111111111"}},
		{"json pem", `{"key": "-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n-----END RSA PRIVATE KEY-----\n"}`,
			[]string{`private_key:-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n-----END RSA PRIVATE KEY-----`}},
		{"json key scanned", `{"a@b.com": 1}`, []string{"email:a@b.com"}},
		{"malformed falls back", `{"a": 1 x 4111111111111111}`, []string{"pan:4111111111111111"}},
	}
	s := NewScanner(nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := found([]byte(tt.in), s.Scan([]byte(tt.in)))
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("Scan(%q)\n got  %q\n want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestMatchKeyAndClasses(t *testing.T) {
	in := []byte(`{"payer": {"iban": "DE89370400440532013000", "email": "a.b@bank.com"}}`)
	ms := NewScanner(nil).Scan(in)
	if len(ms) != 2 || ms[0].Key != "iban" || ms[1].Key != "email" {
		t.Fatalf("matches %+v", ms)
	}
	if got := Classes(ms); len(got) != 2 || got[0] != Email || got[1] != IBAN {
		t.Fatalf("Classes = %v", got)
	}
	if ms := NewScanner([]Class{IBAN}).Scan(in); len(ms) != 1 || ms[0].Class != IBAN {
		t.Fatalf("class filter: %+v", ms)
	}
}

func TestMask(t *testing.T) {
	in := `{"cardNumber": 4111111111111111, "card": "4111 1111 1111 1111", "cvv": 123, "cvc": "0123", ` +
		`"iban": "GB82 WEST 1234 5698 7654 32", "ssn": "123-45-6789", "key": "-----BEGIN PRIVATE KEY-----\nMIIB\/Ag==\n-----END PRIVATE KEY-----"}`
	data := []byte(in)
	ms := NewScanner(nil).Scan(data)
	Mask(data, ms, nil)
	want := `{"cardNumber": 4111110000001111, "card": "4111 11** **** 1111", "cvv": 900, "cvc": "****", ` +
		`"iban": "**** **** **** **** **** **", "ssn": "***-**-****", "key": "-----***** ******* ***-----\n****\/****\n-----*** ******* ***-----"}`
	if string(data) != want {
		t.Fatalf("masked\n got  %s\n want %s", data, want)
	}
	if !json.Valid(data) {
		t.Fatal("masked JSON is invalid")
	}
	// Only the selected classes.
	data = []byte(`{"iban": "DE89370400440532013000", "email": "a@bank.com"}`)
	Mask(data, NewScanner(nil).Scan(data), map[Class]bool{Email: true})
	if string(data) != `{"iban": "DE89370400440532013000", "email": "**********"}` {
		t.Fatalf("class selection: %s", data)
	}
}

func TestScannerConcurrent(t *testing.T) {
	s := NewScanner(nil)
	doc := []byte(`{"cardNumber": "4111111111111111", "iban": "DE89370400440532013000"}`)
	done := make(chan []Match)
	for range 4 {
		go func() {
			var ms []Match
			for range 50 {
				ms = s.Scan(doc)
			}
			done <- ms
		}()
	}
	for range 4 {
		if ms := <-done; len(ms) != 2 {
			t.Errorf("matches %+v", ms)
		}
	}
}
