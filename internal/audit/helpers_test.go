package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"sync"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/golden and testdata/fuzz seed files")

var baseTime = time.Date(2025, 1, 2, 3, 4, 5, 123456789, time.UTC)

// sampleRecord returns a deterministic record; i varies a few fields.
func sampleRecord(i int) Record {
	return Record{
		Time:            baseTime.Add(time.Duration(i) * time.Millisecond),
		RequestID:       fmt.Sprintf("req-%06d", i),
		API:             "accounts",
		Operation:       "getAccount",
		Method:          "GET",
		Path:            fmt.Sprintf("/v1/accounts/%d?expand=owner", i),
		Host:            "api.bank.example",
		Status:          200,
		Latency:         1234567 * time.Nanosecond,
		UpstreamLatency: 987654 * time.Nanosecond,
		Client:          "203.0.113.7:54321",
		Mode:            "enforce",
		Upstream:        "http://10.0.0.5:8080",
		Retries:         i % 2,
		BytesIn:         int64(100 + i),
		BytesOut:        2048,
		Decisions: []Decision{
			{Stage: "authn", Action: "allow", Reason: "jwt valid", Status: 0, Enforced: true},
			{Stage: "ratelimit", Action: "allow", Status: 0, Enforced: true},
		},
	}
}

// genLog encodes n sample records as a fresh chain.
func genLog(n int) []byte {
	e := newEncoder(0, zeroHash)
	var b []byte
	for i := range n {
		r := sampleRecord(i)
		b = e.append(b, &r)
	}
	return b
}

// splitLines splits a log into lines, each keeping its newline.
func splitLines(b []byte) [][]byte {
	return bytes.SplitAfter(b, []byte("\n"))[:bytes.Count(b, []byte("\n"))]
}

func joinLines(lines [][]byte) []byte { return bytes.Join(lines, nil) }

// rehash recomputes the hash of an edited line, as a forger would.
func rehash(line []byte) []byte {
	body := line[:len(line)-suffixLen]
	sum := sha256.Sum256(body)
	out := append([]byte{}, body...)
	out = append(out, hashKey...)
	out = append(out, hex.EncodeToString(sum[:])...)
	return append(out, '"', '}', '\n')
}

// syncBuffer is a bytes.Buffer safe for the writer goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

func (s *syncBuffer) String() string { return string(s.Bytes()) }

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func mustVerify(t *testing.T, b []byte) VerifyResult {
	t.Helper()
	res, err := Verify(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return res
}
