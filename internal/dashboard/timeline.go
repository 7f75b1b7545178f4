package dashboard

import (
	"sort"
	"sync"
	"time"

	"github.com/bulwarkapi/bulwark/internal/event"
)

// Bounds of the timeline's per-bucket data: reasons come from the
// gateway's stages (a few dozen exist), but a bucket must not grow without
// limit whatever arrives.
const (
	maxReasonsPerBucket = 64
	maxReasonLen        = 80
	// reasonOther collects the reasons beyond maxReasonsPerBucket.
	reasonOther = "other"
	// reasonUnknown stands for a blocked exchange that carried no reason.
	reasonUnknown = "unknown"
)

// Default timeline shape: 10-second buckets, one hour kept.
const (
	DefaultBucket = 10 * time.Second
	DefaultKeep   = 360
)

// Timeline is an in-memory ring of fixed time buckets counting requests,
// passed and blocked exchanges, and blocks by reason ("stage:reason").
// Add is called from the event bus goroutine; reads may run concurrently
// from any goroutine. The zero value is not usable: call NewTimeline.
type Timeline struct {
	bucket time.Duration
	now    func() time.Time

	mu sync.RWMutex
	// ring holds len(ring) buckets; the bucket with index i (time /
	// bucket) lives at ring[i mod len(ring)] while it is recent.
	ring []tlBucket
	// head is the index of the newest bucket (now at the latest Add;
	// -1: none yet); older than head-len(ring) is out of the window.
	head int64
}

type tlBucket struct {
	idx                       int64
	requests, passed, blocked uint64
	reasons                   map[string]uint64
}

// Bucket is one interval of a Timeline snapshot.
type Bucket struct {
	Start    time.Time
	Requests uint64
	Passed   uint64
	Blocked  uint64
	// Reasons counts blocked exchanges by reason; an exchange with several
	// reasons counts once under each.
	Reasons map[string]uint64
}

// NewTimeline returns a timeline of keep buckets of the given width.
// Non-positive arguments take the defaults (10 s, 360 buckets).
func NewTimeline(bucket time.Duration, keep int) *Timeline {
	if bucket <= 0 {
		bucket = DefaultBucket
	}
	if keep <= 0 {
		keep = DefaultKeep
	}
	t := &Timeline{bucket: bucket, now: time.Now, ring: make([]tlBucket, keep), head: -1}
	for i := range t.ring {
		t.ring[i].idx = -1
	}
	return t
}

// BucketWidth returns the width of one bucket.
func (t *Timeline) BucketWidth() time.Duration { return t.bucket }

// index is the bucket index of a time.
func (t *Timeline) index(at time.Time) int64 {
	n := at.UnixNano()
	i := n / int64(t.bucket)
	if n < 0 && n%int64(t.bucket) != 0 {
		i--
	}
	return i
}

// Add counts a batch of exchanges in the buckets of their times. An
// exchange without a time counts now; one older than the window is
// dropped; one from the future (a skewed clock) counts now, so that it
// cannot wipe the window.
func (t *Timeline) Add(batch []event.Exchange) {
	if t == nil || len(batch) == 0 {
		return
	}
	nowIdx := t.index(t.now())
	keep := int64(len(t.ring))
	t.mu.Lock()
	defer t.mu.Unlock()
	if nowIdx > t.head {
		t.head = nowIdx
	}
	for i := range batch {
		ev := &batch[i]
		idx := nowIdx
		if !ev.Time.IsZero() {
			if j := t.index(ev.Time); j < nowIdx {
				idx = j
			}
		}
		if idx <= t.head-keep {
			continue
		}
		b := &t.ring[mod(idx, keep)]
		if b.idx != idx {
			*b = tlBucket{idx: idx}
		}
		b.requests++
		if !ev.Blocked {
			b.passed++
			continue
		}
		b.blocked++
		if len(ev.Reasons) == 0 {
			b.addReason(reasonUnknown)
		}
		for _, r := range ev.Reasons {
			b.addReason(r)
		}
	}
}

func (b *tlBucket) addReason(r string) {
	if r == "" {
		r = reasonUnknown
	}
	if len(r) > maxReasonLen {
		r = r[:maxReasonLen]
	}
	if b.reasons == nil {
		b.reasons = map[string]uint64{}
	}
	if _, ok := b.reasons[r]; !ok && len(b.reasons) >= maxReasonsPerBucket {
		r = reasonOther
	}
	b.reasons[r]++
}

func mod(a, n int64) int64 {
	m := a % n
	if m < 0 {
		m += n
	}
	return m
}

// Snapshot returns the window ending with the bucket that holds now,
// oldest first, one Bucket per interval (empty intervals included).
func (t *Timeline) Snapshot(now time.Time) []Bucket {
	if t == nil {
		return nil
	}
	keep := int64(len(t.ring))
	last := t.index(now)
	out := make([]Bucket, keep)
	t.mu.RLock()
	defer t.mu.RUnlock()
	for k := range out {
		idx := last - keep + 1 + int64(k)
		out[k].Start = time.Unix(0, idx*int64(t.bucket)).UTC()
		b := &t.ring[mod(idx, keep)]
		if b.idx != idx {
			continue
		}
		out[k].Requests, out[k].Passed, out[k].Blocked = b.requests, b.passed, b.blocked
		if len(b.reasons) > 0 {
			out[k].Reasons = make(map[string]uint64, len(b.reasons))
			for r, n := range b.reasons {
				out[k].Reasons[r] = n
			}
		}
	}
	return out
}

// reasonCount is a reason and how often it blocked.
type reasonCount struct {
	Reason string
	Count  uint64
	Share  float64 // of all blocks, 0..100
}

// windowTotals sums a snapshot: requests, blocked, and the reasons,
// most frequent first.
func windowTotals(bs []Bucket) (requests, blocked uint64, reasons []reasonCount) {
	byReason := map[string]uint64{}
	var reasonSum uint64
	for _, b := range bs {
		requests += b.Requests
		blocked += b.Blocked
		for r, n := range b.Reasons {
			byReason[r] += n
			reasonSum += n
		}
	}
	for r, n := range byReason {
		rc := reasonCount{Reason: r, Count: n}
		if reasonSum > 0 {
			rc.Share = 100 * float64(n) / float64(reasonSum)
		}
		reasons = append(reasons, rc)
	}
	sort.Slice(reasons, func(i, j int) bool {
		if reasons[i].Count != reasons[j].Count {
			return reasons[i].Count > reasons[j].Count
		}
		return reasons[i].Reason < reasons[j].Reason
	})
	return requests, blocked, reasons
}
