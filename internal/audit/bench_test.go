package audit

import (
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkWrite measures end to end cost per record: Write, queue,
// formatting, hashing and buffered writes to a temp file, including the final
// drain in Close.
func BenchmarkWrite(b *testing.B) {
	w, err := Open(Options{Path: filepath.Join(b.TempDir(), "audit.log"), Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	r := sampleRecord(1)
	b.ReportAllocs()
	start := time.Now()
	for b.Loop() {
		w.Write(r)
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(b.N), "ns/record")
	if st := w.Stats(); st.Written != uint64(b.N) {
		b.Fatalf("written %d of %d", st.Written, b.N)
	}
}

// BenchmarkEncode measures formatting and hashing alone.
func BenchmarkEncode(b *testing.B) {
	e := newEncoder(0, zeroHash)
	r := sampleRecord(1)
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		buf = e.append(buf[:0], &r)
	}
	b.SetBytes(int64(len(buf)))
}
