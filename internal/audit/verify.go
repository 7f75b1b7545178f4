package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// VerifyResult is the outcome of replaying a log's hash chain.
type VerifyResult struct {
	// Records is the number of intact records read before the first broken
	// line (all records when the log is intact).
	Records int
	// FirstBroken is the 1-based line number of the first broken line, or
	// 0 when the log is intact.
	FirstBroken int
	// Reason says why FirstBroken is broken, for example
	// "record hash mismatch: line edited",
	// "prev does not match hash of line 41: record removed or reordered",
	// "seq 42 expected 41", "not valid JSON", "torn last line".
	Reason string
}

// Intact reports whether the whole log verified.
func (v VerifyResult) Intact() bool { return v.FirstBroken == 0 }

// verifyScanBuf is the scanner's initial buffer; it grows up to MaxLineBytes.
const verifyScanBuf = 64 << 10

// Verify replays the hash chain of the log read from r and stops at the first
// broken line. The error is non-nil only for I/O errors from r; tampering is
// reported in the result. A line longer than MaxLineBytes is reported as
// broken. An empty log is intact with zero records.
func Verify(r io.Reader) (VerifyResult, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, verifyScanBuf), MaxLineBytes)
	sc.Split(scanLinesKeepNewline)

	var (
		res     VerifyResult
		last    [hexLen]byte
		lastSeq uint64
		lineNo  int
	)
	for sc.Scan() {
		lineNo++
		info, reason := checkLine(sc.Bytes())
		if reason == "" {
			reason = chainReason(info, lineNo, last, lastSeq)
		}
		if reason != "" {
			res.FirstBroken, res.Reason = lineNo, reason
			return res, nil
		}
		res.Records++
		last, lastSeq = info.hash, info.seq
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			res.FirstBroken = lineNo + 1
			res.Reason = fmt.Sprintf("line longer than %d bytes", MaxLineBytes)
			return res, nil
		}
		return res, fmt.Errorf("verify audit log: read line %d: %w", lineNo+1, err)
	}
	return res, nil
}

// scanLinesKeepNewline is bufio.ScanLines without stripping "\n" or "\r", so
// that a final line without a newline (a torn tail) can be told apart and the
// hashed bytes are exactly the bytes in the file.
func scanLinesKeepNewline(data []byte, atEOF bool) (int, []byte, error) {
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		return i + 1, data[:i+1], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

// unmarshalLine decodes line into v and turns a failure into a reason.
func unmarshalLine(line []byte, v any) string {
	err := json.Unmarshal(line, v)
	if err == nil {
		return ""
	}
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return "not valid JSON"
	}
	return "not a record object"
}
