package audit

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestVerifyTampering(t *testing.T) {
	const n = 5
	orig := genLog(n)
	lines := func() [][]byte {
		var out [][]byte
		for _, l := range splitLines(orig) {
			out = append(out, bytes.Clone(l))
		}
		return out
	}
	replaceIn := func(l []byte, old, new string) []byte {
		if !bytes.Contains(l, []byte(old)) {
			t.Fatalf("line has no %q: %s", old, l)
		}
		return bytes.Replace(l, []byte(old), []byte(new), 1)
	}
	skippedSeq := func() []byte {
		e := newEncoder(0, zeroHash)
		var b []byte
		for i := range 4 {
			if i == 2 {
				e.seq++ // a forger renumbering; prev still chains
			}
			r := sampleRecord(i)
			b = e.append(b, &r)
		}
		return b
	}

	tests := []struct {
		name        string
		log         func() []byte
		records     int
		firstBroken int
		reason      string
	}{
		{"intact", func() []byte { return orig }, n, 0, ""},
		{"empty", func() []byte { return nil }, 0, 0, ""},
		{"edit a value", func() []byte {
			l := lines()
			l[2] = replaceIn(l[2], `"status":200`, `"status":201`)
			return joinLines(l)
		}, 2, 3, "record hash mismatch: line edited"},
		{"edit a key", func() []byte {
			l := lines()
			l[1] = replaceIn(l[1], `"method"`, `"methox"`)
			return joinLines(l)
		}, 1, 2, "record hash mismatch: line edited"},
		{"edit the hash", func() []byte {
			l := lines()
			i := len(l[3]) - 4
			l[3][i] ^= 1
			return joinLines(l)
		}, 3, 4, "record hash mismatch: line edited"},
		{"edit the hash key", func() []byte {
			l := lines()
			l[3] = replaceIn(l[3], `"hash"`, `"hasx"`)
			return joinLines(l)
		}, 3, 4, "hash field missing or not last"},
		{"delete a line", func() []byte {
			l := lines()
			return joinLines(append(l[:2], l[3:]...))
		}, 2, 3, "prev does not match hash of line 2: record removed or reordered"},
		{"delete the first line", func() []byte {
			return joinLines(lines()[1:])
		}, 0, 1, "seq 2 expected 1: records removed from the head"},
		{"swap two lines", func() []byte {
			l := lines()
			l[1], l[2] = l[2], l[1]
			return joinLines(l)
		}, 1, 2, "prev does not match hash of line 1: record removed or reordered"},
		{"truncate mid-line", func() []byte {
			return orig[:len(orig)-40]
		}, n - 1, n, "torn last line"},
		{"append garbage", func() []byte {
			return append(bytes.Clone(orig), "garbage\n"...)
		}, n, n + 1, "not valid JSON"},
		{"append garbage without newline", func() []byte {
			return append(bytes.Clone(orig), "garbage"...)
		}, n, n + 1, "torn last line"},
		{"append blank line", func() []byte {
			return append(bytes.Clone(orig), '\n')
		}, n, n + 1, "not valid JSON"},
		{"append JSON that is not a record", func() []byte {
			return append(bytes.Clone(orig), "[1,2]\n"...)
		}, n, n + 1, "not a record object"},
		{"recomputed-hash edit", func() []byte {
			l := lines()
			l[2] = rehash(replaceIn(l[2], `"status":200`, `"status":201`))
			return joinLines(l)
		}, 3, 4, "prev does not match hash of line 3: record removed or reordered"},
		{"recomputed-hash edit of the last line is undetectable", func() []byte {
			l := lines()
			l[n-1] = rehash(replaceIn(l[n-1], `"status":200`, `"status":201`))
			return joinLines(l)
		}, n, 0, ""},
		{"tail truncated at a line boundary is undetectable", func() []byte {
			return joinLines(lines()[:3])
		}, 3, 0, ""},
		{"seq skipped", skippedSeq, 2, 3, "seq 4 expected 3"},
		{"line longer than the limit", func() []byte {
			return append(bytes.Clone(orig), strings.Repeat("x", MaxLineBytes+10)+"\n"...)
		}, n, n + 1, "line longer than 1048576 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mustVerify(t, tt.log())
			want := VerifyResult{Records: tt.records, FirstBroken: tt.firstBroken, Reason: tt.reason}
			if got != want {
				t.Errorf("Verify = %+v, want %+v", got, want)
			}
			if got.Intact() != (tt.firstBroken == 0) {
				t.Errorf("Intact() = %v", got.Intact())
			}
		})
	}
}

func TestVerifyReadError(t *testing.T) {
	boom := errors.New("boom")
	_, err := Verify(io.MultiReader(bytes.NewReader(genLog(3)), iotest.ErrReader(boom)))
	if !errors.Is(err, boom) {
		t.Fatalf("Verify error = %v, want %v", err, boom)
	}
}

func TestVerifyOneByteReader(t *testing.T) {
	res, err := Verify(iotest.OneByteReader(bytes.NewReader(genLog(4))))
	if err != nil || res != (VerifyResult{Records: 4}) {
		t.Fatalf("Verify = %+v, %v", res, err)
	}
}
