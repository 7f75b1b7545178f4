package traffic

import (
	"encoding/json"
	"mime"
	"strconv"
)

// Kind labels a request: benign customer traffic or one kind of attack.
type Kind string

// The kinds of traffic the generator sends.
const (
	Benign             Kind = "benign"
	BOLAEnumeration    Kind = "bola_enumeration"
	JWTAlgNone         Kind = "jwt_alg_none"
	JWTKeyConfusion    Kind = "jwt_key_confusion"
	CredentialStuffing Kind = "credential_stuffing"
	SQLInjection       Kind = "sql_injection"
	CardHarvesting     Kind = "card_harvesting"
	RequestFlood       Kind = "request_flood"
	MassAssignment     Kind = "mass_assignment"
	AdminAccess        Kind = "admin_access"
)

// AttackKinds lists every attack kind, in the order the summary shows them.
var AttackKinds = []Kind{
	BOLAEnumeration, JWTAlgNone, JWTKeyConfusion, CredentialStuffing,
	SQLInjection, CardHarvesting, RequestFlood, MassAssignment, AdminAccess,
}

// problemMediaType is RFC 9457's media type; every response the gateway
// makes itself has it, and so do the bank's own error responses.
const problemMediaType = "application/problem+json"

// Response is what the classifier needs of an HTTP response.
type Response struct {
	Status      int
	ContentType string
	Body        []byte
}

// Outcome is the verdict on one request.
type Outcome struct {
	// Blocked: for an attack, the gateway stopped it (or, for card
	// harvesting, no full card number came back); for benign traffic, the
	// customer did not get what they asked for.
	Blocked bool
	// Reason says why: the gateway's problem reason ("object_denied"), or
	// "no_full_pan", "pan_leaked", "upstream_NNN" (the bank answered).
	Reason string
}

// Reasons that are not the gateway's own.
const (
	reasonNoPAN     = "no_full_pan"
	reasonPANLeaked = "pan_leaked"
	reasonUpstream  = "upstream_"
)

// GatewayRefusal reports whether r is a refusal made by the gateway
// itself: a 4xx or 5xx application/problem+json whose body carries the
// gateway's "reason" member (the bank's own problem documents have none),
// and that reason.
func GatewayRefusal(r Response) (reason string, ok bool) {
	if r.Status < 400 {
		return "", false
	}
	if mt, _, err := mime.ParseMediaType(r.ContentType); err != nil || mt != problemMediaType {
		return "", false
	}
	var p struct {
		Reason string `json:"reason"`
	}
	if json.Unmarshal(r.Body, &p) != nil || p.Reason == "" {
		return "", false
	}
	return p.Reason, true
}

// Classify judges one response to a request of kind k.
//
// An attack is blocked when the gateway refused it. Card harvesting is
// judged by what leaves: it is blocked when the response carries no full
// card number, whether the gateway refused the request or masked the
// numbers. Benign traffic is blocked by any gateway refusal and by any
// 4xx or 5xx at all: a customer who gets an error was let down, whoever
// answered.
func Classify(k Kind, r Response) Outcome {
	reason, refused := GatewayRefusal(r)
	switch {
	case k == Benign:
		if refused {
			return Outcome{Blocked: true, Reason: reason}
		}
		if r.Status >= 400 {
			return Outcome{Blocked: true, Reason: reasonUpstream + strconv.Itoa(r.Status)}
		}
		return Outcome{Reason: reasonUpstream + strconv.Itoa(r.Status)}
	case refused:
		return Outcome{Blocked: true, Reason: reason}
	case k == CardHarvesting:
		if LeaksPAN(r.Body) {
			return Outcome{Reason: reasonPANLeaked}
		}
		return Outcome{Blocked: true, Reason: reasonNoPAN}
	default:
		return Outcome{Reason: reasonUpstream + strconv.Itoa(r.Status)}
	}
}

// PAN lengths (ISO/IEC 7812): 13 to 19 digits.
const (
	minPANDigits = 13
	maxPANDigits = 19
)

// LeaksPAN reports whether b contains a full card number: a run of 13 to
// 19 digits that passes the Luhn check, either contiguous or grouped by
// single spaces or dashes ("4111 1111 1111 1111"). A masked number
// ("411111******1111") is not one.
func LeaksPAN(b []byte) bool {
	var group, run []byte // digits since the last separator; digits of the whole grouped run
	check := func(d []byte) bool {
		return len(d) >= minPANDigits && len(d) <= maxPANDigits && luhn(d)
	}
	for i := 0; i <= len(b); i++ {
		var c byte
		if i < len(b) {
			c = b[i]
		}
		switch {
		case i < len(b) && isDigit(c):
			group = append(group, c)
			run = append(run, c)
		case i < len(b) && (c == ' ' || c == '-') && len(group) > 0 && i+1 < len(b) && isDigit(b[i+1]):
			if check(group) {
				return true
			}
			group = group[:0]
		default:
			if check(group) || check(run) {
				return true
			}
			group, run = group[:0], run[:0]
		}
	}
	return false
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// luhn reports whether the ASCII digits d pass the Luhn (mod 10) check.
func luhn(d []byte) bool {
	sum := 0
	double := false
	for i := len(d) - 1; i >= 0; i-- {
		n := int(d[i] - '0')
		if double {
			n *= 2
			if n > 9 {
				n -= 9
			}
		}
		sum += n
		double = !double
	}
	return sum%10 == 0
}
