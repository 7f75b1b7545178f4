package dlp

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
)

// ibanLength is the IBAN length per country of the SWIFT IBAN registry.
var ibanLength = map[[2]byte]int{
	{'A', 'D'}: 24, {'A', 'E'}: 23, {'A', 'L'}: 28, {'A', 'T'}: 20, {'A', 'Z'}: 28,
	{'B', 'A'}: 20, {'B', 'E'}: 16, {'B', 'G'}: 22, {'B', 'H'}: 22, {'B', 'I'}: 27,
	{'B', 'R'}: 29, {'B', 'Y'}: 28, {'C', 'H'}: 21, {'C', 'R'}: 22, {'C', 'Y'}: 28,
	{'C', 'Z'}: 24, {'D', 'E'}: 22, {'D', 'J'}: 27, {'D', 'K'}: 18, {'D', 'O'}: 28,
	{'E', 'E'}: 20, {'E', 'G'}: 29, {'E', 'S'}: 24, {'F', 'I'}: 18, {'F', 'K'}: 18,
	{'F', 'O'}: 18, {'F', 'R'}: 27, {'G', 'B'}: 22, {'G', 'E'}: 22, {'G', 'I'}: 23,
	{'G', 'L'}: 18, {'G', 'R'}: 27, {'G', 'T'}: 28, {'H', 'N'}: 28, {'H', 'R'}: 21,
	{'H', 'U'}: 28, {'I', 'E'}: 22, {'I', 'L'}: 23, {'I', 'Q'}: 23, {'I', 'S'}: 26,
	{'I', 'T'}: 27, {'J', 'O'}: 30, {'K', 'W'}: 30, {'K', 'Z'}: 20, {'L', 'B'}: 28,
	{'L', 'C'}: 32, {'L', 'I'}: 21, {'L', 'T'}: 20, {'L', 'U'}: 20, {'L', 'V'}: 21,
	{'L', 'Y'}: 25, {'M', 'C'}: 27, {'M', 'D'}: 24, {'M', 'E'}: 22, {'M', 'K'}: 19,
	{'M', 'N'}: 20, {'M', 'R'}: 27, {'M', 'T'}: 31, {'M', 'U'}: 30, {'N', 'I'}: 28,
	{'N', 'L'}: 18, {'N', 'O'}: 15, {'O', 'M'}: 23, {'P', 'K'}: 24, {'P', 'L'}: 28,
	{'P', 'S'}: 29, {'P', 'T'}: 25, {'Q', 'A'}: 29, {'R', 'O'}: 24, {'R', 'S'}: 22,
	{'R', 'U'}: 33, {'S', 'A'}: 24, {'S', 'C'}: 31, {'S', 'D'}: 18, {'S', 'E'}: 24,
	{'S', 'I'}: 19, {'S', 'K'}: 24, {'S', 'M'}: 27, {'S', 'O'}: 23, {'S', 'T'}: 25,
	{'S', 'V'}: 28, {'T', 'L'}: 23, {'T', 'N'}: 24, {'T', 'R'}: 26, {'U', 'A'}: 29,
	{'V', 'A'}: 22, {'V', 'G'}: 24, {'X', 'K'}: 20, {'Y', 'E'}: 30,
}

// IBANLength returns the IBAN length of a country (upper-case ISO code),
// 0 when the country has no IBAN.
func IBANLength(country string) int {
	if len(country) != 2 {
		return 0
	}
	return ibanLength[[2]byte{country[0], country[1]}]
}

func upper(c byte) byte {
	if tbl[c]&fLower != 0 {
		return c - 32
	}
	return c
}

// detectIBAN finds an IBAN in electronic ("DE89370400440532013000") or
// print format (groups of four separated by single spaces), with the
// country's length and mod-97 == 1. Lower case is admitted under an iban key.
func detectIBAN(buf []byte, i, end int, ctx bool) int {
	if i+4 > end {
		return -1
	}
	c0, c1 := buf[i], buf[i+1]
	if !ctx && (!isUpper(c0) || !isUpper(c1)) || !isLetter(c0) || !isLetter(c1) || !isDigit(buf[i+2]) || !isDigit(buf[i+3]) {
		return -1
	}
	l := ibanLength[[2]byte{upper(c0), upper(c1)}]
	if l == 0 {
		return -1
	}
	var v [34]byte
	n, j := 0, i
	spaced := false
	for j < end && n < l {
		c := buf[j]
		if isWord(c) {
			if !ctx && tbl[c]&fLower != 0 {
				return -1
			}
			v[n] = upper(c)
			n++
			j++
			continue
		}
		if c == ' ' && n%4 == 0 && (n == 4 || spaced) && j+1 < end && isWord(buf[j+1]) {
			spaced = true
			j++
			continue
		}
		break
	}
	if n != l || j < end && isWord(buf[j]) {
		return -1
	}
	if ibanMod97(v[:n]) != 1 {
		return -1
	}
	return j
}

// ibanMod97 computes the ISO 13616 remainder of an upper-case IBAN.
func ibanMod97(v []byte) int {
	r := 0
	add := func(c byte) {
		if isDigit(c) {
			r = (r*10 + int(c-'0')) % 97
		} else {
			r = (r*100 + int(c-'A') + 10) % 97
		}
	}
	for _, c := range v[4:] {
		add(c)
	}
	for _, c := range v[:4] {
		add(c)
	}
	return r
}

// IBANValid reports whether s (electronic format, upper case) is a valid IBAN.
func IBANValid(s string) bool {
	if len(s) < 5 || len(s) > 34 || IBANLength(s[:2]) != len(s) {
		return false
	}
	for k := 0; k < len(s); k++ {
		if !isDigit(s[k]) && !isUpper(s[k]) {
			return false
		}
	}
	return ibanMod97([]byte(s)) == 1
}

// ninoPrefix reports the UK National Insurance prefix rules: neither letter
// D, F, I, Q, U or V; the second not O; not BG, GB, NK, KN, TN, NT or ZZ.
func ninoPrefix(a, b byte) bool {
	bad := func(c byte) bool {
		return c == 'D' || c == 'F' || c == 'I' || c == 'Q' || c == 'U' || c == 'V'
	}
	if bad(a) || bad(b) || b == 'O' {
		return false
	}
	switch string([]byte{a, b}) {
	case "BG", "GB", "NK", "KN", "TN", "NT", "ZZ":
		return false
	}
	return true
}

// detectNINO finds a UK National Insurance number: prefix, six digits
// (contiguous or in pairs separated by single spaces) and a suffix A-D (the
// suffix is optional under a nino key).
func detectNINO(buf []byte, i, end int, ctx bool) int {
	if i+8 > end {
		return -1
	}
	a, b := upper(buf[i]), upper(buf[i+1])
	if !isLetter(buf[i]) || !isLetter(buf[i+1]) || !ctx && (!isUpper(buf[i]) || !isUpper(buf[i+1])) || !ninoPrefix(a, b) {
		return -1
	}
	j := i + 2
	spaced := j < end && buf[j] == ' '
	n := 0
	for n < 6 {
		if spaced && n%2 == 0 {
			if j >= end || buf[j] != ' ' {
				return -1
			}
			j++
		}
		if j >= end || !isDigit(buf[j]) {
			return -1
		}
		j++
		n++
	}
	k := j
	if spaced && k+1 < end && buf[k] == ' ' {
		k++
	}
	if k < end && (buf[k] >= 'A' && buf[k] <= 'D' || ctx && buf[k] >= 'a' && buf[k] <= 'd') {
		j = k + 1
	} else if !ctx {
		return -1
	}
	if j < end && isWord(buf[j]) {
		return -1
	}
	return j
}

// isoCountry is the set of ISO 3166-1 alpha-2 codes (and XK, which SWIFT uses).
var isoCountry = func() (m [26 * 26]bool) {
	const list = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ " +
		"CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR " +
		"GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP " +
		"KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT " +
		"MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW " +
		"SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG " +
		"UM US UY UZ VA VC VE VG VI VN VU WF WS XK YE YT ZA ZM ZW"
	for k := 0; k+1 < len(list); k += 3 {
		m[int(list[k]-'A')*26+int(list[k+1]-'A')] = true
	}
	return m
}()

// detectBIC finds a SWIFT/BIC code: four letters (bank), an ISO country,
// two alphanumerics (location, the second not 'O') and an optional
// three-character branch. Under a bic or swift key any case is admitted;
// standalone, it must be upper case and carry a digit in its location or
// branch or end in "XXX" (so that "CUSTOMER" or "ACCEPTED" do not match).
func detectBIC(buf []byte, i, end int, ctx bool) int {
	if i+8 > end {
		return -1
	}
	var v [11]byte
	n, j := 0, i
	for j < end && n < 11 && isWord(buf[j]) {
		c := buf[j]
		if !ctx && tbl[c]&fLower != 0 {
			return -1
		}
		v[n] = upper(c)
		n++
		j++
	}
	if n != 8 && n != 11 || j < end && isWord(buf[j]) {
		return -1
	}
	for k := 0; k < 6; k++ {
		if !isLetter(v[k]) {
			return -1
		}
	}
	if !isoCountry[int(v[4]-'A')*26+int(v[5]-'A')] || v[7] == 'O' {
		return -1
	}
	if !ctx {
		digit := false
		for _, c := range v[6:n] {
			digit = digit || isDigit(c)
		}
		if !digit && !(n == 11 && string(v[8:11]) == "XXX") {
			return -1
		}
	}
	return j
}

// detectEmail finds an address: a local part of up to 64 characters from
// [A-Za-z0-9._%+-], '@', and a domain of dot-separated labels of letters,
// digits and hyphens ending in a top-level domain of two or more letters.
func (e *engine) detectEmail(buf []byte, i, end int) int {
	if e.base+i < e.noAt {
		return -1
	}
	j := i
	for j < end && j-i <= 64 && isLocal(buf[j]) {
		j++
	}
	if j-i > 64 {
		return -1
	}
	if j >= end || buf[j] != '@' {
		if j < end || j == end && end == len(buf) {
			e.noAt = e.base + j
		}
		return -1
	}
	if j == i || buf[j-1] == '.' {
		return -1
	}
	j++
	d := j
	lastLabel, labels := 0, 0
	for j < end && j-d < 253 {
		s := j
		for j < end && (isWord(buf[j]) || buf[j] == '-') && j-s < 63 {
			j++
		}
		if j == s || buf[s] == '-' || buf[j-1] == '-' {
			if j == s && labels >= 2 {
				j-- // a trailing dot ends the address
			}
			break
		}
		labels++
		lastLabel = s
		if j+1 < end && buf[j] == '.' && isWord(buf[j+1]) {
			j++
			continue
		}
		break
	}
	if labels < 2 || j-lastLabel < 2 {
		return -1
	}
	for k := lastLabel; k < j; k++ {
		if !isLetter(buf[k]) {
			return -1
		}
	}
	if j < end && (isWord(buf[j]) || buf[j] == '-' || buf[j] == '@') {
		return -1
	}
	return j
}

func isLocal(c byte) bool {
	return isWord(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-'
}

// detectJWT finds a JSON Web Token: three base64url segments separated by
// dots (the signature may be empty), the first decoding to a JSON object
// with an "alg" member.
func detectJWT(buf []byte, i, end int) int {
	// A token starts a base64url run: "a-eyJ..." is not a JWT. This also
	// keeps the scan linear (one candidate per run).
	if i+10 > end || buf[i+1] != 'y' || buf[i+2] != 'J' || i > 0 && tbl[buf[i-1]]&fB64 != 0 {
		return -1
	}
	var seg [3]int
	j := i
	for k := 0; k < 3; k++ {
		s := j
		for j < end && tbl[buf[j]]&fB64 != 0 {
			j++
		}
		seg[k] = j - s
		if k < 2 {
			if j >= end || buf[j] != '.' || seg[k] == 0 {
				return -1
			}
			j++
		}
	}
	if j < end && (buf[j] == '.' || buf[j] == '=') || seg[0] > 1024 || seg[0] < 10 || seg[1] < 2 {
		return -1
	}
	var hdr [768]byte
	n, err := base64.RawURLEncoding.Decode(hdr[:], buf[i:i+seg[0]])
	if err != nil {
		return -1
	}
	h := bytes.TrimSpace(hdr[:n])
	if len(h) == 0 || h[0] != '{' || !bytes.Contains(h, []byte(`"alg"`)) || !json.Valid(h) {
		return -1
	}
	return j
}

var (
	pemBegin = []byte("-----BEGIN ")
	pemEnd   = []byte("-----END ")
	pemDash  = []byte("-----")
	pemKey   = []byte("PRIVATE KEY")
)

// detectPEM finds a PEM private key block ("-----BEGIN ... PRIVATE
// KEY-----": PKCS#8, RSA, EC, DSA, OPENSSH, ENCRYPTED) up to its END line.
// Inside a JSON string the line breaks are escapes (\n, \r), which are
// allowed. Without an END line within reach, the match runs as far as the
// key body does, so that masking covers it.
func detectPEM(buf []byte, i, end int) int {
	if !bytes.HasPrefix(buf[i:end], pemBegin) {
		return -1
	}
	j := i + len(pemBegin)
	s := j
	for j < end && j-s <= 40 && (isUpper(buf[j]) || isDigit(buf[j]) || buf[j] == ' ') {
		j++
	}
	label := buf[s:j]
	if !bytes.HasSuffix(label, pemKey) || !bytes.HasPrefix(buf[j:end], pemDash) {
		return -1
	}
	j += len(pemDash)
	for j < end {
		c := buf[j]
		if c == '-' && bytes.HasPrefix(buf[j:end], pemEnd) {
			k := j + len(pemEnd)
			if bytes.HasPrefix(buf[k:end], label) && bytes.HasPrefix(buf[k+len(label):end], pemDash) {
				return k + len(label) + len(pemDash)
			}
			return j
		}
		if c == '\\' {
			if j+1 < end && (buf[j+1] == 'n' || buf[j+1] == 'r' || buf[j+1] == 't' || buf[j+1] == '/') {
				j += 2
				continue
			}
			return j
		}
		if c == '"' || c < 0x20 && tbl[c]&fSpace == 0 || c >= 0x7f {
			return j
		}
		j++
	}
	return j
}

// detectCloudKey finds cloud credentials: AWS access key ids (AKIA or ASIA
// and 16 of [A-Z2-7]), Google API keys ("AIza" and 35 of [A-Za-z0-9_-]),
// GitHub tokens (ghp_, gho_, ghs_, ghu_, ghr_ and 36 alphanumerics) and Slack
// tokens (xoxb-, xoxa-, xoxp-, xoxr-, xoxs- and at least 10 more).
func detectCloudKey(buf []byte, i, end int) int {
	if i+4 > end {
		return -1
	}
	p := buf[i : i+4]
	run := func(j, max int, ok func(byte) bool) int {
		for j < end && j-i < max && ok(buf[j]) {
			j++
		}
		return j
	}
	switch {
	case string(p) == "AKIA" || string(p) == "ASIA":
		j := run(i+4, 20, func(c byte) bool { return isUpper(c) || c >= '2' && c <= '7' })
		if j-i == 20 && (j >= end || !isWord(buf[j])) {
			return j
		}
	case string(p) == "AIza":
		j := run(i+4, 39, func(c byte) bool { return tbl[c]&fB64 != 0 })
		if j-i == 39 && (j >= end || tbl[buf[j]]&fB64 == 0) {
			return j
		}
	case p[0] == 'g' && p[1] == 'h' && p[3] == '_' && (p[2] == 'p' || p[2] == 'o' || p[2] == 's' || p[2] == 'u' || p[2] == 'r'):
		j := run(i+4, 40, isWord)
		if j-i == 40 && (j >= end || !isWord(buf[j])) {
			return j
		}
	case string(p[:3]) == "xox" && (p[3] == 'b' || p[3] == 'a' || p[3] == 'p' || p[3] == 'r' || p[3] == 's'):
		if i+5 > end || buf[i+4] != '-' {
			return -1
		}
		j := run(i+5, 255, func(c byte) bool { return isWord(c) || c == '-' })
		if j-i >= 15 && (j >= end || !isWord(buf[j])) {
			return j
		}
	}
	return -1
}
