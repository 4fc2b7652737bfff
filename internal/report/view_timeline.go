package report

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/trialcat/trialcat/internal/textfmt"
)

type timelineView struct {
	Height, GridY2 string
	Origin         string
	Axis           []axisLabel
	Rows           []tlRow
}

type tlRow struct {
	Y, TextY, Label, Title string
	Spans                  []tlSpan
	Ticks                  []tlTick
	Band                   bool
}

type tlSpan struct {
	X, Y, W, H, Class, Title string
}

type tlTick struct {
	X, Y1, Y2, Class, Title, Opacity string
}

func (p *page) timeline(r *run) {
	if len(r.logs) == 0 {
		p.TimelineNote = "No worker_N_log.txt files in this folder, so there is no timeline."
		return
	}
	// Time range: every span and tick, and the run's own start and finish.
	var lo, hi time.Time
	widen := func(t time.Time) {
		if t.IsZero() {
			return
		}
		if lo.IsZero() || t.Before(lo) {
			lo = t
		}
		if hi.IsZero() || t.After(hi) {
			hi = t
		}
	}
	for _, wl := range r.logs {
		for _, s := range wl.Spans {
			widen(s.Start)
			widen(s.End)
		}
		for _, tk := range wl.Ticks {
			widen(time.Unix(0, tk.At))
		}
	}
	if lo.IsZero() {
		p.TimelineNote = "The worker logs have no \"batch started\" or \"batch finished\" lines, so there is no timeline."
		return
	}
	if s := r.summary; s != nil {
		widen(s.StartedAt)
		widen(s.FinishedAt)
	}
	total := hi.Sub(lo).Seconds()
	if total <= 0 {
		total = 1
	}
	xOf := func(t time.Time) float64 {
		return tlLeft + (tlRight-tlLeft)*t.Sub(lo).Seconds()/total
	}
	tv := &timelineView{Origin: lo.UTC().Format("2006-01-02 15:04:05.000 UTC")}
	step := niceSeconds(total, 10)
	for t := 0.0; t <= total+step/1000; t += step {
		tv.Axis = append(tv.Axis, axisLabel{X: num(tlLeft + (tlRight-tlLeft)*t/total), Y: "14", Text: "+" + clock(t, step)})
	}
	for i, wl := range r.logs {
		y := tlAxisH + float64(i)*tlRowH
		row := tlRow{Y: num(y), TextY: num(y + tlRowH/2 + 4), Label: fmt.Sprintf("batch %d", wl.N), Band: i%2 == 1}
		var answered, failed int64
		for k, s := range wl.Spans {
			x0, x1 := xOf(s.Start), xOf(s.End)
			w := math.Max(x1-x0, 3)
			class, state := "ok", "finished"
			switch {
			case !s.Finished:
				class, state = "cut", "no \"batch finished\" line: crashed, killed or still running"
			case s.Failed > 0:
				class, state = "warn", "finished with failed records"
			}
			title := fmt.Sprintf("batch %d, run %d of %d: %s → %s (%s), %s", wl.N, k+1, len(wl.Spans),
				s.Start.UTC().Format("15:04:05.000"), s.End.UTC().Format("15:04:05.000"), seconds(s.End.Sub(s.Start).Seconds()), state)
			if s.Finished {
				title += fmt.Sprintf("; answered %s, failed %s", textfmt.Thousands(s.Answered), textfmt.Thousands(s.Failed))
			}
			if s.Requests > 0 {
				title += fmt.Sprintf("; %s attempts logged, %s failed", textfmt.Thousands(s.Requests), textfmt.Thousands(s.Errors))
			}
			answered += s.Answered
			failed += s.Failed
			row.Spans = append(row.Spans, tlSpan{X: num(x0), Y: num(y + 2), W: num(w), H: num(tlSpanH), Class: class, Title: title})
		}
		row.Ticks = ticks(wl, xOf, y)
		row.Title = fmt.Sprintf("batch %d: %d process runs, %s failed attempts", wl.N, len(wl.Spans), textfmt.Thousands(wl.Errors))
		if wl.Errors > 0 {
			top, _, _ := wl.Classes.top(5, nil)
			var parts []string
			for _, vc := range top {
				parts = append(parts, fmt.Sprintf("%s %s", vc.Value, textfmt.Thousands(vc.Count)))
			}
			row.Title += " (" + strings.Join(parts, ", ") + ")"
		}
		tv.Rows = append(tv.Rows, row)
	}
	h := tlAxisH + float64(len(tv.Rows))*tlRowH
	tv.Height, tv.GridY2 = num(h+4), num(h)
	p.Timeline = tv
}

// ticks bins a worker's failed attempts into columns of tlTickPx pixels.
func ticks(wl *workerLog, xOf func(time.Time) float64, y float64) []tlTick {
	type bin struct {
		n, limited int64
	}
	bins := map[int]*bin{}
	for _, tk := range wl.Ticks {
		k := int(xOf(time.Unix(0, tk.At)) / tlTickPx)
		b := bins[k]
		if b == nil {
			b = &bin{}
			bins[k] = b
		}
		b.n++
		if tk.RateLimited {
			b.limited++
		}
	}
	keys := make([]int, 0, len(bins))
	for k := range bins {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	var most int64
	for _, b := range bins {
		most = maxInt(most, b.n)
	}
	out := make([]tlTick, 0, len(keys))
	for _, k := range keys {
		b := bins[k]
		class := "err"
		if b.limited*2 > b.n {
			class = "limited"
		}
		title := fmt.Sprintf("%s failed attempt", textfmt.Thousands(b.n))
		if b.n > 1 {
			title += "s"
		}
		if b.limited > 0 {
			title += fmt.Sprintf(" (%s rate-limited)", textfmt.Thousands(b.limited))
		}
		// Darker where more attempts failed, so a busy row reads as a heat strip.
		opacity := 0.35 + 0.65*float64(b.n)/float64(most)
		out = append(out, tlTick{X: num(float64(k)*tlTickPx + tlTickPx/2), Y1: num(y + tlTickY), Y2: num(y + tlTickY + tlTickH),
			Class: class, Title: title, Opacity: strconv.FormatFloat(math.Round(opacity*100)/100, 'f', -1, 64)})
	}
	return out
}
