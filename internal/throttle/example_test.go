package throttle_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bulwarkapi/bulwark/internal/throttle"
)

func Example() {
	l, err := throttle.New(throttle.Options{
		MaxConcurrency: 2,
		QueueSize:      0, // shed at once when both slots are taken
		Adaptive:       true,
		TargetLatency:  200 * time.Millisecond,
	})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()

	a, _ := l.Acquire(ctx)
	b, _ := l.Acquire(ctx)
	if _, err := l.Acquire(ctx); errors.Is(err, throttle.ErrQueueFull) {
		fmt.Println("shed: answer 503 with Retry-After")
	}

	start := time.Now()
	// ... call the upstream ...
	a.Release(time.Since(start), throttle.Success)
	b.Release(0, throttle.Ignore) // the client went away
	b.Release(0, throttle.Ignore) // a second Release is a no-op

	s := l.Stats()
	fmt.Println("in flight:", s.InFlight, "shed:", s.Shed())
	// Output:
	// shed: answer 503 with Retry-After
	// in flight: 0 shed: 1
}
