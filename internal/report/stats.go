package report

import (
	"math"
	"sort"
)

// Limits that bound memory whatever the size of the run.
const (
	// maxDistinct is the number of distinct values a category column keeps counts for.
	maxDistinct = 5000
	// topValues is the number of bars in a category chart before "other".
	topValues = 20
	// maxFailureRows is the number of failures listed in the table.
	maxFailureRows = 50
	// maxFailedTicks is the number of failed-attempt times kept for the timeline.
	maxFailedTicks = 200_000
	// maxSpansPerWorker bounds the process runs kept for one worker.
	maxSpansPerWorker = 1000
)

// counter counts the values of one column, keeping at most limit distinct values.
type counter struct {
	counts map[string]int64
	limit  int
	rows   int64
	// overflowAt is the number of rows seen when the limit was reached (0: never reached).
	overflowAt int64
	// unseen counts rows whose value was first seen after the limit was reached.
	unseen int64
}

func newCounter(limit int) *counter {
	return &counter{counts: map[string]int64{}, limit: limit}
}

func (c *counter) add(v string) {
	c.rows++
	if _, ok := c.counts[v]; ok {
		c.counts[v]++
		return
	}
	if len(c.counts) >= c.limit {
		if c.overflowAt == 0 {
			c.overflowAt = c.rows - 1
		}
		c.unseen++
		return
	}
	c.counts[v] = 1
}

// overflowed tells whether some values were not kept.
func (c *counter) overflowed() bool { return c.overflowAt > 0 }

// freeText tells whether the column looks like free text rather than categories: more distinct
// values than half its rows, and too many to show in one chart. When the limit was reached, the
// share is judged at the moment it was.
func (c *counter) freeText() bool {
	if c.overflowed() {
		return int64(c.limit)*2 > c.overflowAt
	}
	d := int64(len(c.counts))
	return d > topValues && d*2 > c.rows
}

// valueCount is one value and how often it occurred.
type valueCount struct {
	Value string
	Count int64
}

// top returns the n most frequent values (ties by value), and the number of rows and of known
// distinct values left out.
func (c *counter) top(n int, less func(a, b valueCount) bool) (top []valueCount, restRows int64, restValues int) {
	all := make([]valueCount, 0, len(c.counts))
	for v, k := range c.counts {
		all = append(all, valueCount{v, k})
	}
	if less == nil {
		less = byCount
	}
	sort.Slice(all, func(i, j int) bool { return less(all[i], all[j]) })
	if len(all) > n {
		for _, vc := range all[n:] {
			restRows += vc.Count
		}
		restValues = len(all) - n
		all = all[:n]
	}
	return all, restRows + c.unseen, restValues
}

func byCount(a, b valueCount) bool {
	if a.Count != b.Count {
		return a.Count > b.Count
	}
	return a.Value < b.Value
}

// histogram counts non-negative values in fixed logarithmic buckets: bucket 0 holds values below
// bounds[0], bucket i holds [bounds[i-1], bounds[i]), the last holds values from the last bound up.
type histogram struct {
	fine     []float64 // bounds(fineSteps)
	counts   []int64
	n        int64
	invalid  int64
	sum      float64
	min, max float64
}

// fineSteps are the bucket bounds within one decade; coarseSteps a subset of them.
var (
	fineSteps   = []float64{1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8}
	coarseSteps = []float64{1, 2, 5}
)

// bounds returns steps times every power of ten from 1 to 1e9.
func bounds(steps []float64) []float64 {
	var b []float64
	for p := 0; p <= 9; p++ {
		for _, s := range steps {
			b = append(b, s*math.Pow(10, float64(p)))
		}
	}
	return b
}

func newHistogram() *histogram {
	fine := bounds(fineSteps)
	return &histogram{fine: fine, counts: make([]int64, len(fine)+1)}
}

func (h *histogram) add(v float64) {
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		h.invalid++
		return
	}
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if h.n == 0 || v > h.max {
		h.max = v
	}
	h.n++
	h.sum += v
	h.counts[bucketOf(h.fine, v)]++
}

// bucketOf returns the bucket of v for the given bounds.
func bucketOf(b []float64, v float64) int {
	return sort.Search(len(b), func(i int) bool { return b[i] > v })
}

// bucket is one displayed bar of a histogram: values in [Lo, Hi); Hi is +Inf for the last.
type bucket struct {
	Lo, Hi float64
	Count  int64
}

// buckets returns the non-empty range of buckets, coarsened when it would have more than maxBars.
func (h *histogram) buckets(maxBars int) []bucket {
	fine := h.fine
	out := toBuckets(fine, h.counts)
	if len(out) > maxBars {
		coarse := bounds(coarseSteps)
		counts := make([]int64, len(coarse)+1)
		for i, c := range h.counts {
			lo := 0.0
			if i > 0 {
				lo = fine[i-1]
			}
			counts[bucketOf(coarse, lo)] += c
		}
		out = toBuckets(coarse, counts)
	}
	return out
}

func toBuckets(b []float64, counts []int64) []bucket {
	first, last := -1, -1
	for i, c := range counts {
		if c > 0 {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	if first < 0 {
		return nil
	}
	out := make([]bucket, 0, last-first+1)
	for i := first; i <= last; i++ {
		bk := bucket{Hi: math.Inf(1), Count: counts[i]}
		if i > 0 {
			bk.Lo = b[i-1]
		}
		if i < len(b) {
			bk.Hi = b[i]
		}
		out = append(out, bk)
	}
	return out
}

// quantile estimates the q-quantile (0 < q <= 1) by linear interpolation inside its bucket,
// clamped to the observed minimum and maximum.
func (h *histogram) quantile(q float64) float64 {
	if h.n == 0 {
		return 0
	}
	fine := h.fine
	target := q * float64(h.n)
	var seen float64
	for i, c := range h.counts {
		if c == 0 {
			continue
		}
		if seen+float64(c) >= target {
			lo, hi := 0.0, h.max
			if i > 0 {
				lo = fine[i-1]
			}
			if i < len(fine) {
				hi = fine[i]
			}
			v := lo + (hi-lo)*(target-seen)/float64(c)
			return math.Min(math.Max(v, h.min), h.max)
		}
		seen += float64(c)
	}
	return h.max
}

func (h *histogram) mean() float64 {
	if h.n == 0 {
		return 0
	}
	return h.sum / float64(h.n)
}
