package report

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/trialcat/trialcat/internal/textfmt"

	"github.com/trialcat/trialcat/internal/summary"
)

type costRow struct {
	Name, Rows, Cost, Input, Cached, Output, Latency, BarW string
	Failed, Seconds, Restarts, Exit, ExitTone              string
}

// costBreakdown is one table of the cost section: the rows' cost split by one key.
type costBreakdown struct {
	Title, Key string
	Rows       []costRow
}

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
			map[bool]string{true: "1 record has", false: textfmt.Thousands(res.costUnknown) + " records have"}[res.costUnknown == 1])
	}
	p.CostNote = strings.TrimSpace(p.CostNote)
	row := func(name string, s *costStats) costRow {
		c := costRow{Name: name, Rows: textfmt.Thousands(s.Rows), Cost: usd(s.CostUSD), Input: textfmt.Thousands(s.InputTokens),
			Output: textfmt.Thousands(s.OutputTokens), BarW: num(costBarW * share(s))}
		if s.InputTokens > 0 {
			c.Cached = fmt.Sprintf("%.0f%%", 100*float64(s.CachedTokens)/float64(s.InputTokens))
		}
		if s.CostUnknown > 0 {
			c.Cost += fmt.Sprintf(" (+%s unpriced)", textfmt.Thousands(s.CostUnknown))
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
	breakdown := func(title, key string, m map[string]*costStats, order []string) {
		if len(m) == 0 {
			return
		}
		names := order
		if names == nil {
			names = slices.Collect(maps.Keys(m))
			slices.SortFunc(names, func(a, b string) int {
				return cmp.Or(cmp.Compare(m[b].CostUSD, m[a].CostUSD), cmp.Compare(m[b].Rows, m[a].Rows), cmp.Compare(a, b))
			})
		}
		bd := costBreakdown{Title: title, Key: key}
		for _, n := range names {
			if s := m[n]; s != nil {
				bd.Rows = append(bd.Rows, row(n, s))
			}
		}
		p.Breakdowns = append(p.Breakdowns, bd)
	}
	breakdown("Per service tier", "tier", res.tiers, nil)
	lengths := make([]string, len(lengthBuckets))
	for i, b := range lengthBuckets {
		lengths[i] = b.name
	}
	breakdown("Per record length (prompt tokens)", "prompt tokens", res.lengths, lengths)
	if _, plain := res.stages["one-shot"]; len(res.stages) > 1 || !plain {
		breakdown("Per stage", "stage", res.stages, nil)
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
			c.Failed = textfmt.Thousands(w.Failed)
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
