package record

import (
	"hash/maphash"
	"strings"
	"sync"
)

// Steps recognises sequential walks without letting an object id leave
// the gateway: for each caller, API, operation and object parameter it
// remembers the numeric part of the last object id requested (the whole
// id when it is a number, else its trailing digits under the same
// prefix: acc-1041 after acc-1040), keyed by a hash, and reports a step
// when the next id is within MaxStep of it. Events carry only that
// yes/no; the detectors count the steps onto new ids.
//
// Memory is bounded: MaxStepKeys entries of two machine words, spread
// over shards; a full shard starts again empty, which costs a walker at
// most one missed step. Safe for concurrent use.
type Steps struct {
	seed   maphash.Seed
	shards [stepShards]stepShard
}

// Bounds of Steps.
const (
	// MaxStep is the largest difference between consecutive ids that is
	// a step: 1 for a plain walk; up to 3 when a walk is spread over
	// gateways behind a load balancer, each seeing every second or third.
	MaxStep = 3
	// MaxStepKeys bounds the callers × operations remembered.
	MaxStepKeys = 1 << 16
	// maxStepDigits: a longer run of digits is not a counter (card
	// numbers, timestamps, random ids) and would overflow.
	maxStepDigits = 18
	// maxStepPrefix: a longer prefix is a name or a token, not a kind.
	maxStepPrefix = 32
	stepShards    = 16
)

type stepShard struct {
	mu   sync.Mutex
	last map[uint64]uint64
}

// NewSteps returns an empty tracker.
func NewSteps() *Steps {
	s := &Steps{seed: maphash.MakeSeed()}
	for i := range s.shards {
		s.shards[i].last = make(map[uint64]uint64)
	}
	return s
}

// Step records that who (a subject hash, or a client address) requested
// object id through param of operation on api, and reports whether id is
// a step from the previous one there: the same prefix, and a numeric part
// that differs by 1 to MaxStep. The same id again is not a step.
func (s *Steps) Step(who, api, operation, param, id string) bool {
	prefix, n, ok := splitCounter(id)
	if !ok {
		return false
	}
	var h maphash.Hash
	h.SetSeed(s.seed)
	h.WriteString(who)
	h.WriteByte(0)
	h.WriteString(api)
	h.WriteByte(0)
	h.WriteString(operation)
	h.WriteByte(0)
	h.WriteString(param)
	h.WriteByte(0)
	h.WriteString(prefix)
	k := h.Sum64()
	sh := &s.shards[k%stepShards]
	sh.mu.Lock()
	prev, seen := sh.last[k]
	if !seen && len(sh.last) >= MaxStepKeys/stepShards {
		clear(sh.last)
	}
	sh.last[k] = n
	sh.mu.Unlock()
	if !seen {
		return false
	}
	d := n - prev
	if prev > n {
		d = prev - n
	}
	return d >= 1 && d <= MaxStep
}

// splitCounter splits id into a prefix and the number its trailing
// digits spell, when it has 1 to maxStepDigits of them under a short
// prefix without digits ("", "acc-", "INV"): a prefix holding digits is
// the random part of a UUID or a hash, never a counter's.
func splitCounter(id string) (prefix string, n uint64, ok bool) {
	i := len(id)
	for i > 0 && id[i-1] >= '0' && id[i-1] <= '9' {
		i--
	}
	digits := len(id) - i
	if digits == 0 || digits > maxStepDigits || i > maxStepPrefix || strings.ContainsAny(id[:i], "0123456789") {
		return "", 0, false
	}
	for _, c := range []byte(id[i:]) {
		n = n*10 + uint64(c-'0')
	}
	return id[:i], n, true
}
