package merge

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/trialcat/trialcat/internal/exitcode"
	"github.com/trialcat/trialcat/internal/results"
	"github.com/trialcat/trialcat/internal/safefile"
)

// Batch is one worker's share of the input.
type Batch struct {
	// Number is the batch (and worker) number N.
	Number int
	// ResultsPath and FailuresPath are worker_N_results.csv and worker_N_failures.csv. Missing
	// files mean the worker wrote nothing.
	ResultsPath, FailuresPath string
	// IDs streams this batch's IDs in input order, stopping at (and returning) the first error
	// yield returns.
	IDs func(yield func(id string) error) error
}

// Options configure Merge.
type Options struct {
	// Batches in input order.
	Batches []Batch
	// Layout is the columns every results and failures file must have.
	Layout results.Layout
	// OutPath and FailuresPath are final_results.csv and final_failures.csv.
	OutPath, FailuresPath string
	// MarkerPath, when set, marks a merge in progress (see Merge).
	MarkerPath string
	// OnResult and OnFailure, when set, see each row written to OutPath and FailuresPath, as
	// the worker wrote it (before the spreadsheet-formula guard), batch by batch in the order
	// the batches are merged: totals need no second pass over the outputs.
	OnResult, OnFailure func(row []string)
	// Rewrite, when set, may change a result row before it is written (a reviewer's
	// corrections); it gets the row as the worker wrote it and returns the row to write.
	Rewrite func(row []string) []string
}

// Stats count what Merge wrote.
type Stats struct {
	Records   int64 // IDs in the batches
	Succeeded int64 // rows written to OutPath
	Failed    int64 // records that failed for good: failure rows written to FailuresPath
	Missing   int64 // records no worker finished yet (in neither file): a rerun does them
	// TornLines counts worker files whose torn last line was ignored.
	TornLines int
	// DuplicateRows counts result rows dropped because an earlier row had the same ID.
	DuplicateRows int64
	// Stray counts result rows whose ID is not in their batch.
	Stray    int64
	PerBatch []BatchStats
}

// BatchStats count one batch.
type BatchStats struct {
	Number                              int
	Records, Succeeded, Failed, Missing int64
	Stray                               int64
}

// Merge writes opts.OutPath and opts.FailuresPath from the batches' worker files; see the package
// documentation. On error before the first rename neither existing output is replaced. A worker
// file whose header differs from the expected one is an error wrapping exitcode.ErrUsage.
//
// The two files cannot be replaced together, so the order is the one a crash can afford:
// results first, then failures. Results only grow between merges, so a crash between the two
// renames can leave an ID in both files (the old failure beside its new answer), never in
// neither. MarkerPath, when set, exists from before the first rename until after the second:
// a start that finds it merges again, which repairs the pair.
func Merge(ctx context.Context, opts Options) (Stats, error) {
	r, err := Start(opts)
	if err != nil {
		return Stats{}, err
	}
	for _, b := range opts.Batches {
		if err := r.Add(ctx, b); err != nil {
			r.Abort()
			return r.stats, err
		}
	}
	return r.Finish()
}

// Running is a merge that takes the batches one at a time, in any order, while the run that
// writes them goes on: a batch is added once its worker is done with it. The next batch in input
// order goes straight into the outputs; a later one is merged into a segment of its own, which
// is appended when its turn comes, so that at the end only the batches not added yet are
// merged and the segments appended before both files are put in place (Finish). Until then the
// existing outputs are unchanged. opts.Batches is the plan: every batch, in input order.
type Running struct {
	opts      Options
	out, fail *safefile.File
	ow, fw    *csv.Writer
	stats     Stats
	// place is each batch's index in the plan, next the index of the next batch to write, and
	// ahead the segments of batches added before their turn.
	place map[int]int
	next  int
	ahead map[int]*segment
	added map[int]bool
}

// segment is one batch merged on its own, waiting for the batches before it.
type segment struct {
	res, fail *os.File // temporary, in the outputs' folder; read from the start when appended
	stats     BatchStats
}

// Start begins a merge: both outputs are written under temporary names, headers first.
func Start(opts Options) (*Running, error) {
	if opts.Layout.IDColumn == "" || opts.OutPath == "" || opts.FailuresPath == "" {
		return nil, errors.New("merge: Layout, OutPath and FailuresPath are required")
	}
	out, err := safefile.Create(opts.OutPath, 0o644)
	if err != nil {
		return nil, fmt.Errorf("merge: %w", err)
	}
	fail, err := safefile.Create(opts.FailuresPath, 0o644)
	if err != nil {
		out.Abort()
		return nil, fmt.Errorf("merge: %w", err)
	}
	r := &Running{opts: opts, out: out, fail: fail, ow: csv.NewWriter(out.Writer()), fw: csv.NewWriter(fail.Writer()),
		place: map[int]int{}, ahead: map[int]*segment{}, added: map[int]bool{}}
	for i, b := range opts.Batches {
		r.place[b.Number] = i
	}
	if err := writeRow(r.ow, opts.Layout.Header()); err != nil {
		r.Abort()
		return nil, fmt.Errorf("merge: %w", err)
	}
	if err := writeRow(r.fw, opts.Layout.FailureHeader()); err != nil {
		r.Abort()
		return nil, fmt.Errorf("merge: %w", err)
	}
	return r, nil
}

// Add merges batch b, one of the plan's, at most once. After an error the merge can only be
// aborted.
func (r *Running) Add(ctx context.Context, b Batch) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("merge: %w", err)
	}
	i, ok := r.place[b.Number]
	if !ok || r.added[b.Number] {
		return fmt.Errorf("merge: batch %d is not in the plan or was added already", b.Number)
	}
	r.added[b.Number] = true
	if i != r.next {
		seg, err := r.segment(ctx, b)
		if err != nil {
			return fmt.Errorf("merge: batch %d: %w", b.Number, err)
		}
		r.ahead[b.Number] = seg
		return nil
	}
	bs, err := mergeBatch(ctx, r.opts, b, r.ow, r.fw, &r.stats)
	r.count(bs)
	if err != nil {
		return fmt.Errorf("merge: batch %d: %w", b.Number, err)
	}
	r.next++
	// The segments whose turn has come.
	for r.next < len(r.opts.Batches) {
		seg := r.ahead[r.opts.Batches[r.next].Number]
		if seg == nil {
			break
		}
		delete(r.ahead, r.opts.Batches[r.next].Number)
		if err := r.appendSegment(seg); err != nil {
			return fmt.Errorf("merge: batch %d: %w", r.opts.Batches[r.next].Number, err)
		}
		r.next++
	}
	return nil
}

func (r *Running) count(bs BatchStats) {
	r.stats.PerBatch = append(r.stats.PerBatch, bs)
	r.stats.Records += bs.Records
	r.stats.Succeeded += bs.Succeeded
	r.stats.Failed += bs.Failed
	r.stats.Missing += bs.Missing
	r.stats.Stray += bs.Stray
}

// segment merges b into temporary files of its own.
func (r *Running) segment(ctx context.Context, b Batch) (*segment, error) {
	tmp := func(path string) (*os.File, error) {
		return os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	}
	seg := &segment{}
	var err error
	if seg.res, err = tmp(r.opts.OutPath); err != nil {
		return nil, err
	}
	if seg.fail, err = tmp(r.opts.FailuresPath); err != nil {
		seg.drop()
		return nil, err
	}
	rb, fb := bufio.NewWriter(seg.res), bufio.NewWriter(seg.fail)
	rw, fw := csv.NewWriter(rb), csv.NewWriter(fb)
	seg.stats, err = mergeBatch(ctx, r.opts, b, rw, fw, &r.stats)
	for _, w := range []*csv.Writer{rw, fw} {
		w.Flush()
		if err == nil {
			err = w.Error()
		}
	}
	for _, w := range []*bufio.Writer{rb, fb} {
		if ferr := w.Flush(); err == nil {
			err = ferr
		}
	}
	if err != nil {
		seg.drop()
		return nil, err
	}
	return seg, nil
}

// appendSegment copies a segment into the outputs and drops it.
func (r *Running) appendSegment(seg *segment) error {
	defer seg.drop()
	r.count(seg.stats)
	for _, p := range []struct {
		w   *csv.Writer
		dst io.Writer
		src *os.File
	}{{r.ow, r.out.Writer(), seg.res}, {r.fw, r.fail.Writer(), seg.fail}} {
		p.w.Flush() // the rows before the segment first
		if err := p.w.Error(); err != nil {
			return err
		}
		if _, err := p.src.Seek(0, io.SeekStart); err != nil {
			return err
		}
		if _, err := io.Copy(p.dst, p.src); err != nil {
			return err
		}
	}
	return nil
}

func (seg *segment) drop() {
	for _, f := range []*os.File{seg.res, seg.fail} {
		if f != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}
}

// Stats are the counts of the batches written so far.
func (r *Running) Stats() Stats { return r.stats }

// Finish puts both files in place, results first (see Merge for the order and the marker).
// Every batch of the plan must have been added.
func (r *Running) Finish() (Stats, error) {
	if r.next != len(r.opts.Batches) {
		r.Abort()
		return r.stats, fmt.Errorf("merge: %d of %d batches added", r.next, len(r.opts.Batches))
	}
	slices.SortFunc(r.stats.PerBatch, func(a, b BatchStats) int { return r.place[a.Number] - r.place[b.Number] })
	for _, w := range []*csv.Writer{r.ow, r.fw} {
		w.Flush()
		if err := w.Error(); err != nil {
			r.Abort()
			return r.stats, fmt.Errorf("merge: %w", err)
		}
	}
	if r.opts.MarkerPath != "" {
		if err := safefile.Write(r.opts.MarkerPath, 0o644, func(io.Writer) error { return nil }); err != nil {
			r.Abort()
			return r.stats, fmt.Errorf("merge: %w", err)
		}
	}
	if err := r.out.Commit(); err != nil {
		r.fail.Abort()
		if r.opts.MarkerPath != "" {
			_ = os.Remove(r.opts.MarkerPath) // nothing was replaced: the old pair stands
		}
		return r.stats, fmt.Errorf("merge: %w", err)
	}
	if err := r.fail.Commit(); err != nil {
		return r.stats, fmt.Errorf("merge: %w", err) // the marker stays: the next start merges again
	}
	if r.opts.MarkerPath != "" {
		if err := os.Remove(r.opts.MarkerPath); err != nil {
			return r.stats, fmt.Errorf("merge: %w", err)
		}
	}
	return r.stats, nil
}

// Abort drops the unfinished outputs and segments; the existing outputs stay as they were.
func (r *Running) Abort() {
	r.out.Abort()
	r.fail.Abort()
	for n, seg := range r.ahead {
		seg.drop()
		delete(r.ahead, n)
	}
}

// mergeBatch writes one batch's rows in the order of its IDs.
func mergeBatch(ctx context.Context, opts Options, b Batch, out, fail *csv.Writer, stats *Stats) (BatchStats, error) {
	bs := BatchStats{Number: b.Number}
	if b.IDs == nil {
		return bs, errors.New("no IDs for the batch")
	}
	done, failed, legacy, err := load(b, opts.Layout, stats)
	if err != nil {
		return bs, err
	}
	// Only each ID's offset is held: the rows are read again, one at a time, as they are
	// written (in input order, which is nearly the order the worker wrote them).
	var doneRows, failedRows *results.RowReader
	if len(done) > 0 {
		if doneRows, err = results.OpenRows(b.ResultsPath); err != nil {
			return bs, err
		}
		defer doneRows.Close()
	}
	if len(failed) > 0 {
		if failedRows, err = results.OpenRows(b.FailuresPath); err != nil {
			return bs, err
		}
		defer failedRows.Close()
	}
	used := 0 // result rows written; the rest are stray
	width := len(opts.Layout.Header())
	seen := make(map[string]struct{}, len(done)+len(failed))
	err = b.IDs(func(id string) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, dup := seen[id]; dup {
			return nil // the input repeats an ID: one row for it is enough
		}
		seen[id] = struct{}{}
		bs.Records++
		if at, ok := done[id]; ok {
			used++
			bs.Succeeded++
			return copyRow(out, doneRows, at, legacy, width, opts.Rewrite, opts.OnResult)
		}
		if at, ok := failed[id]; ok {
			bs.Failed++
			return copyRow(fail, failedRows, at, false, 0, nil, opts.OnFailure)
		}
		bs.Missing++ // not done yet: in neither file, and a rerun does it
		return nil
	})
	bs.Stray = int64(len(done) - used)
	return bs, err
}

// copyRow writes the row at offset at of rows, shown to seen first; a row of a legacy results
// file (legacy set) gets its cached cell.
func copyRow(w *csv.Writer, rows *results.RowReader, at int64, legacy bool, width int, rewrite func([]string) []string, seen func([]string)) error {
	row, err := rows.At(at)
	if err != nil {
		return err
	}
	if legacy {
		row = results.Upgraded(row, width)
	}
	if rewrite != nil {
		row = rewrite(row)
	}
	if seen != nil {
		seen(row)
	}
	return writeRow(w, row)
}

// load indexes a batch's worker files: where the first result row per ID and the last failure
// row per ID start.
func load(b Batch, layout results.Layout, stats *Stats) (done, failed map[string]int64, legacy bool, err error) {
	done = make(map[string]int64)
	got, torn, err := results.Index(b.ResultsPath, func(row []string, at int64) error {
		id := results.RowID(row)
		if _, dup := done[id]; dup {
			stats.DuplicateRows++
			return nil
		}
		done[id] = at
		return nil
	})
	if err != nil {
		return nil, nil, false, err
	}
	legacy = results.IsLegacy(got, layout.Header())
	if !legacy {
		if err := checkHeader(b.ResultsPath, got, layout.Header()); err != nil {
			return nil, nil, false, err
		}
	}
	if torn {
		stats.TornLines++
	}

	failed = make(map[string]int64)
	got, torn, err = results.Index(b.FailuresPath, func(row []string, at int64) error {
		failed[results.RowID(row)] = at // the last failure wins: it is the latest attempt
		return nil
	})
	if err != nil {
		return nil, nil, false, err
	}
	if err := checkHeader(b.FailuresPath, got, layout.FailureHeader()); err != nil {
		return nil, nil, false, err
	}
	if torn {
		stats.TornLines++
	}
	return done, failed, legacy, nil
}

// checkHeader accepts a missing file (nil header) or the expected header.
func checkHeader(path string, got, want []string) error {
	if got == nil || slices.Equal(got, want) {
		return nil
	}
	return fmt.Errorf("%s has columns %q but this run expects %q: the file belongs to a different run; "+
		"move the output directory away or rerun with the same schema and ID column: %w",
		path, got, want, exitcode.ErrUsage)
}

// writeRow writes a row with every cell guarded against spreadsheet formulas.
func writeRow(w *csv.Writer, row []string) error {
	safe := make([]string, len(row))
	for i, c := range row {
		safe[i] = results.SafeCell(c)
	}
	return w.Write(safe)
}
