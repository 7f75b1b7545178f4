package dlp

import (
	"bytes"
	"errors"
)

// Limits of the scanner, each with its reason.
const (
	// maxToken is the longest piece of data a detector looks at from its
	// first byte: a PEM private key (RSA 8192 is about 6.5 KiB, a little
	// more with JSON escapes) or a JWT. A stream holds back this many bytes
	// between writes so that every detector sees the same bytes whatever
	// the chunking. Longer keys and tokens are matched up to this length.
	maxToken = 8 << 10
	// lookBehind is how many bytes before the resume point a stream keeps:
	// detectors look back at most two bytes (a PAN must not continue a
	// digit group: "1234 4111 1111 1111 1111").
	lookBehind = 8
	// maxDepth bounds JSON nesting; deeper documents are scanned as text
	// from there (no recursion is involved, this only bounds memory).
	maxDepth = 512
	// maxKey is how much of a JSON key is kept for context and Match.Key.
	maxKey = 48
)

// byte classes
const (
	fDigit = 1 << iota
	fUpper
	fLower
	fSpecial // '+', '-', '(' may start a phone number or a PEM block
	fHex
	fB64 // base64url alphabet
	fSpace
	fWord = fDigit | fUpper | fLower
)

var tbl = func() (t [256]uint8) {
	for c := '0'; c <= '9'; c++ {
		t[c] |= fDigit | fHex | fB64
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] |= fUpper | fB64
		t[c+32] |= fLower | fB64
	}
	for _, c := range "abcdefABCDEF" {
		t[c] |= fHex
	}
	t['-'] |= fSpecial | fB64
	t['_'] |= fB64
	t['+'] |= fSpecial
	t['('] |= fSpecial
	for _, c := range " \t\r\n" {
		t[c] |= fSpace
	}
	return t
}()

func isDigit(c byte) bool { return tbl[c]&fDigit != 0 }
func isWord(c byte) bool  { return tbl[c]&fWord != 0 }
func isUpper(c byte) bool { return tbl[c]&fUpper != 0 }
func isLetter(c byte) bool {
	return tbl[c]&(fUpper|fLower) != 0
}

// scanning modes
const (
	modeUnknown = iota // before the first non-space byte
	modeJSON
	modeText
)

// JSON walker states
const (
	sValue  = iota // a value is expected
	sKey           // a key or '}' is expected
	sColon         // ':' is expected
	sAfter         // ',' or a closing bracket is expected
	sStr           // inside a string value
	sKeyStr        // inside a key
	sNum           // inside a number
	sLit           // inside true, false or null
)

type frame struct {
	obj  bool
	ctx  ctxSet
	klen uint8
	key  [maxKey]byte
}

// engine is the resumable state of one scan: Scan runs it once over the
// whole input, a Stream runs it over successive windows.
type engine struct {
	s       *Scanner
	base    int // absolute offset of buf[0] in the current run
	mode    uint8
	st      uint8
	wasWord bool // the previous byte continues a word
	stack   []frame
	nk      [maxKey]byte // the key being read, lower-case letters and digits
	nkLen   int
	rk      [maxKey]byte // the key being read, raw
	rkLen   int
	wend    int // end of the word run detect last looked at (relative to buf)
	noAt    int // absolute offset: no '@' can be reached from a word start before it
	matches []Match
	nkHash  uint64 // FNV-1a of nk
}

func newEngine(s *Scanner) *engine {
	return &engine{s: s, noAt: -1}
}

// run scans buf[i:] and returns where it stopped. Unless final, it stops
// maxToken bytes before the end of buf so that every detector sees the same
// bytes as in a whole-body scan; the caller resumes there with more data.
func (e *engine) run(buf []byte, base, i int, final bool) int {
	e.base = base
	limit := len(buf)
	if !final {
		limit -= maxToken
	}
	for i < limit {
		switch e.mode {
		case modeUnknown:
			c := buf[i]
			if tbl[c]&fSpace != 0 || c == 0xEF || c == 0xBB || c == 0xBF { // whitespace or a UTF-8 BOM
				i++
				continue
			}
			if c == '{' || c == '[' {
				e.mode, e.st = modeJSON, sValue
			} else {
				e.mode, e.wasWord = modeText, false
			}
		case modeJSON:
			i = e.json(buf, i, limit)
		default:
			i = e.text(buf, i, limit)
		}
	}
	if i > len(buf) {
		i = len(buf) // a truncated escape at the very end
	}
	return i
}

func (e *engine) text(buf []byte, i, limit int) int {
	ww := e.wasWord
	for i < limit {
		f := tbl[buf[i]]
		if f&fWord != 0 {
			start := i
			i++
			if !ww {
				ok, w := e.gate(buf, start, 0)
				if ok {
					if j := e.try(buf, start, 0, false); j > 0 {
						i, ww = j, isWord(buf[j-1])
						continue
					}
					w = max(w, e.wend)
				}
				i = max(i, w)
			}
			for i < limit && tbl[buf[i]]&fWord != 0 {
				i++
			}
			ww = true
			continue
		}
		if f&fSpecial != 0 && !ww {
			if j := e.try(buf, i, 0, false); j > 0 {
				i, ww = j, isWord(buf[j-1])
				continue
			}
		}
		ww = false
		i++
	}
	e.wasWord = ww
	return i
}

// try runs the detectors at buf[i] and records a match; it returns the end
// of the match or -1.
func (e *engine) try(buf []byte, i int, ctx ctxSet, num bool) int {
	end := min(len(buf), i+maxToken)
	j, cls := e.detect(buf, i, end, ctx, num)
	if j <= i {
		return -1
	}
	m := Match{Class: AllClasses[cls], Start: e.base + i, End: e.base + j, Number: num}
	if e.mode == modeJSON && len(e.stack) > 0 && e.st != sKeyStr {
		f := &e.stack[len(e.stack)-1]
		m.Key = string(f.key[:f.klen])
	}
	e.matches = append(e.matches, m)
	return j
}

// gateNext classifies the byte after a word for the gate.
var gateNext = func() (t [256]uint8) {
	for _, c := range "@.-_+%:" {
		t[c] = gAny
	}
	t[' '] = gSpace
	return t
}()

const (
	gAny   = 1 // a detector may go on past this byte (email, IP, PEM, ...)
	gSpace = 2 // card groups, spaced NINO and print-format IBAN
)

// gate is a cheap test of whether any detector could match at the word
// starting at buf[i]; it must be true whenever detect could match. Most
// words are lower-case or short digit runs followed by a space, a quote or
// a comma, which no detector takes without key context.
//
// It also returns how far it read the word (at least i+1).
func (e *engine) gate(buf []byte, i int, ctx ctxSet) (bool, int) {
	c := buf[i]
	if ctx != 0 || e.s.noGate {
		return true, i + 1
	}
	end := min(len(buf), i+40)
	w := i + 1
	for w < end && tbl[buf[w]]&fWord != 0 {
		w++
	}
	if w == end && w < len(buf) {
		return true, w // a long run: let the detectors decide
	}
	return gateWord(buf, i, w, tbl[c]), w
}

// gateWord is the gate's verdict on the word buf[i:w] (w < i+40, or the end
// of the data); str inlines the same expression in its hot loop.
func gateWord(buf []byte, i, w int, f uint8) bool {
	var next byte // 0 at the end of the data
	if w < len(buf) {
		next = buf[w]
	}
	run := w - i
	g := gateNext[next]
	return g&gAny != 0 || g&gSpace != 0 && (f&fDigit != 0 || run == 2 || run == 4) || // card groups, "AB 12 34 56 C", "GB82 WEST ..."
		run >= 13 && f&fDigit != 0 || // contiguous PAN
		f&fUpper != 0 && (run == 8 || run == 11 || run >= 13 || run >= 4 && isDigit(buf[i+2])) // BIC, AWS key id, IBAN, NINO
}

func (e *engine) fail(buf []byte, i int) int {
	e.mode = modeText
	e.wasWord = i > 0 && isWord(buf[i-1])
	return i
}

func (e *engine) push(obj bool) bool {
	if len(e.stack) >= maxDepth {
		return false
	}
	var f frame
	f.obj = true
	if !obj {
		f.obj = false
		if n := len(e.stack); n > 0 { // array elements inherit the array's key
			p := &e.stack[n-1]
			f.ctx, f.klen, f.key = p.ctx, p.klen, p.key
		}
	}
	e.stack = append(e.stack, f)
	return true
}

func (e *engine) top() *frame {
	if len(e.stack) == 0 {
		return nil
	}
	return &e.stack[len(e.stack)-1]
}

func (e *engine) json(buf []byte, i, limit int) int {
	for i < limit && e.mode == modeJSON {
		switch e.st {
		case sStr, sKeyStr:
			i = e.str(buf, i, limit)
			continue
		case sNum:
			for i < limit && isNumByte(buf[i]) {
				i++
			}
			if i < limit {
				e.st = sAfter
			}
			continue
		case sLit:
			for i < limit && tbl[buf[i]]&fLower != 0 {
				i++
			}
			if i < limit {
				e.st = sAfter
			}
			continue
		}
		c := buf[i]
		if tbl[c]&fSpace != 0 {
			i++
			continue
		}
		t := e.top()
		switch e.st {
		case sValue:
			switch {
			case c == '{' || c == '[':
				if !e.push(c == '{') {
					return e.fail(buf, i)
				}
				if c == '{' {
					e.st = sKey
				}
			case c == '"':
				e.st, e.wasWord = sStr, false
			case c == '-':
				e.st = sNum
			case isDigit(c):
				e.st = sNum
				var ctx ctxSet
				if t != nil {
					ctx = t.ctx
				}
				if j := e.try(buf, i, ctx, true); j > 0 {
					i = j
					continue
				}
			case c == 't' || c == 'f' || c == 'n':
				e.st = sLit
			case c == ']' && t != nil && !t.obj:
				e.stack = e.stack[:len(e.stack)-1]
				e.st = sAfter
			default:
				return e.fail(buf, i)
			}
		case sKey:
			switch {
			case c == '"':
				e.st, e.wasWord, e.nkLen, e.rkLen, e.nkHash = sKeyStr, false, 0, 0, fnvOffset
			case c == '}' && t != nil && t.obj:
				e.stack = e.stack[:len(e.stack)-1]
				e.st = sAfter
			default:
				return e.fail(buf, i)
			}
		case sColon:
			if c != ':' {
				return e.fail(buf, i)
			}
			e.st = sValue
		case sAfter:
			switch {
			case t == nil && (c == '{' || c == '['): // JSON lines: the next document
				e.st = sValue
				continue
			case t == nil:
				return e.fail(buf, i)
			case c == ',' && t.obj:
				e.st = sKey
			case c == ',':
				e.st = sValue
			case c == '}' && t.obj, c == ']' && !t.obj:
				e.stack = e.stack[:len(e.stack)-1]
			default:
				return e.fail(buf, i)
			}
		}
		i++
	}
	return i
}

func isNumByte(c byte) bool {
	return isDigit(c) || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-'
}

// str scans the inside of a string (a value or a key) up to its closing quote.
func (e *engine) str(buf []byte, i, limit int) int {
	key := e.st == sKeyStr
	var ctx ctxSet
	if t := e.top(); t != nil && !key {
		ctx = t.ctx
	}
	ww := e.wasWord
	for i < limit {
		c := buf[i]
		f := tbl[c]
		if f&fWord != 0 {
			if !ww {
				// The word gate, inlined (see gate): most words stop here.
				end := min(len(buf), i+40)
				w := i + 1
				for w < end && tbl[buf[w]]&fWord != 0 {
					w++
				}
				ok := ctx != 0 || e.s.noGate || w == end && w < len(buf) || gateWord(buf, i, w, f)
				if ok {
					if j := e.try(buf, i, ctx, false); j > 0 {
						if key {
							for _, b := range buf[i:j] {
								e.keyByte(b)
							}
						}
						i, ww = j, isWord(buf[j-1])
						continue
					}
					w = max(w, e.wend)
				}
				if !key { // skip the rest of the word
					for i = w; i < limit && tbl[buf[i]]&fWord != 0; i++ {
					}
					ww = true
					continue
				}
			}
			if key {
				e.keyByte(c)
			}
			ww = true
			i++
			continue
		}
		switch {
		case c == '"':
			if key {
				e.endKey()
				e.st = sColon
			} else {
				e.st = sAfter
			}
			e.wasWord = false
			return i + 1
		case c == '\\':
			if i+1 < len(buf) && buf[i+1] == 'u' {
				i += 6
			} else {
				i += 2
			}
			ww = false
			continue
		case f&fSpecial != 0 && !ww:
			if j := e.try(buf, i, ctx, false); j > 0 {
				if key {
					for _, b := range buf[i:j] {
						e.keyByte(b)
					}
				}
				i, ww = j, isWord(buf[j-1])
				continue
			}
		}
		if key {
			e.keyByte(c)
		}
		ww = false
		i++
	}
	e.wasWord = ww
	return i
}

func (e *engine) keyByte(c byte) {
	if e.rkLen < maxKey {
		e.rk[e.rkLen] = c
		e.rkLen++
	}
	if isWord(c) {
		if !isDigit(c) {
			c |= 0x20 // ASCII letters to lower case
		}
		if e.nkLen < maxKey {
			e.nk[e.nkLen] = c
		}
		e.nkHash = (e.nkHash ^ uint64(c)) * fnvPrime
		e.nkLen++ // counts past maxKey: an overlong key gives no context
	}
}

func (e *engine) endKey() {
	t := e.top()
	if t == nil || !t.obj {
		return
	}
	t.ctx = 0
	if n := e.nkLen; n > 0 && n <= maxKey {
		t.ctx = keyContext(e.nk[:n], e.nkHash)
	}
	t.klen = uint8(copy(t.key[:], e.rk[:e.rkLen]))
}

// ErrClosed is returned by Write after Close.
var ErrClosed = errors.New("dlp: write to a closed stream")

// Stream scans a body written in pieces, across chunk boundaries: its
// matches are exactly those of Scan on the concatenation of the writes. It
// holds back the last maxToken (8 KiB) bytes between writes. A Stream is not
// safe for concurrent use.
type Stream struct {
	e      *engine
	buf    []byte
	base   int // absolute offset of buf[0]
	pos    int // index in buf where scanning resumes
	closed bool
}

// NewStream returns a stream scanning with s.
func (s *Scanner) NewStream() *Stream { return &Stream{e: newEngine(s)} }

// Write scans p; it never fails before Close.
func (st *Stream) Write(p []byte) (int, error) {
	if st.closed {
		return 0, ErrClosed
	}
	st.buf = append(st.buf, p...)
	st.pos = st.e.run(st.buf, st.base, st.pos, false)
	if drop := st.pos - lookBehind; drop > 0 && drop >= len(st.buf)/2 {
		n := copy(st.buf, st.buf[drop:])
		st.buf = st.buf[:n]
		st.base += drop
		st.pos -= drop
	}
	return len(p), nil
}

// Close scans what was held back; Matches is final after it.
func (st *Stream) Close() error {
	if st.closed {
		return nil
	}
	st.e.run(st.buf, st.base, st.pos, true)
	st.closed, st.buf = true, nil
	return nil
}

// Matches returns the matches found so far with absolute offsets; all of
// them once Close was called.
func (st *Stream) Matches() []Match { return st.e.matches }

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

type contextEntry struct {
	h    uint64
	name string
	ctx  ctxSet
}

// contextHash holds the JSON key names (normalized: lower-case letters and
// digits) that give context exactly, by FNV-1a hash with open addressing, so
// that a key is looked up with the hash computed while it was read: most
// keys give no context and are dismissed by one probe. See also the suffix
// rules in keyContext.
var contextHash = func() (t [512]contextEntry) {
	for ctx, names := range map[ctxSet][]string{
		ctxPAN: {"pan", "cardnumber", "primaryaccountnumber", "cardno", "ccnumber", "creditcard",
			"creditcardnumber", "debitcardnumber", "cardpan", "cardnum", "card", "accountnumberpan"},
		ctxCVV: {"cvv", "cvc", "cvv2", "cvc2", "cid", "csc", "securitycode", "cardsecuritycode",
			"cardverificationvalue", "cardverificationcode", "cvn"},
		ctxSSN:   {"ssn", "socialsecuritynumber", "socialsecurityno", "ussocialsecuritynumber", "taxpayerssn"},
		ctxABA:   {"aba", "routing", "routingnumber", "abanumber", "abaroutingnumber", "routingtransitnumber", "rtn"},
		ctxBIC:   {"bic", "swift", "swiftcode", "biccode", "bicfi", "swiftbic", "bankbic"},
		ctxNINO:  {"nino", "nationalinsurancenumber", "ninumber", "nationalinsuranceno"},
		ctxEmail: {"email", "emailaddress", "mail"},
		ctxPhone: {"phone", "phonenumber", "mobile", "mobilenumber", "telephone", "tel", "msisdn", "cellphone"},
		ctxIBAN:  {"iban", "ibannumber"},
	} {
		for _, n := range names {
			h := uint64(fnvOffset)
			for k := 0; k < len(n); k++ {
				h = (h ^ uint64(n[k])) * fnvPrime
			}
			for p := h; ; p++ {
				if e := &t[p%uint64(len(t))]; e.name == "" {
					*e = contextEntry{h, n, ctx}
					break
				}
			}
		}
	}
	return t
}()

// keyContext maps a normalized JSON key (lower-case letters and digits)
// and its FNV-1a hash to the classes it hints at.
func keyContext(k []byte, h uint64) ctxSet {
	for p := h; ; p++ {
		e := &contextHash[p%uint64(len(contextHash))]
		if e.name == "" {
			break
		}
		if e.h == h && e.name == string(k) {
			return e.ctx
		}
	}
	n := len(k)
	if n < 4 {
		return 0
	}
	switch k[n-1] { // suffix rules: "debtorIban", "beneficiary_email", ...
	case 'n':
		switch {
		case bytes.HasSuffix(k, []byte("iban")):
			return ctxIBAN
		case n > 4 && bytes.HasSuffix(k, []byte("ssn")):
			return ctxSSN
		}
	case 'r':
		switch {
		case bytes.HasSuffix(k, []byte("cardnumber")):
			return ctxPAN
		case bytes.HasSuffix(k, []byte("routingnumber")):
			return ctxABA
		case bytes.HasSuffix(k, []byte("phonenumber")):
			return ctxPhone
		}
	case 'c':
		if n > 4 && bytes.HasSuffix(k, []byte("bic")) {
			return ctxBIC
		}
	case 'l':
		if bytes.HasSuffix(k, []byte("email")) {
			return ctxEmail
		}
	case 'e':
		if bytes.HasSuffix(k, []byte("phone")) {
			return ctxPhone
		}
	}
	return 0
}
