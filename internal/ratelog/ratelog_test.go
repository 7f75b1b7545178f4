package ratelog

import (
	"sync"
	"testing"
	"time"
)

func TestEvery(t *testing.T) {
	e := Every{Interval: 10 * time.Second}
	t0 := time.Unix(1_000_000, 0)
	steps := []struct {
		at       time.Duration
		n        uint64
		want     uint64
		wantLine bool
	}{
		{0, 3, 3, true},                // the first occurrence is logged
		{time.Second, 2, 0, false},     // held back
		{9 * time.Second, 1, 0, false}, // still within the interval
		{10 * time.Second, 4, 7, true}, // due: everything since the last line
		{25 * time.Second, 1, 1, true}, // a quiet spell: the next one at once
		{26 * time.Second, 0, 0, false},
	}
	for i, s := range steps {
		got, line := e.Tick(t0.Add(s.at), s.n)
		if got != s.want || line != s.wantLine {
			t.Fatalf("step %d: Tick = %d, %v; want %d, %v", i, got, line, s.want, s.wantLine)
		}
	}
}

func TestEveryConcurrent(t *testing.T) {
	e := Every{Interval: time.Hour}
	now := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	lines, counted := 0, uint64(0)
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				if n, ok := e.Tick(now, 1); ok {
					mu.Lock()
					lines++
					counted += n
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if lines != 1 || counted != 1 {
		t.Fatalf("%d lines counting %d, want one line for the first occurrence", lines, counted)
	}
	if n, ok := e.Tick(now.Add(time.Hour), 0); !ok || n != 7999 {
		t.Fatalf("after the interval: %d %v, want the 7,999 held back", n, ok)
	}
}
