package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/trialcat/trialcat/internal/batchapi"
	"github.com/trialcat/trialcat/internal/exitcode"
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
	if opts.Stream == "-" && deps.StreamTo == nil {
		return nil, usagef("--stream - needs a standard output to write to")
	}
	p, err := newPlan(ctx, &opts, &deps, started, startsWorkers)
	if err != nil {
		return nil, err
	}
	defer p.release()
	s, err := newScheduler(p, &deps)
	if err != nil {
		return nil, err
	}
	defer s.close()
	var runErr error
	if p.state == runComplete {
		// A finished run asked again: nothing to ask, nothing to move.
		if merged(p.dir, p.spec) {
			log.Info(fmt.Sprintf("all %d records in %s are done: nothing to do (add --fresh to start over)", p.records, opts.Out))
			sum, err := summary.Load(p.dir.Summary())
			if err == nil {
				printSummary(sum, deps.Stdout, false)
			}
			return sum, err
		}
		log.Info(fmt.Sprintf("all %d records in %s are done; merging them again", p.records, opts.Out))
	} else {
		s.startMerging(ctx)
		runErr = s.run(ctx)
	}
	if p.split != nil {
		s.waitSplit() // its phase and its files are whole before the merge
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

	sum, mergeErr := finish(ctx, &opts, &deps, p.spec, p.sch, s, started, p.phases, runErr)
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
	p, err := newPlan(ctx, &opts, &deps, deps.Now(), splitNow)
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
		return exitcode.Incomplete(fmt.Sprintf("%d of %d records failed (listed in %s) and %d are not done; %s", sum.Failed, sum.Records, rundir.New(opts.Out).FinalFailures(), sum.Remaining, resume))
	case sum.Failed > 0:
		return exitcode.Incomplete(fmt.Sprintf("%d of %d records failed (listed in %s); %s to retry them", sum.Failed, sum.Records, rundir.New(opts.Out).FinalFailures(), resume))
	case sum.Remaining > 0:
		// A live pass skips the records in Batch API batches still running: rerunning it
		// would skip them again.
		if n := inBatchAPI(rundir.New(opts.Out), sum); n > 0 && opts.Backend != runspec.BackendBatchAPI {
			return exitcode.Incomplete(fmt.Sprintf("%d of %d records are not done: %d of them are in Batch API batches that may still be running; collect them with the same command and --backend batch-api, or cancel them with coordinator cancel --out %s and rerun this command", sum.Remaining, sum.Records, n, opts.Out))
		}
		return exitcode.Incomplete(fmt.Sprintf("%d of %d records are not done; %s", sum.Remaining, sum.Records, resume))
	}
	return nil
}

// inBatchAPI counts the requests in the run's Batch API batches that have not been collected
// (at most the records remaining).
func inBatchAPI(dir rundir.Dir, sum *summary.Summary) int64 {
	var n int64
	for _, w := range sum.Workers {
		st, err := batchapi.Load(dir.Worker(w.Batch).BatchAPI)
		if err != nil {
			continue
		}
		for _, p := range st.Parts {
			if p.Open() {
				n += int64(p.Requests)
			}
		}
	}
	return min(n, sum.Remaining)
}
