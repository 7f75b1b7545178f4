package traffic

import (
	"strconv"
	"testing"
)

func gatewayProblem(status int, reason string) Response {
	return Response{Status: status, ContentType: "application/problem+json",
		Body: []byte(`{"type":"https://bulwark.dev/problems/` + reason + `","title":"x","status":` + strconv.Itoa(status) + `,"request_id":"r1","reason":"` + reason + `"}`)}
}

// bankProblem is the bank's own error: problem+json without "reason".
func bankProblem(status int) Response {
	return Response{Status: status, ContentType: "application/problem+json",
		Body: []byte(`{"type":"about:blank","title":"x","status":` + strconv.Itoa(status) + `,"detail":"invalid username or password"}`)}
}

const (
	maskedCards = `{"cards":[{"cardId":"card_mgjsmmveytk5","pan":"466103******7289","expiry":"04/29"}],"total":1}`
	fullCards   = `{"cards":[{"cardId":"card_mgjsmmveytk5","pan":"4111111111111111","expiry":"04/29"}],"total":1}`
)

func TestClassify(t *testing.T) {
	ok := func(body string) Response {
		return Response{Status: 200, ContentType: "application/json", Body: []byte(body)}
	}
	tests := []struct {
		name    string
		kind    Kind
		resp    Response
		blocked bool
		reason  string
	}{
		{"attack refused by the gateway", BOLAEnumeration, gatewayProblem(403, "object_denied"), true, "object_denied"},
		{"attack rate limited", RequestFlood, gatewayProblem(429, "rate_limited"), true, "rate_limited"},
		{"attack refused with 401", JWTAlgNone, gatewayProblem(401, "alg_none"), true, "alg_none"},
		{"attack refused with a 5xx problem", SQLInjection, gatewayProblem(503, "shed_queue_full"), true, "shed_queue_full"},
		{"attack answered by the bank", RequestFlood, ok(`{"status":"ok"}`), false, "upstream_200"},
		{"stuffing attempt reaching the bank is not blocked", CredentialStuffing, bankProblem(401), false, "upstream_401"},
		{"problem without reason is the bank's", MassAssignment, bankProblem(400), false, "upstream_400"},
		{"4xx that is not problem+json", AdminAccess, Response{Status: 403, ContentType: "text/plain", Body: []byte(`{"reason":"x"}`)}, false, "upstream_403"},
		{"problem+json with a 2xx status", AdminAccess, Response{Status: 200, ContentType: "application/problem+json", Body: []byte(`{"reason":"x"}`)}, false, "upstream_200"},
		{"problem+json with parameters", JWTKeyConfusion, Response{Status: 401, ContentType: "application/problem+json; charset=utf-8", Body: []byte(`{"reason":"alg_not_allowed"}`)}, true, "alg_not_allowed"},
		{"harvest refused", CardHarvesting, gatewayProblem(403, "object_owner_mismatch"), true, "object_owner_mismatch"},
		{"harvest got masked numbers", CardHarvesting, ok(maskedCards), true, "no_full_pan"},
		{"harvest got full numbers", CardHarvesting, ok(fullCards), false, "pan_leaked"},
		{"harvest got a bank 404", CardHarvesting, bankProblem(404), true, "no_full_pan"},
		{"benign passed", Benign, ok(`{"accounts":[]}`), false, "upstream_200"},
		{"benign created", Benign, Response{Status: 201, ContentType: "application/json", Body: []byte(`{}`)}, false, "upstream_201"},
		{"benign refused by the gateway", Benign, gatewayProblem(429, "rate_limited"), true, "rate_limited"},
		{"benign refused by the bank", Benign, bankProblem(400), true, "upstream_400"},
		{"benign 5xx without a body", Benign, Response{Status: 502}, true, "upstream_502"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := Classify(tt.kind, tt.resp)
			if o.Blocked != tt.blocked || o.Reason != tt.reason {
				t.Fatalf("Classify = %+v, want blocked=%v reason=%q", o, tt.blocked, tt.reason)
			}
		})
	}
}

func TestLeaksPAN(t *testing.T) {
	tests := []struct {
		body string
		want bool
	}{
		{`"pan":"4111111111111111"`, true},         // Visa test number
		{`"pan":"5555555555554444"`, true},         // Mastercard test number
		{`"pan":"378282246310005"`, true},          // 15-digit Amex
		{`"pan":"4222222222222"`, true},            // 13 digits
		{`"pan":"6011000990139424"`, true},         // Discover
		{`"pan":"4111 1111 1111 1111"`, true},      // grouped by spaces
		{`"pan":"4111-1111-1111-1111"`, true},      // grouped by dashes
		{`card 4111111111111111.`, true},           // in free text
		{`4111111111111111`, true},                 // the whole body
		{`"pan":"411111******1111"`, false},        // masked (first six, last four)
		{`"pan":"************1111"`, false},        // masked further
		{`"pan":"4111111111111112"`, false},        // Luhn fails
		{`"n":"411111111111"`, false},              // 12 digits: too short
		{`"n":"41111111111111111111"`, false},      // 20 digits: too long
		{`"accountNumber":"85801999"`, false},      // account number
		{`"iban":"GB61BLWK20306185801999"`, false}, // 14-digit tail fails Luhn
		{`"sortCode":"20-30-61","expiry":"04/29"`, false},
		{`"date":"2025-06-30T12:00:00Z"`, false},
		{`"phone":"+447700900123"`, false},
		{``, false},
		{`4111 1111 1111 111-`, false}, // 15 digits, Luhn fails; trailing dash
	}
	for _, tt := range tests {
		if got := LeaksPAN([]byte(tt.body)); got != tt.want {
			t.Errorf("LeaksPAN(%q) = %v, want %v", tt.body, got, tt.want)
		}
	}
}

func TestLuhn(t *testing.T) {
	for _, s := range []string{"79927398713", "4111111111111111", "0"} {
		if !luhn([]byte(s)) {
			t.Errorf("luhn(%s) = false", s)
		}
	}
	for _, s := range []string{"79927398710", "4111111111111121", "1"} {
		if luhn([]byte(s)) {
			t.Errorf("luhn(%s) = true", s)
		}
	}
}

func FuzzLeaksPAN(f *testing.F) {
	f.Add([]byte(fullCards))
	f.Add([]byte(maskedCards))
	f.Add([]byte("4111 1111-1111 1111"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got := LeaksPAN(b)
		// A leak needs at least a PAN's worth of digits.
		if !got {
			return
		}
		digits := 0
		for _, c := range b {
			if isDigit(c) {
				digits++
			}
		}
		if digits < minPANDigits {
			t.Fatalf("LeaksPAN(%q) with %d digits", b, digits)
		}
	})
}
