package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/trialcat/trialcat/internal/batch"
	"github.com/trialcat/trialcat/internal/input"
	"github.com/trialcat/trialcat/internal/prompt"
	"github.com/trialcat/trialcat/internal/record"
	"github.com/trialcat/trialcat/internal/rundir"
)

// splitChunk is how many records are read, checked and written at a time: the split's memory is
// this many records, whatever the batch sizes.
const splitChunk = 256

// splitter writes batch files in one pass over the input. With a prompt template it first checks
// that every record of a chunk renders, so a batch file is only committed once every record in
// it can be asked. Each batch is ready (wait returns) as soon as its file is committed: a run's
// first worker starts while later batches are still being written.
type splitter struct {
	path   string
	inOpts input.Options
	tmpl   *prompt.Template // nil: nothing to check (the offline categorizer renders no prompt)
	dir    rundir.Dir
	// plan lists the batches to write, in input order; the run's other batches exist already.
	plan []batch.Range

	ready map[int]chan struct{} // closed when the batch's file is committed
	done  chan struct{}         // closed when the split ended; err is then set
	err   error
	// onDone, when set, is called once the split has ended without error.
	onDone func()
	// checked is how many of the input's first records checkFirst rendered already.
	checked int64
	// kept, when set, are the input's records as the input check kept them: the split takes
	// them from memory rather than reading the file again, and frees them (freeKept) when done.
	kept     []record.Record
	freeKept func()
}

func newSplitter(path string, inOpts input.Options, tmpl *prompt.Template, dir rundir.Dir, plan []batch.Range) *splitter {
	sp := &splitter{path: path, inOpts: inOpts, tmpl: tmpl, dir: dir, plan: plan, ready: map[int]chan struct{}{}, done: make(chan struct{})}
	for _, b := range plan {
		sp.ready[b.Number] = make(chan struct{})
	}
	return sp
}

// errSplit marks the error of a split that ended early (a record that cannot be asked, a file
// that cannot be written): the run stops with it.
var errSplit = errors.New("the split stopped")

// splitError is a split's failure; it unwraps to the cause (its exit code) and to errSplit.
type splitError struct{ err error }

func (e *splitError) Error() string   { return e.err.Error() }
func (e *splitError) Unwrap() []error { return []error{e.err, errSplit} }

// wait blocks until batch n is committed (nil), the split failed (its error) or ctx ended. A
// batch the split does not write is ready at once.
func (sp *splitter) wait(ctx context.Context, n int) error {
	if sp == nil {
		return nil
	}
	ch, ok := sp.ready[n]
	if !ok {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-sp.done:
		select {
		case <-ch:
			return nil
		default:
			return sp.err
		}
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// run writes the plan's batch files, then closes done. Its error is also in sp.err.
func (sp *splitter) run(ctx context.Context) error {
	err := sp.write(ctx)
	if err != nil {
		sp.err = &splitError{err}
	} else if sp.onDone != nil {
		sp.onDone()
	}
	close(sp.done)
	return sp.err
}

func (sp *splitter) write(ctx context.Context) error {
	if len(sp.plan) == 0 {
		return nil
	}
	next, closeInput, err := sp.records()
	if err != nil {
		return err
	}
	defer closeInput()
	plan := sp.plan
	var w *batch.Writer
	defer func() {
		if w != nil {
			w.Abort()
		}
	}()
	var written int64 // records in w
	// pos is the place of the next record read among the run's records (a record dropped by
	// --dedupe has none), the numbering of the batch plan.
	var pos int64
	chunk := make([]record.Record, 0, splitChunk)
	places := make([]int64, 0, splitChunk)
	for eof := false; !eof && len(plan) > 0; {
		if err := ctx.Err(); err != nil {
			return context.Cause(ctx)
		}
		chunk, places = chunk[:0], places[:0]
		for len(chunk) < splitChunk {
			rec, err := next()
			if errors.Is(err, io.EOF) {
				eof = true
				break
			}
			if err != nil {
				return err
			}
			// Records before the next batch to write belong to batches that exist already.
			if pos >= plan[0].First {
				chunk, places = append(chunk, rec), append(places, pos)
			}
			pos++
		}
		// The first chunk was rendered before anything was written (checkFirst).
		if len(places) > 0 && places[len(places)-1] >= sp.checked {
			if err := checkRendered(ctx, sp.tmpl, chunk); err != nil {
				return err
			}
		}
		for k, rec := range chunk {
			if len(plan) == 0 {
				break
			}
			b := plan[0]
			if at := places[k]; at < b.First || at >= b.First+b.Count {
				continue // between two batches of the plan
			}
			if w == nil {
				if w, err = batch.Create(sp.dir.Batch(b.Number)); err != nil {
					return err
				}
				written = 0
			}
			if err := w.Add(rec.ID, rec.Data); err != nil {
				return err
			}
			if written++; written == b.Count {
				err := w.Commit()
				w = nil
				if err != nil {
					return err
				}
				close(sp.ready[b.Number])
				plan = plan[1:]
			}
		}
	}
	if len(plan) > 0 {
		return fmt.Errorf("%s ended before record %d of batch %d: the input changed since it was checked; rerun the same command", sp.path, plan[0].First+written, plan[0].Number)
	}
	return nil
}

// records is the input's records in order: the kept ones, or the file read again.
func (sp *splitter) records() (next func() (record.Record, error), closeInput func(), err error) {
	if sp.kept != nil {
		kept := sp.kept
		return func() (record.Record, error) {
				if len(kept) == 0 {
					return record.Record{}, io.EOF
				}
				rec := kept[0]
				kept = kept[1:]
				return rec, nil
			}, func() {
				// The memory goes with the split: nothing it wrote or rendered points into it.
				sp.kept = nil
				if sp.freeKept != nil {
					sp.freeKept()
				}
			}, nil
	}
	r, err := input.Open(sp.path, sp.inOpts)
	if err != nil {
		return nil, nil, err
	}
	return r.Next, func() { r.Close() }, nil
}

// checkFirst renders the first chunk of the input's records (kept ones, when the input check
// kept them) before anything is written: a template that fails on every record is refused while
// the folder is untouched.
func checkFirst(ctx context.Context, path string, inOpts input.Options, tmpl *prompt.Template, kept []record.Record) error {
	if tmpl == nil {
		return nil
	}
	if kept != nil {
		return checkRendered(ctx, tmpl, kept[:min(len(kept), splitChunk)])
	}
	r, err := input.Open(path, inOpts)
	if err != nil {
		return err
	}
	defer r.Close()
	chunk := make([]record.Record, 0, splitChunk)
	for len(chunk) < splitChunk {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		chunk = append(chunk, rec)
	}
	return checkRendered(ctx, tmpl, chunk)
}

// checkRendered renders every record of chunk on every core and returns the error of the first
// one, in input order, that cannot be rendered (nil without a template).
func checkRendered(ctx context.Context, tmpl *prompt.Template, chunk []record.Record) error {
	if tmpl == nil || len(chunk) == 0 {
		return nil
	}
	errs := make([]error, len(chunk))
	g, _ := errgroup.WithContext(ctx)
	var next sync.Mutex
	i := 0
	for range runtime.GOMAXPROCS(0) {
		g.Go(func() error {
			for {
				next.Lock()
				k := i
				i++
				next.Unlock()
				if k >= len(chunk) {
					return nil
				}
				_, errs[k] = tmpl.Render(chunk[k])
			}
		})
	}
	_ = g.Wait()
	for k, err := range errs {
		if err != nil {
			return usagef("--prompt: %w (record %d); fix the template or the record", err, chunk[k].Index)
		}
	}
	return nil
}
