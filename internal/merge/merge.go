package merge

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
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
	if opts.Layout.IDColumn == "" || opts.OutPath == "" || opts.FailuresPath == "" {
		return Stats{}, errors.New("merge: Layout, OutPath and FailuresPath are required")
	}
	if opts.MarkerPath != "" {
		if err := safefile.Write(opts.MarkerPath, 0o644, func(io.Writer) error { return nil }); err != nil {
			return Stats{}, fmt.Errorf("merge: %w", err)
		}
	}
	var stats Stats
	resultsRenamed := false
	err := safefile.Write(opts.FailuresPath, 0o644, func(fw io.Writer) error {
		err := safefile.Write(opts.OutPath, 0o644, func(rw io.Writer) error {
			s, err := merge(ctx, opts, csv.NewWriter(rw), csv.NewWriter(fw))
			stats = s
			return err
		})
		resultsRenamed = err == nil
		return err
	})
	if err != nil {
		if !resultsRenamed && opts.MarkerPath != "" {
			_ = os.Remove(opts.MarkerPath) // nothing was replaced: the old pair stands
		}
		return stats, fmt.Errorf("merge: %w", err)
	}
	if opts.MarkerPath != "" {
		if err := os.Remove(opts.MarkerPath); err != nil {
			return stats, fmt.Errorf("merge: %w", err)
		}
	}
	return stats, nil
}

// merge writes both outputs through the given CSV writers and flushes them.
func merge(ctx context.Context, opts Options, out, fail *csv.Writer) (Stats, error) {
	var stats Stats
	if err := writeRow(out, opts.Layout.Header()); err != nil {
		return stats, err
	}
	if err := writeRow(fail, opts.Layout.FailureHeader()); err != nil {
		return stats, err
	}
	for _, b := range opts.Batches {
		if err := ctx.Err(); err != nil {
			return stats, err
		}
		bs, err := mergeBatch(ctx, opts, b, out, fail, &stats)
		stats.PerBatch = append(stats.PerBatch, bs)
		stats.Records += bs.Records
		stats.Succeeded += bs.Succeeded
		stats.Failed += bs.Failed
		stats.Missing += bs.Missing
		stats.Stray += bs.Stray
		if err != nil {
			return stats, fmt.Errorf("batch %d: %w", b.Number, err)
		}
	}
	for _, w := range []*csv.Writer{out, fail} {
		w.Flush()
		if err := w.Error(); err != nil {
			return stats, err
		}
	}
	return stats, nil
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
			return copyRow(out, doneRows, at, legacy)
		}
		if at, ok := failed[id]; ok {
			bs.Failed++
			return copyRow(fail, failedRows, at, false)
		}
		bs.Missing++ // not done yet: in neither file, and a rerun does it
		return nil
	})
	bs.Stray = int64(len(done) - used)
	return bs, err
}

// copyRow writes the row at offset at of rows; a row of a legacy results file (legacy set)
// gets its cached cell.
func copyRow(w *csv.Writer, rows *results.RowReader, at int64, legacy bool) error {
	row, err := rows.At(at)
	if err != nil {
		return err
	}
	if legacy {
		row = results.Upgraded(row)
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
