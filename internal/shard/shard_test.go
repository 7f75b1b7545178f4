package shard

import "testing"

func TestCapacities(t *testing.T) {
	for _, tt := range []struct{ max, shards int }{
		{1, 1}, {63, 1}, {128, 2}, {1000, 8}, {4095, 32}, {4096, 64}, {1_000_000, 64}, {0, 1}, {-5, 1},
	} {
		caps := Capacities(tt.max)
		sum := 0
		for _, c := range caps {
			sum += c
		}
		if len(caps) != tt.shards || sum != max(tt.max, 1) || len(caps)&(len(caps)-1) != 0 {
			t.Errorf("Capacities(%d): %d shards summing to %d, want %d shards summing to %d", tt.max, len(caps), sum, tt.shards, max(tt.max, 1))
		}
	}
}
