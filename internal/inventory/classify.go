package inventory

import (
	"net/url"
	"strings"
)

// SegmentClass is what one path segment looks like on its own, before any
// traffic statistics are taken into account.
type SegmentClass uint8

// Segment classes, from the most to the least literal.
const (
	// ClassEmpty is an empty segment (a trailing or doubled slash): kept as is.
	ClassEmpty SegmentClass = iota
	// ClassVersion is an API version ("v1", "v4.0", "v1beta1"): always literal.
	ClassVersion
	// ClassWord is an ordinary word: lower-case letters, '-' and '_', no
	// digit ("accounts", "funds-confirmation"). Literal unless traffic shows
	// many distinct words at one position.
	ClassWord
	// ClassOther is anything that is neither an obvious id nor a plain word
	// ("paymentDetails", "report.csv", "abc12"). Treated like a word.
	ClassOther
	// ClassID is an obvious identifier: a parameter from the first sample.
	ClassID
	// ClassTemplate is an already templated segment ("{id}"): a parameter
	// whose name is kept.
	ClassTemplate
)

// String names the class.
func (c SegmentClass) String() string {
	switch c {
	case ClassEmpty:
		return "empty"
	case ClassVersion:
		return "version"
	case ClassWord:
		return "word"
	case ClassOther:
		return "other"
	case ClassID:
		return "id"
	case ClassTemplate:
		return "template"
	}
	return "unknown"
}

// Thresholds of the id rules. Each is chosen so that real resource names
// (which are short words, sometimes with a version digit) stay literal while
// generated identifiers do not.
const (
	// minHexLen: hex strings at least this long that contain a digit are
	// ids (short hashes, object ids, git short SHAs). Shorter ones ("cafe12")
	// are too often real words or codes.
	minHexLen = 8
	// maxIDPrefixLen bounds the alphabetic prefix of a prefixed id
	// ("cus_", "acct_", "txn-", "seti_"): Stripe-style prefixes are short.
	maxIDPrefixLen = 10
	// minPrefixedRest is the least number of alphanumerics after the
	// prefix of a prefixed id ("cus_" + at least 6).
	minPrefixedRest = 6
	// minLongDigits: a segment with at least this many digits, making up at
	// least half of it, is an id (phone numbers, card-like numbers, dates in
	// other layouts, "ORD123456").
	minLongDigits = 6
	// minTokenLen and minTokenDigits: base64url-like tokens at least this
	// long with at least this many digits and enough character-class
	// changes (random text switches case and digits often; words do not).
	minTokenLen      = 16
	minTokenDigits   = 2
	minTokenSwitches = 4
	// minDenseSwitches and denseSwitchRatio: a long token without digits
	// is an id when it switches case at least this often, and on at least
	// one character in denseSwitchRatio (camelCase words switch about
	// twice per word).
	minDenseSwitches = 8
	denseSwitchRatio = 3
	minUpperPairs    = 2
	// minMixedLen, minMixedDigits and minMixedSwitches: shorter alphanumeric
	// ids ("A7xK29pQ", "u8Fz3kLm") need more switches per character.
	minMixedLen      = 8
	minMixedDigits   = 2
	minMixedSwitches = 5
	// minIBANLen and maxIBANLen bound an IBAN: country code, two check
	// digits and a 10-30 character account part.
	minIBANLen = 14
	maxIBANLen = 34
)

// Classify tells what a single path segment looks like. seg may be
// percent-encoded; it is decoded first. It allocates only when seg holds
// a percent-escape.
func Classify(seg string) SegmentClass {
	if seg == "" {
		return ClassEmpty
	}
	if isTemplateSegment(seg) {
		return ClassTemplate
	}
	if strings.IndexByte(seg, '%') >= 0 {
		if dec, err := url.PathUnescape(seg); err == nil {
			seg = dec
		}
	}
	switch {
	case isVersion(seg):
		return ClassVersion
	case isWord(seg):
		return ClassWord
	case isID(seg):
		return ClassID
	}
	return ClassOther
}

// isTemplateSegment reports whether seg is exactly one "{name}" with a
// non-empty name and no other brace or slash.
func isTemplateSegment(seg string) bool {
	if len(seg) < 3 || seg[0] != '{' || seg[len(seg)-1] != '}' {
		return false
	}
	return !strings.ContainsAny(seg[1:len(seg)-1], "{}/")
}

// isVersion matches v\d+(\.\d+)* optionally followed by a pre-release word
// and number ("v1", "V2", "v4.0", "v1beta1", "v2alpha").
func isVersion(s string) bool {
	if len(s) < 2 || (s[0] != 'v' && s[0] != 'V') || !isDigit(s[1]) {
		return false
	}
	i := 1
	for {
		j := i
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		if j == i {
			return false
		}
		i = j
		if i < len(s) && s[i] == '.' {
			i++
			continue
		}
		break
	}
	// Optional pre-release: letters then optional digits.
	j := i
	for j < len(s) && isLower(s[j]) {
		j++
	}
	if j == i {
		return i == len(s)
	}
	for j < len(s) && isDigit(s[j]) {
		j++
	}
	return j == len(s)
}

// isWord matches an ordinary resource word: lower-case ASCII letters,
// hyphens and underscores, starting with a letter, no digit.
func isWord(s string) bool {
	if !isLower(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !isLower(c) && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

// isID applies the obvious-id rules in order of cost.
func isID(s string) bool {
	switch {
	case isInteger(s), isUUID(s), isHexID(s), isISODate(s), isEmail(s),
		isIBAN(s), isLongDigits(s), isPrefixedID(s), isToken(s):
		return true
	}
	return false
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isLower(c byte) bool { return c >= 'a' && c <= 'z' }
func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }
func isAlpha(c byte) bool { return isLower(c) || isUpper(c) }
func isAlnum(c byte) bool { return isAlpha(c) || isDigit(c) }
func isHex(c byte) bool {
	return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func isInteger(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

// uuidLen is the length of the canonical 8-4-4-4-12 form.
const uuidLen = 36

func isUUID(s string) bool {
	if len(s) != uuidLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch i {
		case 8, 13, 18, 23:
			if s[i] != '-' {
				return false
			}
		default:
			if !isHex(s[i]) {
				return false
			}
		}
	}
	return true
}

// isHexID: at least minHexLen hex digits with at least one decimal digit
// (md5, sha1, sha256, Mongo ObjectIDs, short SHAs).
func isHexID(s string) bool {
	if len(s) < minHexLen {
		return false
	}
	digit := false
	for i := 0; i < len(s); i++ {
		if !isHex(s[i]) {
			return false
		}
		digit = digit || isDigit(s[i])
	}
	return digit
}

// isISODate matches YYYY-MM-DD optionally followed by 'T' or ' ' and
// anything (a time and zone).
func isISODate(s string) bool {
	if len(s) < 10 {
		return false
	}
	for i := 0; i < 10; i++ {
		switch i {
		case 4, 7:
			if s[i] != '-' {
				return false
			}
		default:
			if !isDigit(s[i]) {
				return false
			}
		}
	}
	return len(s) == 10 || s[10] == 'T' || s[10] == 't' || s[10] == ' '
}

// isEmail: local@domain.tld with no spaces.
func isEmail(s string) bool {
	at := strings.IndexByte(s, '@')
	if at <= 0 || at == len(s)-1 || strings.ContainsAny(s, " \t") {
		return false
	}
	dom := s[at+1:]
	dot := strings.LastIndexByte(dom, '.')
	return dot > 0 && dot < len(dom)-1 && strings.IndexByte(dom, '@') < 0
}

// isIBAN: two letters, two digits, then 10-30 alphanumerics. The checksum
// is not verified: an id-shaped segment is an id whether or not it is valid.
func isIBAN(s string) bool {
	if len(s) < minIBANLen || len(s) > maxIBANLen {
		return false
	}
	if !isAlpha(s[0]) || !isAlpha(s[1]) || !isDigit(s[2]) || !isDigit(s[3]) {
		return false
	}
	for i := 4; i < len(s); i++ {
		if !isAlnum(s[i]) {
			return false
		}
	}
	return true
}

// isLongDigits: at least minLongDigits digits making up at least half of
// the segment ("+14155552671", "4111-1111-1111-1111", "ORD123456").
func isLongDigits(s string) bool {
	digits := 0
	for i := 0; i < len(s); i++ {
		if isDigit(s[i]) {
			digits++
		}
	}
	return digits >= minLongDigits && digits*2 >= len(s)
}

// isPrefixSep reports whether c separates an id prefix from its body.
func isPrefixSep(c byte) bool { return c == '_' || c == '-' || c == ':' }

// isPrefixedID matches a short alphabetic prefix, a separator and a body
// of at least minPrefixedRest alphanumerics in which every separated part
// holds a digit or, when it is at least minMixedLen long, switches case
// often: "cus_NffrFeUfNV2Hib", "cus_NffrFeUfNVaHib", "acct_1032D82eZvKYlo2C",
// "txn-000123", "ord-2024-000123". A body that is a version
// ("api-v1beta1") or has a word part ("top-10-products") does not match.
func isPrefixedID(s string) bool {
	p := 0
	for p < len(s) && isAlpha(s[p]) {
		p++
	}
	if p == 0 || p > maxIDPrefixLen || p >= len(s)-1 || !isPrefixSep(s[p]) {
		return false
	}
	rest := s[p+1:]
	if isVersion(rest) {
		return false
	}
	alnum, start := 0, 0
	for i := 0; i <= len(rest); i++ {
		if i < len(rest) && !isPrefixSep(rest[i]) {
			if !isAlnum(rest[i]) {
				return false
			}
			alnum++
			continue
		}
		if !isIDPart(rest[start:i]) {
			return false
		}
		start = i + 1
	}
	return alnum >= minPrefixedRest
}

// isIDPart reports whether one separated part of a prefixed id's body
// looks generated: it has a digit, or is long and switches case often.
func isIDPart(part string) bool {
	if part == "" {
		return false
	}
	switches, prev, upperPairs, lower := 0, 0, 0, false
	for i := 0; i < len(part); i++ {
		k := charKind(part[i])
		switch {
		case k == 1:
			return true
		case k == 2 && prev == 2:
			upperPairs++
		case k == 3:
			lower = true
		}
		if prev != 0 && k != prev {
			switches++
		}
		prev = k
	}
	if len(part) < minMixedLen {
		return false
	}
	// Random letters switch case often, or run upper-case letters
	// together beside lower-case ones ("FQBINnedEVJEVE"); words and
	// camelCase names do neither.
	return switches >= minTokenSwitches || (lower && upperPairs >= minUpperPairs)
}

// charKind is the class of a token character for counting switches.
func charKind(c byte) int {
	switch {
	case isDigit(c):
		return 1
	case isUpper(c):
		return 2
	case isLower(c):
		return 3
	}
	return 0
}

// isToken matches random-looking tokens: base64url, ULIDs, KSUIDs, JWT-like
// dotted tokens. It needs digits and frequent switches between lower case,
// upper case and digits, which words and versioned names do not have.
func isToken(s string) bool {
	if len(s) < minMixedLen {
		return false
	}
	digits, letters, switches, prev, upperPairs := 0, 0, 0, 0, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		k := charKind(c)
		if k == 2 && prev == 2 {
			upperPairs++
		}
		if k == 0 {
			if strings.IndexByte("-_.=~+", c) < 0 {
				return false
			}
			continue
		}
		if k == 1 {
			digits++
		} else {
			letters++
		}
		if prev != 0 && k != prev {
			switches++
		}
		prev = k
	}
	if letters == 0 {
		return false
	}
	if len(s) >= minTokenLen {
		if digits >= minTokenDigits && switches >= minTokenSwitches {
			return true
		}
		// Random base64url text may lack digits; it still switches case
		// at about every other character and has upper-case pairs, which
		// camelCase words (one capital per word) do not.
		return switches >= minDenseSwitches && switches*denseSwitchRatio >= digits+letters &&
			upperPairs >= minUpperPairs
	}
	return digits >= minMixedDigits && switches >= minMixedSwitches
}
