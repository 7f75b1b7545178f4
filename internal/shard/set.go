package shard

import "hash/maphash"

// Set is the shards of one store, picked by a seeded hash of the key: a
// random seed per store, so that keys cannot be crafted to pile into one
// shard.
type Set[S any] struct {
	Shards []S
	Seed   maphash.Seed
	mask   uint64
}

// NewSet lays out a store bounded at maxKeys (def when maxKeys is not
// positive) over Capacities, making each shard with mk.
func NewSet[S any](maxKeys, def int, mk func(cap int) S) Set[S] {
	if maxKeys <= 0 {
		maxKeys = def
	}
	caps := Capacities(maxKeys)
	s := Set[S]{Shards: make([]S, len(caps)), Seed: maphash.MakeSeed(), mask: uint64(len(caps) - 1)}
	for i, c := range caps {
		s.Shards[i] = mk(c)
	}
	return s
}

// At is the shard of a key whose hash under Seed is h.
func (s *Set[S]) At(h uint64) *S { return &s.Shards[h&s.mask] }
