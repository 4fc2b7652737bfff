package report

import (
	"fmt"
	"math"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/trialcat/trialcat/internal/summary"
)

// page is the data of the report template. Every string from the run's files reaches the page
// through html/template, which escapes it for where it lands.
type page struct {
	Dir          string
	Status       string
	StatusTone   string // ok, warn, bad or unknown: the badge's colour
	StatusText   string
	Started      string
	Finished     string
	Tiles        []tile
	Notes        []string
	ResultRows   string
	TopN         int
	Categories   []*barChart
	FreeText     []freeText
	Timeline     *timelineView
	TimelineNote string
	Latency      *histView
	InputTokens  *histView
	OutputTokens *histView
	Attempts     *barChart
	Models       []costRow
	Workers      []costRow
	CostNote     string
	FailTotal    string
	FailClasses  *barChart
	Failures     [][]string
	FailIDColumn string
	FailMore     string
	FailNote     string
}

type tile struct {
	Label, Value, Sub, Tone string
}

type freeText struct {
	Name, Distinct string
}

// color returns the i-th colour of the category charts (Tableau 10, readable on white).
func color(i int) string {
	palette := [...]string{"#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f"}
	return palette[i%len(palette)]
}

// build turns what was read into the page.
func build(r *run) *page {
	p := &page{Dir: filepath.Base(filepath.Clean(r.dir.Path())), Notes: r.notes}
	p.header(r)
	p.categories(r)
	p.timeline(r)
	p.histograms(r)
	p.costs(r)
	p.failures(r)
	return p
}

func (p *page) header(r *run) {
	s := r.summary
	res, fail := r.res, r.fail
	if s == nil {
		p.Status, p.StatusTone = "unknown", "unknown"
		p.StatusText = "summary.json is missing; the counts below come from the final CSV files"
		var in, out int64
		var cost float64
		for _, m := range res.models {
			in, out, cost = in+m.InputTokens, out+m.OutputTokens, cost+m.CostUSD
		}
		all := res.rows + fail.total
		p.Tiles = []tile{
			{Label: "Records", Value: group(all), Sub: "in the final files"},
			{Label: "Succeeded", Value: group(res.rows), Sub: percent(res.rows, all), Tone: "ok"},
			{Label: "Failed", Value: group(fail.total), Sub: percent(fail.total, all), Tone: tone(fail.total > 0, "bad")},
			{Label: "Tokens in / out", Value: count(float64(in)) + " / " + count(float64(out)), Sub: group(in) + " in, " + group(out) + " out"},
			{Label: "Estimated cost", Value: usd(cost), Sub: tone(res.costUnknown > 0, "some prices unknown")},
		}
		return
	}
	p.Status = s.Status
	switch s.Status {
	case "complete":
		p.StatusTone, p.StatusText = "ok", "every record succeeded"
	case "records_failed":
		p.StatusTone, p.StatusText = "warn", "some records failed: see Failures below; a rerun retries them"
	case "interrupted":
		p.StatusTone, p.StatusText = "warn", "interrupted: rerun the same command to resume"
	case "api_refused":
		p.StatusTone, p.StatusText = "bad", "the API refused the run (bad key, no quota): see Failures"
	case "error":
		p.StatusTone, p.StatusText = "bad", "the run stopped on an error"
	default:
		p.StatusTone = "unknown"
	}
	p.Started, p.Finished = stamp(s.StartedAt), stamp(s.FinishedAt)
	if s.Out != "" {
		p.Dir = s.Out
	}
	cost := tile{Label: "Estimated cost", Value: usd(s.CostUSD)}
	if !s.CostKnown {
		cost.Sub, cost.Tone = "some models' prices are unknown", "warn"
	}
	tokens := tile{Label: "Tokens in / out", Value: count(float64(s.InputTokens)) + " / " + count(float64(s.OutputTokens)),
		Sub: group(s.InputTokens) + " in, " + group(s.OutputTokens) + " out"}
	if s.CachedInputTokens > 0 {
		tokens.Sub += ", " + group(s.CachedInputTokens) + " cached"
	}
	model := s.Model
	if s.Provider != "" && s.Provider != s.Model {
		model = s.Provider + " · " + s.Model
	}
	p.Tiles = []tile{
		{Label: "Records", Value: group(s.Records)},
		{Label: "Succeeded", Value: group(s.Succeeded), Sub: percent(s.Succeeded, s.Records), Tone: "ok"},
		{Label: "Failed", Value: group(s.Failed), Sub: percent(s.Failed, s.Records), Tone: tone(s.Failed > 0, "bad")},
		{Label: "Provider · model", Value: model},
		{Label: "Wall time", Value: seconds(s.WallSeconds), Sub: rate(s.Succeeded+s.Failed, s.WallSeconds)},
		tokens,
		cost,
		{Label: "Retries", Value: group(s.Retries), Sub: group(s.RateLimited) + " rate-limited (429)", Tone: tone(s.RateLimited > 0, "warn")},
		{Label: "Worker restarts", Value: group(s.Restarts), Tone: tone(s.Restarts > 0, "warn")},
	}
}

func tone(cond bool, t string) string {
	if cond {
		return t
	}
	return ""
}

func rate(n int64, secs float64) string {
	if secs <= 0 || n == 0 {
		return ""
	}
	per := float64(n) / secs
	if per >= 1 {
		return fmt.Sprintf("%s records/s", trimFloat(per))
	}
	return fmt.Sprintf("%s records/min", trimFloat(per*60))
}

// Bar chart geometry, in SVG user units.
const (
	barLabelW = 200.0 // label column; labels end at barLabelW-8
	barMaxW   = 300.0
	barRowH   = 22.0
	barH      = 15.0
	barChartW = 600.0
	barLabelN = 30 // runes of a label before it is clipped
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
			Count: group(n), Pct: percent(n, total), Color: col, Other: other,
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
			label = fmt.Sprintf("other (%s values)", group(int64(otherValues)))
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

func (p *page) categories(r *run) {
	res := r.res
	p.ResultRows, p.TopN = group(res.rows), topValues
	for i, name := range res.columns {
		c := res.cats[i]
		if c.rows > 0 && c.freeText() {
			d := group(int64(len(c.counts)))
			if c.overflowed() {
				d = "over " + d
			}
			p.FreeText = append(p.FreeText, freeText{Name: name, Distinct: d})
			continue
		}
		top, restRows, restValues := c.top(topValues, nil)
		distinct := group(int64(len(c.counts)))
		if c.overflowed() {
			distinct = "over " + distinct
		}
		sub := fmt.Sprintf("%s distinct values", distinct)
		if len(top) == 1 && restRows == 0 {
			sub = "1 value"
		}
		p.Categories = append(p.Categories, newBarChart(name, sub, top, restRows, restValues, c.rows, color(i)))
	}
}

// Histogram geometry.
const (
	histW      = 600.0
	histLeft   = 52.0
	histRight  = 592.0
	histTop    = 12.0
	histBottom = 176.0
	histBars   = 36
)

type histView struct {
	Title  string
	Bars   []histBar
	XTicks []axisLabel
	YTicks []axisLabel
	Stats  string
	Empty  string
}

type histBar struct {
	X, Y, W, H, Title string
}

type axisLabel struct {
	X, Y, Text string
}

// newHistView lays out h; unit formats a value ("850ms", "1.2k").
func newHistView(title string, h *histogram, unit func(float64) string) *histView {
	v := &histView{Title: title}
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
	slot := math.Min((histRight-histLeft)/float64(len(bks)), 48)
	gap := math.Min(2, slot*0.15)
	every := int(math.Ceil(40 / slot)) // labels need about 40 units
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
			Title: fmt.Sprintf("%s: %s (%s)", rng, group(b.Count), percent(b.Count, h.n))})
		if i%every == 0 {
			label := unit(b.Lo)
			if b.Lo == 0 && b.Hi <= 1 {
				label = "0"
			}
			v.XTicks = append(v.XTicks, axisLabel{X: num(x), Y: num(histBottom + 16), Text: label})
		}
	}
	for y := 0.0; y <= top+step/2; y += step {
		v.YTicks = append(v.YTicks, axisLabel{X: num(histLeft - 6), Y: num(histBottom - plotH*y/top), Text: count(y)})
	}
	v.Stats = fmt.Sprintf("%s values · mean %s · p50 ≈ %s · p90 ≈ %s · p99 ≈ %s · max %s",
		group(h.n), unit(h.mean()), unit(h.quantile(0.5)), unit(h.quantile(0.9)), unit(h.quantile(0.99)), unit(h.max))
	if h.invalid > 0 {
		v.Stats += fmt.Sprintf(" · %s invalid", group(h.invalid))
	}
	return v
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

func (p *page) histograms(r *run) {
	res := r.res
	p.Latency = newHistView("Latency per record (all attempts)", res.latency, millis)
	p.InputTokens = newHistView("Input tokens per record", res.input, count)
	p.OutputTokens = newHistView("Output tokens per record", res.output, count)
	if res.attempts.rows > 0 {
		top, restRows, restValues := res.attempts.top(topValues, func(a, b valueCount) bool {
			x, errX := strconv.Atoi(a.Value)
			y, errY := strconv.Atoi(b.Value)
			if errX == nil && errY == nil {
				return x < y
			}
			return a.Value < b.Value
		})
		p.Attempts = newBarChart("Attempts per record", "", top, restRows, restValues, res.attempts.rows, "#76b7b2")
	}
}

type costRow struct {
	Name, Rows, Cost, Input, Output, Latency, BarW string
	Failed, Seconds, Restarts, Exit, ExitTone      string
}

// costBarW is the width of the small bar in the cost tables.
const costBarW = 120.0

func (p *page) costs(r *run) {
	res := r.res
	var totalCost float64
	var totalRows int64
	for _, m := range res.models {
		totalCost += m.CostUSD
		totalRows += m.Rows
	}
	// Bars show cost, or rows when nothing cost anything (offline, or prices unknown).
	share := func(s *costStats) float64 {
		if totalCost > 0 {
			return s.CostUSD / totalCost
		}
		if totalRows > 0 {
			return float64(s.Rows) / float64(totalRows)
		}
		return 0
	}
	if totalCost == 0 && totalRows > 0 {
		p.CostNote = "No cost was recorded, so the bars show each one's share of records."
	}
	if res.costUnknown > 0 {
		p.CostNote += fmt.Sprintf(" %s no cost (the model's price is unknown; see --prices).",
			map[bool]string{true: "1 record has", false: group(res.costUnknown) + " records have"}[res.costUnknown == 1])
	}
	p.CostNote = strings.TrimSpace(p.CostNote)
	row := func(name string, s *costStats) costRow {
		c := costRow{Name: name, Rows: group(s.Rows), Cost: usd(s.CostUSD), Input: group(s.InputTokens),
			Output: group(s.OutputTokens), BarW: num(costBarW * share(s))}
		if s.CostUnknown > 0 {
			c.Cost += fmt.Sprintf(" (+%s unpriced)", group(s.CostUnknown))
		}
		if s.Rows > 0 {
			c.Latency = millis(s.LatencyMS / float64(s.Rows))
		}
		return c
	}
	models := make([]string, 0, len(res.models))
	for m := range res.models {
		models = append(models, m)
	}
	sort.Slice(models, func(i, j int) bool {
		a, b := res.models[models[i]], res.models[models[j]]
		if a.CostUSD != b.CostUSD {
			return a.CostUSD > b.CostUSD
		}
		if a.Rows != b.Rows {
			return a.Rows > b.Rows
		}
		return models[i] < models[j]
	})
	for _, m := range models {
		name := m
		if name == "" {
			name = "(none)"
		}
		p.Models = append(p.Models, row(name, res.models[m]))
	}

	// Workers: the union of those with results and those in summary.json.
	sums := map[int]summary.WorkerSummary{}
	if r.summary != nil {
		for _, w := range r.summary.Workers {
			sums[w.Batch] = w
		}
	}
	nums := make([]int, 0, len(res.workers)+len(sums))
	for n := range res.workers {
		nums = append(nums, n)
	}
	for n := range sums {
		if _, ok := res.workers[n]; !ok {
			nums = append(nums, n)
		}
	}
	sort.Ints(nums)
	for _, n := range nums {
		s := res.workers[n]
		if s == nil {
			s = &costStats{}
		}
		name := strconv.Itoa(n)
		switch n {
		case otherWorker:
			name = "(other workers)"
		case -2:
			name = "(unknown)"
		}
		c := row(name, s)
		if w, ok := sums[n]; ok {
			c.Failed = group(w.Failed)
			c.Seconds = seconds(w.Seconds)
			c.Restarts = strconv.Itoa(w.Restarts)
			c.Exit = w.Exit
			if !w.Started {
				c.Exit = "not started"
			}
			if w.ExitCode != 0 || !w.Started {
				c.ExitTone = "warn"
			}
		}
		p.Workers = append(p.Workers, c)
	}
}

func (p *page) failures(r *run) {
	f := r.fail
	p.FailIDColumn = f.idColumn
	if p.FailIDColumn == "" {
		p.FailIDColumn = "ID"
	}
	total := f.total
	classes := f.classes
	if !f.present && r.summary != nil && len(r.summary.FailedByClass) > 0 {
		// No file, but the summary knows the classes.
		classes = newCounter(1000)
		for c, n := range r.summary.FailedByClass {
			classes.counts[c] = n
			classes.rows += n
		}
		total = classes.rows
		p.FailNote = failuresFile + " is missing; the classes come from summary.json."
	}
	p.FailTotal = group(total)
	if classes.rows > 0 {
		top, restRows, restValues := classes.top(topValues, nil)
		p.FailClasses = newBarChart("Failures by error class", "", top, restRows, restValues, classes.rows, "#e15759")
	}
	p.Failures = f.first
	if f.total > int64(len(f.first)) {
		p.FailMore = fmt.Sprintf("showing the first %d of %s failures; all of them are in %s", len(f.first), group(f.total), failuresFile)
	}
}

// Timeline geometry.
const (
	tlW      = 1160.0
	tlLeft   = 132.0
	tlRight  = 1148.0
	tlAxisH  = 26.0
	tlRowH   = 22.0
	tlSpanH  = 12.0 // the process runs sit in the upper part of the row,
	tlTickY  = 16.0 // the failed attempts in a strip below them, from here
	tlTickH  = 5.0
	tlTickPx = 2.0 // failed attempts closer than this share one tick
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
				title += fmt.Sprintf("; answered %s, failed %s", group(s.Answered), group(s.Failed))
			}
			if s.Requests > 0 {
				title += fmt.Sprintf("; %s attempts logged, %s failed", group(s.Requests), group(s.Errors))
			}
			answered += s.Answered
			failed += s.Failed
			row.Spans = append(row.Spans, tlSpan{X: num(x0), Y: num(y + 2), W: num(w), H: num(tlSpanH), Class: class, Title: title})
		}
		row.Ticks = ticks(wl, xOf, y)
		row.Title = fmt.Sprintf("batch %d: %d process runs, %s failed attempts", wl.N, len(wl.Spans), group(wl.Errors))
		if wl.Errors > 0 {
			top, _, _ := wl.Classes.top(5, nil)
			var parts []string
			for _, vc := range top {
				parts = append(parts, fmt.Sprintf("%s %s", vc.Value, group(vc.Count)))
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
		title := fmt.Sprintf("%s failed attempt", group(b.n))
		if b.n > 1 {
			title += "s"
		}
		if b.limited > 0 {
			title += fmt.Sprintf(" (%s rate-limited)", group(b.limited))
		}
		// Darker where more attempts failed, so a busy row reads as a heat strip.
		opacity := 0.35 + 0.65*float64(b.n)/float64(most)
		out = append(out, tlTick{X: num(float64(k)*tlTickPx + tlTickPx/2), Y1: num(y + tlTickY), Y2: num(y + tlTickY + tlTickH),
			Class: class, Title: title, Opacity: strconv.FormatFloat(math.Round(opacity*100)/100, 'f', -1, 64)})
	}
	return out
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
