package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/trialcat/trialcat/internal/exitcode"
	"github.com/trialcat/trialcat/internal/lockfile"
	"github.com/trialcat/trialcat/internal/rundir"
	"github.com/trialcat/trialcat/internal/runspec"
	"github.com/trialcat/trialcat/internal/safefile"
	"github.com/trialcat/trialcat/internal/schema"
	"github.com/trialcat/trialcat/internal/slurm"
)

// SlurmOptions are the flags of `coordinator slurm`.
type SlurmOptions struct {
	// Options are the run's flags. With Input set the input is split first, exactly as a run
	// does (or the split found in Out is resumed); without it Out must hold a split run.
	Options
	MaxParallel int // tasks running at once (the array's %K); 0: as many as Slurm allows
	Partition   string
	Time        string
	Mem         string
	SbatchArgs  []string // more #SBATCH lines
	TaskPrelude string   // a shell snippet each task sources before the worker
	Wait        bool     // follow the job to its end, then merge
	// LimitServer serves the run's rate permits to every task over TCP while waiting (needs
	// Wait); LimitListen is its listening address.
	LimitServer bool
	LimitListen string
	// Poll is the interval of the Slurm queries while waiting; 0 means DefaultSlurmPoll.
	Poll time.Duration
}

// DefaultSlurmPoll is how often `coordinator slurm --wait` asks Slurm for its tasks. scontrol
// answers from the controller's memory in milliseconds; sbatch --wait would poll at 2, 10 and
// 42 s, which makes short arrays slow to notice.
const DefaultSlurmPoll = time.Second

// Slurm submits the run's unfinished batches as one Slurm job array and, with Wait, follows it
// to its end and merges. A batch whose task is pending or running (in any job of the run), or
// whose worker holds the batch's lock, is never submitted again.
func Slurm(ctx context.Context, opts SlurmOptions, deps Deps) error {
	deps.defaults()
	if err := opts.checkSlurm(); err != nil {
		return err
	}
	workerBin, err := findWorker(&opts.Options, &deps)
	if err != nil {
		return err
	}
	dir := rundir.New(opts.Out)
	var (
		spec *runspec.Spec
		sch  *schema.Schema
		lock *lockfile.Lock
	)
	if opts.Input != "" {
		if err := noSecretInBaseURL(&opts.Options, "reach Slurm tasks without writing it into a file; set OPENAI_BASE_URL in the environment you submit from instead"); err != nil {
			return err
		}
		// Failures are retried below, for the batches submitted only: a batch whose task is
		// running keeps its files as they are.
		opts.keepFailures = true
		p, err := newPlan(ctx, &opts.Options, &deps, deps.Now(), splitNow)
		if err != nil {
			return err
		}
		spec, sch, lock = p.spec, p.sch, p.lock
	} else {
		if spec, sch, err = loadRun(dir); err != nil {
			if errors.Is(err, exitcode.ErrUsage) {
				return usagef("%s holds no split run: give --input (and the run's flags) to split it first, or run coordinator split", opts.Out)
			}
			return err
		}
		if lock, err = acquireLock(dir); err != nil {
			return err
		}
	}
	defer lock.Release()
	abs, err := filepath.Abs(opts.Out)
	if err != nil {
		return fmt.Errorf("--out %s: %w", opts.Out, err)
	}
	dir = rundir.New(abs)
	files := dir.Slurm()
	if err := os.MkdirAll(files.Dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", files.Dir, err)
	}
	runner := deps.Slurm
	jobs, err := slurm.LoadJobs(files.Jobs)
	if err != nil {
		return err
	}
	if jobs.Name == "" {
		jobs.Name = runJobName(abs, spec)
	}

	board, ids, err := slurm.Look(ctx, runner, jobs)
	if errors.Is(err, slurm.ErrNoSlurm) {
		return usagef("%w", err)
	}
	if err != nil {
		return fmt.Errorf("ask Slurm for the run's jobs: %w", err)
	}
	if adopted := jobs.Adopt(ids, board, deps.Now().UTC()); len(adopted) > 0 {
		// Submitted by hand, or by a run that crashed before it recorded the ID.
		deps.Log.Info("found jobs of this run not in its record; following them too", "jobs", strings.Join(adopted, ","))
		if err := jobs.Save(files.Jobs); err != nil {
			return err
		}
	}
	todo, busy, err := slurmTodo(ctx, dir, spec, sch, board)
	if err != nil {
		return err
	}
	if len(busy) > 0 {
		fmt.Fprintf(deps.Stdout, "%s queued or running already; not submitting %s again\n",
			plural(len(busy), "batch "+slurm.FormatIndices(busy)+" is", "batches "+slurm.FormatIndices(busy)+" are"), plural(len(busy), "it", "them"))
	}

	var srv *limitServer
	if opts.LimitServer {
		if srv, err = startLimitServer(ctx, dir, spec, opts.LimitListen, deps); err != nil {
			return err
		}
		defer func() {
			if err := srv.stop(); err != nil {
				deps.Log.Warn("the limit server did not stop cleanly", "error", err)
			}
		}()
	}

	if len(todo) > 0 {
		if err := retryFailures(dir, &deps, spec, spec.Layout(sch), todo); err != nil {
			return err
		}
		id, err := submitSlurm(ctx, &opts, &deps, runner, dir, spec, jobs, workerBin, todo)
		if err != nil {
			return err
		}
		fmt.Fprintf(deps.Stdout, "submitted Slurm job %s: %s of %s\n", id, plural(len(todo), "batch "+slurm.FormatIndices(todo), "batches "+slurm.FormatIndices(todo)), abs)
		fmt.Fprintf(deps.Stdout, "  watch:  squeue -j %s   or   coordinator status --out %s\n  cancel: scancel %s\n", id, opts.Out, id)
		if !opts.Wait {
			fmt.Fprintf(deps.Stdout, "  then:   coordinator slurm --out %s --wait   (follows the job, merges when it ends)\n", opts.Out)
		}
	} else if len(busy) == 0 {
		fmt.Fprintf(deps.Stdout, "every batch of %s is done: nothing to submit\n", opts.Out)
	} else if !opts.Wait {
		fmt.Fprintf(deps.Stdout, "follow them: coordinator slurm --out %s --wait   (merges when they end)\n", opts.Out)
	}
	if !opts.Wait {
		return nil
	}
	if err := waitSlurm(ctx, &opts, &deps, runner, dir, jobs); err != nil {
		return err
	}
	return finishSlurm(ctx, &opts, &deps, runner, dir, spec, sch, jobs)
}

// noSecretInBaseURL refuses, before anything is written, a --base-url with a user:password
// that an engine would have to write into a file; why says what to do instead.
func noSecretInBaseURL(o *Options, why string) error {
	if _, secret := runspec.PublicURL(o.BaseURL); secret {
		return usagef("--base-url with a user:password cannot %s", why)
	}
	return nil
}

func (o *SlurmOptions) checkSlurm() error {
	switch {
	case o.MaxParallel < 0:
		return usagef("--max-parallel %d: cannot be negative (0: as many as Slurm allows)", o.MaxParallel)
	case o.LimitServer && !o.Wait:
		return usagef("--limit-server serves permits while this command waits: add --wait, or run coordinator limits --out %s beside the job", o.Out)
	case o.Poll < 0:
		return usagef("poll interval cannot be negative")
	}
	if o.Input != "" {
		if err := o.check(); err != nil {
			return err
		}
	}
	if o.TaskPrelude != "" {
		p, err := filepath.Abs(o.TaskPrelude)
		if err != nil {
			return usagef("--task-prelude %s: %w", o.TaskPrelude, err)
		}
		if st, err := os.Stat(p); err != nil || st.IsDir() {
			return usagef("--task-prelude %s: not a readable file (a shell snippet each task sources before the worker)", o.TaskPrelude)
		}
		o.TaskPrelude = p
	}
	if o.Poll == 0 {
		o.Poll = DefaultSlurmPoll
	}
	return nil
}

// runJobName names the scheduler jobs of the run in dir: the same for a rerun, so a Slurm job
// whose ID never reached jobs.json is still found; a DNS label, as Kubernetes wants.
func runJobName(dir string, spec *runspec.Spec) string {
	h := sha256.Sum256([]byte(dir + "\x00" + spec.CreatedAt.UTC().Format(time.RFC3339Nano)))
	return "trialcat-" + hex.EncodeToString(h[:4])
}

// slurmTodo splits the run's batches into those to submit (records not done, or failed) and
// those busy (a task pending or running, or a worker holding the batch's lock).
func slurmTodo(ctx context.Context, dir rundir.Dir, spec *runspec.Spec, sch *schema.Schema, board slurm.Board) (todo, busy []int, err error) {
	active := map[int]bool{}
	for _, n := range board.Active() {
		active[n] = true
	}
	layout := spec.Layout(sch)
	for _, b := range spec.Batches {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		if active[b.Number] || lockfile.Holder(dir.Worker(b.Number).Lock) != "" {
			busy = append(busy, b.Number)
			continue
		}
		bs, err := readBatch(dir, layout, b)
		if err != nil {
			return nil, nil, err
		}
		if bs.Remaining > 0 || bs.Failed > 0 {
			todo = append(todo, b.Number)
		}
	}
	return todo, busy, nil
}

// submitSlurm writes the batch script and submits the batches todo, recording the job ID the
// moment sbatch answers.
func submitSlurm(ctx context.Context, opts *SlurmOptions, deps *Deps, runner slurm.Runner, dir rundir.Dir, spec *runspec.Spec, jobs *slurm.Jobs, workerBin string, todo []int) (string, error) {
	files := dir.Slurm()
	share := 0
	if spec.RPM > 0 || spec.TPM > 0 {
		share = len(spec.Batches)
		if opts.MaxParallel > 0 {
			share = min(share, opts.MaxParallel)
		}
	}
	sc := slurm.Script{
		JobName: jobs.Name, Batches: len(spec.Batches), MaxParallel: opts.MaxParallel, RateShare: share,
		RunDir: dir.Path(), Worker: workerBin, LogDir: files.Dir, LogName: files.TaskLog,
		Partition: opts.Partition, Time: opts.Time, Mem: opts.Mem, Extra: opts.SbatchArgs, Prelude: opts.TaskPrelude,
	}
	text, err := slurm.Render(sc, files.Script)
	if err != nil {
		return "", usagef("%w", err)
	}
	if err := safefile.Write(files.Script, 0o755, func(w io.Writer) error {
		_, err := w.Write([]byte(text))
		return err
	}); err != nil {
		return "", fmt.Errorf("write the batch script: %w", err)
	}
	var args []string
	if len(todo) != len(spec.Batches) {
		args = append(args, "--array="+slurm.ArraySpec(todo, opts.MaxParallel))
	}
	// The record is saved before sbatch too, with the run's job name: a crash between sbatch's
	// answer and the write below leaves a job that the next run finds by that name.
	if err := jobs.Save(files.Jobs); err != nil {
		return "", err
	}
	id, err := slurm.Submit(ctx, runner, files.Script, args...)
	if err != nil {
		if errors.Is(err, slurm.ErrNoSlurm) {
			return "", usagef("%w; the script is written: %s", err, files.Script)
		}
		return "", fmt.Errorf("sbatch refused the job (%w); fix the flag, or edit %s and submit it by hand", err, files.Script)
	}
	jobs.Jobs = append(jobs.Jobs, slurm.Job{ID: id, Batches: todo, SubmittedAt: deps.Now().UTC()})
	if err := jobs.Save(files.Jobs); err != nil {
		return id, fmt.Errorf("job %s was submitted but %w; cancel it with scancel %s if you rerun", id, err, id)
	}
	deps.Log.Info("submitted", "job", id, "batches", slurm.FormatIndices(todo), "script", files.Script)
	return id, nil
}

// waitSlurm follows the run's jobs until no task of them is pending or running, logging progress
// from the run folder as a local run does. Interrupted, it leaves the jobs running.
func waitSlurm(ctx context.Context, opts *SlurmOptions, deps *Deps, runner slurm.Runner, dir rundir.Dir, jobs *slurm.Jobs) error {
	every := opts.ProgressEvery
	if every <= 0 {
		every = 10 * time.Second
	}
	var lastLine time.Time
	lastTasks := ""
	failures := 0
	tick := time.NewTicker(opts.Poll)
	defer tick.Stop()
	for {
		board, ids, err := slurm.Look(ctx, runner, jobs)
		switch {
		case ctx.Err() != nil:
		case err != nil:
			// The controller restarting or busy: keep asking for a while.
			failures++
			if failures >= 60 {
				return fmt.Errorf("cannot follow the Slurm job (%w); it may still be running: coordinator status --out %s", err, opts.Out)
			}
			deps.Log.Warn("cannot ask Slurm for the job's tasks; asking again", "error", err)
		default:
			failures = 0
			active := board.Active()
			if len(active) == 0 {
				return nil
			}
			// A line when a task changes state, else one every --progress-every.
			tasks := slurmTasks(board)
			if tasks != lastTasks || deps.Now().Sub(lastLine) >= every {
				if st, err := ReadStatus(ctx, dir.Path()); err == nil {
					deps.Log.Info(fmt.Sprintf("slurm job %s: tasks %s; records %d/%d done, %d failed, %d remaining, $%.4f",
						strings.Join(ids, ","), tasks, st.Done, st.Records, st.Failed, st.Remaining, st.CostUSD),
						"running_batches", slurm.FormatIndices(board.Running()))
					lastTasks, lastLine = tasks, deps.Now()
				}
			}
		}
		select {
		case <-ctx.Done():
			id := strings.Join(jobs.IDs(), " ")
			fmt.Fprintf(deps.Stdout, "stopped waiting; the Slurm job goes on. cancel it: scancel %s\n  come back: coordinator slurm --out %s --wait   (merges when it ends)\n", id, opts.Out)
			return fmt.Errorf("stopped waiting for Slurm job %s: %w", id, exitcode.ErrInterrupted)
		case <-tick.C:
		}
	}
}

// slurmTasks counts the tasks by state: "2 pending, 1 running".
func slurmTasks(b slurm.Board) string {
	c := b.Count()
	states := make([]string, 0, len(c))
	for s := range c {
		states = append(states, s)
	}
	sort.Strings(states)
	parts := make([]string, len(states))
	for i, s := range states {
		parts[i] = fmt.Sprintf("%d %s", c[s], strings.ToLower(s))
	}
	return strings.Join(parts, ", ")
}

// finishSlurm merges once the job has ended and decides the exit code as a local run does.
func finishSlurm(ctx context.Context, opts *SlurmOptions, deps *Deps, runner slurm.Runner, dir rundir.Dir, spec *runspec.Spec, sch *schema.Schema, jobs *slurm.Jobs) error {
	stats, _, err := mergeRun(context.WithoutCancel(ctx), dir, spec, sch)
	if err != nil {
		return err
	}
	board, _, _ := slurm.Look(ctx, runner, jobs)
	fmt.Fprintf(deps.Stdout, "merged %d records: %d in %s, %d failed in %s, %d not done\n",
		stats.Records, stats.Succeeded, dir.FinalResults(), stats.Failed, dir.FinalFailures(), stats.Missing)
	var bad []string
	refused := false
	for _, n := range board.Batches() {
		s := board[n]
		if s.State != "COMPLETED" {
			bad = append(bad, fmt.Sprintf("batch %d: %s (log %s)", n, s, dir.Slurm().TaskLogOf(n)))
			refused = refused || s.ExitCode == exitcode.FatalAPI
		}
	}
	if len(bad) > 0 {
		fmt.Fprintf(deps.Stdout, "tasks that did not complete:\n  %s\n", strings.Join(bad, "\n  "))
	}
	again := fmt.Sprintf("coordinator slurm --out %s --wait", opts.Out)
	switch {
	case refused:
		return fmt.Errorf("a task's worker exited %d: the API refused the run or its server cannot be reached (see the task log); fix that, then %s: %w",
			exitcode.FatalAPI, again, exitcode.ErrFatalAPI)
	case stats.Failed > 0 || stats.Missing > 0:
		return exitcode.Incomplete(fmt.Sprintf("%s; %s resubmits just those batches", notDone(stats.Failed, stats.Missing, stats.Records), again))
	}
	return nil
}

// notDone says how many of total records failed or are not done.
func notDone(failed, missing, total int64) string {
	switch {
	case failed > 0 && missing > 0:
		return fmt.Sprintf("%d of %d records failed and %d are not done", failed, total, missing)
	case failed > 0:
		return fmt.Sprintf("%d of %d records failed", failed, total)
	default:
		return fmt.Sprintf("%d of %d records are not done", missing, total)
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
