package shard

// Heap is an indexed min-heap: each element learns its position through
// setIdx whenever it moves, so that it can be fixed or removed in
// O(log n). The stores use it for their eviction orders (TAT, window end,
// count, expiry). Keys are held in the heap itself, next to their
// elements, so that ordering never calls out. Not safe for concurrent
// use: its shard's lock guards it.
type Heap[E any] struct {
	items  []heapItem[E]
	setIdx func(E, int)
}

type heapItem[E any] struct {
	key int64
	e   E
}

// NewHeap returns an empty heap; setIdx records an element's position.
func NewHeap[E any](setIdx func(E, int)) Heap[E] {
	return Heap[E]{setIdx: setIdx}
}

// Len is the number of elements.
func (h *Heap[E]) Len() int { return len(h.items) }

// Min is the element with the smallest key and that key; the heap must
// not be empty.
func (h *Heap[E]) Min() (E, int64) { return h.items[0].e, h.items[0].key }

// Push adds e under key.
func (h *Heap[E]) Push(e E, key int64) {
	h.items = append(h.items, heapItem[E]{key, e})
	h.setIdx(e, len(h.items)-1)
	h.up(len(h.items) - 1)
}

// Remove removes the element at position i.
func (h *Heap[E]) Remove(i int) {
	last := len(h.items) - 1
	if i != last {
		h.swap(i, last)
	}
	h.items[last] = heapItem[E]{}
	h.items = h.items[:last]
	if i != last && !h.up(i) {
		h.down(i)
	}
}

// Fix gives the element at position i a new key and restores the order.
func (h *Heap[E]) Fix(i int, key int64) {
	h.items[i].key = key
	if !h.up(i) {
		h.down(i)
	}
}

func (h *Heap[E]) swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.setIdx(h.items[i].e, i)
	h.setIdx(h.items[j].e, j)
}

// up moves the element at i towards the root and reports whether it moved.
func (h *Heap[E]) up(i int) bool {
	moved := false
	for i > 0 {
		p := (i - 1) / 2
		if h.items[i].key >= h.items[p].key {
			break
		}
		h.swap(i, p)
		i = p
		moved = true
	}
	return moved
}

func (h *Heap[E]) down(i int) {
	n := len(h.items)
	for {
		c := 2*i + 1
		if c >= n {
			return
		}
		if r := c + 1; r < n && h.items[r].key < h.items[c].key {
			c = r
		}
		if h.items[c].key >= h.items[i].key {
			return
		}
		h.swap(i, c)
		i = c
	}
}
