package throttle

import (
	"context"
	"errors"
	"testing"
	"time"
)

// FuzzLimiterOps interprets data as a limiter configuration followed by a
// sequence of operations, and checks the invariants after every step:
// InFlight matches the Tokens held and never exceeds MaxConcurrency, a
// fresh grant never exceeds the limit, the limit stays within [min, max],
// and stale Releases change nothing.
//
// Layout: data[0] MaxConcurrency-1 (mod 16), data[1] MinConcurrency-1 (mod
// max), data[2] mode bits (1 adaptive, 2 TargetLatency = (mode>>2+1) ms),
// then pairs of (op, arg).
func FuzzLimiterOps(f *testing.F) {
	f.Add([]byte{3, 0, 1, 0, 0, 0, 0, 1, 5, 0, 0, 2, 0, 4, 10, 5, 0})
	f.Add([]byte{15, 1, 3, 0, 0, 0, 0, 0, 0, 0, 0, 4, 200, 1, 200, 1, 200, 3, 0, 5, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 3 {
			return
		}
		maxC := int(data[0]%16) + 1
		minC := int(data[1])%maxC + 1
		mode := data[2]
		clk := newFakeClock()
		o := Options{MaxConcurrency: maxC, MinConcurrency: minC, Adaptive: mode&1 != 0, Now: clk.Now}
		if mode&2 != 0 {
			o.TargetLatency = time.Duration(mode>>2+1) * time.Millisecond
		}
		l := mustNew(t, o)
		ctx := context.Background()
		var held, released []Token
		check := func(step int) {
			s := l.Stats()
			switch {
			case s.InFlight != len(held):
				t.Fatalf("step %d: InFlight %d, holding %d", step, s.InFlight, len(held))
			case s.InFlight > maxC:
				t.Fatalf("step %d: InFlight %d > MaxConcurrency %d", step, s.InFlight, maxC)
			case s.Limit < l.minConc || s.Limit > maxC:
				t.Fatalf("step %d: limit %d outside [%d, %d]", step, s.Limit, l.minConc, maxC)
			case l.limit < float64(l.minConc) || l.limit > float64(maxC):
				t.Fatalf("step %d: float limit %v outside [%d, %d]", step, l.limit, l.minConc, maxC)
			case s.Queued != 0:
				t.Fatalf("step %d: Queued %d without a queue", step, s.Queued)
			}
		}
		ops := data[3:]
		for i := 0; i+1 < len(ops); i += 2 {
			op, arg := ops[i]%6, ops[i+1]
			switch op {
			case 0: // acquire; no queue, so it never blocks
				before := l.Stats()
				tok, err := l.Acquire(ctx)
				if err != nil {
					if !errors.Is(err, ErrQueueFull) {
						t.Fatalf("Acquire: %v", err)
					}
					if before.InFlight < before.Limit {
						t.Fatalf("shed with %d in flight below limit %d", before.InFlight, before.Limit)
					}
					break
				}
				held = append(held, tok)
				if s := l.Stats(); s.InFlight > s.Limit {
					t.Fatalf("granted to %d in flight over limit %d", s.InFlight, s.Limit)
				}
			case 1, 2, 3: // release with Success, Failure, Ignore
				if len(held) == 0 {
					break
				}
				k := int(arg) % len(held)
				tok := held[k]
				held = append(held[:k], held[k+1:]...)
				tok.Release(time.Duration(arg)*time.Millisecond, Outcome(op-1))
				released = append(released, tok)
			case 4: // time passes
				clk.Advance(time.Duration(arg) * time.Millisecond)
			case 5: // stale release of an already released Token
				if len(released) == 0 {
					break
				}
				before := l.Stats()
				released[int(arg)%len(released)].Release(time.Duration(arg)*time.Millisecond, Failure)
				if after := l.Stats(); after != before {
					t.Fatalf("stale Release changed stats: %+v → %+v", before, after)
				}
			}
			check(i)
		}
		for i := range held {
			held[i].Release(0, Ignore)
		}
		if s := l.Stats(); s.InFlight != 0 {
			t.Fatalf("InFlight %d after releasing everything", s.InFlight)
		}
	})
}
