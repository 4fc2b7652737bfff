package main

import (
	"context"
	"fmt"
	"time"

	"github.com/trialcat/trialcat/internal/fakeai"
	"github.com/trialcat/trialcat/internal/modelinfo"
	"github.com/trialcat/trialcat/internal/results"
	"github.com/trialcat/trialcat/internal/rundir"
)

// costRun is one mode of the cost scenario.
type costRun struct {
	Mode    string `json:"mode"`
	Records int64  `json:"records"`
	// ServerPrompt and ServerCached are what the server counted and reported; SummaryInput and
	// SummaryCached what summary.json says.
	ServerPrompt  int64   `json:"server_prompt_tokens"`
	ServerCached  int64   `json:"server_cached_tokens"`
	SummaryInput  int64   `json:"summary_input_tokens"`
	SummaryCached int64   `json:"summary_cached_tokens"`
	CostUSD       float64 `json:"cost_usd"`
	// RowsUSD sums the rows' cost_usd; UncachedUSD prices the same tokens with nothing cached,
	// at the rows' tiers.
	RowsUSD      float64          `json:"rows_usd"`
	UncachedUSD  float64          `json:"uncached_usd"`
	PerRecordUSD float64          `json:"per_record_usd"`
	Tiers        map[string]int64 `json:"tiers"`
	FlexRefusals int64            `json:"flex_refusals"`
	FellBack     int64            `json:"fell_back"`
	WallS        float64          `json:"wall_s"`
}

// costBench runs the real records through each way the cost depends on, against a fake that
// caches prefixes as OpenAI does: live on the default tier, flex with 30% of flex requests
// refused, the Batch API and the agent; and checks the counts against the server's.
func (b *bench) costBench(ctx context.Context) (any, error) {
	n := 409
	if b.cfg.Quick {
		n = 60
	}
	input, err := realInput(b.cfg.Sample, b.work, n)
	if err != nil {
		return nil, err
	}
	prices := modelinfo.Prices()
	var runs []costRun
	for _, m := range []struct {
		name string
		cfg  fakeai.Config
		args []string
	}{
		{"live, default tier", fakeai.Config{}, nil},
		{"live, flex (30% refused, --flex-fallback 3)", fakeai.Config{FlexUnavailable: 0.3}, []string{"--service-tier", "flex"}},
		{"Batch API", fakeai.Config{Batch: fakeai.BatchConfig{InProgress: time.Second}}, []string{"--backend", "batch-api", "--batch-poll", "200ms"}},
		{"agent, live, default tier", fakeai.Config{}, []string{"--agent"}},
	} {
		cfg := m.cfg
		cfg.Seed, cfg.PromptCache, cfg.Latency = 11, true, fakeai.LatencyModel{Base: 20 * time.Millisecond}
		f, err := startFake(cfg, false)
		if err != nil {
			return nil, err
		}
		args := append([]string{"--workers", "8", "--concurrency", "4", "--batches", "auto"}, m.args...)
		if m.name == "Batch API" {
			args = []string{"--workers", "4", "--backend", "batch-api", "--batch-poll", "200ms"}
		}
		run, err := b.coordinator(ctx, "cost-"+fmt.Sprint(len(runs)), input, f.URL(), 10*time.Minute, args...)
		st := f.srv.Stats()
		f.stop()
		if err != nil {
			return nil, err
		}
		s := run.Summary
		cr := costRun{Mode: m.name, Records: s.Succeeded, ServerPrompt: st.PromptTokens, ServerCached: st.CachedTokens,
			SummaryInput: s.InputTokens, SummaryCached: s.CachedInputTokens, CostUSD: s.CostUSD, PerRecordUSD: s.CostPerRecord,
			Tiers: s.ServiceTiers, WallS: run.Proc.WallS}
		if s.Flex != nil {
			cr.FlexRefusals, cr.FellBack = s.Flex.Refusals, s.Flex.FellBack
		}
		if _, err := results.ReadFile(rundir.New(run.Out).FinalResults(), func(_ results.Layout, r results.Row) error {
			cr.RowsUSD += r.CostUSD
			u, _ := prices.CostAt(r.Model, r.ServiceTier, r.InputTokens, 0, r.OutputTokens)
			cr.UncachedUSD += u
			return nil
		}); err != nil {
			return nil, err
		}
		runs = append(runs, cr)
	}
	fmt.Fprintf(b.out, "## Cost: prompt caching, flex, the Batch API and the agent (%d real records, fakeai caching prefixes as OpenAI does, gpt-5-mini prices)\n\n", n)
	var rows [][]string
	for _, r := range runs {
		rows = append(rows, []string{r.Mode, fmt.Sprint(r.Records), fmt.Sprint(r.ServerPrompt), fmt.Sprint(r.ServerCached), fmt.Sprint(r.SummaryCached),
			pct(float64(r.SummaryCached) / float64(max(1, r.SummaryInput))), fmt.Sprintf("$%.4f", r.CostUSD), fmt.Sprintf("$%.4f", r.RowsUSD),
			fmt.Sprintf("$%.4f", r.UncachedUSD), fmt.Sprintf("$%.6f", r.PerRecordUSD), fmt.Sprint(r.FlexRefusals), fmt.Sprint(r.FellBack), f1(r.WallS)})
	}
	table(b.out, []string{"mode", "records", "server prompt tokens", "server cached", "summary cached", "cached share", "summary cost", "Σ rows' cost",
		"same tokens uncached", "cost per record", "flex refusals", "fell back", "wall s"}, rows)
	fmt.Fprintln(b.out)
	return runs, nil
}
