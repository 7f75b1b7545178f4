package dashboard

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"
)

// Chart geometry (SVG user units; the SVG scales to its container).
const (
	chartW       = 760
	chartH       = 240
	chartLeft    = 56
	chartRight   = 12
	chartTop     = 12
	chartBottom  = 40
	maxColumns   = 120 // timeline buckets are merged down to this many bars
	maxTopSeries = 6   // block reasons drawn separately; the rest are "other"
	maxStatusBar = 24  // status codes drawn in a histogram
)

// chart is a bar chart (stacked or not) ready for the "chart" template:
// every coordinate is computed here, the template only writes elements.
type chart struct {
	ID, Title, Desc string
	Width, Height   int
	// PlotX..PlotB bound the plot area: left, top, right, bottom.
	PlotX, PlotY, PlotR, PlotB float64
	Bars                       []chartBar
	YTicks                     []chartTick
	XTicks                     []chartTick
	Legend                     []legendItem
	XLabel, YLabel             string
	Empty                      bool
}

type chartBar struct {
	X, Y, W, H float64
	Class      string
	Tip        string
}

type chartTick struct {
	Pos   float64
	Label string
}

type legendItem struct {
	Class, Label string
}

// series is one stacked layer of a time chart.
type series struct {
	Name, Class string
	Values      []uint64 // one per column
}

func newChart(id, title string) chart {
	return chart{
		ID: id, Title: title, Width: chartW, Height: chartH,
		PlotX: chartLeft, PlotY: chartTop, PlotR: chartW - chartRight, PlotB: chartH - chartBottom,
	}
}

// niceMax rounds v up to 1, 2 or 5 times a power of ten (at least 1).
func niceMax(v uint64) uint64 {
	if v <= 1 {
		return 1
	}
	p := uint64(1)
	for p*10 < v && p < math.MaxUint64/10 {
		p *= 10
	}
	for _, m := range []uint64{1, 2, 5, 10} {
		if p*m >= v {
			return p * m
		}
	}
	return v
}

// compact formats a count briefly: 950, 1.2k, 3.4M.
func compact(v uint64) string {
	switch {
	case v >= 10_000_000:
		return strconv.FormatUint(v/1_000_000, 10) + "M"
	case v >= 1_000_000:
		return strconv.FormatFloat(float64(v)/1e6, 'f', 1, 64) + "M"
	case v >= 10_000:
		return strconv.FormatUint(v/1000, 10) + "k"
	case v >= 1000:
		return strconv.FormatFloat(float64(v)/1e3, 'f', 1, 64) + "k"
	}
	return strconv.FormatUint(v, 10)
}

// yAxis sets the y ticks for a maximum and returns the scale (units per
// count). The top is a nice number and the ticks divide it into whole
// steps: 4 for 20 or 100, 5 for 50 or 10, 2 for 2.
func (c *chart) yAxis(max uint64) float64 {
	top := niceMax(max)
	h := c.PlotB - c.PlotY
	div := uint64(1)
	for _, n := range []uint64{4, 5, 2} {
		if top%n == 0 {
			div = n
			break
		}
	}
	for i := uint64(0); i <= div; i++ {
		v := top / div * i
		c.YTicks = append(c.YTicks, chartTick{Pos: c.PlotB - h*float64(v)/float64(top), Label: compact(v)})
	}
	return h / float64(top)
}

// columns merges timeline buckets into at most maxColumns groups of equal
// size, returning the group size.
func columns(n int) int {
	if n <= maxColumns {
		return 1
	}
	return (n + maxColumns - 1) / maxColumns
}

// timeChart builds a stacked bar chart over time: starts[i] is the start
// of column i, each column step wide.
func timeChart(id, title, unit string, starts []time.Time, step time.Duration, layers []series) chart {
	c := newChart(id, title)
	n := len(starts)
	c.XLabel = fmt.Sprintf("time (UTC), one bar = %s", step)
	c.YLabel = unit
	for _, l := range layers {
		c.Legend = append(c.Legend, legendItem{Class: l.Class, Label: l.Name})
	}
	var max, total uint64
	for i := 0; i < n; i++ {
		var sum uint64
		for _, l := range layers {
			sum += l.Values[i]
		}
		total += sum
		if sum > max {
			max = sum
		}
	}
	c.Empty = total == 0
	scale := c.yAxis(max)
	if n == 0 {
		return c
	}
	slot := (c.PlotR - c.PlotX) / float64(n)
	gap := math.Min(1, slot*0.15)
	for i := 0; i < n; i++ {
		y := c.PlotB
		x := c.PlotX + float64(i)*slot
		span := starts[i].Format("15:04:05") + "–" + starts[i].Add(step).Format("15:04:05") + " UTC"
		for _, l := range layers {
			v := l.Values[i]
			if v == 0 {
				continue
			}
			h := float64(v) * scale
			y -= h
			c.Bars = append(c.Bars, chartBar{X: x + gap/2, Y: y, W: slot - gap, H: h, Class: l.Class,
				Tip: fmt.Sprintf("%s: %d %s", span, v, l.Name)})
		}
	}
	// About six time labels, on round columns.
	every := max1(n / 6)
	for i := 0; i < n; i += every {
		c.XTicks = append(c.XTicks, chartTick{Pos: c.PlotX + float64(i)*slot, Label: starts[i].Format("15:04")})
	}
	c.Desc = fmt.Sprintf("%s from %s to %s UTC: %d in total, at most %d per bar.", title,
		starts[0].Format("15:04"), starts[n-1].Add(step).Format("15:04"), total, max)
	return c
}

func max1(v int) int {
	if v < 1 {
		return 1
	}
	return v
}

// trafficCharts builds the traffic chart (passed and blocked) and the
// blocks-by-reason chart from a timeline snapshot.
func trafficCharts(bs []Bucket, width time.Duration) (traffic, blocks chart) {
	g := columns(len(bs))
	step := width * time.Duration(g)
	var starts []time.Time
	passed := series{Name: "passed", Class: "s-pass"}
	blocked := series{Name: "blocked", Class: "s-block"}
	reasonTotals := map[string]uint64{}
	for _, b := range bs {
		for r, v := range b.Reasons {
			reasonTotals[r] += v
		}
	}
	top := topReasons(reasonTotals)
	layers := make([]series, len(top))
	for i, r := range top {
		layers[i] = series{Name: r, Class: fmt.Sprintf("s-r%d", i)}
	}
	other := series{Name: reasonOther, Class: "s-other"}
	for i := 0; i < len(bs); i += g {
		starts = append(starts, bs[i].Start)
		var p, bl, o uint64
		vals := make([]uint64, len(top))
		for _, b := range bs[i:min(i+g, len(bs))] {
			p += b.Passed
			bl += b.Blocked
			for r, v := range b.Reasons {
				if k := indexOf(top, r); k >= 0 {
					vals[k] += v
				} else {
					o += v
				}
			}
		}
		passed.Values = append(passed.Values, p)
		blocked.Values = append(blocked.Values, bl)
		for k := range layers {
			layers[k].Values = append(layers[k].Values, vals[k])
		}
		other.Values = append(other.Values, o)
	}
	if sumOf(other.Values) > 0 {
		layers = append(layers, other)
	}
	traffic = timeChart("traffic", "Requests over time", "requests", starts, step, []series{passed, blocked})
	blocks = timeChart("blocks", "Blocked requests by reason", "blocks", starts, step, layers)
	return traffic, blocks
}

// topReasons returns the maxTopSeries most frequent reasons (the "other"
// bucket of the timeline is left to the other layer).
func topReasons(totals map[string]uint64) []string {
	rs := make([]string, 0, len(totals))
	for r := range totals {
		if r != reasonOther {
			rs = append(rs, r)
		}
	}
	sort.Slice(rs, func(i, j int) bool {
		if totals[rs[i]] != totals[rs[j]] {
			return totals[rs[i]] > totals[rs[j]]
		}
		return rs[i] < rs[j]
	})
	if len(rs) > maxTopSeries {
		rs = rs[:maxTopSeries]
	}
	return rs
}

func indexOf(xs []string, v string) int {
	for i, x := range xs {
		if x == v {
			return i
		}
	}
	return -1
}

func sumOf(vs []uint64) uint64 {
	var s uint64
	for _, v := range vs {
		s += v
	}
	return s
}

// statusChart builds the status-code histogram of an endpoint: one bar
// per code (the most frequent maxStatusBar codes), in code order.
func statusChart(codes map[int]uint64) chart {
	c := newChart("status", "Responses by status code")
	c.XLabel, c.YLabel = "HTTP status", "responses"
	type kv struct {
		code int
		n    uint64
	}
	var all []kv
	var max, total uint64
	for k, v := range codes {
		all = append(all, kv{k, v})
		total += v
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].n != all[j].n {
			return all[i].n > all[j].n
		}
		return all[i].code < all[j].code
	})
	if len(all) > maxStatusBar {
		all = all[:maxStatusBar]
	}
	sort.Slice(all, func(i, j int) bool { return all[i].code < all[j].code })
	for _, e := range all {
		if e.n > max {
			max = e.n
		}
	}
	c.Empty = total == 0
	scale := c.yAxis(max)
	if len(all) == 0 {
		return c
	}
	slot := (c.PlotR - c.PlotX) / float64(len(all))
	w := math.Min(slot*0.7, 64)
	seen := map[string]bool{}
	for i, e := range all {
		x := c.PlotX + float64(i)*slot + (slot-w)/2
		h := float64(e.n) * scale
		class := statusClass(e.code)
		c.Bars = append(c.Bars, chartBar{X: x, Y: c.PlotB - h, W: w, H: h, Class: class,
			Tip: fmt.Sprintf("%d: %d responses", e.code, e.n)})
		c.XTicks = append(c.XTicks, chartTick{Pos: x + w/2, Label: strconv.Itoa(e.code)})
		if !seen[class] {
			seen[class] = true
			c.Legend = append(c.Legend, legendItem{Class: class, Label: statusClassName(e.code)})
		}
	}
	c.Desc = fmt.Sprintf("%d responses over %d status codes.", total, len(all))
	return c
}

func statusClass(code int) string {
	switch {
	case code >= 500:
		return "s-5xx"
	case code >= 400:
		return "s-4xx"
	case code >= 300:
		return "s-3xx"
	case code >= 200:
		return "s-2xx"
	}
	return "s-other"
}

func statusClassName(code int) string {
	switch {
	case code >= 500:
		return "5xx server error"
	case code >= 400:
		return "4xx client error"
	case code >= 300:
		return "3xx redirect"
	case code >= 200:
		return "2xx success"
	}
	return "other"
}

// Positions of the labels around the plot, for the template.

// TickX is where y tick labels end.
func (c chart) TickX() float64 { return c.PlotX - 6 }

// XTickY is the baseline of the x tick labels.
func (c chart) XTickY() float64 { return c.PlotB + 16 }

// MidX is the horizontal middle of the plot.
func (c chart) MidX() float64 { return (c.PlotX + c.PlotR) / 2 }

// MidY is the vertical middle of the plot.
func (c chart) MidY() float64 { return (c.PlotY + c.PlotB) / 2 }

// XLabelY is the baseline of the x axis label.
func (c chart) XLabelY() float64 { return float64(c.Height) - 6 }

// YLabelX is the x of the rotated y axis label (the middle of the plot,
// negated by the rotation).
func (c chart) YLabelX() float64 { return -c.MidY() }
