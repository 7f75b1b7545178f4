package inventory

import (
	"math"
	"math/bits"
	"sort"
)

// Latency histogram: fixed log-scale buckets, so a percentile costs a scan
// of latencyBuckets counters and an endpoint's memory is constant.
const (
	// latencyBase is the upper bound of the first bucket, in milliseconds:
	// below 10 µs nothing is worth telling apart.
	latencyBase = 0.01
	// latencyGrowth is the ratio between consecutive bucket bounds: a
	// percentile is reported within ±12%.
	latencyGrowth = 1.25
	// latencyBuckets covers 10 µs to about 450 s (0.01 * 1.25^79 ms);
	// slower exchanges land in the last bucket.
	latencyBuckets = 80
)

// logLatencyGrowth is ln(latencyGrowth), for bucket lookup.
var logLatencyGrowth = math.Log(latencyGrowth)

// latencyHist counts latencies by bucket.
type latencyHist [latencyBuckets]uint64

// bucketOf returns the bucket index of ms.
func bucketOf(ms float64) int {
	if !(ms > latencyBase) { // also NaN and negatives
		return 0
	}
	i := int(math.Ceil(math.Log(ms/latencyBase) / logLatencyGrowth))
	if i >= latencyBuckets {
		return latencyBuckets - 1
	}
	return i
}

// bucketValue is the representative latency of bucket i: the geometric
// middle of its bounds.
func bucketValue(i int) float64 {
	upper := latencyBase * math.Pow(latencyGrowth, float64(i))
	if i == 0 {
		return upper
	}
	return upper / math.Sqrt(latencyGrowth)
}

// quantile returns the q-quantile (0 < q <= 1) in milliseconds, 0 when
// empty.
func (h *latencyHist) quantile(q float64) float64 {
	var total uint64
	for _, c := range h {
		total += c
	}
	if total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(total)))
	if rank == 0 {
		rank = 1
	}
	var cum uint64
	for i, c := range h {
		cum += c
		if cum >= rank {
			return math.Round(bucketValue(i)*1000) / 1000
		}
	}
	return bucketValue(latencyBuckets - 1)
}

// compact returns the counts without trailing zeros (for persistence).
func (h *latencyHist) compact() []uint64 {
	n := len(h)
	for n > 0 && h[n-1] == 0 {
		n--
	}
	if n == 0 {
		return nil
	}
	return append([]uint64(nil), h[:n]...)
}

// Distinct identities: exact up to exactIdentities, then a HyperLogLog.
const (
	// exactIdentities is how many identity hashes are kept exactly (8
	// bytes each plus map overhead: about 40 KiB per endpoint at most).
	exactIdentities = 1000
	// hllPrecision: 2^11 one-byte registers (2 KiB), a standard error of
	// 1.04/sqrt(2048), about 2.3%.
	hllPrecision = 11
	hllRegisters = 1 << hllPrecision
)

// identitySet counts distinct identities, boundedly. Hashes are 64-bit
// FNV-1a of the identity, finalised with a mixer so that they are uniform
// and stable across processes (persisted state stays comparable).
type identitySet struct {
	exact map[uint64]struct{}
	hll   []uint8 // nil while exact
}

// hashIdentity hashes an identity string.
func hashIdentity(s string) uint64 {
	const (
		offset = 14695981039346656037
		prime  = 1099511628211
	)
	h := uint64(offset)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= prime
	}
	// splitmix64 finaliser: FNV's high bits alone are poorly mixed.
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}

// add records an identity hash.
func (s *identitySet) add(h uint64) {
	if s.hll != nil {
		hllAdd(s.hll, h)
		return
	}
	if s.exact == nil {
		s.exact = map[uint64]struct{}{}
	}
	if _, ok := s.exact[h]; ok {
		return
	}
	if len(s.exact) < exactIdentities {
		s.exact[h] = struct{}{}
		return
	}
	s.hll = make([]uint8, hllRegisters)
	for e := range s.exact {
		hllAdd(s.hll, e)
	}
	hllAdd(s.hll, h)
	s.exact = nil
}

// merge adds o into s.
func (s *identitySet) merge(o *identitySet) {
	if o.hll != nil {
		if s.hll == nil {
			s.hll = make([]uint8, hllRegisters)
			for e := range s.exact {
				hllAdd(s.hll, e)
			}
			s.exact = nil
		}
		for i, r := range o.hll {
			if r > s.hll[i] {
				s.hll[i] = r
			}
		}
		return
	}
	for e := range o.exact {
		s.add(e)
	}
}

// count returns the number of distinct identities and whether it is an
// estimate.
func (s *identitySet) count() (uint64, bool) {
	if s.hll == nil {
		return uint64(len(s.exact)), false
	}
	return hllEstimate(s.hll), true
}

// hashes returns the exact hashes, sorted (for persistence).
func (s *identitySet) hashes() []uint64 {
	if s.hll != nil || len(s.exact) == 0 {
		return nil
	}
	out := make([]uint64, 0, len(s.exact))
	for e := range s.exact {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func hllAdd(reg []uint8, h uint64) {
	idx := h >> (64 - hllPrecision)
	w := h<<hllPrecision | 1<<(hllPrecision-1) // a guard bit bounds rho
	rho := uint8(bits.LeadingZeros64(w) + 1)
	if rho > reg[idx] {
		reg[idx] = rho
	}
}

// hllEstimate is the HyperLogLog estimate with linear counting for small
// cardinalities; 64-bit hashes need no large-range correction.
func hllEstimate(reg []uint8) uint64 {
	m := float64(len(reg))
	alpha := 0.7213 / (1 + 1.079/m)
	sum, zeros := 0.0, 0
	for _, r := range reg {
		sum += math.Ldexp(1, -int(r))
		if r == 0 {
			zeros++
		}
	}
	e := alpha * m * m / sum
	if e <= 2.5*m && zeros > 0 {
		e = m * math.Log(m/float64(zeros))
	}
	return uint64(math.Round(e))
}

// stringSet is a set of strings bounded to max entries; later ones are
// dropped and counted.
type stringSet struct {
	m       map[string]struct{}
	dropped uint64
}

func (s *stringSet) add(v string, max int) {
	if v == "" {
		return
	}
	if _, ok := s.m[v]; ok {
		return
	}
	if len(s.m) >= max {
		s.dropped++
		return
	}
	if s.m == nil {
		s.m = map[string]struct{}{}
	}
	s.m[v] = struct{}{}
}

func (s *stringSet) has(v string) bool {
	_, ok := s.m[v]
	return ok
}

// sorted returns the members in order.
func (s *stringSet) sorted() []string {
	if len(s.m) == 0 {
		return nil
	}
	out := make([]string, 0, len(s.m))
	for v := range s.m {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}
