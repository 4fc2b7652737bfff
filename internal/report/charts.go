package report

import (
	"fmt"
	"math"
	"strconv"

	"github.com/trialcat/trialcat/internal/textfmt"
)

type barChart struct {
	Title, Sub string
	Height     string
	Bars       []barView
}

type barView struct {
	Y, TextY, W, CountX string
	Label, Full         string
	Count, Pct          string
	Color               string
	Other               bool
}

// newBarChart lays out vcs (already ordered) plus an optional "other" bar.
func newBarChart(title, sub string, vcs []valueCount, otherRows int64, otherValues int, total int64, color string) *barChart {
	c := &barChart{Title: title, Sub: sub}
	var max int64
	for _, vc := range vcs {
		max = maxInt(max, vc.Count)
	}
	max = maxInt(max, otherRows)
	add := func(label, full string, n int64, other bool) {
		i := float64(len(c.Bars))
		w := 0.0
		if max > 0 {
			w = barMaxW * float64(n) / float64(max)
		}
		if n > 0 && w < 2 {
			w = 2
		}
		col := color
		if other {
			col = "#b8b8b8"
		}
		c.Bars = append(c.Bars, barView{
			Y: num(i*barRowH + (barRowH-barH)/2), TextY: num(i*barRowH + barRowH/2 + 4), W: num(w),
			CountX: num(barLabelW + w + 6), Label: clip(label, barLabelN), Full: full,
			Count: textfmt.Thousands(n), Pct: percent(n, total), Color: col, Other: other,
		})
	}
	for _, vc := range vcs {
		label := vc.Value
		if label == "" {
			label = "(empty)"
		}
		add(label, label, vc.Count, false)
	}
	if otherRows > 0 {
		label := "other"
		if otherValues > 0 {
			label = fmt.Sprintf("other (%s values)", textfmt.Thousands(int64(otherValues)))
		}
		add(label, label, otherRows, true)
	}
	c.Height = num(float64(len(c.Bars)) * barRowH)
	return c
}

func maxInt(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

type histView struct {
	Title string
	// YTitle and XTitle name the axes: what is counted, and in what unit.
	YTitle, XTitle string
	Bars           []histBar
	XTicks         []axisLabel
	YTicks         []axisLabel
	Stats          string
	Empty          string
}

type histBar struct {
	X, Y, W, H, Title string
}

type axisLabel struct {
	X, Y, Text string
}

// newHistView lays out h; unit formats a value ("850ms", "1.2k").
func newHistView(title, xTitle string, h *histogram, unit func(float64) string) *histView {
	v := &histView{Title: title, YTitle: "records", XTitle: xTitle}
	bks := h.buckets(histBars)
	if len(bks) == 0 {
		v.Empty = "no values"
		return v
	}
	var max int64
	for _, b := range bks {
		max = maxInt(max, b.Count)
	}
	step := niceStep(float64(max), 4)
	top := math.Ceil(float64(max)/step) * step
	plotH := histBottom - histTop
	slot := (histRight - histLeft) / float64(len(bks)) // the whole plot's width, however few the buckets
	gap := math.Min(2, slot*0.15)
	lastLabel := math.Inf(-1) // x of the last label: labels need about 40 units
	for i, b := range bks {
		bh := plotH * float64(b.Count) / top
		if b.Count > 0 && bh < 1 {
			bh = 1
		}
		x := histLeft + float64(i)*slot
		rng := unit(b.Lo) + " – " + unit(b.Hi)
		if math.IsInf(b.Hi, 1) {
			rng = unit(b.Lo) + " and more"
		} else if b.Lo == 0 && b.Hi == 1 {
			rng = "under " + unit(1)
		}
		v.Bars = append(v.Bars, histBar{X: num(x + gap/2), Y: num(histBottom - bh), W: num(slot - gap), H: num(bh),
			Title: fmt.Sprintf("%s: %s (%s)", rng, textfmt.Thousands(b.Count), percent(b.Count, h.n))})
		// The buckets grow like 1, 2, 5 × 10^k: label the bounds that are such round values, so
		// the ticks step evenly along the axis (10ms, 20ms, 50ms, 100ms).
		if (i == 0 || roundValue(b.Lo)) && x-lastLabel >= 40 {
			label := unit(b.Lo)
			if b.Lo == 0 && b.Hi <= 1 {
				label = "0"
			}
			v.XTicks = append(v.XTicks, axisLabel{X: num(x), Y: num(histBottom + 16), Text: label})
			lastLabel = x
		}
	}
	for y := 0.0; y <= top+step/2; y += step {
		v.YTicks = append(v.YTicks, axisLabel{X: num(histLeft - 6), Y: num(histBottom - plotH*y/top), Text: count(y)})
	}
	v.Stats = fmt.Sprintf("%s values · mean %s · p50 ≈ %s · p90 ≈ %s · p99 ≈ %s · max %s",
		textfmt.Thousands(h.n), unit(h.mean()), unit(h.quantile(0.5)), unit(h.quantile(0.9)), unit(h.quantile(0.99)), unit(h.max))
	if h.invalid > 0 {
		v.Stats += fmt.Sprintf(" · %s invalid", textfmt.Thousands(h.invalid))
	}
	return v
}

// roundValue reports whether v is 0 or 1, 2 or 5 times a power of ten.
func roundValue(v float64) bool {
	if v == 0 {
		return true
	}
	if v < 0 || math.IsInf(v, 0) {
		return false
	}
	m := v / math.Pow(10, math.Floor(math.Log10(v)))
	for _, r := range []float64{1, 2, 5, 10} {
		if math.Abs(m-r) < 1e-9 {
			return true
		}
	}
	return false
}

// niceStep returns a round step (1, 2 or 5 times a power of ten) giving about n steps up to max.
func niceStep(max float64, n int) float64 {
	if max <= 0 {
		return 1
	}
	raw := max / float64(n)
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return math.Max(m*p, 1)
		}
	}
	return math.Max(10*p, 1)
}

// niceSeconds returns a round step in seconds giving at most about n steps over total.
func niceSeconds(total float64, n int) float64 {
	steps := []float64{0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30,
		60, 120, 300, 600, 900, 1800, 3600, 7200, 3 * 3600, 6 * 3600, 12 * 3600, 86400}
	for _, s := range steps {
		if total/s <= float64(n) {
			return s
		}
	}
	return math.Ceil(total/float64(n)/86400) * 86400
}

// clock formats an offset in seconds for the timeline axis, with the precision step needs.
func clock(t, step float64) string {
	switch {
	case step < 1:
		return strconv.FormatFloat(t, 'f', decimals(step), 64) + "s"
	case t < 60:
		return fmt.Sprintf("%.0fs", t)
	case t < 3600:
		if math.Mod(t, 60) == 0 {
			return fmt.Sprintf("%dm", int(t)/60)
		}
		return fmt.Sprintf("%dm%02ds", int(t)/60, int(t)%60)
	}
	if math.Mod(t, 3600) == 0 {
		return fmt.Sprintf("%dh", int(t)/3600)
	}
	return fmt.Sprintf("%dh%02dm", int(t)/3600, int(t)%3600/60)
}

func decimals(step float64) int {
	d := 0
	for step < 1 && d < 3 {
		step *= 10
		d++
	}
	return d
}
