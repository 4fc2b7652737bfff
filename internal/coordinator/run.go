package coordinator

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/trialcat/trialcat/internal/batch"
	"github.com/trialcat/trialcat/internal/exitcode"
	"github.com/trialcat/trialcat/internal/input"
	"github.com/trialcat/trialcat/internal/rundir"
	"github.com/trialcat/trialcat/internal/runspec"
	"github.com/trialcat/trialcat/internal/summary"
)

// Run categorizes opts.Input into opts.Out. The returned error decides the exit code (see
// package exitcode); the summary is returned whenever the run got as far as merging.
func Run(ctx context.Context, opts Options, deps Deps) (*summary.Summary, error) {
	deps.defaults()
	log := deps.Log
	started := deps.Now()
	if err := opts.check(); err != nil {
		return nil, err
	}
	provider, err := resolveProvider(&opts, &deps)
	if err != nil {
		return nil, err
	}
	if err := checkModelParams(&opts, &deps, provider); err != nil {
		return nil, err
	}
	sch, schemaRaw, schemaSrc, tmpl, promptText, promptSrc, err := loadSchemaAndPrompt(&opts, provider)
	if err != nil {
		return nil, err
	}
	workerBin, err := findWorker(&opts, &deps)
	if err != nil {
		return nil, err
	}
	inOpts := input.Options{IDField: opts.IDField, Dedupe: opts.Dedupe}
	var phases summary.Phases
	phases.CheckingInputAt = deps.Now().UTC()
	log.Info("checking input", "path", opts.Input)
	stats, err := input.Scan(ctx, opts.Input, inOpts)
	if err != nil {
		return nil, err
	}
	for _, d := range stats.Dropped {
		log.Warn("duplicate ID dropped (--dedupe keeps the first)", "id", d.ID, "index", d.Index, "first_index", d.FirstIndex)
	}
	if provider != runspec.ProviderOffline {
		if err := checkRecords(ctx, opts.Input, inOpts, tmpl); err != nil {
			return nil, err
		}
	}
	if err := checkOut(opts.Out); err != nil {
		return nil, err
	}

	spec := &runspec.Spec{
		Version: runspec.Version, CreatedAt: started.UTC(), Provider: provider, Model: opts.Model,
		BaseURL: opts.BaseURL, ReasoningEffort: opts.ReasoningEffort, Temperature: opts.Temperature,
		MaxCompletionTokens: opts.MaxCompletionTokens, PromptSource: promptSrc, Prompt: promptText,
		SchemaSource: schemaSrc, Schema: schemaRaw, IDField: opts.IDField, IDColumn: idColumn(opts.IDField),
		Dedupe: opts.Dedupe, MaxAttempts: opts.MaxAttempts, Timeout: runspec.Duration(opts.Timeout),
		Concurrency: opts.Concurrency, RPM: opts.RPM, TPM: opts.TPM, MaxInputTokens: opts.MaxInputTokens,
		Workers: opts.Workers, BatchMode: opts.batchMode(),
		Input: runspec.Input{Path: opts.Input, Format: string(stats.Format), SHA256: stats.SHA256, Records: stats.Records, Dropped: len(stats.Dropped)},
	}
	if provider == runspec.ProviderOffline {
		spec.Model = "offline"
		spec.BaseURL = ""
	} else if spec.BaseURL == "" {
		spec.BaseURL = deps.Getenv("OPENAI_BASE_URL")
	}
	if err := routing(&opts, &deps, spec); err != nil {
		return nil, err
	}
	n, err := opts.batchCount()
	if err != nil {
		return nil, err
	}
	if n == 0 {
		spec.Batches = batch.Guided(stats.Records, opts.Workers, 1)
	} else {
		spec.Batches = batch.Equal(stats.Records, n)
	}

	dir := rundir.New(opts.Out)
	// Refuse a mismatched rerun before touching anything, even the lock file.
	if err := checkResumable(&opts, spec); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.Out, 0o755); err != nil {
		return nil, fmt.Errorf("create --out %s: %w", opts.Out, err)
	}
	lk, err := acquireLock(dir)
	if err != nil {
		return nil, err
	}
	defer lk.release()
	resumed, err := prepareOut(ctx, &opts, &deps, spec, inOpts)
	if err != nil {
		return nil, err
	}
	if resumed {
		log.Info("resuming the run in "+opts.Out, "batches", len(spec.Batches))
	} else {
		log.Info("wrote batches", "batches", len(spec.Batches), "records", stats.Records, "out", opts.Out)
	}
	if err := runspec.Save(dir.Run(), spec); err != nil {
		return nil, err
	}
	phases.BatchesReadyAt = deps.Now().UTC()

	s := newScheduler(&opts, &deps, spec, workerBin)
	runErr := s.run(ctx)

	sum, mergeErr := finish(ctx, &opts, &deps, spec, sch, s, started, phases, runErr)
	if mergeErr != nil {
		return sum, errors.Join(runErr, mergeErr)
	}
	return sum, decide(runErr, sum, &opts, &deps)
}

// prepareOut decides between a fresh run and a resume, and writes the batch files of a fresh run.
// It reports whether the run resumes.
func prepareOut(ctx context.Context, opts *Options, deps *Deps, spec *runspec.Spec, inOpts input.Options) (bool, error) {
	dir := rundir.New(opts.Out)
	old, err := runspec.Load(dir.Run())
	switch {
	case err == nil && !opts.Fresh:
		if err := checkResumable(opts, spec); err != nil {
			return false, err
		}
		spec.CreatedAt = old.CreatedAt
		spec.Batches = old.Batches
		for _, b := range spec.Batches {
			if _, err := os.Stat(dir.Batch(b.Number)); err != nil {
				return false, usagef("%s: run.json lists batch %d but %s is missing; add --fresh to start over", opts.Out, b.Number, rundir.BatchName(b.Number))
			}
		}
		if err := retryFailures(opts, deps, spec); err != nil {
			return false, err
		}
		return true, nil
	case err != nil && !errors.Is(err, runspec.ErrNoRun) && !opts.Fresh:
		return false, err
	}
	names, err := dir.Owned()
	if err != nil {
		return false, err
	}
	if len(names) > 0 {
		if !opts.Fresh && hasWork(names) {
			return false, usagef("%s holds results but no run.json, so they cannot be matched to this input; use another --out, or add --fresh to move them aside and start over", opts.Out)
		}
		// Batch files without run.json are an interrupted split: nothing ran on them.
		prev, err := archive(dir, names, deps.Now())
		if err != nil {
			return false, err
		}
		deps.Log.Info("moved the previous run's files aside", "to", prev)
	}
	if err := os.MkdirAll(opts.Out, 0o755); err != nil {
		return false, fmt.Errorf("create --out %s: %w", opts.Out, err)
	}
	if err := writeBatches(ctx, opts.Input, inOpts, dir, spec.Batches); err != nil {
		return false, err
	}
	return false, nil
}

// checkResumable refuses to resume a run in opts.Out whose settings differ from spec's.
func checkResumable(opts *Options, spec *runspec.Spec) error {
	if opts.Fresh {
		return nil
	}
	dir := rundir.New(opts.Out)
	old, err := runspec.Load(dir.Run())
	if errors.Is(err, runspec.ErrNoRun) {
		names, err := dir.Owned()
		if err != nil {
			return err
		}
		if hasWork(names) {
			return usagef("%s holds results but no run.json, so they cannot be matched to this input; use another --out, or add --fresh to move them aside and start over", opts.Out)
		}
		return nil
	}
	if err != nil {
		return err
	}
	if diff := runspec.Mismatch(old, spec); diff != "" {
		return usagef("%s holds a run with other settings:\n%s\nrerun with the same input and flags to resume it, use another --out, or add --fresh to start over (the old files are moved to %s/previous-<time>/)", opts.Out, diff, opts.Out)
	}
	return nil
}

// hasWork reports whether names hold anything but a split (run.json and batch files).
func hasWork(names []string) bool {
	for _, n := range names {
		if k := rundir.Classify(n); k != rundir.KindRun && k != rundir.KindBatch {
			return true
		}
	}
	return false
}

// retryFailures gives the records that failed in an earlier pass a fresh set of attempts: their
// failure rows and attempt counts move to previous-<time>/, so the workers try them again.
func retryFailures(opts *Options, deps *Deps, spec *runspec.Spec) error {
	dir := rundir.New(opts.Out)
	var names []string
	for _, b := range spec.Batches {
		f := dir.Worker(b.Number)
		if st, err := os.Stat(f.Failures); err == nil && st.Size() > 0 {
			names = append(names, filepath.Base(f.Failures))
			if _, err := os.Stat(f.Attempts); err == nil {
				names = append(names, filepath.Base(f.Attempts))
			}
		}
	}
	if len(names) == 0 {
		return nil
	}
	prev, err := archive(dir, names, deps.Now())
	if err != nil {
		return err
	}
	deps.Log.Info("retrying the records that failed before", "old_failures_moved_to", prev)
	return nil
}

// decide maps the outcome to the error that sets the exit code.
func decide(runErr error, sum *summary.Summary, opts *Options, deps *Deps) error {
	resume := fmt.Sprintf("rerun the same command to resume (--out %s)", opts.Out)
	switch {
	case errors.Is(runErr, exitcode.ErrInterrupted):
		deps.Log.Warn("interrupted: merged what was done; " + resume)
		return runErr
	case errors.Is(runErr, exitcode.ErrBudget):
		deps.Log.Warn("budget reached: merged what was done; " + resume + " with a higher --max-cost")
		return runErr
	case errors.Is(runErr, exitcode.ErrFatalAPI):
		deps.Log.Error("the API refused the run; merged what was done; fix the cause below, then " + resume)
		return runErr
	case runErr != nil:
		return runErr
	case sum.Failed > 0 && sum.Remaining > 0:
		return fmt.Errorf("%d of %d records failed (listed in %s) and %d are not done; %s: %w",
			sum.Failed, sum.Records, rundir.New(opts.Out).FinalFailures(), sum.Remaining, resume, exitcode.ErrRecordsFailed)
	case sum.Failed > 0:
		return fmt.Errorf("%d of %d records failed (listed in %s); %s to retry them: %w",
			sum.Failed, sum.Records, rundir.New(opts.Out).FinalFailures(), resume, exitcode.ErrRecordsFailed)
	case sum.Remaining > 0:
		return fmt.Errorf("%d of %d records are not done; %s: %w", sum.Remaining, sum.Records, resume, exitcode.ErrRecordsFailed)
	}
	return nil
}
