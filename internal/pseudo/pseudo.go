// Package pseudo makes the pseudonyms Bulwark records in place of
// personal data: the hashes of subjects, usernames and object ids in
// exchange events, the audit log, findings and the keys of the shared
// stores (Redis counters).
//
// With a key (privacy.pseudonym_key) a pseudonym is HMAC-SHA256 under it:
// whoever reads the events or the audit log without the key cannot
// confirm a guess (an e-mail address, an account number), which is what
// GDPR art. 4(5) asks of pseudonymisation. Without a key it is plain
// SHA-256, which anyone can recompute from a guess; the gateway warns at
// start. Every gateway and collector of one deployment must share the
// key, or their pseudonyms (and the shared counters keyed by them) do not
// meet.
//
// The key is process-wide: it is set once when a gateway, collector or
// import starts (SetKey) and read on every hash. A pseudonym is the hex of
// the first 16 bytes of the digest (128 bits).
package pseudo

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"sync"
	"sync/atomic"
)

// MinKeyBytes is the shortest key SetKey accepts from configuration: 256
// bits, the HMAC-SHA256 block's worth of secret.
const MinKeyBytes = 32

// keyed is the current key's pool of HMAC states; nil when there is none.
var keyed atomic.Pointer[keyState]

type keyState struct {
	key  string
	pool sync.Pool
}

// SetKey sets the process's pseudonym key; an empty key means plain
// SHA-256. Setting the key in use again is a no-op.
func SetKey(key string) {
	if key == "" {
		keyed.Store(nil)
		return
	}
	if cur := keyed.Load(); cur != nil && cur.key == key {
		return
	}
	k := []byte(key)
	st := &keyState{key: key}
	st.pool.New = func() any { return hmac.New(sha256.New, k) }
	keyed.Store(st)
}

// Keyed reports whether a key is set.
func Keyed() bool { return keyed.Load() != nil }

// Of returns the pseudonym of v.
func Of(v string) string { return of(v, "", false) }

// Of2 returns the pseudonym of the pair (a, b), as of a NUL-joined string:
// a provider and a subject.
func Of2(a, b string) string { return of(a, b, true) }

func of(a, b string, pair bool) string {
	var sum [sha256.Size]byte
	if st := keyed.Load(); st != nil {
		h := st.pool.Get().(hash.Hash)
		h.Reset()
		writeString(h, a)
		if pair {
			writeString(h, "\x00")
			writeString(h, b)
		}
		h.Sum(sum[:0])
		st.pool.Put(h)
	} else {
		h := sha256.New()
		writeString(h, a)
		if pair {
			writeString(h, "\x00")
			writeString(h, b)
		}
		h.Sum(sum[:0])
	}
	return hex.EncodeToString(sum[:16])
}

func writeString(h hash.Hash, s string) {
	if sw, ok := h.(interface{ WriteString(string) (int, error) }); ok {
		_, _ = sw.WriteString(s)
		return
	}
	_, _ = h.Write([]byte(s))
}
