// Package ratelog keeps a recurring failure (a dependency down, a stream
// of bad messages) from flooding the log: one line at most per interval,
// carrying how many occurrences it stands for.
package ratelog

import (
	"sync"
	"time"
)

// Every lets a line through at most once per Interval. The zero value
// with an Interval set is ready; it is safe for concurrent use.
type Every struct {
	Interval time.Duration

	mu   sync.Mutex
	last time.Time
	held uint64
}

// Tick records n occurrences at now. When a line is due (the first
// occurrence, or Interval after the last line) it returns the occurrences
// since the last line, these n included, and true.
func (e *Every) Tick(now time.Time, n uint64) (uint64, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.held += n
	if !e.last.IsZero() && now.Sub(e.last) < e.Interval {
		return 0, false
	}
	total := e.held
	e.last, e.held = now, 0
	return total, true
}
