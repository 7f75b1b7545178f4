package dlp

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// scanChunked writes data to a stream in the given chunk sizes (cycled).
func scanChunked(s *Scanner, data []byte, sizes []int) []Match {
	st := s.NewStream()
	for k, n := 0, 0; k < len(data); n++ {
		sz := max(1, sizes[n%len(sizes)])
		end := min(len(data), k+sz)
		_, _ = st.Write(data[k:end])
		k = end
	}
	_ = st.Close()
	return st.Matches()
}

func sameMatches(a, b []Match) bool {
	return fmt.Sprint(a) == fmt.Sprint(b)
}

func streamSamples() [][]byte {
	pem := "-----BEGIN RSA PRIVATE KEY-----\\n" + strings.Repeat("MIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\\n", 60) + "-----END RSA PRIVATE KEY-----"
	return [][]byte{
		bankJSON(40 << 10),
		[]byte(`{"cards":[{"cardNumber":"4111 1111 1111 1111","cvv":"123"},{"iban":"GB82 WEST 1234 5698 7654 32","ssn":"123456789"}],"key":"` + pem + `","mail":"a.b@bank.com"}`),
		[]byte(strings.Repeat("pay 4111111111111111 to DE89370400440532013000, call +44 20 7946 0958, ip 10.0.0.1; ", 200)),
		[]byte(`{"a": [1, 2, {"b": "x"}]} {"phone": "+1 555 123 4567"} oops 4111-1111-1111-1111 "unterminated \u00`),
	}
}

func TestStreamMatchesScan(t *testing.T) {
	s := NewScanner(nil)
	r := rand.New(rand.NewPCG(3, 5))
	for i, data := range streamSamples() {
		want := s.Scan(data)
		if i > 0 && len(want) == 0 {
			t.Fatalf("sample %d: no matches", i)
		}
		for trial := 0; trial < 20; trial++ {
			sizes := make([]int, 1+r.IntN(8))
			for k := range sizes {
				sizes[k] = 1 + r.IntN([]int{3, 64, 5000, 20000}[r.IntN(4)])
			}
			if got := scanChunked(s, data, sizes); !sameMatches(got, want) {
				t.Fatalf("sample %d chunks %v:\n got  %v\n want %v", i, sizes, got, want)
			}
		}
	}
}

func TestStreamClosed(t *testing.T) {
	st := NewScanner(nil).NewStream()
	_, _ = st.Write([]byte("4111111111111111"))
	if len(st.Matches()) != 0 {
		t.Fatal("a match before Close within the held-back window")
	}
	_ = st.Close()
	if _, err := st.Write([]byte("x")); err != ErrClosed {
		t.Fatalf("Write after Close: %v", err)
	}
	if ms := st.Matches(); len(ms) != 1 || ms[0].Start != 0 || ms[0].End != 16 {
		t.Fatalf("matches %+v", ms)
	}
}

func TestStreamLongInputBounded(t *testing.T) {
	st := NewScanner(nil).NewStream()
	chunk := bytes.Repeat([]byte("abc "), 1024)
	for range 256 { // 1 MiB
		_, _ = st.Write(chunk)
	}
	if cap(st.buf) > 64<<10 {
		t.Fatalf("stream buffer grew to %d bytes", cap(st.buf))
	}
	_ = st.Close()
}
