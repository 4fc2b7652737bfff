package coordinator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/trialcat/trialcat/internal/batch"
	"github.com/trialcat/trialcat/internal/exitcode"
	"github.com/trialcat/trialcat/internal/merge"
	"github.com/trialcat/trialcat/internal/proc"
	"github.com/trialcat/trialcat/internal/report"
	"github.com/trialcat/trialcat/internal/results"
	"github.com/trialcat/trialcat/internal/runspec"
	"github.com/trialcat/trialcat/internal/safefile"
	"github.com/trialcat/trialcat/internal/schema"
	"github.com/trialcat/trialcat/internal/summary"
	"github.com/trialcat/trialcat/internal/worker"
)

// Output file names.
const (
	FinalResults  = "final_results.csv"
	FinalFailures = "final_failures.csv"
	SummaryFile   = summary.FileName
)

// finish merges the workers' files, writes summary.json and prints the human summary.
func finish(ctx context.Context, opts *Options, deps *Deps, spec *runspec.Spec, sch *schema.Schema, s *scheduler, started time.Time, runErr error) (*summary.Summary, error) {
	// Merging must happen even when the run was interrupted: use a context of its own.
	mctx := context.WithoutCancel(ctx)
	stats, err := Merge(mctx, opts.Out, spec, sch)
	if err != nil {
		return nil, err
	}
	sum := &summary.Summary{
		Out: opts.Out, Provider: spec.Provider, Model: spec.Model,
		Records: stats.Records, Succeeded: stats.Succeeded, Failed: stats.Failed + stats.Missing,
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
	case runErr != nil:
		sum.Status = summary.StatusError
	case sum.Failed > 0:
		sum.Status = summary.StatusRecordsFailed
	default:
		sum.Status = summary.StatusComplete
	}
	sum.CoordinatorMaxRSSKB = proc.PeakRSSKB()
	snap := s.display.Snapshot()
	sum.Retries, sum.RateLimited, sum.Restarts = snap.Retries, snap.RateLimited, snap.Restarts
	if err := tally(sum, opts.Out, worker.ResultsHeader(spec.IDColumn, sch), s.workerRuns()); err != nil {
		return nil, err
	}
	if sum.WallSeconds > 0 {
		sum.Speedup = sum.RequestSeconds / sum.WallSeconds
		slots := float64(min(opts.Workers, len(spec.Batches)) * spec.Concurrency)
		sum.OutsideRequests = max(0, 1-sum.RequestSeconds/(sum.WallSeconds*slots))
	}
	if err := safefile.WriteJSON(filepath.Join(opts.Out, SummaryFile), sum); err != nil {
		return nil, fmt.Errorf("write summary: %w", err)
	}
	// The report is for people; failing to write it must not change the run's outcome.
	if err := report.Write(opts.Out); err != nil {
		deps.Log.Warn("could not write report.html", "error", err)
	}
	printSummary(sum, deps.Stdout)
	return sum, nil
}

// Merge merges every batch's worker files in dir into final_results.csv and final_failures.csv.
func Merge(ctx context.Context, dir string, spec *runspec.Spec, sch *schema.Schema) (merge.Stats, error) {
	batches := make([]merge.Batch, 0, len(spec.Batches))
	for _, b := range spec.Batches {
		f := worker.FilesForNumber(dir, b.Number)
		path := filepath.Join(dir, batch.FileName(b.Number))
		batches = append(batches, merge.Batch{
			Number: b.Number, ResultsPath: f.Results, FailuresPath: f.Failures,
			IDs: func(yield func(string) error) error { return batch.IDs(path, spec.IDField, yield) },
		})
	}
	return merge.Merge(ctx, merge.Options{
		Batches:       batches,
		ResultsHeader: worker.ResultsHeader(spec.IDColumn, sch),
		OutPath:       filepath.Join(dir, FinalResults),
		FailuresPath:  filepath.Join(dir, FinalFailures),
		MissingClass:  "not_processed",
	})
}

// spentSoFar sums the cost already recorded in the workers' files of a run being resumed.
func spentSoFar(dir string, spec *runspec.Spec) (float64, error) {
	var total float64
	for _, b := range spec.Batches {
		bs, err := readBatch(dir, b)
		if err != nil {
			return 0, fmt.Errorf("read spend so far: %w", err)
		}
		total += bs.CostUSD
	}
	return total, nil
}

// tally adds tokens, cost and per-worker counts from the merged files.
func tally(sum *summary.Summary, dir string, header []string, runs []summary.WorkerRun) error {
	per := map[int]*summary.WorkerSummary{}
	for _, r := range runs {
		per[r.Batch] = &summary.WorkerSummary{WorkerRun: r}
	}
	col := map[string]int{}
	for i, h := range header {
		col[h] = i
	}
	sum.CostKnown = true
	if _, _, err := results.Read(filepath.Join(dir, FinalResults), func(row []string) error {
		in, _ := strconv.ParseInt(row[col["input_tokens"]], 10, 64)
		out, _ := strconv.ParseInt(row[col["output_tokens"]], 10, 64)
		lat, _ := strconv.ParseFloat(row[col["latency_ms"]], 64)
		sum.RequestSeconds += lat / 1000
		cost, cerr := strconv.ParseFloat(row[col["cost_usd"]], 64)
		if cerr != nil {
			sum.CostKnown = false
		}
		sum.InputTokens += in
		sum.OutputTokens += out
		sum.CostUSD += cost
		n, _ := strconv.Atoi(row[col["worker"]])
		if w, ok := per[n]; ok {
			w.Succeeded++
			w.InputTokens += in
			w.OutputTokens += out
			w.CostUSD += cost
		}
		return nil
	}); err != nil {
		return fmt.Errorf("read %s: %w", FinalResults, err)
	}
	sum.FailedByClass = map[string]int64{}
	if _, _, err := results.Read(filepath.Join(dir, FinalFailures), func(row []string) error {
		sum.FailedByClass[row[1]]++
		n, _ := strconv.Atoi(row[4])
		if w, ok := per[n]; ok {
			w.Failed++
		}
		return nil
	}); err != nil {
		return fmt.Errorf("read %s: %w", FinalFailures, err)
	}
	for _, r := range runs {
		sum.Workers = append(sum.Workers, *per[r.Batch])
	}
	return nil
}

func printSummary(sum *summary.Summary, w io.Writer) {
	fmt.Fprintf(w, "\n%d records: %d succeeded, %d failed  (%s, model %s)\n", sum.Records, sum.Succeeded, sum.Failed, sum.Provider, sum.Model)
	cost := fmt.Sprintf("$%.4f", sum.CostUSD)
	if !sum.CostKnown {
		cost += " (some models' prices are unknown; see --prices)"
	}
	fmt.Fprintf(w, "tokens in %d, out %d; estimated cost %s; wall %.1fs; retries %d (429s %d); worker restarts %d\n",
		sum.InputTokens, sum.OutputTokens, cost, sum.WallSeconds, sum.Retries, sum.RateLimited, sum.Restarts)
	if sum.Provider != runspec.ProviderOffline && sum.RequestSeconds > 0 {
		fmt.Fprintf(w, "time in requests %.1fs: %.1fx faster than one sequential worker; %.0f%% of worker time spent outside requests\n",
			sum.RequestSeconds, sum.Speedup, 100*sum.OutsideRequests)
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
	fmt.Fprintln(tw, "worker\trecords\tsucceeded\tfailed\tseconds\tretries\trestarts\ttokens in/out\tcost\texit\t")
	for _, ws := range sum.Workers {
		fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%.1f\t%d\t%d\t%d/%d\t$%.4f\t%s\t\n", ws.Batch, ws.Records, ws.Succeeded, ws.Failed,
			ws.Seconds, ws.Retries, ws.Restarts, ws.InputTokens, ws.OutputTokens, ws.CostUSD, ws.Exit)
	}
	tw.Flush()
	fmt.Fprintf(w, "results: %s\nreport:  %s\n", filepath.Join(sum.Out, FinalResults), filepath.Join(sum.Out, "report.html"))
	if sum.Failed > 0 {
		fmt.Fprintf(w, "failures: %s\n", filepath.Join(sum.Out, FinalFailures))
	}
}
