package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/trialcat/trialcat/internal/batch"
	"github.com/trialcat/trialcat/internal/exitcode"
	"github.com/trialcat/trialcat/internal/review"
	"github.com/trialcat/trialcat/internal/rundir"
)

// ReviewOptions are `coordinator review import SHEET --out RUN`'s.
type ReviewOptions struct {
	Sheet, Out string
}

// ReviewImport stores a filled review sheet's corrections in the run folder and merges the final
// files again with them. Every filled cell is checked first: a bad one (a value the schema does
// not allow, a field it does not have, an ID that is not the run's) refuses the whole sheet,
// naming its line and field, and nothing is stored.
func ReviewImport(ctx context.Context, o ReviewOptions, deps Deps) error {
	deps.defaults()
	dir := rundir.New(o.Out)
	if pid := runningPID(dir); pid != "" {
		return fmt.Errorf("a coordinator (pid %s) is running on %s; import the review when it ends: %w", pid, o.Out, exitcode.ErrUsage)
	}
	spec, sch, err := loadRun(dir)
	if err != nil {
		return err
	}
	rows, err := review.ReadSheet(o.Sheet, sch)
	var se *review.SheetError
	if errors.As(err, &se) {
		return fmt.Errorf("%w; nothing was imported: %w", err, exitcode.ErrUsage)
	}
	if err != nil {
		return fmt.Errorf("read %s: %w: %w", o.Sheet, err, exitcode.ErrUsage)
	}
	paths := make([]string, 0, len(spec.Batches))
	for _, b := range spec.Batches {
		paths = append(paths, dir.Batch(b.Number))
	}
	hashes, err := batch.ContentHashes(ctx, paths, spec.IDField)
	if err != nil {
		return err
	}
	for _, r := range rows {
		if hashes[r.ID] == "" {
			return fmt.Errorf("%w; nothing was imported: %w", &review.SheetError{Sheet: o.Sheet, Line: r.Line, Msg: fmt.Sprintf("%s is not a record of the run in %s", r.ID, o.Out)}, exitcode.ErrUsage)
		}
	}
	lock, err := acquireLock(dir)
	if err != nil {
		return err
	}
	defer lock.Release()
	cs, err := review.Load(dir.Corrections())
	if err != nil {
		return err
	}
	cells := 0
	for _, r := range rows {
		c := cs[r.ID]
		if c.SHA256 != hashes[r.ID] {
			c = review.Correction{ID: r.ID, SHA256: hashes[r.ID]} // corrections of other content give way
		}
		if c.Values == nil {
			c.Values = map[string]string{}
		}
		for f, v := range r.Values {
			c.Values[f] = v
			cells++
		}
		c.Sheet, c.ImportedAt = o.Sheet, deps.Now().UTC().Truncate(time.Second)
		cs[r.ID] = c
	}
	if err := review.Save(dir.Corrections(), cs); err != nil {
		return err
	}
	sum, err := refreshFolder(ctx, &deps, dir, spec, sch)
	if err != nil {
		return err
	}
	fmt.Fprintf(deps.Stdout, "imported %d corrected cells of %d records from %s into %s; final_results.csv now holds %d reviewed answers\n",
		cells, len(rows), o.Sheet, dir.Corrections(), sum.Reviewed)
	if n := len(sum.StaleReviews); n > 0 {
		fmt.Fprintf(deps.Stdout, "%d corrections are stale (their record changed since the review) and were not applied\n", n)
	}
	return nil
}
