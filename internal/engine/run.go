package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/trialcat/trialcat/internal/batch"
	"github.com/trialcat/trialcat/internal/exitcode"
	"github.com/trialcat/trialcat/internal/input"
	"github.com/trialcat/trialcat/internal/lockfile"
	"github.com/trialcat/trialcat/internal/results"
	"github.com/trialcat/trialcat/internal/rundir"
	"github.com/trialcat/trialcat/internal/runspec"
	"github.com/trialcat/trialcat/internal/schema"
	"github.com/trialcat/trialcat/internal/summary"
)

// prepared is a run whose input was checked and whose folder is ready: the batch files and
// run.json are written (or found, on a resume). Its lock is held until release.
type prepared struct {
	spec        *runspec.Spec
	sch         *schema.Schema
	dir         rundir.Dir
	state       prepareState
	records     int64
	fullBaseURL string // the base URL with its user:password, for the workers' environment
	phases      summary.Phases
	lock        *lockfile.Lock
	// split writes the batch files still to write (all of a fresh run's); nil when none are.
	split *splitter
}

func (p *prepared) release() { p.lock.Release() }

// prepare checks everything a run needs and splits the input (or finds an earlier split to
// resume), holding the run lock. A record that cannot be asked leaves the folder as it was.
func prepare(ctx context.Context, opts *Options, deps *Deps, started time.Time) (*prepared, error) {
	p, err := prepareRun(ctx, opts, deps, started)
	if err != nil {
		return nil, err
	}
	if p.split != nil {
		if err := p.split.run(ctx); err != nil {
			p.abandonSplit(deps)
			p.release()
			return nil, err
		}
	}
	return p, nil
}

// abandonSplit removes what a fresh run's split wrote (run.json, the batch files and an empty
// results stream) when the split failed before anything ran on it, so that the rerun starts
// clean.
func (p *prepared) abandonSplit(deps *Deps) {
	if p.state != runFresh {
		return
	}
	names, err := p.dir.Owned()
	if err != nil {
		return
	}
	for _, n := range names {
		path := filepath.Join(p.dir.Path(), n)
		switch k := rundir.Classify(n); {
		case k == rundir.KindRun, k == rundir.KindBatch:
		case path == p.dir.Stream():
			if st, err := os.Stat(path); err != nil || st.Size() > 0 {
				continue
			}
		default:
			continue
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			deps.Log.Warn("cannot remove a file of the stopped split", "path", path, "error", err)
		}
	}
}

// prepareRun is prepare with the split still to do (p.split): Run starts the workers while it
// writes the batch files.
func prepareRun(ctx context.Context, opts *Options, deps *Deps, started time.Time) (*prepared, error) {
	log := deps.Log
	if err := opts.check(); err != nil {
		return nil, err
	}
	provider, err := resolveProvider(opts, deps)
	if err != nil {
		return nil, err
	}
	if err := checkModelParams(opts, deps, provider); err != nil {
		return nil, err
	}
	sch, schemaRaw, schemaSrc, tmpl, promptText, promptSrc, err := loadSchemaAndPrompt(opts, provider)
	if err != nil {
		return nil, err
	}
	inOpts := input.Options{IDField: opts.IDField, Dedupe: opts.Dedupe}
	p := &prepared{sch: sch, dir: rundir.New(opts.Out)}
	p.phases.CheckingInputAt = deps.Now().UTC()
	log.Info("checking input", "path", opts.Input)
	stats, err := input.Scan(ctx, opts.Input, inOpts)
	if err != nil {
		return nil, err
	}
	p.records = stats.Records
	for _, d := range stats.Dropped {
		log.Warn("duplicate ID dropped (--dedupe keeps the first)", "id", d.ID, "index", d.Index, "first_index", d.FirstIndex)
	}
	if provider == runspec.ProviderOffline {
		tmpl = nil // no prompt to render: nothing to check per record
	}
	// The first records now, the rest as their batch files are written.
	if err := checkFirst(ctx, opts.Input, inOpts, tmpl); err != nil {
		return nil, err
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
		Concurrency: opts.Concurrency, Hedge: opts.Hedge, RPM: opts.RPM, TPM: opts.TPM, MaxInputTokens: opts.MaxInputTokens,
		Workers: opts.Workers, BatchMode: opts.batchMode(), Backend: opts.Backend,
		BatchAPI: runspec.BatchAPI{Poll: runspec.Duration(opts.BatchPoll), MaxRequests: opts.BatchMaxRequests, MaxBytes: opts.BatchMaxBytes},
		Input:    runspec.Input{Path: opts.Input, Format: string(stats.Format), SHA256: stats.SHA256, Records: stats.Records, Dropped: len(stats.Dropped)},
	}
	p.spec = spec
	if opts.Cache != "" && provider == runspec.ProviderOpenAI {
		if spec.Cache, err = cacheDir(opts.Cache); err != nil {
			return nil, err
		}
	}
	if spec.IsBatchAPI() && provider != runspec.ProviderOpenAI {
		return nil, usagef("--backend batch-api sends the requests to the OpenAI Batch API: it needs OPENAI_API_KEY (provider openai); the offline categorizer answers at once without it")
	}
	if provider == runspec.ProviderOffline {
		spec.Model = "offline"
		spec.BaseURL = ""
	} else if spec.BaseURL == "" {
		spec.BaseURL = deps.Getenv("OPENAI_BASE_URL")
	}
	// A user:password in the base URL is a secret: run.json and every message get the URL
	// without it, and the workers get the whole URL in their environment.
	p.fullBaseURL = spec.BaseURL
	spec.BaseURL, _ = runspec.PublicURL(spec.BaseURL)
	if err := routing(opts, deps, spec); err != nil {
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

	// Refuse a mismatched rerun before touching anything, even the lock file.
	if err := checkResumable(opts, spec); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.Out, 0o755); err != nil {
		return nil, fmt.Errorf("create --out %s: %w", opts.Out, err)
	}
	if p.lock, err = acquireLock(p.dir); err != nil {
		return nil, err
	}
	removeTemps(p.dir, log)
	var toWrite []batch.Range
	if p.state, toWrite, err = prepareOut(ctx, opts, deps, spec, spec.Layout(sch)); err != nil {
		p.release()
		return nil, err
	}
	if p.state == runResumed {
		log.Info("resuming the run in "+opts.Out, "batches", len(spec.Batches))
	}
	if p.state == runComplete {
		return p, nil
	}
	// run.json first: a split cut short is resumed from it (prepareOut writes the missing
	// batch files again), and the workers read it.
	if err := runspec.Save(p.dir.Run(), spec); err != nil {
		p.release()
		return nil, err
	}
	p.phases.InputCheckedAt = deps.Now().UTC()
	ready := func() {
		p.phases.BatchesReadyAt = deps.Now().UTC()
		if len(toWrite) > 0 {
			log.Info("wrote batches", "batches", len(toWrite), "records", stats.Records, "out", opts.Out)
		}
	}
	if len(toWrite) == 0 {
		ready()
		return p, nil
	}
	p.split = newSplitter(opts.Input, inOpts, tmpl, p.dir, toWrite)
	p.split.onDone = ready
	if tmpl != nil {
		p.split.checked = splitChunk // checkFirst rendered them
	}
	return p, nil
}

// Run categorizes opts.Input into opts.Out. The returned error decides the exit code (see
// package exitcode); the summary is returned whenever the run got as far as merging.
func Run(ctx context.Context, opts Options, deps Deps) (*summary.Summary, error) {
	deps.defaults()
	log := deps.Log
	started := deps.Now()
	if err := opts.check(); err != nil {
		return nil, err
	}
	workerBin, err := findWorker(&opts, &deps)
	if err != nil {
		return nil, err
	}
	p, err := prepareRun(ctx, &opts, &deps, started)
	if err != nil {
		return nil, err
	}
	defer p.release()
	spec, dir := p.spec, p.dir
	s := newScheduler(&opts, &deps, spec, workerBin)
	if p.split != nil {
		// The workers start on the first batch file while the split writes the others.
		// A run that stops early (the API refused it, Ctrl-C) stops the split too; the rerun
		// writes the batch files it did not.
		splitCtx, stopSplit := context.WithCancel(ctx)
		defer stopSplit()
		s.split = p.split
		go p.split.run(splitCtx)
		defer func() { <-p.split.done }()
		s.stopSplit = stopSplit
	}
	if p.fullBaseURL != spec.BaseURL {
		s.extraEnv = []string{"OPENAI_BASE_URL=" + p.fullBaseURL}
	}
	if opts.Stream == "-" && deps.StreamTo == nil {
		return nil, usagef("--stream - needs a standard output to write to")
	}
	onTee := func(err error) {
		log.Warn("standard output closed (the reader of --stream - went away); the run goes on and results.jsonl gets every record", "error", err)
	}
	if s.stream, err = results.OpenStream(dir.Stream(), spec.Layout(p.sch), deps.StreamTo, onTee); err != nil {
		return nil, err
	}
	defer s.stream.Close()
	var runErr error
	if p.state == runComplete {
		// A finished run asked again: nothing to ask, nothing to move.
		if merged(dir) {
			log.Info(fmt.Sprintf("all %d records in %s are done: nothing to do (add --fresh to start over)", p.records, opts.Out))
			sum, err := summary.Load(dir.Summary())
			if err == nil {
				printSummary(sum, deps.Stdout)
			}
			return sum, err
		}
		log.Info(fmt.Sprintf("all %d records in %s are done; merging them again", p.records, opts.Out))
	} else {
		// Each batch is merged as it ends, so that at the end only the last ones are.
		if m, err := startMerge(dir, spec, p.sch); err != nil {
			log.Warn("cannot start merging as the batches end; they are merged at the end", "error", err)
		} else {
			m.follow(context.WithoutCancel(ctx))
			s.merger = m
		}
		runErr = s.run(ctx)
	}
	if p.split != nil {
		<-p.split.done // its phase and its files are whole before the merge
		if errors.Is(runErr, errSplit) {
			// Nothing ran (the first batch could not be asked): leave the folder as it was.
			if p.state == runFresh && s.tally.Snapshot().FirstWorkerAt.IsZero() {
				s.merger.abort()
				s.stream.Close()
				p.abandonSplit(&deps)
				return nil, runErr
			}
			log.Error("the split stopped; merged what was done; fix the cause and rerun the same command (or with --fresh when the fix changes the input or the prompt)", "error", runErr)
		}
	}

	sum, mergeErr := finish(ctx, &opts, &deps, spec, p.sch, s, started, p.phases, runErr)
	if mergeErr != nil {
		return sum, errors.Join(runErr, mergeErr)
	}
	return sum, decide(runErr, sum, &opts, &deps)
}

// Split checks the input exactly as a run does and writes the batch files and run.json, starting
// nothing: another engine (GNU parallel, a Slurm array, Kubernetes) runs the workers, and
// `coordinator merge` joins their results. It prints the batch count and the next commands.
func Split(ctx context.Context, opts Options, deps Deps) error {
	deps.defaults()
	p, err := prepare(ctx, &opts, &deps, deps.Now())
	if err != nil {
		return err
	}
	defer p.release()
	n := len(p.spec.Batches)
	out := opts.Out
	fmt.Fprintf(deps.Stdout, "%s: %d records in %d batches (batch_0.json to batch_%d.json)", out, p.records, n, n-1)
	switch p.state {
	case runComplete:
		fmt.Fprintf(deps.Stdout, ", every record done already\n")
	case runResumed:
		fmt.Fprintf(deps.Stdout, ", resumed: the workers go on where they were\n")
	default:
		fmt.Fprintln(deps.Stdout)
	}
	fmt.Fprintf(deps.Stdout, "run each batch with any engine, one worker per batch:\n"+
		"  worker --run-dir %[1]s --index N                  # N = 0 to %[2]d (or SLURM_ARRAY_TASK_ID / JOB_COMPLETION_INDEX)\n"+
		"  parallel -j 4 --joblog %[1]s/parallel.log worker --batch {} ::: %[1]s/batch_*.json\n"+
		"then merge:\n"+
		"  coordinator merge --out %[1]s\n", out, n-1)
	return nil
}

// prepareState is what prepareOut found.
type prepareState int

const (
	runFresh    prepareState = iota // batch files written
	runResumed                      // an earlier pass's run, with records left to do
	runComplete                     // an earlier pass's run with every record answered
)

// prepareOut decides between a fresh run and a resume, and writes the batch files of a fresh run.
// It returns the batches whose files are still to write: all of a fresh run's, and on a resume
// those a split cut short did not write.
func prepareOut(ctx context.Context, opts *Options, deps *Deps, spec *runspec.Spec, layout results.Layout) (prepareState, []batch.Range, error) {
	dir := rundir.New(opts.Out)
	old, err := runspec.Load(dir.Run())
	switch {
	case err == nil && !opts.Fresh:
		if err := checkResumable(opts, spec); err != nil {
			return runFresh, nil, err
		}
		spec.CreatedAt = old.CreatedAt
		spec.Batches = old.Batches
		var missing []batch.Range
		for _, b := range spec.Batches {
			if _, err := os.Stat(dir.Batch(b.Number)); err == nil {
				continue
			}
			if progress(dir.Worker(b.Number)) > 0 {
				return runFresh, nil, usagef("%s: run.json lists batch %d, which has results, but %s is missing; add --fresh to start over", opts.Out, b.Number, rundir.BatchName(b.Number))
			}
			// A split cut short (the input is the one run.json names: its hash matched).
			missing = append(missing, b)
		}
		var done int64
		for _, b := range spec.Batches {
			bs, err := readBatch(dir, layout, b)
			if err != nil {
				return runFresh, nil, err
			}
			done += bs.Done
		}
		if done == spec.Input.Records {
			return runComplete, nil, nil
		}
		if !opts.keepFailures {
			if err := retryFailures(dir, deps, spec, layout, nil); err != nil {
				return runFresh, nil, err
			}
		}
		return runResumed, missing, nil
	case err != nil && !errors.Is(err, runspec.ErrNoRun) && !opts.Fresh:
		return runFresh, nil, err
	}
	names, err := dir.Owned()
	if err != nil {
		return runFresh, nil, err
	}
	if len(names) > 0 {
		if !opts.Fresh && hasWork(names) {
			return runFresh, nil, usagef("%s holds results but no run.json, so they cannot be matched to this input; use another --out, or add --fresh to move them aside and start over", opts.Out)
		}
		// Batch files without run.json are an interrupted split: nothing ran on them.
		prev, err := archive(dir, names, deps.Now())
		if err != nil {
			return runFresh, nil, err
		}
		deps.Log.Info("moved the previous run's files aside", "to", prev)
	}
	if err := os.MkdirAll(opts.Out, 0o755); err != nil {
		return runFresh, nil, fmt.Errorf("create --out %s: %w", opts.Out, err)
	}
	return runFresh, spec.Batches, nil
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

// removeTemps deletes what a kill mid-write left (under the run lock: nothing else is writing).
func removeTemps(dir rundir.Dir, log hclog.Logger) {
	temps, err := dir.Temps()
	if err != nil {
		log.Warn("cannot list temporary files", "error", err)
		return
	}
	for _, p := range temps {
		if err := os.Remove(p); err != nil {
			log.Warn("cannot remove a temporary file left by an earlier run", "path", p, "error", err)
		}
	}
	if len(temps) > 0 {
		log.Info("removed temporary files left by an interrupted write", "count", len(temps))
	}
}

// merged reports whether a run's final files and summary are all there and no merge was cut
// short between its renames.
func merged(dir rundir.Dir) bool {
	if _, err := os.Stat(dir.Merging()); err == nil {
		return false
	}
	for _, p := range []string{dir.FinalResults(), dir.FinalFailures(), dir.Summary()} {
		if _, err := os.Stat(p); err != nil {
			return false
		}
	}
	return true
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
// failure rows move to previous-<time>/, and their lines leave the attempts journal (a copy of
// it moves there too), so the workers try them again. Records that never ended keep their
// attempt counts: a record that kills its worker cannot reset them by a rerun. With only set,
// just those batches are touched.
func retryFailures(dir rundir.Dir, deps *Deps, spec *runspec.Spec, layout results.Layout, only []int) error {
	failed := map[int]map[string]bool{}
	for _, b := range spec.Batches {
		if only != nil && !slices.Contains(only, b.Number) {
			continue
		}
		f := dir.Worker(b.Number)
		ids := map[string]bool{}
		if _, err := layout.ReadFailures(f.Failures, func(fr results.Failure) error {
			ids[fr.ID] = true
			return nil
		}); err != nil {
			return err
		}
		if len(ids) > 0 {
			failed[b.Number] = ids
		}
	}
	if len(failed) == 0 {
		return nil
	}
	prev := dir.Previous(deps.Now())
	if err := os.MkdirAll(prev, 0o755); err != nil {
		return fmt.Errorf("archive old failures: %w", err)
	}
	for n, ids := range failed {
		f := dir.Worker(n)
		if err := copyFile(f.Attempts, filepath.Join(prev, filepath.Base(f.Attempts))); err != nil {
			return err
		}
		if err := results.FilterAttempts(f.Attempts, func(id string) bool { return !ids[id] }); err != nil {
			return err
		}
		if err := os.Rename(f.Failures, filepath.Join(prev, filepath.Base(f.Failures))); err != nil {
			return fmt.Errorf("archive old failures: %w", err)
		}
	}
	deps.Log.Info("retrying the records that failed before", "batches", len(failed), "old_failures_moved_to", prev)
	return nil
}

// copyFile copies src to dst (a missing src copies nothing).
func copyFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	if err := os.WriteFile(dst, data, 0o644); err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return nil
}

// decide maps the outcome to the error that sets the exit code.
func decide(runErr error, sum *summary.Summary, opts *Options, deps *Deps) error {
	resume := fmt.Sprintf("rerun the same command to resume (--out %s)", opts.Out)
	switch {
	case errors.Is(runErr, exitcode.ErrInterrupted) && opts.Backend == runspec.BackendBatchAPI:
		deps.Log.Warn(fmt.Sprintf("interrupted: merged what was done; the Batch API batches go on: %s to collect them, or cancel them with coordinator cancel --out %s", resume, opts.Out))
		return runErr
	case errors.Is(runErr, exitcode.ErrInterrupted):
		deps.Log.Warn("interrupted: merged what was done; " + resume)
		return runErr
	case errors.Is(runErr, exitcode.ErrBudget):
		deps.Log.Warn("budget reached: merged what was done; " + resume + " with a higher --max-cost")
		return runErr
	case errors.Is(runErr, exitcode.ErrStorage):
		deps.Log.Error("a worker could not write its files; merged what was done; fix the cause below, then " + resume)
		return runErr
	case errors.Is(runErr, exitcode.ErrFatalAPI):
		deps.Log.Error("the run cannot go on (the API refused it, or its server cannot be reached); merged what was done; fix the cause below, then " + resume)
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
