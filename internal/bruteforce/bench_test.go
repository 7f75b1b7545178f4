package bruteforce

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// benchGuard returns a Guard over st with some failures recorded, so that
// Check reads real state for both subjects.
func benchGuard(b *testing.B, st Store) *Guard {
	b.Helper()
	g, err := New(st, Options{MaxFailures: 5, Window: time.Minute, Delay: 100 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for i := range 3 {
		if _, _, err := g.Failure(ctx, "user", fmt.Sprintf("client%d", i)); err != nil {
			b.Fatal(err)
		}
	}
	return g
}

func BenchmarkLocalCheck(b *testing.B) {
	g := benchGuard(b, NewLocal(LocalOptions{}))
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := g.Check(ctx, "user", "client1"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkLocalFailure(b *testing.B) {
	st := NewLocal(LocalOptions{MaxKeys: 100_000})
	g := benchGuard(b, st)
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if _, _, err := g.Failure(ctx, fmt.Sprintf("u%d", i%50_000), "client"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRedisCheck(b *testing.B) {
	c := redisClient(b)
	g := benchGuard(b, NewRedis(c, testPrefix(b, c)))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := g.Check(ctx, "user", "client1"); err != nil {
			b.Fatal(err)
		}
	}
}
