package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/trialcat/trialcat/internal/batch"
	"github.com/trialcat/trialcat/internal/merge"
	"github.com/trialcat/trialcat/internal/modelinfo"
	"github.com/trialcat/trialcat/internal/results"
	"github.com/trialcat/trialcat/internal/review"
	"github.com/trialcat/trialcat/internal/rundir"
	"github.com/trialcat/trialcat/internal/runspec"
	"github.com/trialcat/trialcat/internal/schema"
)

// merger merges the run's batches into its final files, each as soon as it is done for this pass
// (merge.Running puts them in input order): at the end only the batches not merged yet are, and
// both files are put in place.
type merger struct {
	dir  rundir.Dir
	spec *runspec.Spec
	run  *merge.Running
	// merged holds the batches added to the merge; ready takes the batches done.
	merged map[int]bool
	// totals sums the rows as they are merged, for summary.json.
	totals *totals
	ready  chan int
	ended  chan struct{}
	err    error // an Add that failed: the running merge was dropped
}

func startMerge(dir rundir.Dir, spec *runspec.Spec, sch *schema.Schema) (*merger, error) {
	m := &merger{dir: dir, spec: spec, merged: map[int]bool{}, totals: newTotals(spec.Layout(sch))}
	if n := len(spec.Cascade); n > 0 {
		prices, strong := modelinfo.Prices().With(spec.Prices), spec.Cascade[n-1]
		m.totals.strongPrice = func(in, cached, out int64) (float64, bool) { return prices.Cost(strong, in, cached, out) }
	}
	plan := make([]merge.Batch, 0, len(spec.Batches))
	for _, b := range spec.Batches {
		plan = append(plan, m.input(b))
	}
	rewrite, err := m.corrections(sch)
	if err != nil {
		return nil, err
	}
	r, err := merge.Start(merge.Options{Batches: plan, Layout: spec.Layout(sch), OutPath: dir.FinalResults(),
		FailuresPath: dir.FinalFailures(), MarkerPath: dir.Merging(), OnResult: m.totals.result, OnFailure: m.totals.failure,
		Rewrite: rewrite})
	if err != nil {
		return nil, err
	}
	m.run = r
	return m, nil
}

// batch is the plan's batch n.
func (m *merger) batch(n int) (batch.Range, bool) {
	for _, b := range m.spec.Batches {
		if b.Number == n {
			return b, true
		}
	}
	return batch.Range{}, false
}

// input is batch b as the merge reads it.
func (m *merger) input(b batch.Range) merge.Batch {
	f := m.dir.Worker(b.Number)
	return merge.Batch{Number: b.Number, ResultsPath: f.Results, FailuresPath: f.Failures,
		IDs: func(yield func(string) error) error { return batch.IDs(f.Batch, m.spec.IDField, yield) }}
}

// follow merges, from its own goroutine, the batches sent to batchDone until stop.
func (m *merger) follow(ctx context.Context) {
	m.ready = make(chan int, len(m.spec.Batches))
	m.ended = make(chan struct{})
	go func() {
		defer close(m.ended)
		for n := range m.ready {
			if m.err != nil || m.merged[n] {
				continue
			}
			b, ok := m.batch(n)
			if !ok {
				continue
			}
			m.merged[n] = true
			if err := m.run.Add(ctx, m.input(b)); err != nil {
				m.err = err
				m.run.Abort()
			}
		}
	}()
}

// batchDone says batch n will not run again in this pass. Safe on nil.
func (m *merger) batchDone(n int) {
	if m != nil && m.ready != nil {
		m.ready <- n
	}
}

// stop waits for the batches sent so far to be merged.
func (m *merger) stop() {
	if m != nil && m.ready != nil {
		close(m.ready)
		<-m.ended
		m.ready = nil
	}
}

// abort drops the merge; the existing final files stay as they were. Safe on nil.
func (m *merger) abort() {
	if m != nil {
		m.stop()
		m.run.Abort()
	}
}

// finish merges the batches not merged yet and puts the files in place. A batch whose file the
// split never wrote (it stopped, or was cut short) has none of its records done: they count as
// remaining, for the rerun, which writes the file.
func (m *merger) finish(ctx context.Context) (merge.Stats, error) {
	var unwritten []batch.Range
	for _, b := range m.spec.Batches {
		if m.merged[b.Number] {
			continue
		}
		m.merged[b.Number] = true
		in := m.input(b)
		f := m.dir.Worker(b.Number)
		if _, err := os.Stat(f.Batch); errors.Is(err, os.ErrNotExist) && progress(f) == 0 {
			unwritten = append(unwritten, b)
			in.IDs = func(func(string) error) error { return nil } // nothing to merge
		}
		if err := m.run.Add(ctx, in); err != nil {
			m.run.Abort()
			return m.run.Stats(), err
		}
	}
	stats, err := m.run.Finish()
	for _, b := range unwritten {
		stats.Records += b.Count
		stats.Missing += b.Count
	}
	return stats, err
}

// mergeAll finishes the run's running merge, or merges every batch again when there is none
// or it failed along the way.
func (s *scheduler) mergeAll(ctx context.Context, sch *schema.Schema) (merge.Stats, *totals, error) {
	m := s.merger
	m.stop()
	if m != nil && m.err == nil {
		stats, err := m.finish(ctx)
		return stats, m.totals, err
	}
	if m != nil {
		s.deps.Log.Warn("merging each batch as it ended failed; merging them all again now", "error", m.err)
	}
	return mergeRun(ctx, s.dir, s.spec, sch)
}

// corrections is the merge's rewrite of result rows by the run's corrections.json: a corrected
// record whose content is what the person saw gets their values and source review; one whose
// content changed since keeps the model's answer and is counted stale. nil without corrections.
func (m *merger) corrections(sch *schema.Schema) (func([]string) []string, error) {
	cs, err := review.Load(m.dir.Corrections())
	if err != nil || len(cs) == 0 {
		return nil, err
	}
	paths := make([]string, 0, len(m.spec.Batches))
	for _, b := range m.spec.Batches {
		paths = append(paths, m.dir.Batch(b.Number))
	}
	hashes, err := batch.ContentHashes(context.Background(), paths, m.spec.IDField)
	if err != nil {
		return nil, fmt.Errorf("apply %s: %w", m.dir.Corrections(), err)
	}
	layout := m.spec.Layout(sch)
	col := map[string]int{}
	for i, c := range layout.Header() {
		col[c] = i
	}
	t := m.totals
	return func(row []string) []string {
		c, ok := cs[results.RowID(row)]
		if !ok {
			return row
		}
		if hashes[c.ID] != c.SHA256 {
			t.staleReviews = append(t.staleReviews, c.ID)
			return row
		}
		out := slices.Clone(row)
		for field, v := range c.Values {
			if i, ok := col[field]; ok {
				out[i] = v
			}
		}
		out[col[results.ColSource]] = results.SourceReview
		t.reviewed++
		return out
	}, nil
}
