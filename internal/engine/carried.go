package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/trialcat/trialcat/internal/batch"
	"github.com/trialcat/trialcat/internal/results"
	"github.com/trialcat/trialcat/internal/review"
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
	if errors.Is(err, os.ErrNotExist) {
		return 0, usagef("--since-run %s: its batch files are gone, so what its records held is not known; drop --since-run", earlierDir)
	}
	if err != nil {
		return 0, fmt.Errorf("--since-run %s: %w", earlierDir, err)
	}
	// The model's answers, from the earlier run's worker files (its final_results.csv may hold a
	// reviewer's corrections, which come along below as corrections, not as answers).
	layout := espec.Layout(esch)
	var n int64
	done := map[string]bool{}
	err = safefile.Write(to, 0o644, func(w io.Writer) error {
		for _, b := range espec.Batches {
			if _, err := layout.ReadRows(earlier.Worker(b.Number).Results, func(row results.Row) error {
				h, ok := hashes[row.ID]
				if !ok || done[row.ID] {
					return nil
				}
				done[row.ID] = true
				n++
				return results.WriteCarried(w, results.Carried{ID: row.ID, SHA256: h, Values: row.Values, Model: row.Model})
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, carryCorrections(earlier, rundir.New(filepath.Dir(to)))
}

// carryCorrections adds the earlier run's corrections to this run's, for the records this run's
// own corrections do not cover: keyed by content hash, they apply where the record is unchanged
// and are reported stale where it changed.
func carryCorrections(earlier, dir rundir.Dir) error {
	old, err := review.Load(earlier.Corrections())
	if err != nil || len(old) == 0 {
		return err
	}
	cur, err := review.Load(dir.Corrections())
	if err != nil {
		return err
	}
	added := false
	for id, c := range old {
		if _, ok := cur[id]; !ok {
			cur[id] = c
			added = true
		}
	}
	if !added {
		return nil
	}
	return review.Save(dir.Corrections(), cur)
}
