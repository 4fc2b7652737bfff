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
	"github.com/trialcat/trialcat/internal/input"
	"github.com/trialcat/trialcat/internal/lockfile"
	"github.com/trialcat/trialcat/internal/results"
	"github.com/trialcat/trialcat/internal/rundir"
	"github.com/trialcat/trialcat/internal/runspec"
	"github.com/trialcat/trialcat/internal/schema"
	"github.com/trialcat/trialcat/internal/summary"
)

// plan is a run checked once and made ready: its options checked, its provider resolved, its
// schema and prompt loaded, its input scanned, its run spec built (batches, limits, routing),
// the folder's state decided (fresh, resumed or complete) and run.json written, with the run
// lock held until release. Run, Split, the engines and export take it as it is: nothing after
// newPlan checks again what it checked, and nothing outside it fills its fields.
type plan struct {
	opts  *Options
	spec  *runspec.Spec
	sch   *schema.Schema
	dir   rundir.Dir
	state prepareState
	// records is the input's record count.
	records int64
	// workerBin is the worker binary, found when the command starts workers on this machine.
	workerBin string
	// fullBaseURL is the base URL with its user:password, for the workers' environment only.
	fullBaseURL string
	phases      summary.Phases
	lock        *lockfile.Lock
	// split writes the batch files still to write (all of a fresh run's); nil when none are.
	split *splitter
}

func (p *plan) release() { p.lock.Release() }

// keepInput is the largest input the input check keeps in memory for the split, which then
// neither reads nor parses it again (input.Options.Keep). 128 MiB is about 6,000 full registry
// records; a larger input is read twice, holding a chunk at a time, so a million-record run's
// coordinator stays under 200 MB.
const keepInput = 128 << 20

// planStep says what a command needs of the plan beyond the checks.
type planStep int

const (
	// splitNow finishes the split before newPlan returns (split, the engines, export).
	splitNow planStep = iota
	// startsWorkers finds the worker binary first and leaves the split to the scheduler, which
	// starts its workers while the split goes on (Run).
	startsWorkers
)

// newPlan checks everything a run needs and prepares its folder. A record that cannot be asked
// leaves the folder as it was.
func newPlan(ctx context.Context, opts *Options, deps *Deps, started time.Time, step planStep) (*plan, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	p := &plan{opts: opts, dir: rundir.New(opts.Out)}
	if step == startsWorkers {
		bin, err := findWorker(opts, deps)
		if err != nil {
			return nil, err
		}
		p.workerBin = bin
	}
	if err := p.prepare(ctx, deps, started); err != nil {
		return nil, err
	}
	if step == splitNow && p.split != nil {
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
func (p *plan) abandonSplit(deps *Deps) {
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

// prepare fills the plan from opts (checked already): everything but a split still to do.
func (p *plan) prepare(ctx context.Context, deps *Deps, started time.Time) error {
	opts, log := p.opts, deps.Log
	provider, err := resolveProvider(opts, deps)
	if err != nil {
		return err
	}
	if err := checkModelParams(opts, deps, provider); err != nil {
		return err
	}
	ins, err := loadInstructions(opts, provider)
	if err != nil {
		return err
	}
	p.sch = ins.schema
	tmpl := ins.tmpl
	inOpts := input.Options{IDField: opts.IDField, Dedupe: opts.Dedupe}
	p.phases.CheckingInputAt = deps.Now().UTC()
	log.Info("checking input", "path", opts.Input)
	scanOpts := inOpts
	scanOpts.Keep = keepInput
	stats, err := input.Scan(ctx, opts.Input, scanOpts)
	if err != nil {
		return err
	}
	// The kept records go to the split, which frees them when it ends; otherwise they are
	// freed here. (A plan dropped before its split runs leaves them to the process's exit.)
	keptTaken := false
	defer func() {
		if !keptTaken {
			stats.Free()
		}
	}()
	p.records = stats.Records
	for _, d := range stats.Dropped {
		log.Warn("duplicate ID dropped (--dedupe keeps the first)", "id", d.ID, "index", d.Index, "first_index", d.FirstIndex)
	}
	if provider == runspec.ProviderOffline {
		tmpl = nil // no prompt to render: nothing to check per record
	}
	// The first records now, the rest as their batch files are written.
	if err := checkFirst(ctx, opts.Input, inOpts, tmpl, stats.Kept); err != nil {
		return err
	}
	if err := checkOut(opts.Out); err != nil {
		return err
	}

	spec := &runspec.Spec{
		Version: runspec.Version, CreatedAt: started.UTC(), Provider: provider, Model: opts.Model,
		BaseURL: opts.BaseURL, ReasoningEffort: opts.ReasoningEffort, Temperature: opts.Temperature,
		MaxCompletionTokens: opts.MaxCompletionTokens, PromptSource: ins.promptSource, Prompt: ins.promptText,
		SchemaSource: ins.schemaSource, Schema: ins.schemaRaw, IDField: opts.IDField, IDColumn: idColumn(opts.IDField),
		Dedupe: opts.Dedupe, MaxAttempts: opts.MaxAttempts, Timeout: runspec.Duration(opts.Timeout),
		Concurrency: opts.Concurrency, Hedge: opts.Hedge, Votes: opts.Votes, RPM: opts.RPM, TPM: opts.TPM, MaxInputTokens: opts.MaxInputTokens,
		Workers: opts.Workers, BatchMode: opts.batchMode(), Backend: opts.Backend,
		ServiceTier: opts.ServiceTier, FlexFallback: opts.FlexFallback, CacheRetention: opts.CacheRetention,
		BatchAPI: runspec.BatchAPI{Poll: runspec.Duration(opts.BatchPoll), MaxRequests: opts.BatchMaxRequests, MaxBytes: opts.BatchMaxBytes},
		Input:    runspec.Input{Path: opts.Input, Format: string(stats.Format), SHA256: stats.SHA256, Records: stats.Records, Dropped: len(stats.Dropped)},
	}
	p.spec = spec
	if len(opts.Cascade) > 0 {
		if provider != runspec.ProviderOpenAI {
			return usagef("--cascade chooses API models; the offline categorizer has none (set OPENAI_API_KEY or --base-url)")
		}
		spec.Model, spec.Cascade, spec.Confidence = opts.Cascade[0], opts.Cascade[1:], opts.Confidence
	}
	if spec.Agent, err = agentSpec(opts, deps, ins, provider); err != nil {
		return err
	}
	spec.PromptCacheKey = promptCacheKey(opts.PromptCacheKey, spec)
	if opts.Cache != "" && provider == runspec.ProviderOpenAI {
		if spec.Cache, err = cacheDir(opts.Cache); err != nil {
			return err
		}
	}
	if spec.IsBatchAPI() && provider != runspec.ProviderOpenAI {
		return usagef("--backend batch-api sends the requests to the OpenAI Batch API: it needs OPENAI_API_KEY (provider openai); the offline categorizer answers at once without it")
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
		return err
	}
	n, err := opts.batchCount()
	if err != nil {
		return err
	}
	if n == 0 {
		// No batch smaller than a worker's concurrency: fewer records would leave its slots
		// idle, and the end takes one request's time either way; each batch less is a
		// hand-over less (about 5 ms of CPU on each side).
		spec.Batches = batch.Guided(stats.Records, opts.Workers, int64(max(opts.Concurrency, 1)))
	} else {
		spec.Batches = batch.Equal(stats.Records, n)
	}

	// Refuse a mismatched rerun before touching anything, even the lock file.
	checked, err := checkResumable(opts, spec)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(opts.Out, 0o755); err != nil {
		return fmt.Errorf("create --out %s: %w", opts.Out, err)
	}
	if p.lock, err = acquireLock(p.dir); err != nil {
		return err
	}
	removeTemps(p.dir, log)
	var toWrite []batch.Range
	if p.state, toWrite, err = prepareOut(ctx, opts, deps, spec, spec.Layout(p.sch), checked); err != nil {
		p.release()
		return err
	}
	if p.state == runResumed {
		log.Info("resuming the run in "+opts.Out, "batches", len(spec.Batches))
	}
	if p.state == runComplete {
		return nil
	}
	if opts.SinceRun != "" {
		abs, err := filepath.Abs(opts.SinceRun)
		if err != nil {
			p.release()
			return usagef("--since-run %s: %w", opts.SinceRun, err)
		}
		n, err := writeCarried(ctx, abs, p.sch, p.dir.Carried())
		if err != nil {
			p.release()
			return err
		}
		spec.SinceRun = abs
		log.Info("answers of an earlier run carried where the record is unchanged", "since_run", abs, "answers", n)
	}
	// run.json first: a split cut short is resumed from it (prepareOut writes the missing
	// batch files again), and the workers read it.
	if err := runspec.Save(p.dir.Run(), spec); err != nil {
		p.release()
		return err
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
		return nil
	}
	p.split = newSplitter(opts.Input, inOpts, tmpl, p.dir, toWrite)
	p.split.kept, p.split.freeKept, keptTaken = stats.Kept, stats.Free, true
	p.split.onDone = ready
	if tmpl != nil {
		p.split.checked = splitChunk // checkFirst rendered them
	}
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
// checked is run.json as checkResumable saw it, before the lock was taken: a run.json changed
// since (another coordinator's run ended in between) is refused rather than checked again.
func prepareOut(ctx context.Context, opts *Options, deps *Deps, spec *runspec.Spec, layout results.Layout, checked runFile) (prepareState, []batch.Range, error) {
	dir := rundir.New(opts.Out)
	if !opts.Fresh && statRunFile(dir) != checked {
		return runFresh, nil, usagef("%s: run.json changed while this run was starting (another coordinator on the folder?); run the command again", opts.Out)
	}
	old, err := runspec.Load(dir.Run())
	switch {
	case err == nil && !opts.Fresh:
		spec.CreatedAt = old.CreatedAt
		spec.Batches = old.Batches
		var missing []batch.Range
		for _, b := range spec.Batches {
			if _, err := os.Stat(dir.Batch(b.Number)); err == nil {
				// A batch file changed since the split would be run as it is now: refused
				// before anything runs.
				if err := batch.Verify(dir.Batch(b.Number), spec.IDField); err != nil {
					fix := "delete it and rerun the same command to have the split write it again from the input"
					if progress(dir.Worker(b.Number)) > 0 {
						fix = "restore it, or add --fresh to start over (its batch has results, so it cannot be written again)"
					}
					return runFresh, nil, fmt.Errorf("%s: %w; %s", opts.Out, err, fix)
				}
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

// runFile is what a stat of run.json says: enough to tell that it changed.
type runFile struct {
	exists  bool
	size    int64
	modTime int64 // UnixNano
}

func statRunFile(dir rundir.Dir) runFile {
	st, err := os.Stat(dir.Run())
	if err != nil {
		return runFile{}
	}
	return runFile{exists: true, size: st.Size(), modTime: st.ModTime().UnixNano()}
}

// checkResumable refuses to resume a run in opts.Out whose settings differ from spec's, and
// returns run.json as it checked it.
func checkResumable(opts *Options, spec *runspec.Spec) (runFile, error) {
	dir := rundir.New(opts.Out)
	seen := statRunFile(dir)
	if opts.Fresh {
		return seen, nil
	}
	old, err := runspec.Load(dir.Run())
	if errors.Is(err, runspec.ErrNoRun) {
		names, err := dir.Owned()
		if err != nil {
			return seen, err
		}
		if hasWork(names) {
			return seen, usagef("%s holds results but no run.json, so they cannot be matched to this input; use another --out, or add --fresh to move them aside and start over", opts.Out)
		}
		return seen, nil
	}
	if err != nil {
		return seen, err
	}
	if diff := runspec.Mismatch(old, spec); diff != "" {
		return seen, usagef("%s holds a run with other settings:\n%s\nrerun with the same input and flags to resume it, use another --out, or add --fresh to start over (the old files are moved to %s/previous-<time>/)", opts.Out, diff, opts.Out)
	}
	return seen, nil
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

// merged reports whether a run's final files and summary are all there, say what the workers'
// files say (every record done, none newer than the final files: a batch run by hand since the
// last merge is merged again) and no merge was cut short between its renames.
func merged(dir rundir.Dir, spec *runspec.Spec) bool {
	if _, err := os.Stat(dir.Merging()); err == nil {
		return false
	}
	for _, p := range []string{dir.FinalResults(), dir.FinalFailures(), dir.Summary()} {
		if _, err := os.Stat(p); err != nil {
			return false
		}
	}
	sum, err := summary.Load(dir.Summary())
	if err != nil || sum.Remaining != 0 || sum.Succeeded+sum.Failed != spec.Input.Records {
		return false
	}
	final, err := os.Stat(dir.FinalFailures()) // renamed last
	if err != nil {
		return false
	}
	// A worker file newer than the final files may hold rows they lack (a worker run by hand
	// since). File times are coarse (a few milliseconds) and the last write of a batch can
	// share or pass the merge's tick, so a newer file is counted before it is believed.
	merged := map[int]int64{}
	for _, w := range sum.Workers {
		merged[w.Batch] = w.Succeeded + w.Failed
	}
	sch, err := schema.Parse(spec.Schema, spec.SchemaSource)
	if err != nil {
		return false
	}
	layout := spec.Layout(sch)
	for _, b := range spec.Batches {
		w := dir.Worker(b.Number)
		for _, p := range []string{w.Results, w.Failures} {
			if st, err := os.Stat(p); err == nil && st.ModTime().After(final.ModTime()) {
				bs, err := readBatch(dir, layout, b)
				if err != nil || bs.Done+bs.Failed != merged[b.Number] {
					return false
				}
			}
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

// promptCacheKey is the prompt_cache_key the run sends: --prompt-cache-key, derived from the
// run's static prefix when not given, none for "off".
func promptCacheKey(flag string, spec *runspec.Spec) string {
	switch flag {
	case "":
		return spec.DerivedCacheKey()
	case "off":
		return ""
	}
	return flag
}
