package shard

import (
	"math/rand/v2"
	"slices"
	"testing"
)

type item struct {
	key int64
	idx int
}

func newTestHeap() Heap[*item] {
	return NewHeap(func(e *item, i int) { e.idx = i })
}

// check verifies the heap order and every element's recorded index.
func check(t *testing.T, h *Heap[*item]) {
	t.Helper()
	for i, it := range h.items {
		if it.e.idx != i || it.key != it.e.key {
			t.Fatalf("element at %d records index %d, key %d (element's %d)", i, it.e.idx, it.key, it.e.key)
		}
		if p := (i - 1) / 2; i > 0 && h.items[p].key > it.key {
			t.Fatalf("heap order broken at %d", i)
		}
	}
}

func TestHeap(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	h := newTestHeap()
	var live []*item
	for range 2000 {
		switch op := r.IntN(4); {
		case op <= 1 || len(live) == 0:
			e := &item{key: r.Int64N(1000)}
			h.Push(e, e.key)
			live = append(live, e)
		case op == 2:
			e := live[r.IntN(len(live))]
			e.key = r.Int64N(1000) // up or down
			h.Fix(e.idx, e.key)
		default:
			i := r.IntN(len(live))
			h.Remove(live[i].idx)
			live = slices.Delete(live, i, i+1)
		}
		check(t, &h)
		if h.Len() != len(live) {
			t.Fatalf("Len %d, want %d", h.Len(), len(live))
		}
	}
	// Draining by Min gives the keys in order.
	var got []int64
	for h.Len() > 0 {
		_, k := h.Min()
		got = append(got, k)
		h.Remove(0)
	}
	if !slices.IsSorted(got) {
		t.Fatalf("drained out of order: %v", got)
	}
}

func TestSet(t *testing.T) {
	s := NewSet(0, 10_000, func(c int) []int { return make([]int, 0, c) })
	total := 0
	for _, sh := range s.Shards {
		total += cap(sh)
	}
	if total != 10_000 || len(s.Shards) != len(Capacities(10_000)) {
		t.Fatalf("%d shards holding %d, want the default 10,000", len(s.Shards), total)
	}
	for h := range uint64(1000) {
		if p := s.At(h); p != &s.Shards[h%uint64(len(s.Shards))] {
			t.Fatalf("hash %d picks the wrong shard", h)
		}
	}
}
