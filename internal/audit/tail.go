package audit

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
)

// tailChunk is the read size used when scanning the file backwards for the
// start of the last line or forwards to count lines for an error message.
const tailChunk = 64 << 10

// resumeChain reads the last line of f and returns the seq and hash to
// continue from; (0, zeroHash) for an empty file. Only the tail is read on the
// normal path; the whole file is scanned only to name the line in an error.
func resumeChain(f *os.File, path string, repair bool, log *slog.Logger) (uint64, [hexLen]byte, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, zeroHash, fmt.Errorf("open audit log %s: %w", path, err)
	}
	size := fi.Size()
	if size == 0 {
		return 0, zeroHash, nil
	}
	var b [1]byte
	if _, err := f.ReadAt(b[:], size-1); err != nil {
		return 0, zeroHash, fmt.Errorf("open audit log %s: %w", path, err)
	}
	if b[0] != '\n' {
		keep, err := lineStart(f, size)
		if err != nil {
			return 0, zeroHash, fmt.Errorf("open audit log %s: %w", path, err)
		}
		line, err := lineNumber(f, keep)
		if err != nil {
			return 0, zeroHash, fmt.Errorf("open audit log %s: %w", path, err)
		}
		if !repair {
			return 0, zeroHash, fmt.Errorf("open audit log %s: line %d: %w (%d bytes without a trailing newline, as after a crash); set RepairTornTail to truncate it",
				path, line, ErrTornTail, size-keep)
		}
		if err := f.Truncate(keep); err != nil {
			return 0, zeroHash, fmt.Errorf("open audit log %s: truncate torn tail: %w", path, err)
		}
		log.Warn("audit log had a torn last line; truncated it", "path", path, "line", line, "bytes", size-keep)
		size = keep
		if size == 0 {
			return 0, zeroHash, nil
		}
	}
	start, err := lineStart(f, size-1)
	if err != nil {
		return 0, zeroHash, fmt.Errorf("open audit log %s: %w", path, err)
	}
	corrupt := func(reason string) error {
		line, err := lineNumber(f, start)
		if err != nil {
			return fmt.Errorf("open audit log %s: %w", path, err)
		}
		return fmt.Errorf("open audit log %s: line %d: %w: %s", path, line, ErrCorruptTail, reason)
	}
	if size-start > MaxLineBytes {
		return 0, zeroHash, corrupt(fmt.Sprintf("line longer than %d bytes", MaxLineBytes))
	}
	buf := make([]byte, size-start)
	if _, err := f.ReadAt(buf, start); err != nil {
		return 0, zeroHash, fmt.Errorf("open audit log %s: %w", path, err)
	}
	info, reason := checkLine(buf)
	if reason == "" && (info.seq == 0 || len(info.prev) != hexLen || !isHex(info.prev)) {
		reason = "seq or prev out of range"
	}
	if reason != "" {
		return 0, zeroHash, corrupt(reason)
	}
	return info.seq, info.hash, nil
}

// lineStart returns the offset just after the last '\n' before end, or 0.
func lineStart(f *os.File, end int64) (int64, error) {
	buf := make([]byte, tailChunk)
	for end > 0 {
		from := max(0, end-tailChunk)
		chunk := buf[:end-from]
		if _, err := f.ReadAt(chunk, from); err != nil && err != io.EOF {
			return 0, err
		}
		if i := bytes.LastIndexByte(chunk, '\n'); i >= 0 {
			return from + int64(i) + 1, nil
		}
		end = from
	}
	return 0, nil
}

// lineNumber returns the 1-based number of the line starting at off.
func lineNumber(f *os.File, off int64) (int, error) {
	buf := make([]byte, tailChunk)
	n := 1
	for pos := int64(0); pos < off; {
		chunk := buf[:min(int64(len(buf)), off-pos)]
		if _, err := f.ReadAt(chunk, pos); err != nil && err != io.EOF {
			return 0, err
		}
		n += bytes.Count(chunk, []byte{'\n'})
		pos += int64(len(chunk))
	}
	return n, nil
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil
}
