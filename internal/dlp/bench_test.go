package dlp

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
)

// bankJSON returns a deterministic, realistic JSON document of about size
// bytes of bank data without sensitive values: transaction ids (UUIDs),
// amounts, currencies, timestamps, names, merchants, statuses, references.
func bankJSON(size int) []byte {
	r := rand.New(rand.NewPCG(7, 11))
	first := []string{"Olivia", "Liam", "Emma", "Noah", "Amélie", "Lucas", "Sofia", "Mateo", "Zoë", "O'Brien"}
	last := []string{"Smith", "Müller", "García", "Rossi", "Dubois", "Nowak", "Jansen", "Kowalski", "Silva", "Brown"}
	merchants := []string{"Tesco Stores 3297", "AMAZON EU SARL", "Shell Fuel", "Uber *Trip", "Netflix.com", "Lidl Sagt Danke", "Starbucks Coffee #1123", "Deutsche Bahn"}
	status := []string{"BOOKED", "PENDING", "SETTLED", "REVERSED"}
	cats := []string{"groceries", "transport", "utilities", "entertainment", "salary", "rent"}
	var b bytes.Buffer
	b.WriteString(`{"accountId":"acc_7f3a9c21","currency":"EUR","balance":{"amount":"15234.55","asOf":"2026-11-29T10:15:00Z"},"transactions":[`)
	for k := 0; b.Len() < size-400; k++ {
		if k > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"transactionId":"%08x-%04x-4%03x-a%03x-%012x","bookingDate":"2026-%02d-%02d","valueDateTime":"2026-%02d-%02dT%02d:%02d:%02d.%03dZ",`,
			r.Uint32(), r.IntN(1<<16), r.IntN(1<<12), r.IntN(1<<12), r.Uint64()&(1<<48-1),
			1+r.IntN(12), 1+r.IntN(28), 1+r.IntN(12), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60), r.IntN(1000))
		fmt.Fprintf(&b, `"amount":{"value":%d.%02d,"currency":"EUR"},"creditDebitIndicator":"%s","status":"%s",`,
			r.IntN(5000), r.IntN(100), []string{"CRDT", "DBIT"}[r.IntN(2)], status[r.IntN(len(status))])
		fmt.Fprintf(&b, `"counterparty":{"name":"%s %s","reference":"Invoice %d / order %d"},"merchant":"%s","category":"%s","mcc":%d,"sequence":%d,"tags":["%s","recurring"],"booked":true,"note":null}`,
			first[r.IntN(len(first))], last[r.IntN(len(last))], 1000+r.IntN(9000), 100000+r.IntN(900000),
			merchants[r.IntN(len(merchants))], cats[r.IntN(len(cats))], 4000+r.IntN(1999), k, cats[r.IntN(len(cats))])
	}
	b.WriteString(`],"links":{"self":"/v1/accounts/acc_7f3a9c21/transactions?page=2","next":null}}`)
	return b.Bytes()
}

func TestBankJSONHasNoMatches(t *testing.T) {
	doc := bankJSON(64 << 10)
	if ms := NewScanner(nil).Scan(doc); len(ms) != 0 {
		t.Fatalf("%d matches in the benchmark document: %q", len(ms), found(doc, ms[:min(5, len(ms))]))
	}
}

func BenchmarkScanJSONNoMatch(b *testing.B) {
	doc := bankJSON(64 << 10)
	s := NewScanner(nil)
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for b.Loop() {
		if len(s.Scan(doc)) != 0 {
			b.Fatal("unexpected match")
		}
	}
}

func BenchmarkScanTextNoMatch(b *testing.B) {
	doc := bankJSON(64 << 10)
	doc[0] = ' ' // not JSON: scanned as text
	s := NewScanner(nil)
	b.SetBytes(int64(len(doc)))
	for b.Loop() {
		s.Scan(doc)
	}
}

func BenchmarkStream(b *testing.B) {
	doc := bankJSON(64 << 10)
	s := NewScanner(nil)
	b.SetBytes(int64(len(doc)))
	for b.Loop() {
		st := s.NewStream()
		for k := 0; k < len(doc); k += 4096 {
			_, _ = st.Write(doc[k:min(len(doc), k+4096)])
		}
		_ = st.Close()
	}
}
