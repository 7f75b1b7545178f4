// Package shard is the common frame of the lock-striped, bounded
// in-memory stores of the abuse protections (rate limits, quotas,
// brute-force counters): how many shards and how many keys each may hold
// (Capacities), the shards of one store picked by a seeded hash (Set),
// and the indexed min-heap each shard evicts by (Heap).
package shard

const (
	// MaxShards caps lock striping: 64 mutexes keep contention negligible
	// on any realistic core count.
	MaxShards = 64
	// MinKeys is the smallest per-shard capacity worth splitting for:
	// small stores use fewer shards rather than many tiny ones, so that
	// each shard's eviction order stays meaningful.
	MinKeys = 64
)

// Capacities returns the capacity of each shard for a store bounded at
// maxKeys (at least 1): a power-of-two number of shards, so a hash picks
// one with a mask, at most MaxShards, each holding at least MinKeys when
// maxKeys allows, the remainder spread over the first shards.
func Capacities(maxKeys int) []int {
	maxKeys = max(maxKeys, 1)
	n := MaxShards
	for n > 1 && maxKeys/n < MinKeys {
		n /= 2
	}
	caps := make([]int, n)
	for i := range caps {
		caps[i] = maxKeys / n
		if i < maxKeys%n {
			caps[i]++
		}
	}
	return caps
}
