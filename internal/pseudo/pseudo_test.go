package pseudo

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"testing"
)

func TestPseudonyms(t *testing.T) {
	t.Cleanup(func() { SetKey("") })
	SetKey("")
	plain := sha256.Sum256([]byte("alice@example.com"))
	if got, want := Of("alice@example.com"), hex.EncodeToString(plain[:16]); got != want || Keyed() {
		t.Fatalf("unkeyed Of = %s, want %s", got, want)
	}
	pair := sha256.Sum256([]byte("idp\x00alice"))
	if got := Of2("idp", "alice"); got != hex.EncodeToString(pair[:16]) {
		t.Fatalf("unkeyed Of2 = %s", got)
	}

	const key = "0123456789abcdef0123456789abcdef"
	SetKey(key)
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte("alice@example.com"))
	if got, want := Of("alice@example.com"), hex.EncodeToString(m.Sum(nil)[:16]); got != want || !Keyed() {
		t.Fatalf("keyed Of = %s, want %s", got, want)
	}
	if Of("alice@example.com") == hex.EncodeToString(plain[:16]) {
		t.Fatal("keyed pseudonym equals the plain hash")
	}
	if Of2("idp", "alice") == Of2("idpa", "lice") || Of2("idp", "alice") != Of("idp\x00alice") {
		t.Fatal("pairs are not NUL-joined")
	}
	before := Of("x")
	SetKey("another key of at least thirty-two bytes")
	if Of("x") == before {
		t.Fatal("a new key gives the same pseudonym")
	}
}

func TestPseudonymsConcurrent(t *testing.T) {
	t.Cleanup(func() { SetKey("") })
	SetKey("0123456789abcdef0123456789abcdef")
	want := Of("v")
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				if got := Of("v"); got != want {
					t.Errorf("got %s", got)
					return
				}
			}
		})
	}
	wg.Wait()
}

func BenchmarkOf(b *testing.B) {
	b.Cleanup(func() { SetKey("") })
	for _, k := range []string{"", "0123456789abcdef0123456789abcdef"} {
		SetKey(k)
		b.Run(map[bool]string{true: "hmac", false: "sha256"}[k != ""], func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Of("acc_z4al6t3b7dqc")
			}
		})
	}
}
