package dashboard

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulwarkapi/bulwark/internal/event"
)

func newTestTimeline(bucket time.Duration, keep int, clock *time.Time) *Timeline {
	t := NewTimeline(bucket, keep)
	t.now = func() time.Time { return *clock }
	return t
}

func TestTimelineBucketing(t *testing.T) {
	clock := now
	ev := func(offset time.Duration, blocked bool, reasons ...string) event.Exchange {
		return event.Exchange{Time: now.Add(offset), Blocked: blocked, Reasons: reasons}
	}
	tests := []struct {
		name   string
		events []event.Exchange
		// want maps a bucket's position from the end (0 = the newest) to
		// requests/passed/blocked and reasons.
		want map[int]string
	}{
		{
			name:   "same bucket",
			events: []event.Exchange{ev(0, false), ev(time.Second, false), ev(9*time.Second, true, "waf:sqli")},
			want:   map[int]string{0: "3/2/1 waf:sqli=1"},
		},
		{
			name:   "bucket edges",
			events: []event.Exchange{ev(-time.Nanosecond, false), ev(-10*time.Second, false), ev(-10*time.Second-time.Nanosecond, false)},
			want:   map[int]string{1: "2/2/0", 2: "1/1/0"},
		},
		{
			name:   "several reasons and none",
			events: []event.Exchange{ev(0, true, "authn:missing", "ratelimit:rate_limited"), ev(0, true)},
			want:   map[int]string{0: "2/0/2 authn:missing=1 ratelimit:rate_limited=1 unknown=1"},
		},
		{
			name:   "too old is dropped",
			events: []event.Exchange{ev(-51*time.Second, false), ev(-50*time.Second, false)},
			want:   map[int]string{5: "1/1/0"},
		},
		{
			name:   "future and zero times count now",
			events: []event.Exchange{ev(time.Hour, false), {}},
			want:   map[int]string{0: "2/2/0"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tl := newTestTimeline(10*time.Second, 6, &clock)
			tl.Add(tt.events)
			snap := tl.Snapshot(clock)
			if len(snap) != 6 {
				t.Fatalf("%d buckets", len(snap))
			}
			for i := 1; i < len(snap); i++ {
				if snap[i].Start.Sub(snap[i-1].Start) != 10*time.Second {
					t.Fatalf("buckets not contiguous: %v", snap)
				}
			}
			if !snap[5].Start.Equal(now) {
				t.Errorf("newest bucket starts %v, want %v", snap[5].Start, now)
			}
			for pos := range snap {
				got := describe(snap[len(snap)-1-pos])
				want := tt.want[pos]
				if want == "" {
					want = "0/0/0"
				}
				if got != want {
					t.Errorf("bucket -%d: %s, want %s", pos, got, want)
				}
			}
		})
	}
}

func describe(b Bucket) string {
	s := fmt.Sprintf("%d/%d/%d", b.Requests, b.Passed, b.Blocked)
	var rs []string
	for r, n := range b.Reasons {
		rs = append(rs, fmt.Sprintf("%s=%d", r, n))
	}
	sortStrings(rs)
	if len(rs) > 0 {
		s += " " + strings.Join(rs, " ")
	}
	return s
}

func sortStrings(xs []string) {
	for i := 1; i < len(xs); i++ {
		for j := i; j > 0 && xs[j] < xs[j-1]; j-- {
			xs[j], xs[j-1] = xs[j-1], xs[j]
		}
	}
}

func TestTimelineRingWraps(t *testing.T) {
	clock := now
	tl := newTestTimeline(time.Second, 4, &clock)
	tl.Add([]event.Exchange{{Time: clock}})
	// Ten seconds later the old bucket's slot is reused and must not
	// show its old count.
	clock = now.Add(10 * time.Second)
	tl.Add([]event.Exchange{{Time: clock}, {Time: clock}})
	var total uint64
	for _, b := range tl.Snapshot(clock) {
		total += b.Requests
	}
	if total != 2 {
		t.Errorf("after wrapping: %d requests in the window, want 2", total)
	}
	// A snapshot taken later than the last event shows empty buckets.
	for _, b := range tl.Snapshot(clock.Add(time.Minute)) {
		if b.Requests != 0 {
			t.Errorf("stale bucket %v in a later window", b)
		}
	}
}

func TestTimelineReasonsBounded(t *testing.T) {
	clock := now
	tl := newTestTimeline(time.Second, 2, &clock)
	var evs []event.Exchange
	for i := range maxReasonsPerBucket + 50 {
		evs = append(evs, event.Exchange{Time: clock, Blocked: true, Reasons: []string{fmt.Sprintf("stage:reason-%d", i), strings.Repeat("x", 500)}})
	}
	tl.Add(evs)
	b := tl.Snapshot(clock)[1]
	if len(b.Reasons) > maxReasonsPerBucket+1 {
		t.Fatalf("%d reasons kept", len(b.Reasons))
	}
	if b.Reasons[reasonOther] == 0 {
		t.Errorf("no overflow into %q", reasonOther)
	}
	for r := range b.Reasons {
		if len(r) > maxReasonLen {
			t.Errorf("reason of %d bytes kept", len(r))
		}
	}
}

func TestTimelineConcurrent(t *testing.T) {
	tl := NewTimeline(time.Millisecond, 100)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := range 200 {
			tl.Add([]event.Exchange{{Time: time.Now(), Blocked: i%2 == 0, Reasons: []string{"waf:x"}}})
		}
	}()
	go func() {
		defer wg.Done()
		for range 200 {
			trafficCharts(tl.Snapshot(time.Now()), tl.BucketWidth())
		}
	}()
	wg.Wait()
	var nilTL *Timeline
	nilTL.Add([]event.Exchange{{}})
	if nilTL.Snapshot(now) != nil {
		t.Error("nil timeline snapshot")
	}
}

func TestWindowTotalsAndCharts(t *testing.T) {
	clock := now
	tl := newTestTimeline(10*time.Second, 360, &clock)
	tl.Add(timelineTraffic())
	bs := tl.Snapshot(clock)
	req, blocked, reasons := windowTotals(bs)
	if req != 900 || blocked != 225 {
		t.Fatalf("totals %d/%d, want 900/225", req, blocked)
	}
	if reasons[0].Reason != "ratelimit:rate_limited" && reasons[0].Reason != "waf:sql_injection" {
		t.Errorf("top reason %v", reasons[0])
	}
	traffic, blocks := trafficCharts(bs, tl.BucketWidth())
	if len(traffic.XTicks) == 0 || len(traffic.YTicks) < 2 || len(traffic.Legend) != 2 || traffic.Empty {
		t.Errorf("traffic chart axes/legend: %+v", traffic.Legend)
	}
	if len(blocks.Legend) != 3 {
		t.Errorf("blocks legend %v", blocks.Legend)
	}
	// 360 buckets of 10 s are drawn as 120 bars of 30 s.
	cols := map[float64]bool{}
	for _, b := range traffic.Bars {
		cols[b.X] = true
		if b.Y < traffic.PlotY-0.01 || b.Y+b.H > traffic.PlotB+0.01 || b.H <= 0 {
			t.Fatalf("bar outside the plot: %+v", b)
		}
	}
	if len(cols) > maxColumns {
		t.Errorf("%d columns drawn", len(cols))
	}
	if !strings.Contains(traffic.XLabel, "30s") {
		t.Errorf("x label %q", traffic.XLabel)
	}
}

func TestNiceMaxAndCompact(t *testing.T) {
	for _, tt := range []struct{ in, want uint64 }{{0, 1}, {1, 1}, {2, 2}, {3, 5}, {7, 10}, {11, 20}, {100, 100}, {101, 200}, {4999, 5000}} {
		if got := niceMax(tt.in); got != tt.want {
			t.Errorf("niceMax(%d) = %d, want %d", tt.in, got, tt.want)
		}
	}
	for _, tt := range []struct {
		in   uint64
		want string
	}{{0, "0"}, {999, "999"}, {1500, "1.5k"}, {25_000, "25k"}, {2_500_000, "2.5M"}, {30_000_000, "30M"}} {
		if got := compact(tt.in); got != tt.want {
			t.Errorf("compact(%d) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestYAxisTicksAreWhole(t *testing.T) {
	for _, max := range []uint64{0, 1, 2, 3, 7, 12, 45, 99, 180, 499, 5000, 123456} {
		c := newChart("t", "t")
		c.yAxis(max)
		if len(c.YTicks) < 2 {
			t.Fatalf("max %d: %d ticks", max, len(c.YTicks))
		}
		top := niceMax(max)
		step := top / uint64(len(c.YTicks)-1)
		for i, tk := range c.YTicks {
			if tk.Label != compact(step*uint64(i)) {
				t.Errorf("max %d: tick %d is %q, want %q", max, i, tk.Label, compact(step*uint64(i)))
			}
		}
	}
}
