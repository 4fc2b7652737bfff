package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/trialcat/trialcat/internal/batch"
	"github.com/trialcat/trialcat/internal/batchapi"
	"github.com/trialcat/trialcat/internal/exitcode"
	"github.com/trialcat/trialcat/internal/llm"
	"github.com/trialcat/trialcat/internal/proc"
	"github.com/trialcat/trialcat/internal/rundir"
	"github.com/trialcat/trialcat/internal/runspec"
)

// The Batch API's commands beside a run: cancel its batches, export its requests as batch input
// files (for vllm run-batch), import answers in the batch output format. Export and import run
// the batch's own worker (worker --export / --import), so worker N stays the only writer of
// batch N's files.

// CancelOptions are the flags of `coordinator cancel`.
type CancelOptions struct{ Out string }

// Cancel asks the Batch API to cancel every batch of the run that may still be running.
func Cancel(ctx context.Context, opts CancelOptions, deps Deps) error {
	deps.defaults()
	dir := rundir.New(opts.Out)
	spec, _, err := loadRun(dir)
	if err != nil {
		return err
	}
	key := deps.Getenv("OPENAI_API_KEY")
	if key == "" {
		return usagef("coordinator cancel calls the Batch API: it needs OPENAI_API_KEY in the environment")
	}
	api := llm.NewBatchAPI(llm.OpenAIConfig{BaseURL: spec.FullBaseURL(deps.Getenv), APIKey: key})
	cancelled, ended := 0, 0
	for _, b := range spec.Batches {
		st, err := batchapi.Load(dir.Worker(b.Number).BatchAPI)
		if err != nil {
			return err
		}
		for _, p := range st.Parts {
			if !p.Open() {
				continue
			}
			info, err := api.Cancel(ctx, p.BatchID)
			var le *llm.Error
			switch {
			case errors.As(err, &le) && le.Status == 409:
				ended++ // it ended meanwhile: the next run collects it
				fmt.Fprintf(deps.Stdout, "batch %s of worker %d has ended already\n", p.BatchID, b.Number)
			case err != nil:
				return fmt.Errorf("cancel batch %s of worker %d: %w", p.BatchID, b.Number, err)
			default:
				cancelled++
				fmt.Fprintf(deps.Stdout, "batch %s of worker %d: %s\n", p.BatchID, b.Number, info.Status)
			}
		}
	}
	if cancelled+ended == 0 {
		fmt.Fprintf(deps.Stdout, "no batch of %s is running at the Batch API\n", opts.Out)
		return nil
	}
	fmt.Fprintf(deps.Stdout, "asked to cancel %d batches. Requests the API finished before the cancel may still be billed;\n"+
		"rerun the run's command to collect what they finished (the rest stays to do, for a later run live or batch).\n", cancelled)
	return nil
}

// ExportOptions are the flags of `coordinator export`.
type ExportOptions struct {
	// Options are the run's flags; with Input set the input is split first, else Out must
	// hold a split run.
	Options
}

// Export writes each batch's requests not done yet to export/batch_N.jsonl in the Batch API's
// input format, the file `vllm run-batch` reads, and prints how to run and import them.
func Export(ctx context.Context, opts ExportOptions, deps Deps) error {
	deps.defaults()
	workerBin, err := findWorker(&opts.Options, &deps)
	if err != nil {
		return err
	}
	dir := rundir.New(opts.Out)
	var spec *runspec.Spec
	if opts.Input != "" {
		if opts.Provider == "auto" {
			opts.Provider = "openai"
		}
		opts.exportOnly = true
		p, err := newPlan(ctx, &opts.Options, &deps, deps.Now(), splitNow)
		if err != nil {
			return err
		}
		p.release()
		spec = p.spec
	} else if spec, _, err = loadRun(dir); err != nil {
		return err
	}
	if spec.Provider != runspec.ProviderOpenAI {
		return usagef("%s is an offline run: it has no requests to export; split it with --provider openai (and --model of the model that will answer)", opts.Out)
	}
	if err := os.MkdirAll(filepath.Dir(dir.Export(0)), 0o755); err != nil {
		return fmt.Errorf("create the export folder: %w", err)
	}
	var files []string
	for _, b := range spec.Batches {
		path := dir.Export(b.Number)
		if err := runWorker(ctx, &deps, workerBin, dir, b.Number, "--export", path); err != nil {
			return err
		}
		files = append(files, path)
	}
	fmt.Fprintf(deps.Stdout, "wrote the requests not done yet of %d batches: %s\n", len(files), filepath.Dir(files[0]))
	fmt.Fprintf(deps.Stdout, "answer them with any tool that reads the Batch API's format, for example on a GPU node:\n"+
		"  vllm run-batch -i %s -o %s --model %s\n"+
		"then read the answers into the run and merge:\n  coordinator import --out %s %s\n",
		files[0], strings.TrimSuffix(files[0], ".jsonl")+".out.jsonl", spec.Model, opts.Out, filepath.Join(filepath.Dir(files[0]), "*.out.jsonl"))
	return nil
}

// ImportOptions are the arguments of `coordinator import`.
type ImportOptions struct {
	Out   string
	Files []string
	// WorkerBin is --worker-bin ("": beside the coordinator, then on PATH).
	WorkerBin string
}

// Import reads answers in the Batch API's output format (from the Batch API, vllm run-batch or
// any tool writing it) into the workers' results, each line into the batch of its custom_id,
// and merges.
func Import(ctx context.Context, opts ImportOptions, deps Deps) error {
	deps.defaults()
	if len(opts.Files) == 0 {
		return usagef("coordinator import needs the output files: coordinator import --out DIR FILE...")
	}
	workerBin, err := findWorker(&Options{WorkerBin: opts.WorkerBin}, &deps)
	if err != nil {
		return err
	}
	dir := rundir.New(opts.Out)
	spec, sch, err := loadRun(dir)
	if err != nil {
		return err
	}
	if pid := runningPID(dir); pid != "" {
		return usagef("a coordinator (pid %s) is running on %s; import when it has ended", pid, opts.Out)
	}
	of, err := batchOf(dir, spec)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(dir.Path(), ".import-")
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	defer os.RemoveAll(tmp)
	per := map[int]*os.File{}
	unknown, lines := 0, 0
	for _, path := range opts.Files {
		f, err := os.Open(path)
		if err != nil {
			return usagef("import %s: %w", path, err)
		}
		err = llm.EachLine(f, func(line []byte) error {
			lines++
			l, err := llm.ParseOutputLine(line)
			n, ok := of[l.CustomID]
			if err != nil || !ok {
				unknown++
				return nil
			}
			out := per[n]
			if out == nil {
				if out, err = os.Create(filepath.Join(tmp, "batch_"+strconv.Itoa(n)+".jsonl")); err != nil {
					return err
				}
				per[n] = out
			}
			_, err = out.Write(append(append([]byte{}, line...), '\n'))
			return err
		})
		f.Close()
		if err != nil {
			return fmt.Errorf("import %s: %w", path, err)
		}
	}
	var batches []int
	for n, f := range per {
		if err := f.Close(); err != nil {
			return fmt.Errorf("import: %w", err)
		}
		batches = append(batches, n)
	}
	sort.Ints(batches)
	var failed []string
	for _, n := range batches {
		if err := runWorker(ctx, &deps, workerBin, dir, n, "--import", filepath.Join(tmp, "batch_"+strconv.Itoa(n)+".jsonl")); err != nil {
			if errors.Is(err, exitcode.ErrInterrupted) || errors.Is(err, exitcode.ErrUsage) {
				return err
			}
			failed = append(failed, fmt.Sprintf("batch %d: %v", n, err))
		}
	}
	stats, _, err := mergeRun(context.WithoutCancel(ctx), dir, spec, sch)
	if err != nil {
		return err
	}
	fmt.Fprintf(deps.Stdout, "imported %d lines into %d batches (%d lines matched no record of the run, or were not answer lines)\n", lines-unknown, len(batches), unknown)
	fmt.Fprintf(deps.Stdout, "merged %d records: %d in %s, %d failed in %s, %d not done\n",
		stats.Records, stats.Succeeded, dir.FinalResults(), stats.Failed, dir.FinalFailures(), stats.Missing)
	if len(failed) > 0 {
		return exitcode.Incomplete(fmt.Sprintf("importing: %s", strings.Join(failed, "; ")))
	}
	if stats.Failed > 0 || stats.Missing > 0 {
		return exitcode.Incomplete(notDone(stats.Failed, stats.Missing, stats.Records))
	}
	return nil
}

// batchOf maps every record ID of the run to its batch.
func batchOf(dir rundir.Dir, spec *runspec.Spec) (map[string]int, error) {
	of := map[string]int{}
	for _, b := range spec.Batches {
		if err := batch.IDs(dir.Batch(b.Number), spec.IDField, func(id string) error {
			of[id] = b.Number
			return nil
		}); err != nil {
			return nil, err
		}
	}
	return of, nil
}

// runWorker runs batch n's worker with extra arguments to its end, logging its stderr.
func runWorker(ctx context.Context, deps *Deps, bin string, dir rundir.Dir, n int, extra ...string) error {
	p, err := proc.Start(ctx, proc.Spec{
		Name: fmt.Sprintf("worker-%d", n), Path: bin, Env: workerEnv(deps.Getenv, true), Logger: deps.Log,
		Args: append([]string{"--run-dir", dir.Path(), "--index", strconv.Itoa(n)}, extra...),
	})
	if err != nil {
		return fmt.Errorf("start worker %d: %w", n, err)
	}
	ex := p.Wait()
	switch {
	case ex.Success():
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("worker %d: %w", n, exitcode.ErrInterrupted)
	case ex.Code == exitcode.Usage:
		return fmt.Errorf("worker %d refused (%s; its message is above): %w", n, ex, exitcode.ErrUsage)
	}
	return fmt.Errorf("worker %d: %s", n, ex)
}

// lookBatchAPI asks the Batch API, when the key is set, for the current state of the batches
// that may still run, so status is fresh even when no worker is polling them (after Ctrl-C).
// What it cannot ask is shown as the workers last saw it.
func lookBatchAPI(ctx context.Context, st *RunStatus, deps *Deps) {
	key := deps.Getenv("OPENAI_API_KEY")
	if key == "" || st.Spec.Provider != runspec.ProviderOpenAI {
		return
	}
	dir := rundir.New(st.Out)
	var api *llm.BatchAPI
	for i, b := range st.Batches {
		state, err := batchapi.Load(dir.Worker(b.Batch).BatchAPI)
		if err != nil || len(state.Parts) == 0 {
			continue
		}
		var parts []string
		for _, p := range state.Parts {
			if p.Open() {
				if api == nil {
					api = llm.NewBatchAPI(llm.OpenAIConfig{BaseURL: st.Spec.FullBaseURL(deps.Getenv), APIKey: key})
				}
				cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				info, err := api.Get(cctx, p.BatchID)
				cancel()
				if err == nil {
					p.Status, p.Completed, p.Failed = info.Status, info.Completed, info.Failed
				}
			}
			parts = append(parts, partStatus(p))
		}
		st.Batches[i].BatchAPI = strings.Join(parts, ", ")
	}
}

// partStatus is one part for status: "in_progress 120/250", "completed", "not submitted".
func partStatus(p batchapi.Part) string {
	switch {
	case p.Collected:
		return p.Status
	case p.BatchID == "":
		return "not submitted"
	}
	return fmt.Sprintf("%s %d/%d", p.Status, p.Completed+p.Failed, p.Requests)
}

// batchAPIStatus describes a batch's Batch API parts for status: "2 parts: 1 in_progress
// 120/250, 1 completed".
func batchAPIStatus(dir rundir.Dir, n int) string {
	st, err := batchapi.Load(dir.Worker(n).BatchAPI)
	if err != nil || len(st.Parts) == 0 {
		return ""
	}
	var parts []string
	for _, p := range st.Parts {
		parts = append(parts, partStatus(p))
	}
	return strings.Join(parts, ", ")
}
