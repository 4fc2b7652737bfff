package engine

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/trialcat/trialcat/internal/batch"
	"github.com/trialcat/trialcat/internal/exitcode"
	"github.com/trialcat/trialcat/internal/results"
	"github.com/trialcat/trialcat/internal/rundir"
	"github.com/trialcat/trialcat/internal/runspec"
	"github.com/trialcat/trialcat/internal/schema"
	"github.com/trialcat/trialcat/internal/slurm"
)

// BatchStatus is one batch's progress, read from its files.
type BatchStatus struct {
	Batch     int     `json:"batch"`
	Records   int64   `json:"records"`
	Done      int64   `json:"done"`
	Failed    int64   `json:"failed"`
	Remaining int64   `json:"remaining"`
	CostUSD   float64 `json:"cost_usd"`
	// CostUnknown is set when a row's model has no price: CostUSD is then a lower bound.
	CostUnknown bool `json:"cost_unknown,omitempty"`
	// BatchAPI is the state of the batch's Batch API parts, when it went through them.
	BatchAPI string `json:"batch_api,omitempty"`
}

// RunStatus is what `coordinator status` reports.
type RunStatus struct {
	Out        string        `json:"out"`
	RunningPID string        `json:"running_pid,omitempty"`
	Spec       *runspec.Spec `json:"-"`
	Records    int64         `json:"records"`
	Done       int64         `json:"done"`
	Failed     int64         `json:"failed"`
	Remaining  int64         `json:"remaining"`
	CostUSD    float64       `json:"cost_usd"`
	// CostUnknown is set when some answer's model has no price: CostUSD is a lower bound.
	CostUnknown bool          `json:"cost_unknown,omitempty"`
	Batches     []BatchStatus `json:"batches"`
	Merged      bool          `json:"merged"`
	// Slurm is the state of each batch's Slurm task, when the run was submitted to Slurm;
	// SlurmErr says why it could not be read.
	Slurm    slurm.Board `json:"slurm,omitempty"`
	SlurmErr string      `json:"slurm_error,omitempty"`
}

// loadRun is the run in dir (see runspec.LoadRun).
func loadRun(dir rundir.Dir) (*runspec.Spec, *schema.Schema, error) {
	return runspec.LoadRun(dir.Run())
}

// StatusOptions are the flags of `coordinator status`.
type StatusOptions struct {
	Out string
}

// Status prints the progress of a running or finished run (see ReadStatus) to deps.Stdout.
func Status(ctx context.Context, opts StatusOptions, deps Deps) error {
	deps.defaults()
	st, err := ReadStatus(ctx, opts.Out)
	if err != nil {
		return err
	}
	lookSlurm(ctx, st, &deps)
	lookBatchAPI(ctx, st, &deps)
	st.Print(deps.Stdout)
	return nil
}

// ReadStatus reads a running or finished run's files, without disturbing it: the workers' files
// are only read, and a torn last line (a row being written) is not counted.
func ReadStatus(ctx context.Context, out string) (*RunStatus, error) {
	dir := rundir.New(out)
	spec, sch, err := loadRun(dir)
	if err != nil {
		return nil, err
	}
	layout := spec.Layout(sch)
	st := &RunStatus{Out: out, RunningPID: runningPID(dir), Spec: spec, Records: spec.Input.Records}
	for _, b := range spec.Batches {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		bs, err := readBatch(dir, layout, b)
		if err != nil {
			return nil, err
		}
		bs.BatchAPI = batchAPIStatus(dir, b.Number)
		st.Done += bs.Done
		st.Failed += bs.Failed
		st.Remaining += bs.Remaining
		st.CostUSD += bs.CostUSD
		st.CostUnknown = st.CostUnknown || bs.CostUnknown
		st.Batches = append(st.Batches, bs)
	}
	if _, err := os.Stat(dir.FinalResults()); err == nil {
		st.Merged = true
	}
	return st, nil
}

// lookSlurm adds the Slurm state of each batch when the run was submitted to Slurm.
func lookSlurm(ctx context.Context, st *RunStatus, deps *Deps) {
	files := rundir.New(st.Out).Slurm()
	if _, err := os.Stat(files.Jobs); err != nil {
		return
	}
	jobs, err := slurm.LoadJobs(files.Jobs)
	if err == nil {
		st.Slurm, _, err = slurm.Look(ctx, deps.Slurm, jobs)
	}
	if err != nil {
		st.SlurmErr = err.Error()
	}
}

// readBatch counts one batch's answered, failed and remaining records and its cost from the
// worker's files, each ID once; a torn last line is not counted.
func readBatch(dir rundir.Dir, layout results.Layout, b batch.Range) (BatchStatus, error) {
	f := dir.Worker(b.Number)
	bs := BatchStatus{Batch: b.Number, Records: b.Count}
	done := map[string]bool{}
	if _, err := layout.ReadRows(f.Results, func(row results.Row) error {
		if !done[row.ID] {
			done[row.ID] = true
			bs.CostUSD += row.CostUSD
			bs.CostUnknown = bs.CostUnknown || !row.CostKnown
		}
		return nil
	}); err != nil {
		return bs, err
	}
	failed := map[string]bool{}
	if _, err := layout.ReadFailures(f.Failures, func(fr results.Failure) error {
		if !done[fr.ID] {
			failed[fr.ID] = true
		}
		return nil
	}); err != nil {
		return bs, err
	}
	bs.Done, bs.Failed = int64(len(done)), int64(len(failed))
	bs.Remaining = max(0, bs.Records-bs.Done-bs.Failed)
	return bs, nil
}

// Print writes the status as a short report and a per-batch table.
func (st *RunStatus) Print(w io.Writer) {
	state := "not running"
	if st.RunningPID != "" {
		state = "running (coordinator pid " + st.RunningPID + ")"
	}
	fmt.Fprintf(w, "run in %s: %s\n", st.Out, state)
	fmt.Fprintf(w, "input %s (%s, %d records), provider %s, model %s\n", st.Spec.Input.Path, st.Spec.Input.Format, st.Records, st.Spec.Provider, st.Spec.Model)
	cost := fmt.Sprintf("$%.4f", st.CostUSD)
	if st.CostUnknown {
		cost = "unknown (a model's price is not in the table: add it with --prices)"
	}
	fmt.Fprintf(w, "done %d, failed %d, remaining %d (%.1f%% done), cost so far %s\n",
		st.Done, st.Failed, st.Remaining, pct(st.Done+st.Failed, st.Records), cost)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := "batch\trecords\tdone\tfailed\tremaining\tcost_usd\t"
	batchAPI := false
	for _, b := range st.Batches {
		batchAPI = batchAPI || b.BatchAPI != ""
	}
	if st.Slurm != nil {
		head += "slurm task\t"
	}
	if batchAPI {
		head += "batch api\t"
	}
	fmt.Fprintln(tw, head)
	for _, b := range st.Batches {
		fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%d\t%.4f\t", b.Batch, b.Records, b.Done, b.Failed, b.Remaining, b.CostUSD)
		if st.Slurm != nil {
			task := "-"
			if s, ok := st.Slurm[b.Batch]; ok {
				task = s.Job + "_" + strconv.Itoa(b.Batch) + " " + s.String()
			}
			fmt.Fprintf(tw, "%s\t", task)
		}
		if batchAPI {
			fmt.Fprintf(tw, "%s\t", b.BatchAPI)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	if st.SlurmErr != "" {
		fmt.Fprintf(w, "Slurm state not available: %s\n", st.SlurmErr)
	}
	switch {
	case st.RunningPID != "":
	case (st.Remaining > 0 || st.Failed > 0) && st.Slurm != nil:
		fmt.Fprintf(w, "to finish: coordinator slurm --out %s --wait   (resubmits the unfinished batches whose tasks are not queued or running, then merges)\n", st.Out)
	case st.Remaining > 0 || st.Failed > 0:
		fmt.Fprintln(w, "to finish: rerun the coordinator with the same input and flags (it resumes and retries failures);")
		fmt.Fprintf(w, "  or, when another engine runs the workers (coordinator split), run the unfinished batches and then: coordinator merge --out %s\n", st.Out)
	case !st.Merged:
		fmt.Fprintf(w, "all records are done but not merged: coordinator merge --out %s\n", st.Out)
	}
}

// MergeOptions are the flags of `coordinator merge`.
type MergeOptions struct {
	Out string
}

// Merge merges a run's worker files again without running anything, and prints what it wrote to
// deps.Stdout. It refuses while a coordinator is running on the folder.
func Merge(ctx context.Context, opts MergeOptions, deps Deps) error {
	deps.defaults()
	out, w := opts.Out, deps.Stdout
	dir := rundir.New(out)
	if pid := runningPID(dir); pid != "" {
		return fmt.Errorf("a coordinator (pid %s) is running on %s and will merge when it ends; watch it with coordinator status --out %s: %w", pid, out, out, exitcode.ErrUsage)
	}
	spec, sch, err := loadRun(dir)
	if err != nil {
		return err
	}
	lock, err := acquireLock(dir)
	if err != nil {
		return err
	}
	defer lock.Release()
	sum, err := refreshFolder(ctx, &deps, dir, spec, sch)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "merged %d records: %d in %s, %d failed in %s, %d remaining (not done yet)\n",
		sum.Records, sum.Succeeded, dir.FinalResults(), sum.Failed, dir.FinalFailures(), sum.Remaining)
	// Batches with records not done (a task that failed, was cancelled or never ran): the
	// command that runs just those again.
	st, err := ReadStatus(ctx, out)
	if err != nil {
		return err
	}
	var unfinished []string
	var paths []string
	for _, b := range st.Batches {
		if b.Remaining > 0 {
			unfinished = append(unfinished, fmt.Sprintf("%d (%d to do)", b.Batch, b.Remaining))
			paths = append(paths, dir.Batch(b.Batch))
		}
	}
	if len(unfinished) > 0 {
		fmt.Fprintf(w, "batches not finished: %s\nrun just those again, then merge:\n  parallel -j 4 worker --batch {} ::: %s\n",
			strings.Join(unfinished, ", "), strings.Join(paths, " "))
		if len(paths) == 1 {
			fmt.Fprintf(w, "  (or: worker --batch %s)\n", paths[0])
		}
	}
	if sum.Failed > 0 || sum.Remaining > 0 {
		return exitcode.Incomplete(notDone(sum.Failed, sum.Remaining, sum.Records))
	}
	return nil
}

func pct(a, b int64) float64 {
	if b == 0 {
		return 100
	}
	return 100 * float64(a) / float64(b)
}
