package dlp

import "net/netip"

// ctxSet is the classes a JSON key hints at.
type ctxSet uint16

const (
	ctxPAN ctxSet = 1 << iota
	ctxCVV
	ctxIBAN
	ctxSSN
	ctxABA
	ctxBIC
	ctxNINO
	ctxEmail
	ctxPhone
)

// detect runs the enabled detectors at buf[i], reading no further than end,
// and returns the end of the match and its class index, or -1. Cheap tests
// on the run of letters and digits at i and the byte after it decide which
// detectors can apply at all: most words in a body are rejected here.
func (e *engine) detect(buf []byte, i, end int, ctx ctxSet, num bool) (int, int) {
	s := e.s
	c := buf[i]
	f := tbl[c]
	w := i // end of the run of letters and digits
	for w < end && w-i < 40 && isWord(buf[w]) {
		w++
	}
	e.wend = w
	var next byte // the byte after the run, 0 at the end
	if w < end {
		next = buf[w]
	}
	run := w - i
	// An email needs '@' at the end of a run of local-part characters.
	mail := s.on[cEmail] && !num && (next == '@' || next == '.' || next == '-' || next == '_' || next == '+' || next == '%')
	switch {
	case f&fDigit != 0:
		sep := next == ' ' || next == '-'
		if s.on[cPAN] {
			if run >= 13 || run == 4 && sep {
				if j := detectPAN(buf, i, end, ctx, num); j > 0 {
					return j, cPAN
				}
			}
			if ctx&ctxCVV != 0 && run >= 3 && run <= 4 && digitRun(buf, i, end) == w && leftOK(buf, i) && rightOK(buf, w, end) {
				return w, cPAN
			}
		}
		if s.on[cSSN] && (run == 3 && sep || run == 9 && ctx&ctxSSN != 0) {
			if j := detectSSN(buf, i, end, ctx, num); j > 0 {
				return j, cSSN
			}
		}
		if s.on[cABA] && ctx&ctxABA != 0 && run == 9 {
			if j := detectABA(buf, i, end); j > 0 {
				return j, cABA
			}
		}
		if s.on[cPhone] && ctx&ctxPhone != 0 {
			if j := detectPhone(buf, i, end, true, num); j > 0 {
				return j, cPhone
			}
		}
		if num {
			return -1, 0
		}
		if s.on[cIP] {
			if run <= 3 && next == '.' {
				if j := detectIPv4(buf, i, end); j > 0 {
					return j, cIP
				}
			}
			if run <= 4 && next == ':' {
				if j := detectIPv6(buf, i, end); j > 0 {
					return j, cIP
				}
			}
		}
		if mail {
			if j := e.detectEmail(buf, i, end); j > 0 {
				return j, cEmail
			}
		}
	case f&(fUpper|fLower) != 0:
		if s.on[cCloud] && (c == 'A' || c == 'g' || c == 'x') {
			if j := detectCloudKey(buf, i, end); j > 0 {
				return j, cCloud
			}
		}
		if s.on[cJWT] && c == 'e' && next == '.' {
			if j := detectJWT(buf, i, end); j > 0 {
				return j, cJWT
			}
		}
		upper := f&fUpper != 0
		if s.on[cIBAN] && (upper || ctx&ctxIBAN != 0) && run >= 4 && isDigit(buf[i+2]) && isDigit(buf[i+3]) {
			if j := detectIBAN(buf, i, end, ctx&ctxIBAN != 0); j > 0 {
				return j, cIBAN
			}
		}
		if s.on[cNINO] && (upper || ctx&ctxNINO != 0) && i+2 < end && (isDigit(buf[i+2]) || buf[i+2] == ' ') {
			if j := detectNINO(buf, i, end, ctx&ctxNINO != 0); j > 0 {
				return j, cNINO
			}
		}
		if s.on[cBIC] && (upper || ctx&ctxBIC != 0) && (run == 8 || run == 11) {
			if j := detectBIC(buf, i, end, ctx&ctxBIC != 0); j > 0 {
				return j, cBIC
			}
		}
		if s.on[cIP] && f&fHex != 0 && run <= 4 && next == ':' {
			if j := detectIPv6(buf, i, end); j > 0 {
				return j, cIP
			}
		}
		if mail {
			if j := e.detectEmail(buf, i, end); j > 0 {
				return j, cEmail
			}
		}
	case c == '+':
		if s.on[cPhone] {
			if j := detectPhone(buf, i, end, ctx&ctxPhone != 0, false); j > 0 {
				return j, cPhone
			}
		}
	case c == '(':
		if s.on[cPhone] && ctx&ctxPhone != 0 {
			if j := detectPhone(buf, i, end, true, false); j > 0 {
				return j, cPhone
			}
		}
	case c == '-':
		if s.on[cKey] && next == '-' {
			if j := detectPEM(buf, i, end); j > 0 {
				return j, cKey
			}
		}
	}
	return -1, 0
}

// digitRun returns the end of the run of digits starting at i.
func digitRun(buf []byte, i, end int) int {
	for i < end && isDigit(buf[i]) {
		i++
	}
	return i
}

// leftOK reports that the token at i does not continue a number: it is not
// preceded by a separator or decimal point that follows a digit.
func leftOK(buf []byte, i int) bool {
	if i >= 2 {
		switch buf[i-1] {
		case ' ', '-', '.', ',', '/':
			return !isDigit(buf[i-2])
		}
	}
	return true
}

// rightOK reports that the token ending at j is not followed by more of a
// word or of a number ("1234.56", "1234-5", "12 34").
func rightOK(buf []byte, j, end int) bool {
	if j >= end {
		return true
	}
	c := buf[j]
	if isWord(c) {
		return false
	}
	switch c {
	case ' ', '-', '.', ',', '/':
		return j+1 >= end || !isDigit(buf[j+1])
	}
	return true
}

// panGroups are the accepted digit groupings of a separated PAN besides
// "4-4-4-... with a last group of 1-4": Amex 4-6-5 and Diners 4-6-4.
func panGrouping(groups []int, n int) bool {
	if len(groups) == 3 && groups[0] == 4 && groups[1] == 6 && (groups[2] == 5 || groups[2] == 4) {
		return true
	}
	for k, g := range groups {
		last := k == len(groups)-1
		if !last && g != 4 || last && (g < 1 || g > 4) {
			return false
		}
	}
	return n >= 13
}

// detectPAN finds a card number: 13-19 digits, contiguous or in groups
// separated by single spaces or hyphens (one kind), Luhn-valid, not all the
// same digit, and in a known brand range with a length the brand issues
// (the range check is waived under a card-number key; Luhn never is).
func detectPAN(buf []byte, i, end int, ctx ctxSet, num bool) int {
	if !leftOK(buf, i) {
		return -1
	}
	var d [19]byte
	var groups [8]int
	n, ng, g := 0, 0, 0
	var sep byte
	j := i
	for j < end {
		c := buf[j]
		if isDigit(c) {
			if n == len(d) {
				return -1
			}
			d[n] = c - '0'
			n++
			g++
			j++
			continue
		}
		if !num && (c == ' ' || c == '-') && j+1 < end && isDigit(buf[j+1]) && (sep == 0 || sep == c) {
			if ng == len(groups)-1 {
				return -1
			}
			sep = c
			groups[ng] = g
			ng++
			g = 0
			j++
			continue
		}
		break
	}
	groups[ng] = g
	ng++
	if n < 13 || !rightOK(buf, j, end) {
		return -1
	}
	if ng > 1 && !panGrouping(groups[:ng], n) {
		return -1
	}
	same := true
	for k := 1; k < n; k++ {
		if d[k] != d[0] {
			same = false
			break
		}
	}
	if same || !luhn(d[:n]) {
		return -1
	}
	if ctx&ctxPAN == 0 && !brandOK(d[:n]) {
		return -1
	}
	return j
}

func luhn(d []byte) bool {
	sum := 0
	dbl := false
	for k := len(d) - 1; k >= 0; k-- {
		v := int(d[k])
		if dbl {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
		dbl = !dbl
	}
	return sum%10 == 0
}

// Luhn reports whether the digits of s (other bytes ignored) pass the Luhn
// check; it is exported for tests and callers that re-check a match.
func Luhn(s []byte) bool {
	var d []byte
	for _, c := range s {
		if isDigit(c) {
			d = append(d, c-'0')
		}
	}
	return len(d) > 0 && luhn(d)
}

// brandOK reports whether the digits start with an issuer range of a known
// brand, at a length that brand issues.
func brandOK(d []byte) bool {
	n := len(d)
	p2 := int(d[0])*10 + int(d[1])
	p3 := p2*10 + int(d[2])
	p4 := p3*10 + int(d[3])
	switch {
	case d[0] == 4: // Visa
		return n == 13 || n == 16 || n == 19
	case p2 >= 51 && p2 <= 55, p4 >= 2221 && p4 <= 2720: // Mastercard
		return n == 16
	case p2 == 34 || p2 == 37: // Amex
		return n == 15
	case p4 == 6011, p3 >= 644 && p3 <= 649, p2 == 65: // Discover
		return n >= 16
	case p4 >= 3528 && p4 <= 3589: // JCB
		return n >= 16
	case p2 == 36, p2 == 38, p3 >= 300 && p3 <= 305: // Diners
		return n >= 14
	case p2 == 62: // UnionPay
		return n >= 16
	case p2 == 50, p2 >= 56 && p2 <= 69: // Maestro
		return n >= 13
	}
	return false
}

// detectSSN finds a US social security number: AAA-GG-SSSS, or, under an
// ssn key, AAA GG SSSS and nine contiguous digits; area not 000, 666 or
// 900-999, group not 00, serial not 0000.
func detectSSN(buf []byte, i, end int, ctx ctxSet, num bool) int {
	if !leftOK(buf, i) {
		return -1
	}
	var d [9]byte
	j := i
	n := 0
	var sep byte
	for j < end && n < 9 {
		c := buf[j]
		if isDigit(c) {
			d[n] = c - '0'
			n++
			j++
			continue
		}
		if (n == 3 || n == 5) && (c == '-' || c == ' ') && !num && (sep == 0 && n == 3 || sep == c && n == 5) {
			sep = c
			j++
			continue
		}
		break
	}
	if n != 9 || !rightOK(buf, j, end) {
		return -1
	}
	switch {
	case sep == '-' && j-i == 11:
	case ctx&ctxSSN != 0 && (sep == 0 || sep == ' ' && j-i == 11):
	default:
		return -1
	}
	area := int(d[0])*100 + int(d[1])*10 + int(d[2])
	if area == 0 || area == 666 || area >= 900 || d[3] == 0 && d[4] == 0 || d[5] == 0 && d[6] == 0 && d[7] == 0 && d[8] == 0 {
		return -1
	}
	return j
}

// detectABA finds a US ABA routing number (only called under a routing
// key): nine digits, a Federal Reserve prefix (01-12, 21-32, 61-72, 80)
// and the 3-7-1 checksum.
func detectABA(buf []byte, i, end int) int {
	j := digitRun(buf, i, end)
	if j-i != 9 || !leftOK(buf, i) || !rightOK(buf, j, end) {
		return -1
	}
	d := buf[i:j]
	p := int(d[0]-'0')*10 + int(d[1]-'0')
	if !(p >= 1 && p <= 12 || p >= 21 && p <= 32 || p >= 61 && p <= 72 || p == 80) {
		return -1
	}
	sum := 0
	for k := 0; k < 9; k += 3 {
		sum += 3*int(d[k]-'0') + 7*int(d[k+1]-'0') + int(d[k+2]-'0')
	}
	if sum%10 != 0 {
		return -1
	}
	return j
}

// detectPhone finds an E.164 number ("+" then 8-15 digits, single spaces or
// hyphens between groups, a parenthesised area code allowed) or, under a
// phone key, a national number of 7-15 digits.
func detectPhone(buf []byte, i, end int, ctx, num bool) int {
	j := i
	plus := buf[j] == '+'
	if plus {
		j++
		if j >= end || buf[j] < '1' || buf[j] > '9' {
			return -1
		}
	} else if !ctx || !leftOK(buf, i) {
		return -1
	}
	n := 0
	paren := false
	for j < end {
		c := buf[j]
		if isDigit(c) {
			n++
			j++
			if n > 15 {
				return -1
			}
			continue
		}
		if num {
			break
		}
		next := j+1 < end && (isDigit(buf[j+1]) || buf[j+1] == '(')
		switch {
		case (c == ' ' || c == '-' || c == '.' && ctx) && next && j > i && buf[j-1] != ' ' && buf[j-1] != '-':
			j++
			continue
		case c == '(' && !paren && j+1 < end && isDigit(buf[j+1]):
			paren = true
			j++
			continue
		case c == ')' && paren && j > i && isDigit(buf[j-1]):
			paren = false
			j++
			if j < end && buf[j] == ' ' && j+1 < end && isDigit(buf[j+1]) {
				j++
			}
			continue
		}
		break
	}
	if paren || !rightOK(buf, j, end) {
		return -1
	}
	if plus && n >= 8 || !plus && n >= 7 {
		return j
	}
	return -1
}

// detectIPv4 finds a dotted quad with octets 0-255 and no leading zeros.
func detectIPv4(buf []byte, i, end int) int {
	if i >= 2 && buf[i-1] == '.' && isDigit(buf[i-2]) {
		return -1
	}
	j := i
	for k := 0; k < 4; k++ {
		if k > 0 {
			if j >= end || buf[j] != '.' {
				return -1
			}
			j++
		}
		s := j
		v := 0
		for j < end && isDigit(buf[j]) && j-s < 3 {
			v = v*10 + int(buf[j]-'0')
			j++
		}
		if j == s || v > 255 || j-s > 1 && buf[s] == '0' {
			return -1
		}
	}
	if j < end && (isWord(buf[j]) || buf[j] == '.' && j+1 < end && isDigit(buf[j+1])) {
		return -1
	}
	return j
}

// detectIPv6 finds an IPv6 address: a run of hex digits, colons and dots
// with "::" or seven colons that net/netip parses as IPv6.
func detectIPv6(buf []byte, i, end int) int {
	// An address is not preceded by ':' or '.' (which also keeps the scan
	// linear on "1:1:1:..."). Quick rejection: at most four hex digits, then
	// a colon.
	if i > 0 && (buf[i-1] == ':' || buf[i-1] == '.') {
		return -1
	}
	j := i
	for j < end && j-i < 5 && tbl[buf[j]]&fHex != 0 {
		j++
	}
	if j == i || j-i > 4 || j >= end || buf[j] != ':' {
		return -1
	}
	colons, dbl := 0, false
	for j < end && j-i <= 45 {
		c := buf[j]
		if c == ':' {
			colons++
			if j > i && buf[j-1] == ':' {
				dbl = true
			}
		} else if tbl[c]&fHex == 0 && c != '.' {
			break
		}
		j++
	}
	for j > i && buf[j-1] == '.' {
		j--
	}
	if colons < 2 || !dbl && colons != 7 || j-i > 45 || j < end && (isWord(buf[j]) || buf[j] == ':') {
		return -1
	}
	a, err := netip.ParseAddr(string(buf[i:j]))
	if err != nil || !a.Is6() {
		return -1
	}
	return j
}
