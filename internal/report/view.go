package report

import (
	"fmt"
	"path/filepath"
	"strconv"

	"github.com/trialcat/trialcat/internal/textfmt"
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
	// Turns and ToolCalls are an agent run's: records by turns, calls by tool.
	Turns, ToolCalls *barChart
	Models           []costRow
	Breakdowns       []costBreakdown
	Workers          []costRow
	CostNote         string
	FailTotal        string
	FailClasses      *barChart
	Failures         [][]string
	FailIDColumn     string
	FailMore         string
	FailNote         string
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
			{Label: "Records", Value: textfmt.Thousands(all), Sub: "in the final files"},
			{Label: "Succeeded", Value: textfmt.Thousands(res.rows), Sub: percent(res.rows, all), Tone: "ok"},
			{Label: "Failed", Value: textfmt.Thousands(fail.total), Sub: percent(fail.total, all), Tone: tone(fail.total > 0, "bad")},
			{Label: "Tokens in / out", Value: count(float64(in)) + " / " + count(float64(out)), Sub: textfmt.Thousands(in) + " in, " + textfmt.Thousands(out) + " out"},
			{Label: "Estimated cost", Value: usd(cost), Sub: tone(res.costUnknown > 0, "some prices unknown")},
		}
		return
	}
	p.Status = s.Status
	switch s.Status {
	case "complete":
		p.StatusTone, p.StatusText = "ok", "every record succeeded"
	case "records_failed":
		p.StatusTone, p.StatusText = "warn", "some records failed or are not done: see Failures below; a rerun retries and finishes them"
	case "interrupted":
		p.StatusTone, p.StatusText = "warn", "interrupted: rerun the same command to resume"
	case "api_refused":
		p.StatusTone, p.StatusText = "bad", "the API refused the run (bad key, no quota); the records not done remain for a rerun"
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
		Sub: textfmt.Thousands(s.InputTokens) + " in, " + textfmt.Thousands(s.OutputTokens) + " out"}
	if s.CachedInputTokens > 0 {
		tokens.Sub += ", " + textfmt.Thousands(s.CachedInputTokens) + " cached"
	}
	model := s.Model
	if s.Provider != "" && s.Provider != s.Model {
		model = s.Provider + " · " + s.Model
	}
	server := "no server (offline)"
	if s.Provider != "offline" {
		server = "server " + s.Server
		if s.Server == "" {
			server = "server api.openai.com"
		}
	}
	// The wall time is this pass's, so its rate is of the records this pass did: after a
	// resume the whole run's count over the last pass's time would overstate it.
	wall := tile{Label: "Wall time", Value: seconds(s.WallSeconds), Sub: rate(s.Succeeded+s.Failed, s.WallSeconds)}
	if pass, done := s.Pass.Answered+s.Pass.Failed, s.Succeeded+s.Failed; pass > 0 && pass < done {
		wall.Sub = rate(pass, s.WallSeconds)
		wall.Label = "Wall time (this pass)"
		wall.Sub += fmt.Sprintf("; %s of the %s done were done in earlier passes", textfmt.Thousands(done-s.Pass.Answered-s.Pass.Failed), textfmt.Thousands(done))
	}
	p.Tiles = []tile{
		{Label: "Records", Value: textfmt.Thousands(s.Records)},
		{Label: "Succeeded", Value: textfmt.Thousands(s.Succeeded), Sub: percent(s.Succeeded, s.Records), Tone: "ok"},
		{Label: "Failed", Value: textfmt.Thousands(s.Failed), Sub: percent(s.Failed, s.Records), Tone: tone(s.Failed > 0, "bad")},
		{Label: "Remaining", Value: textfmt.Thousands(s.Remaining), Sub: "not done yet: a rerun does them", Tone: tone(s.Remaining > 0, "warn")},
		{Label: "Provider · model", Value: model, Sub: server},
		wall,
		tokens,
		cost,
		{Label: "Retries", Value: textfmt.Thousands(s.Retries), Sub: textfmt.Thousands(s.RateLimited) + " rate-limited (429)", Tone: tone(s.RateLimited > 0, "warn")},
		{Label: "Worker restarts", Value: textfmt.Thousands(s.Restarts), Tone: tone(s.Restarts > 0, "warn")},
	}
	if s.Cached > 0 {
		p.Tiles = append(p.Tiles, tile{Label: "From the cache", Value: textfmt.Thousands(s.Cached), Sub: "answers reused at no cost (--cache)", Tone: "ok"})
	}
	if s.Backend == "batch-api" {
		p.Tiles = append(p.Tiles, tile{Label: "Backend", Value: "Batch API", Sub: "costs at Batch API prices"})
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

func (p *page) categories(r *run) {
	res := r.res
	p.ResultRows, p.TopN = textfmt.Thousands(res.rows), topValues
	for i, name := range res.columns {
		c := res.cats[i]
		if c.rows > 0 && c.freeText() {
			d := textfmt.Thousands(int64(len(c.counts)))
			if c.overflowed() {
				d = "over " + d
			}
			p.FreeText = append(p.FreeText, freeText{Name: name, Distinct: d})
			continue
		}
		top, restRows, restValues := c.top(topValues, nil)
		distinct := textfmt.Thousands(int64(len(c.counts)))
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

func (p *page) histograms(r *run) {
	res := r.res
	p.Latency = newHistView("Latency of the answering attempt, per answered record", "latency", res.latency, millis)
	p.InputTokens = newHistView("Input tokens per answered record", "input tokens (all its attempts)", res.input, count)
	p.OutputTokens = newHistView("Output tokens per answered record", "output tokens (all its attempts)", res.output, count)
	if res.input.max == 0 && res.output.max == 0 {
		// An offline run makes no requests: no all-zero charts.
		p.InputTokens.Empty, p.OutputTokens.Empty = "No tokens: no answer came from a model (an offline run).", "No tokens."
	}
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
	if res.turns.rows > 0 {
		top, restRows, restValues := res.turns.top(topValues, func(a, b valueCount) bool {
			x, _ := strconv.Atoi(a.Value)
			y, _ := strconv.Atoi(b.Value)
			return x < y
		})
		p.Turns = newBarChart("Agent turns per record", "requests of each record's tool loop", top, restRows, restValues, res.turns.rows, "#4e79a7")
		top, restRows, restValues = res.toolCalls.top(topValues, func(a, b valueCount) bool { return a.Count > b.Count || a.Count == b.Count && a.Value < b.Value })
		p.ToolCalls = newBarChart("Agent tool calls by tool", "every call of every loop, and the records that fell back to the one-shot prompt", top, restRows, restValues, res.toolCalls.rows, "#f28e2b")
	}
}

// costBarW is the width of the small bar in the cost tables.
const costBarW = 120.0

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
