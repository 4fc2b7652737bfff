package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/trialcat/trialcat/internal/exitcode"
	"github.com/trialcat/trialcat/internal/llm"
	"github.com/trialcat/trialcat/internal/merge"
	"github.com/trialcat/trialcat/internal/proc"
	"github.com/trialcat/trialcat/internal/report"
	"github.com/trialcat/trialcat/internal/results"
	"github.com/trialcat/trialcat/internal/rundir"
	"github.com/trialcat/trialcat/internal/runspec"
	"github.com/trialcat/trialcat/internal/safefile"
	"github.com/trialcat/trialcat/internal/schema"
	"github.com/trialcat/trialcat/internal/summary"
	"github.com/trialcat/trialcat/internal/wire"
)

// finish merges the workers' files, writes summary.json and prints the human summary.
func finish(ctx context.Context, opts *Options, deps *Deps, spec *runspec.Spec, sch *schema.Schema, s *scheduler, started time.Time, phases summary.Phases, runErr error) (*summary.Summary, error) {
	// Merging must happen even when the run was interrupted: use a context of its own.
	mctx := context.WithoutCancel(ctx)
	dir := rundir.New(opts.Out)
	t0 := time.Now()
	stats, tot, err := s.mergeAll(mctx, sch)
	if err != nil {
		return nil, err
	}
	deps.Log.Debug("merged", "seconds", time.Since(t0).Seconds())
	if err := s.completeStream(mctx, spec.Layout(sch), stats.Succeeded); err != nil {
		deps.Log.Warn("cannot complete the results stream", "error", err)
	}
	sum := &summary.Summary{
		Out: opts.Out, Provider: spec.Provider, Model: spec.Model, Backend: spec.Backend, Server: serverHost(spec.BaseURL),
		Records: stats.Records, Succeeded: stats.Succeeded, Failed: stats.Failed, Remaining: stats.Missing,
		StartedAt: started.UTC(), FinishedAt: deps.Now().UTC(),
	}
	sum.WallSeconds = sum.FinishedAt.Sub(sum.StartedAt).Seconds()
	switch {
	case errors.Is(runErr, exitcode.ErrInterrupted):
		sum.Status = summary.StatusInterrupted
	case errors.Is(runErr, exitcode.ErrFatalAPI):
		sum.Status = summary.StatusAPIRefused
	case errors.Is(runErr, exitcode.ErrBudget):
		sum.Status = summary.StatusBudgetReached
	case errors.Is(runErr, exitcode.ErrStorage):
		sum.Status = summary.StatusStorage
	case runErr != nil:
		sum.Status = summary.StatusError
	case sum.Failed > 0 || sum.Remaining > 0:
		sum.Status = summary.StatusRecordsFailed
	default:
		sum.Status = summary.StatusComplete
	}
	sum.CoordinatorMaxRSSKB = proc.PeakRSSKB()
	snap := s.tally.Snapshot()
	sum.Retries, sum.RateLimited, sum.Restarts = snap.Retries, snap.RateLimited, snap.Restarts
	sum.Phases = phases
	sum.Phases.FirstWorkerAt, sum.Phases.LastWorkerExitAt = utc(snap.FirstWorkerAt), utc(snap.LastExitAt)
	sum.Phases.FirstRecordAt, sum.Phases.LastRecordAt = utc(snap.FirstRecordAt), utc(snap.LastRecordAt)
	s.firstRequestOnce.Do(func() {}) // no request after this: the field is settled
	sum.Phases.FirstRequestAt = utc(s.firstRequest)
	if err := addTotals(sum, tot, s.workerRuns()); err != nil {
		return nil, err
	}
	sum.WorkerProcesses = int(s.procs.Load())
	sum.Hedged, sum.HedgeWins = snap.Hedged, snap.HedgeWins
	if spec.ServiceTier == llm.TierFlex || snap.FlexRefusals > 0 {
		sum.Flex = &summary.Flex{Refusals: snap.FlexRefusals, FellBack: snap.FlexFellBack}
	}
	if sum.Hedged > 0 {
		deps.Log.Info(fmt.Sprintf("hedged %d requests running past the p90 latency (--hedge %g): the copy's answer was kept for %d", sum.Hedged, spec.Hedge, sum.HedgeWins))
	}
	sum.Pass = summary.Pass{Answered: snap.Succeeded, Failed: snap.Failed, InputTokens: snap.InputTokens,
		OutputTokens: snap.OutputTokens, CostUSD: snap.PassCostUSD, RequestSeconds: snap.RequestSeconds, WallSeconds: sum.WallSeconds}
	if sum.WallSeconds > 0 {
		sum.Speedup = sum.Pass.RequestSeconds / sum.WallSeconds
		slots := float64(min(opts.Workers, len(spec.Batches)) * spec.Concurrency)
		sum.OutsideRequests = max(0, 1-sum.Pass.RequestSeconds/(sum.WallSeconds*slots))
	}
	if err := safefile.WriteJSON(dir.Summary(), sum); err != nil {
		return nil, fmt.Errorf("write summary: %w", err)
	}
	deps.Log.Debug("wrote the summary", "seconds", time.Since(t0).Seconds())
	// The report is for people; failing to write it must not change the run's outcome.
	if err := report.Write(opts.Out); err != nil {
		deps.Log.Warn("could not write report.html", "error", err)
	}
	deps.Log.Debug("wrote the report", "seconds", time.Since(t0).Seconds())
	printSummary(sum, deps.Stdout, true)
	return sum, nil
}

// serverHost is the host:port of a base URL ("" for none or one that does not parse).
func serverHost(base string) string {
	u, err := url.Parse(base)
	if err != nil {
		return ""
	}
	return u.Host
}

// utc is t in UTC, keeping the zero time zero.
func utc(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC()
}

// refreshFolder merges a run's worker files and writes every file a run leaves (the final files,
// results.jsonl completed, summary.json and report.html) as the end of a run does, for a merge
// with no pass of its own. The caller holds the run lock.
func refreshFolder(ctx context.Context, deps *Deps, dir rundir.Dir, spec *runspec.Spec, sch *schema.Schema) (*summary.Summary, error) {
	o := DefaultOptions()
	o.Out, o.Workers = dir.Path(), spec.Workers
	s, err := newScheduler(&plan{opts: &o, spec: spec, sch: sch, dir: dir}, deps)
	if err != nil {
		return nil, err
	}
	defer s.close()
	// No pass ran: the run's summary table (with its "this pass" lines) is not printed; the
	// caller says what it merged.
	quiet := *deps
	quiet.Stdout = io.Discard
	return finish(ctx, &o, &quiet, spec, sch, s, deps.Now(), summary.Phases{}, nil)
}

// mergeRun merges every batch's worker files into the run's final files.
func mergeRun(ctx context.Context, dir rundir.Dir, spec *runspec.Spec, sch *schema.Schema) (merge.Stats, *totals, error) {
	m, err := startMerge(dir, spec, sch)
	if err != nil {
		return merge.Stats{}, nil, err
	}
	stats, err := m.finish(ctx)
	return stats, m.totals, err
}

// spentSoFar sums the cost already recorded in the workers' files of a run being resumed.
func spentSoFar(dir rundir.Dir, spec *runspec.Spec) (float64, error) {
	sch, err := schema.Parse(spec.Schema, spec.SchemaSource)
	if err != nil {
		return 0, err
	}
	var total float64
	for _, b := range spec.Batches {
		bs, err := readBatch(dir, spec.Layout(sch), b)
		if err != nil {
			return 0, fmt.Errorf("read spend so far: %w", err)
		}
		total += bs.CostUSD
	}
	return total, nil
}

// totals are the sums summary.json reports over the final files, gathered as the merge writes
// each row (merge.Options.OnResult, OnFailure): no second pass over the outputs.
type totals struct {
	layout         results.Layout
	requestSeconds float64
	costUnknown    bool
	input, output  int64
	cost           float64
	cached         int64
	carried        int64
	cachedTokens   int64
	// reviewed counts rows a person's correction changed; staleReviews the corrections not
	// applied because their record changed since.
	reviewed     int64
	staleReviews []string
	// decidedBy and escalated count a --cascade run's rows; strongPrice prices tokens at the
	// last model's rate and strongAlone sums what each row would have cost asked of it alone
	// (its tokens spread evenly over the models it was asked of).
	decidedBy   map[string]int64
	escalated   int64
	strongPrice func(in, cached, out int64) (float64, bool)
	strongAlone float64
	strongKnown bool
	// confSum and confN sum the confidence columns (--votes), by field.
	confSum       map[string]float64
	confN         map[string]int64
	agent         summary.Agent
	failedByClass map[string]int64
	// costByModel, costByTier and tiers split the rows' costs and counts.
	costByModel, costByTier map[string]float64
	tiers                   map[string]int64
	perWorker               map[int]*summary.WorkerSummary
	err                     error // the first row that did not decode
}

func newTotals(layout results.Layout) *totals {
	return &totals{layout: layout, failedByClass: map[string]int64{}, perWorker: map[int]*summary.WorkerSummary{},
		costByModel: map[string]float64{}, costByTier: map[string]float64{}, tiers: map[string]int64{},
		agent: summary.Agent{TurnsHistogram: map[string]int64{}, ToolCalls: map[string]int64{}}}
}

func (t *totals) worker(n int) *summary.WorkerSummary {
	w := t.perWorker[n]
	if w == nil {
		w = &summary.WorkerSummary{}
		t.perWorker[n] = w
	}
	return w
}

func (t *totals) result(cells []string) {
	row, err := t.layout.Decode(cells)
	if err != nil {
		t.err = cmp.Or(t.err, err)
		return
	}
	t.requestSeconds += float64(row.LatencyMS) / 1000
	t.costUnknown = t.costUnknown || !row.CostKnown
	t.input += row.InputTokens
	t.output += row.OutputTokens
	t.cost += row.CostUSD
	t.costByModel[row.Model] += row.CostUSD
	t.costByTier[row.ServiceTier] += row.CostUSD
	t.tiers[row.ServiceTier]++
	if row.Cached {
		t.cached++
	}
	if row.Source == results.SourceCarried {
		t.carried++
	}
	t.cachedTokens += row.CachedTokens
	if row.DecidedBy != "" {
		if t.decidedBy == nil {
			t.decidedBy, t.strongKnown = map[string]int64{}, true
		}
		t.decidedBy[row.DecidedBy]++
		stages := int64(1)
		if row.Escalated != "" {
			t.escalated++
			stages += int64(len(strings.Split(row.Escalated, "; ")))
		}
		if t.strongPrice != nil {
			c, ok := t.strongPrice(row.InputTokens/stages, row.CachedTokens/stages, row.OutputTokens/stages)
			t.strongAlone += c
			t.strongKnown = t.strongKnown && ok
		}
	}
	for f, v := range t.layout.Confidences(row) {
		if t.confSum == nil {
			t.confSum, t.confN = map[string]float64{}, map[string]int64{}
		}
		t.confSum[f] += v
		t.confN[f]++
	}
	if row.Turns > 0 && !row.Cached {
		calls, fallback := results.ParseToolCalls(row.ToolCalls)
		t.agent.Records++
		t.agent.Turns += int64(row.Turns)
		t.agent.TurnsHistogram[strconv.Itoa(row.Turns)]++
		for name, n := range calls {
			t.agent.ToolCalls[name] += int64(n)
		}
		if fallback {
			t.agent.Fallbacks++
		}
	}
	w := t.worker(row.Worker)
	w.Succeeded++
	w.InputTokens += row.InputTokens
	w.OutputTokens += row.OutputTokens
	w.CostUSD += row.CostUSD
}

func (t *totals) failure(cells []string) {
	f, err := results.DecodeFailure(cells)
	if err != nil {
		t.err = cmp.Or(t.err, err)
		return
	}
	t.failedByClass[f.Class]++
	t.worker(f.Worker).Failed++
}

// addTotals fills the summary's sums from the merge's totals, per batch in runs' order.
func addTotals(sum *summary.Summary, t *totals, runs []summary.WorkerRun) error {
	if t.err != nil {
		return fmt.Errorf("summary totals: %w", t.err)
	}
	sum.RequestSeconds, sum.CostKnown = t.requestSeconds, !t.costUnknown
	sum.InputTokens, sum.OutputTokens, sum.CostUSD, sum.Cached = t.input, t.output, t.cost, t.cached
	sum.CachedInputTokens, sum.Carried = t.cachedTokens, t.carried
	if t.input > 0 {
		sum.CachedShare = math.Round(float64(t.cachedTokens)/float64(t.input)*1000) / 1000
	}
	if n := t.tiers; len(n) > 0 {
		var rows int64
		for _, k := range n {
			rows += k
		}
		sum.CostPerRecord = math.Round(t.cost/float64(rows)*1e9) / 1e9 // to the nano-dollar: no float noise
		sum.CostByModel, sum.CostByTier = roundedCosts(t.costByModel), roundedCosts(t.costByTier)
		if len(n) > 1 || n[""] == 0 {
			sum.ServiceTiers = n
		}
	}
	sum.Reviewed, sum.StaleReviews = t.reviewed, t.staleReviews
	if t.decidedBy != nil {
		var n int64
		for _, k := range t.decidedBy {
			n += k
		}
		sum.Cascade = &summary.Cascade{DecidedBy: t.decidedBy, Escalated: t.escalated, EscalatedShare: math.Round(float64(t.escalated)/float64(n)*1000) / 1000}
		if t.strongPrice != nil && t.strongKnown && t.strongAlone > 0 {
			sum.Cascade.StrongAloneUSD = math.Round(t.strongAlone*1e6) / 1e6
			sum.Cascade.CostShare = math.Round(t.cost/t.strongAlone*1000) / 1000
		}
	}
	for f, n := range t.confN {
		if sum.Confidence == nil {
			sum.Confidence = map[string]float64{}
		}
		sum.Confidence[f] = math.Round(t.confSum[f]/float64(n)*1000) / 1000
	}
	sum.FailedByClass = t.failedByClass
	if t.agent.Records > 0 || t.failedByClass[wire.ClassAgentLimit] > 0 {
		a := t.agent
		a.Limited = t.failedByClass[wire.ClassAgentLimit]
		sum.Agent = &a
	}
	for _, r := range runs {
		w := summary.WorkerSummary{WorkerRun: r}
		if got := t.perWorker[r.Batch]; got != nil {
			w.Succeeded, w.Failed, w.InputTokens, w.OutputTokens, w.CostUSD = got.Succeeded, got.Failed, got.InputTokens, got.OutputTokens, got.CostUSD
		}
		sum.Workers = append(sum.Workers, w)
	}
	return nil
}

// roundedCosts is costs rounded to the micro-dollar, as the rows' cells are.
func roundedCosts(costs map[string]float64) map[string]float64 {
	out := make(map[string]float64, len(costs))
	for k, v := range costs {
		out[k] = math.Round(v*1e6) / 1e6
	}
	return out
}

// slotRow sums the batches one worker slot ran.
type slotRow struct {
	summary.WorkerSummary
	batches int
}

// bySlot sums the started batches per worker slot, in slot order.
func bySlot(ws []summary.WorkerSummary) []slotRow {
	var rows []slotRow
	at := map[int]int{}
	for _, w := range ws {
		if !w.Started {
			continue
		}
		i, ok := at[w.Slot]
		if !ok {
			i = len(rows)
			at[w.Slot] = i
			rows = append(rows, slotRow{WorkerSummary: summary.WorkerSummary{WorkerRun: summary.WorkerRun{Slot: w.Slot}}})
		}
		r := &rows[i]
		r.batches++
		r.Records += w.Records
		r.Succeeded += w.Succeeded
		r.Failed += w.Failed
		r.Seconds += w.Seconds
		r.Retries += w.Retries
		r.Restarts += w.Restarts
		r.InputTokens += w.InputTokens
		r.OutputTokens += w.OutputTokens
		r.CostUSD += w.CostUSD
	}
	sort.Slice(rows, func(a, b int) bool { return rows[a].Slot < rows[b].Slot })
	return rows
}

// printSummary writes the run's summary for people. thisPass says whether a pass ran now: a
// finished run asked again ran none, and the last pass's figures are not reprinted as this one's.
func printSummary(sum *summary.Summary, w io.Writer, thisPass bool) {
	fmt.Fprintf(w, "\n%d records: %d succeeded, %d failed, %d remaining  (%s, model %s)\n", sum.Records, sum.Succeeded, sum.Failed, sum.Remaining, sum.Provider, sum.Model)
	fmt.Fprintf(w, "whole run: tokens in %d (%.0f%% from the provider's prompt cache), out %d; estimated cost %s", sum.InputTokens, 100*sum.CachedShare, sum.OutputTokens, sum.Cost())
	if sum.CostKnown && sum.Succeeded > 0 {
		fmt.Fprintf(w, ", $%.6f a record", sum.CostPerRecord)
	}
	fmt.Fprintln(w)
	if f := sum.Flex; f != nil {
		fmt.Fprintf(w, "this pass: flex tier refused %d requests; %d records went on the default tier after --flex-fallback refusals\n", f.Refusals, f.FellBack)
	}
	if sum.Cached > 0 {
		fmt.Fprintf(w, "whole run: %d answers from the response cache (no request, cost 0)\n", sum.Cached)
	}
	if sum.Reviewed > 0 || len(sum.StaleReviews) > 0 {
		fmt.Fprintf(w, "whole run: %d answers are a reviewer's corrections (source review)", sum.Reviewed)
		if n := len(sum.StaleReviews); n > 0 {
			fmt.Fprintf(w, "; %d corrections are stale (their record changed since the review) and were not applied: %s", n, strings.Join(sum.StaleReviews[:min(n, 10)], ", "))
		}
		fmt.Fprintln(w)
	}
	if c := sum.Cascade; c != nil {
		models := slices.Sorted(maps.Keys(c.DecidedBy))
		parts := make([]string, len(models))
		for i, m := range models {
			parts[i] = fmt.Sprintf("%s %d", m, c.DecidedBy[m])
		}
		fmt.Fprintf(w, "whole run: cascade: %d records (%.1f%%) went past the first model; decided by %s", c.Escalated, 100*c.EscalatedShare, strings.Join(parts, ", "))
		if c.StrongAloneUSD > 0 {
			fmt.Fprintf(w, "; cost %.0f%% of the last model alone (about $%.4f)", 100*c.CostShare, c.StrongAloneUSD)
		}
		fmt.Fprintln(w)
	}
	if len(sum.Confidence) > 0 {
		fields := slices.Sorted(maps.Keys(sum.Confidence))
		parts := make([]string, len(fields))
		for i, f := range fields {
			parts[i] = fmt.Sprintf("%s %.3f", f, sum.Confidence[f])
		}
		fmt.Fprintf(w, "whole run: mean confidence of the votes: %s\n", strings.Join(parts, ", "))
	}
	if sum.Carried > 0 {
		fmt.Fprintf(w, "whole run: %d answers carried from the earlier run (--since-run: records unchanged since, no request, cost 0)\n", sum.Carried)
	}
	if a := sum.Agent; a != nil {
		fmt.Fprintf(w, "whole run: agent %s", agentLine(a))
	}
	if !thisPass {
		dir := rundir.New(sum.Out)
		fmt.Fprintf(w, "nothing was asked now: every record was done already (the last pass's figures are in %s)\nresults: %s\nreport:  %s\n",
			dir.Summary(), dir.FinalResults(), dir.Report())
		return
	}
	p := sum.Pass
	fmt.Fprintf(w, "this pass: %d answered, %d failed in %.1fs; tokens in %d, out %d; cost $%.4f; retries %d (429s %d); worker restarts %d\n",
		p.Answered, p.Failed, sum.WallSeconds, p.InputTokens, p.OutputTokens, p.CostUSD, sum.Retries, sum.RateLimited, sum.Restarts)
	if sum.Provider != runspec.ProviderOffline && p.RequestSeconds > 0 {
		fmt.Fprintf(w, "this pass: time in requests %.1fs: %.1fx faster than one sequential worker; %.0f%% of worker time spent outside requests\n",
			p.RequestSeconds, sum.Speedup, 100*sum.OutsideRequests)
	}
	if len(sum.FailedByClass) > 0 {
		classes := make([]string, 0, len(sum.FailedByClass))
		for c := range sum.FailedByClass {
			classes = append(classes, c)
		}
		sort.Strings(classes)
		fmt.Fprint(w, "failures by class:")
		for _, c := range classes {
			fmt.Fprintf(w, " %s=%d", c, sum.FailedByClass[c])
		}
		fmt.Fprintln(w)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	if rows := bySlot(sum.Workers); len(rows) < len(sum.Workers) {
		// More batches than workers: one row per worker slot, so the table stays short.
		fmt.Fprintln(tw, "worker\tbatches\trecords\tsucceeded\tfailed\tseconds\tretries\trestarts\ttokens in/out\tcost\t")
		for _, r := range rows {
			fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%d\t%.1f\t%d\t%d\t%d/%d\t$%.4f\t\n", r.Slot, r.batches, r.Records, r.Succeeded, r.Failed,
				r.Seconds, r.Retries, r.Restarts, r.InputTokens, r.OutputTokens, r.CostUSD)
		}
	} else {
		fmt.Fprintln(tw, "worker\trecords\tsucceeded\tfailed\tseconds\tretries\trestarts\ttokens in/out\tcost\texit\t")
		for _, ws := range sum.Workers {
			fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%.1f\t%d\t%d\t%d/%d\t$%.4f\t%s\t\n", ws.Batch, ws.Records, ws.Succeeded, ws.Failed,
				ws.Seconds, ws.Retries, ws.Restarts, ws.InputTokens, ws.OutputTokens, ws.CostUSD, ws.Exit)
		}
	}
	tw.Flush()
	dir := rundir.New(sum.Out)
	fmt.Fprintf(w, "results: %s\nreport:  %s\n", dir.FinalResults(), dir.Report())
	if sum.Failed > 0 {
		fmt.Fprintf(w, "failures: %s\n", dir.FinalFailures())
	}
}

// agentLine is the summary's line about the agent's loops.
func agentLine(a *summary.Agent) string {
	mean := 0.0
	if a.Records > 0 {
		mean = float64(a.Turns) / float64(a.Records)
	}
	names := slices.Sorted(maps.Keys(a.ToolCalls))
	calls := make([]string, len(names))
	for i, n := range names {
		calls[i] = fmt.Sprintf("%s %d", n, a.ToolCalls[n])
	}
	return fmt.Sprintf("%d records in %d turns (%.1f a record); tool calls: %s; %d fell back to the one-shot prompt, %d failed as agent_limit\n",
		a.Records, a.Turns, mean, strings.Join(calls, ", "), a.Fallbacks, a.Limited)
}
