package event

import (
	"context"
	"sync"
	"testing"
	"time"
)

func TestBusDropsWhenFullAndNeverBlocks(t *testing.T) {
	b := NewBus(Options{Size: 4, Batch: 2, FlushInterval: time.Millisecond})
	for i := range 10 {
		b.Publish(Exchange{ID: string(rune('a' + i))})
	}
	if b.Published() != 4 || b.Dropped() != 6 {
		t.Fatalf("published %d dropped %d, want 4 and 6", b.Published(), b.Dropped())
	}
}

func TestBusDeliversEverythingAndDrainsOnClose(t *testing.T) {
	b := NewBus(Options{Size: 1000, Batch: 7, FlushInterval: time.Hour})
	var mu sync.Mutex
	var got []string
	b.Subscribe(func(_ context.Context, batch []Exchange) {
		mu.Lock()
		defer mu.Unlock()
		if len(batch) > 7 {
			t.Errorf("batch of %d, max 7", len(batch))
		}
		for _, e := range batch {
			got = append(got, e.ID)
		}
	})
	for i := range 100 {
		b.Publish(Exchange{ID: string(rune(0x100 + i))})
	}
	done := make(chan struct{})
	go func() { b.Run(context.Background()); close(done) }()
	b.Close()
	<-done
	if len(got) != 100 {
		t.Fatalf("delivered %d of 100", len(got))
	}
	for i, id := range got {
		if id != string(rune(0x100+i)) {
			t.Fatalf("event %d out of order", i)
		}
	}
}
