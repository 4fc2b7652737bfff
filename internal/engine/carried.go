package engine

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/trialcat/trialcat/internal/batch"
	"github.com/trialcat/trialcat/internal/results"
	"github.com/trialcat/trialcat/internal/rundir"
	"github.com/trialcat/trialcat/internal/runspec"
	"github.com/trialcat/trialcat/internal/safefile"
	"github.com/trialcat/trialcat/internal/schema"
)

// writeCarried writes the run's carried.jsonl from the earlier run in dir (--since-run): each
// record it answered, with the content hash of the record as that run saw it (from its batch
// files) and the answer's values. It returns how many answers it holds.
func writeCarried(ctx context.Context, earlierDir string, sch *schema.Schema, to string) (int64, error) {
	earlier := rundir.New(earlierDir)
	espec, esch, err := runspec.LoadRun(earlier.Run())
	if err != nil {
		return 0, fmt.Errorf("--since-run %s: %w", earlierDir, err)
	}
	if !slices.Equal(esch.Columns(), sch.Columns()) {
		return 0, usagef("--since-run %s answered the fields %v, this run asks %v: its answers cannot be carried; drop --since-run or use the same --schema",
			earlierDir, esch.Columns(), sch.Columns())
	}
	paths := make([]string, 0, len(espec.Batches))
	for _, b := range espec.Batches {
		paths = append(paths, earlier.Batch(b.Number))
	}
	hashes, err := batch.ContentHashes(ctx, paths, espec.IDField)
	if os.IsNotExist(err) {
		return 0, usagef("--since-run %s: its batch files are gone, so what its records held is not known; drop --since-run", earlierDir)
	}
	if err != nil {
		return 0, fmt.Errorf("--since-run %s: %w", earlierDir, err)
	}
	var n int64
	err = safefile.Write(to, 0o644, func(w io.Writer) error {
		_, err := results.ReadFile(earlier.FinalResults(), func(_ results.Layout, row results.Row) error {
			h, ok := hashes[row.ID]
			if !ok {
				return nil
			}
			n++
			return results.WriteCarried(w, results.Carried{ID: row.ID, SHA256: h, Values: row.Values, Model: row.Model})
		})
		return err
	})
	if os.IsNotExist(err) {
		return 0, usagef("--since-run %s has no final_results.csv: finish or merge that run first (coordinator merge --out %s)", earlierDir, earlierDir)
	}
	return n, err
}
