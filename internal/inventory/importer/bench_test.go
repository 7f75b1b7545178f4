package importer

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/bulwarkapi/bulwark/internal/event"
)

// BenchmarkNginx measures combined-format parsing end to end (line
// splitting, parsing, ids, params) over the valid sample lines.
func BenchmarkNginx(b *testing.B) {
	var valid []string
	for line := range strings.SplitSeq(string(readTestdata(b, "access.log")), "\n") {
		if line != "" && !strings.Contains(line, `\x16`) {
			valid = append(valid, line)
		}
	}
	const lines = 10000
	var buf bytes.Buffer
	for i := range lines {
		buf.WriteString(valid[i%len(valid)])
		buf.WriteByte('\n')
	}
	data := buf.Bytes()
	emit := func(event.Exchange) error { return nil }
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		st, err := Import(context.Background(), bytes.NewReader(data), Options{Format: FormatNginx}, emit)
		if err != nil || st.Imported != lines {
			b.Fatalf("err %v, stats %+v", err, st)
		}
	}
	b.ReportMetric(float64(lines)*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}
