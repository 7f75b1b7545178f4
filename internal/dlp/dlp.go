// Package dlp finds sensitive data in bodies: card numbers (PAN), IBANs, US
// social security and ABA routing numbers, SWIFT/BIC codes, UK National
// Insurance numbers, email addresses, phone numbers, IP addresses, JWTs, PEM
// private keys and cloud access keys.
//
// Detectors validate what they find (Luhn and brand ranges for PANs, the
// per-country length and mod-97 for IBANs, the ABA checksum, ISO country
// codes for BICs, ...) rather than trusting a shape. A body whose first
// non-space byte is '{' or '[' is walked as JSON by a small hand-written
// tokenizer: detectors run on string and number values (and on keys), and the
// key a value sits under is used as context (a 9-digit value under "ssn" is a
// social security number; a bare 9-digit number elsewhere is not). Context can
// admit ambiguous forms but never bypasses a checksum. Malformed JSON falls
// back to text scanning from the point where it stopped making sense; other
// bodies are scanned as text. Top-level JSON scalars are scanned as text.
//
// Key context (JSON key names, compared without case, '_' or '-'):
//
//   - cardNumber, pan, primaryAccountNumber, ...: a Luhn-valid 13-19 digit
//     value is a PAN even outside the known brand ranges;
//   - cvv, cvc, cvv2, securityCode, ...: a value of exactly 3-4 digits is
//     reported as class "pan" (no class of its own: it is card data that
//     PCI DSS forbids storing, and masking "pan" then masks it entirely);
//   - ssn, socialSecurityNumber: nine contiguous digits or AAA GG SSSS;
//   - routingNumber, aba, routing: the only place ABA numbers are looked for;
//   - bic, swift: 8 or 11 character BICs of any case, even without a digit;
//   - nino: lower case and a missing suffix letter; iban: lower case;
//   - phone, mobile, telephone: national numbers of 7-15 digits.
//
// Known limits: text bodies carry no key context ("ssn: 123456789" in a
// log line is not found); form bodies are not URL-decoded ("4111+1111+..."
// is not a PAN); IPv6 addresses must start with a hex digit ("::1" is not
// found); a key or token longer than 8 KiB is matched up to 8 KiB; negative
// JSON numbers are never PANs.
//
// The package knows nothing of HTTP or of the gateway: the dlp stage, the
// inventory and the posture scanner share it.
package dlp

import "sort"

// Class is a kind of sensitive data. The names are config.DataClasses.
type Class string

// The data classes.
const (
	PAN        Class = "pan"
	IBAN       Class = "iban"
	USSSN      Class = "us_ssn"
	ABARouting Class = "aba_routing"
	SWIFTBIC   Class = "swift_bic"
	UKNINO     Class = "uk_nino"
	Email      Class = "email"
	Phone      Class = "phone"
	IPAddress  Class = "ip_address"
	JWT        Class = "jwt"
	PrivateKey Class = "private_key"
	CloudKey   Class = "cloud_key"
)

// class indexes, in the order of AllClasses.
const (
	cPAN = iota
	cIBAN
	cSSN
	cABA
	cBIC
	cNINO
	cEmail
	cPhone
	cIP
	cJWT
	cKey
	cCloud
	numClasses
)

// AllClasses lists every class the detectors know, in config.DataClasses order.
var AllClasses = []Class{PAN, IBAN, USSSN, ABARouting, SWIFTBIC, UKNINO, Email, Phone, IPAddress, JWT, PrivateKey, CloudKey}

// Match is one piece of sensitive data found in a body. Start and End are
// byte offsets into the scanned data (End exclusive); for a JSON string
// value they index the raw, still escaped bytes between the quotes.
type Match struct {
	Class      Class
	Start, End int
	// Key is the JSON key the value sits under (the enclosing array's key
	// for array elements), "" in text or at the top level. Keys longer
	// than 48 bytes are cut.
	Key string
	// Number reports a bare JSON number value: Mask writes digits there
	// (not '*') so the document stays valid JSON.
	Number bool
}

// Scanner finds sensitive data. It is immutable and safe for concurrent use.
type Scanner struct {
	on     [numClasses]bool
	noGate bool // tests: run the detectors at every word (see engine.gate)
}

// NewScanner returns a scanner for the given classes; nil or empty means
// every class. Unknown names are ignored (config validation rejects them).
func NewScanner(classes []Class) *Scanner {
	s := &Scanner{}
	if len(classes) == 0 {
		for i := range s.on {
			s.on[i] = true
		}
		return s
	}
	for _, c := range classes {
		for i, k := range AllClasses {
			if k == c {
				s.on[i] = true
			}
		}
	}
	return s
}

// Scan returns the matches in data, in order and non-overlapping. It is the
// same as writing data to a Stream in one piece.
func (s *Scanner) Scan(data []byte) []Match {
	e := newEngine(s)
	e.run(data, 0, 0, true)
	return e.matches
}

// Classes returns the distinct classes of matches, sorted.
func Classes(matches []Match) []Class {
	var out []Class
	for _, m := range matches {
		dup := false
		for _, c := range out {
			if c == m.Class {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, m.Class)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
