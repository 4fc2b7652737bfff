// Package quality answers "are the labels right?" from the files: Compare measures how far two
// sets of labels of the same records agree (two runs, a run and a person, a run and the
// registry's own fields), and Sample draws a review sheet for a person to fill in.
package quality

import (
	"cmp"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/trialcat/trialcat/internal/exitcode"

	"github.com/trialcat/trialcat/internal/batch"
	"github.com/trialcat/trialcat/internal/compare"
	"github.com/trialcat/trialcat/internal/input"
	"github.com/trialcat/trialcat/internal/offline"
	"github.com/trialcat/trialcat/internal/record"
	"github.com/trialcat/trialcat/internal/results"
	"github.com/trialcat/trialcat/internal/rundir"
	"github.com/trialcat/trialcat/internal/runspec"
	"github.com/trialcat/trialcat/internal/safefile"
	"github.com/trialcat/trialcat/internal/schema"
)

// CompareOptions are the arguments of `coordinator compare`.
type CompareOptions struct {
	// A and B are run folders or CSV files (final_results.csv of a run, a person's labels, a
	// review sheet). With AgainstRegistry, B is unused and Input gives the records.
	A, B            string
	AgainstRegistry bool
	Input           string
	JSON            bool
	// Out, when set, is where compare.html and disagreements.csv are written.
	Out  string
	Seed uint64
	// Target is the accuracy the reliability table's threshold must reach (0: 0.95).
	Target float64
}

// Compare prints how far two sets of labels of the same records agree (see package compare).
func Compare(ctx context.Context, opts CompareOptions, deps Deps) error {
	deps.defaults()
	if opts.A == "" || (opts.B == "" && !opts.AgainstRegistry) {
		return usagef("compare needs two sides: coordinator compare A B (run folders or CSV files), or coordinator compare A --against-registry --input FILE")
	}
	a, spec, err := loadLabels(opts.A, nil)
	if err != nil {
		return err
	}
	var b *compare.Labels
	var specB *runspec.Spec
	if opts.AgainstRegistry {
		if opts.B != "" {
			return usagef("--against-registry compares A with the registry's own fields: give A only")
		}
		if opts.Input == "" {
			return usagef("--against-registry reads the registry's fields from the records: give --input FILE (the run's input)")
		}
		idField := ""
		if spec != nil {
			idField = spec.IDField
		}
		if b, err = registryLabels(ctx, opts.Input, idField, a.IDColumn); err != nil {
			return err
		}
	} else if b, specB, err = loadLabels(opts.B, a.Fields); err != nil {
		return err
	}
	rep, err := compare.Compare(a, b, max(opts.Seed, 1))
	if err != nil {
		return usagef("%w", err)
	}
	if conf := confidences(opts.A); len(conf) > 0 {
		rep.Reliability = compare.Calibrate(a, b, conf, cmp.Or(opts.Target, 0.95))
	}
	if spec == nil {
		spec = specB
	}
	if spec != nil {
		if sch, err := schema.Parse(spec.Schema, spec.SchemaSource); err == nil {
			rep.Notes = append(rep.Notes, outsideSchema(sch, rep.Order, map[string]*compare.Labels{"A": a, "B": b})...)
		}
	}
	if opts.JSON {
		if err := rep.JSON(deps.Stdout); err != nil {
			return err
		}
	} else {
		rep.Print(deps.Stdout, true)
	}
	if opts.Out != "" {
		if err := os.MkdirAll(opts.Out, 0o755); err != nil {
			return fmt.Errorf("compare --out: %w", err)
		}
		page, dis := filepath.Join(opts.Out, "compare.html"), filepath.Join(opts.Out, "disagreements.csv")
		if err := safefile.Write(page, 0o644, rep.HTML); err != nil {
			return fmt.Errorf("write %s: %w", page, err)
		}
		if err := safefile.Write(dis, 0o644, rep.WriteDisagreements); err != nil {
			return fmt.Errorf("write %s: %w", dis, err)
		}
		if !opts.JSON {
			fmt.Fprintf(deps.Stdout, "\nwrote %s and %s (%d disagreements)\n", page, dis, len(rep.Disagreements))
		}
	}
	return nil
}

// confidences are the <field>_confidence cells (--votes) of the results at path (a run folder
// or a results CSV), by ID and field; none when it has no such columns.
func confidences(path string) map[string]map[string]float64 {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = rundir.New(path).FinalResults()
	}
	out := map[string]map[string]float64{}
	_, err := results.ReadFile(path, func(l results.Layout, row results.Row) error {
		if c := l.Confidences(row); c != nil {
			out[row.ID] = c
		}
		return nil
	})
	if err != nil {
		return nil
	}
	return out
}

// leastConfident are the n IDs whose least confident field is least confident, in that order
// (ties in the run's order).
func leastConfident(order []string, conf map[string]map[string]float64, n int) []string {
	low := func(id string) float64 {
		m := 2.0
		for _, c := range conf[id] {
			m = min(m, c)
		}
		return m
	}
	ids := slices.Clone(order)
	slices.SortStableFunc(ids, func(a, b string) int { return cmp.Compare(low(a), low(b)) })
	return ids[:min(n, len(ids))]
}

// loadLabels reads one side: a run folder's final_results.csv with its schema's enum columns,
// or a CSV file (fields, when given, are the other side's: compared if present).
func loadLabels(path string, fields []string) (*compare.Labels, *runspec.Spec, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, nil, usagef("%s: %w", path, err)
	}
	if !st.IsDir() {
		l, err := compare.ReadCSV(path, fields)
		if err != nil {
			return nil, nil, usagef("%w", err)
		}
		return l, nil, nil
	}
	dir := rundir.New(path)
	spec, sch, err := runspec.LoadRun(dir.Run())
	if err != nil {
		return nil, nil, err
	}
	if _, err := os.Stat(dir.FinalResults()); err != nil {
		return nil, nil, usagef("%s has no final_results.csv yet: finish or merge the run first (coordinator merge --out %s)", path, path)
	}
	l, err := compare.ReadCSV(dir.FinalResults(), sch.Categories())
	if err != nil {
		return nil, nil, usagef("%w", err)
	}
	l.Source = path
	return l, spec, nil
}

// registryLabels are the answers the registry states itself for every record of path.
func registryLabels(ctx context.Context, path, idField, idColumn string) (*compare.Labels, error) {
	r, err := input.Open(path, input.Options{IDField: idField})
	if err != nil {
		return nil, err
	}
	defer r.Close()
	l := &compare.Labels{Source: "the registry's own fields in " + path, IDColumn: idColumn,
		Fields: offline.RegistryFields, Values: map[string]map[string]string{}, Rationale: map[string]string{}}
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rec, err := r.Next()
		if err == io.EOF {
			return l, nil
		}
		if err != nil {
			return nil, err
		}
		vals, err := offline.FromRegistry(rec.Data)
		if err != nil {
			return nil, fmt.Errorf("record %s: %w", rec.ID, err)
		}
		if _, dup := l.Values[rec.ID]; !dup {
			l.Order = append(l.Order, rec.ID)
		}
		l.Values[rec.ID] = vals
		l.Rationale[rec.ID] = "registry"
	}
}

// SampleOptions are the flags of `coordinator sample`.
type SampleOptions struct {
	Out  string
	N    int
	Seed uint64
	// By, when set, stratifies the sample by this field's answers.
	By string
	// ByConfidence fills the sheet with the least confident records first (a --votes run's
	// lowest <field>_confidence of each record).
	ByConfidence bool
	// Replace lets a new sheet take the place of one a reviewer has begun to fill in; the old
	// one moves to OUT/previous-<time>/. Without it such a sheet is never touched.
	Replace bool
	// Now is the clock of the previous-<time> folder; nil means time.Now.
	Now func() time.Time
}

// Sample writes DIR/review_sample.csv: N answered records (stratified by a field if asked) with
// their answers, rationale and the record fields a reviewer needs, and an empty review_<field>
// column per category for the reviewer. `coordinator compare DIR DIR/review_sample.csv` reads
// the filled sheet back.
func Sample(ctx context.Context, opts SampleOptions, deps Deps) error {
	deps.defaults()
	if opts.N < 1 {
		return usagef("--n %d: want at least 1 record", opts.N)
	}
	dir := rundir.New(opts.Out)
	spec, sch, err := runspec.LoadRun(dir.Run())
	if err != nil {
		return err
	}
	fields := sch.Categories()
	if opts.By != "" && !slices.Contains(fields, opts.By) {
		return usagef("--by %s: not a category column of this run (its are %v)", opts.By, fields)
	}
	if _, err := os.Stat(dir.FinalResults()); err != nil {
		return usagef("%s has no final_results.csv yet: finish or merge the run first (coordinator merge --out %s)", opts.Out, opts.Out)
	}
	l, err := compare.ReadCSV(dir.FinalResults(), fields)
	if err != nil {
		return usagef("%w", err)
	}
	if opts.ByConfidence && opts.By != "" {
		return usagef("--by and --by-confidence choose the sample two ways: give one")
	}
	var picked []string
	if opts.ByConfidence {
		conf := confidences(opts.Out)
		if len(conf) == 0 {
			return usagef("--by-confidence needs a run with confidences: run it with --votes 3 (or more)")
		}
		picked = leastConfident(l.Order, conf, opts.N)
	} else {
		picked = pick(l, opts.N, opts.By, max(opts.Seed, 1))
	}
	want := map[string]bool{}
	for _, id := range picked {
		want[id] = true
	}
	facts := map[string]map[string]string{}
	for _, b := range spec.Batches {
		if err := batch.Read(dir.Batch(b.Number), spec.IDField, func(rec record.Record) error {
			if want[rec.ID] {
				facts[rec.ID] = offline.Facts(rec.Data)
			}
			return ctx.Err()
		}); err != nil {
			return err
		}
	}
	factCols := []string{"title", "conditions", "interventions", "study_type", "primary_purpose", "std_ages"}
	path := dir.ReviewSample()
	if err := keepReviewersWork(dir, opts); err != nil {
		return err
	}
	err = safefile.Write(path, 0o644, func(w io.Writer) error {
		cw := csv.NewWriter(w)
		header := append([]string{l.IDColumn}, factCols...)
		header = append(header, fields...)
		header = append(header, compare.RationaleColumn)
		for _, f := range fields {
			header = append(header, compare.ReviewPrefix+f)
		}
		header = append(header, compare.ReviewPrefix+"notes")
		if err := cw.Write(header); err != nil {
			return err
		}
		for _, id := range picked {
			row := []string{results.SafeCell(id)}
			for _, c := range factCols {
				row = append(row, results.SafeCell(facts[id][c]))
			}
			for _, f := range fields {
				row = append(row, results.SafeCell(l.Values[id][f]))
			}
			row = append(row, results.SafeCell(l.Rationale[id]))
			for range fields {
				row = append(row, "")
			}
			row = append(row, "")
			if err := cw.Write(row); err != nil {
				return err
			}
		}
		cw.Flush()
		return cw.Error()
	})
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	fmt.Fprintf(deps.Stdout, "wrote %s: %d records%s for review.\nfill the review_ columns (leave a cell empty to skip it), then:\n  coordinator compare %s %s\n",
		path, len(picked), map[bool]string{true: ", the least confident first", false: byText(opts.By)}[opts.ByConfidence], opts.Out, path)
	return nil
}

func byText(by string) string {
	if by == "" {
		return ""
	}
	return ", stratified by " + by
}

// pick draws n IDs at random (repeatably), stratified by field by when set: each label gets a
// share of n proportional to its count, at least one while n allows, in the run's order.
func pick(l *compare.Labels, n int, by string, seed uint64) []string {
	rng := rand.New(rand.NewPCG(seed, 0x73616d70))
	n = min(n, len(l.Order))
	groups := map[string][]string{}
	var keys []string
	for _, id := range l.Order {
		k := ""
		if by != "" {
			k = l.Values[id][by]
		}
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], id)
	}
	sort.Strings(keys)
	quota := map[string]int{}
	left := n
	for _, k := range keys { // one each first, while n allows
		if left > 0 && by != "" {
			quota[k], left = 1, left-1
		}
	}
	total := len(l.Order)
	for _, k := range keys { // the rest in proportion
		extra := left * len(groups[k]) / total
		quota[k] += extra
	}
	assigned := 0
	for _, k := range keys {
		quota[k] = min(quota[k], len(groups[k]))
		assigned += quota[k]
	}
	for _, k := range keys { // rounding leftovers to the largest groups with room
		for assigned < n && quota[k] < len(groups[k]) {
			quota[k]++
			assigned++
		}
	}
	chosen := map[string]bool{}
	for _, k := range keys {
		g := groups[k]
		for _, i := range rng.Perm(len(g))[:quota[k]] {
			chosen[g[i]] = true
		}
	}
	var out []string
	for _, id := range l.Order {
		if chosen[id] {
			out = append(out, id)
		}
	}
	return out
}

// Deps are where the commands write.
type Deps struct {
	Stdout io.Writer // the report; nil discards it
}

func (d *Deps) defaults() {
	if d.Stdout == nil {
		d.Stdout = io.Discard
	}
}

func usagef(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, exitcode.ErrUsage)...)
}

// keepReviewersWork makes sure a new sheet loses no one's work: a sheet with any review_ cell
// filled in (or one that cannot be read as a sheet) is refused, unless opts.Replace, which moves
// it to OUT/previous-<time>/ first. An untouched sheet is simply replaced.
func keepReviewersWork(dir rundir.Dir, opts SampleOptions) error {
	path := dir.ReviewSample()
	filled, err := reviewedCells(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err == nil && filled == 0 {
		return nil
	}
	what := fmt.Sprintf("holds a reviewer's work (%d review_ cells filled in)", filled)
	if err != nil {
		what = fmt.Sprintf("cannot be read as a review sheet (%v)", err)
	}
	if !opts.Replace {
		return usagef("%s %s: it is left as it is; compare it first (coordinator compare %s %s), then move it aside, or add --replace to move it to %s/previous-<time>/ and write a new one",
			path, what, opts.Out, path, opts.Out)
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	prev := dir.Previous(now())
	if err := os.MkdirAll(prev, 0o755); err != nil {
		return fmt.Errorf("keep the old review sheet: %w", err)
	}
	if err := os.Rename(path, filepath.Join(prev, filepath.Base(path))); err != nil {
		return fmt.Errorf("keep the old review sheet: %w", err)
	}
	return nil
}

// reviewedCells counts the non-empty review_ cells of the sheet at path.
func reviewedCells(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	header, err := r.Read()
	if err != nil {
		return 0, err
	}
	var cols []int
	for i, h := range header {
		if strings.HasPrefix(h, compare.ReviewPrefix) {
			cols = append(cols, i)
		}
	}
	if len(cols) == 0 {
		return 0, fmt.Errorf("no %s columns", compare.ReviewPrefix)
	}
	n := 0
	for {
		row, err := r.Read()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		for _, c := range cols {
			if c < len(row) && strings.TrimSpace(row[c]) != "" {
				n++
			}
		}
	}
}

// outsideSchema notes, per side and field, the labels that are not values of the run's schema
// (a reviewer's typo, a model's invented category): they are compared as they are, and said.
func outsideSchema(sch *schema.Schema, fields []string, sides map[string]*compare.Labels) []string {
	allowed := map[string]map[string]bool{}
	for _, p := range sch.Properties {
		if len(p.Enum) > 0 {
			allowed[p.Name] = map[string]bool{}
			for _, v := range p.Enum {
				allowed[p.Name][v] = true
			}
		}
	}
	var notes []string
	for _, side := range []string{"A", "B"} {
		l := sides[side]
		for _, f := range fields {
			ok := allowed[f]
			if ok == nil {
				continue
			}
			n, example := 0, ""
			for _, id := range l.Order {
				if v := l.Values[id][f]; v != "" && !ok[v] {
					if n++; example == "" {
						example = v
					}
				}
			}
			if n > 0 {
				notes = append(notes, fmt.Sprintf("%s: %d labels of %s are not values of the run's schema (such as %q)", side, n, f, compare.Shown(example)))
			}
		}
	}
	return notes
}
