package quality

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/trialcat/trialcat/internal/batch"
	"github.com/trialcat/trialcat/internal/results"
	"github.com/trialcat/trialcat/internal/rundir"
	"github.com/trialcat/trialcat/internal/runspec"
	"github.com/trialcat/trialcat/internal/safefile"
)

// DriftOptions are `coordinator drift BEFORE AFTER`'s.
type DriftOptions struct {
	Before, After string
	JSON          bool
	// HTML, when set, is a file to write the report to as a page.
	HTML string
}

// DriftReport is how labels moved between two runs of the same kind of records.
type DriftReport struct {
	Before, After string
	// Records counts: in After only (new), in Before only (removed), in both with other
	// content (changed) or the same (unchanged).
	New, Removed, Changed, Unchanged int64
	// Unanswered counts records of both runs that one of them did not answer.
	Unanswered int64
	Fields     []FieldDrift
}

// FieldDrift is one field's movement, apart for unchanged and changed records.
type FieldDrift struct {
	Field string
	// Unchanged and Changed are the records compared (answered in both runs); their Moved
	// counts those whose label differs.
	Unchanged, UnchangedMoved int64
	Changed, ChangedMoved     int64
	// Moves are the label pairs that moved, most frequent first (at most 10 of each kind).
	UnchangedMoves, ChangedMoves []Move
}

// Move is a label pair and how many records went from one to the other.
type Move struct {
	From, To string
	Records  int64
}

// runRecords are a run's records: content hashes and answers by ID.
type runRecords struct {
	spec    *runspec.Spec
	columns []string
	// categories are the schema's enum fields: drift compares those (free text always moves).
	categories []string
	hash       map[string]string
	values     map[string][]string
}

func loadRunRecords(ctx context.Context, dir string) (*runRecords, error) {
	d := rundir.New(dir)
	spec, sch, err := runspec.LoadRun(d.Run())
	if err != nil {
		return nil, err
	}
	paths := make([]string, 0, len(spec.Batches))
	for _, b := range spec.Batches {
		paths = append(paths, d.Batch(b.Number))
	}
	hash, err := batch.ContentHashes(ctx, paths, spec.IDField)
	if err != nil {
		return nil, fmt.Errorf("%s: read its batch files: %w", dir, err)
	}
	r := &runRecords{spec: spec, columns: sch.Columns(), categories: sch.Categories(), hash: hash, values: map[string][]string{}}
	if _, err := results.ReadFile(d.FinalResults(), func(_ results.Layout, row results.Row) error {
		r.values[row.ID] = slices.Clone(row.Values)
		return nil
	}); err != nil {
		if os.IsNotExist(err) {
			return nil, usagef("%s has no final_results.csv: finish or merge the run first (coordinator merge --out %s)", dir, dir)
		}
		return nil, err
	}
	return r, nil
}

// Drift compares two runs record by record.
func Drift(ctx context.Context, o DriftOptions, deps Deps) error {
	deps.defaults()
	if o.Before == "" || o.After == "" {
		return usagef("coordinator drift takes two run folders: the earlier run and the later one")
	}
	a, err := loadRunRecords(ctx, o.Before)
	if err != nil {
		return err
	}
	b, err := loadRunRecords(ctx, o.After)
	if err != nil {
		return err
	}
	rep := drift(a, b)
	rep.Before, rep.After = o.Before, o.After
	if o.HTML != "" {
		if err := safefile.Write(o.HTML, 0o644, func(w io.Writer) error { return driftPage.Execute(w, rep) }); err != nil {
			return fmt.Errorf("write %s: %w", o.HTML, err)
		}
	}
	if o.JSON {
		enc := json.NewEncoder(deps.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	rep.text(deps.Stdout)
	return nil
}

func drift(a, b *runRecords) DriftReport {
	var rep DriftReport
	common := []string{}
	for _, c := range b.categories {
		if slices.Contains(a.columns, c) {
			common = append(common, c)
		}
	}
	idx := func(cols []string, c string) int { return slices.Index(cols, c) }
	type moves map[[2]string]int64
	fd := make([]FieldDrift, len(common))
	um, cm := make([]moves, len(common)), make([]moves, len(common))
	for i, c := range common {
		fd[i].Field, um[i], cm[i] = c, moves{}, moves{}
	}
	for id, hb := range b.hash {
		ha, ok := a.hash[id]
		if !ok {
			rep.New++
			continue
		}
		same := ha == hb
		if same {
			rep.Unchanged++
		} else {
			rep.Changed++
		}
		va, okA := a.values[id]
		vb, okB := b.values[id]
		if !okA || !okB {
			rep.Unanswered++
			continue
		}
		for i, c := range common {
			x, y := va[idx(a.columns, c)], vb[idx(b.columns, c)]
			if same {
				fd[i].Unchanged++
			} else {
				fd[i].Changed++
			}
			if x == y {
				continue
			}
			if same {
				fd[i].UnchangedMoved++
				um[i][[2]string{x, y}]++
			} else {
				fd[i].ChangedMoved++
				cm[i][[2]string{x, y}]++
			}
		}
	}
	for id := range a.hash {
		if _, ok := b.hash[id]; !ok {
			rep.Removed++
		}
	}
	top := func(m moves) []Move {
		out := make([]Move, 0, len(m))
		for k, n := range m {
			out = append(out, Move{From: k[0], To: k[1], Records: n})
		}
		slices.SortFunc(out, func(x, y Move) int {
			return cmp.Or(cmp.Compare(y.Records, x.Records), cmp.Compare(x.From, y.From), cmp.Compare(x.To, y.To))
		})
		return out[:min(len(out), 10)]
	}
	for i := range fd {
		fd[i].UnchangedMoves, fd[i].ChangedMoves = top(um[i]), top(cm[i])
	}
	rep.Fields = fd
	return rep
}

func share(n, of int64) string {
	if of == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(n)/float64(of))
}

func (r DriftReport) text(w io.Writer) {
	fmt.Fprintf(w, "drift from %s to %s\n", r.Before, r.After)
	fmt.Fprintf(w, "records: %d new, %d removed, %d changed, %d unchanged", r.New, r.Removed, r.Changed, r.Unchanged)
	if r.Unanswered > 0 {
		fmt.Fprintf(w, "; %d not answered in one of the runs (not compared)", r.Unanswered)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "\n%-28s %-28s %s\n", "field", "unchanged records moved", "changed records moved")
	for _, f := range r.Fields {
		fmt.Fprintf(w, "%-28s %-28s %s\n", f.Field, fmt.Sprintf("%d of %d (%s)", f.UnchangedMoved, f.Unchanged, share(f.UnchangedMoved, f.Unchanged)),
			fmt.Sprintf("%d of %d (%s)", f.ChangedMoved, f.Changed, share(f.ChangedMoved, f.Changed)))
	}
	var moved []string
	for _, f := range r.Fields {
		for _, m := range f.UnchangedMoves {
			moved = append(moved, fmt.Sprintf("  %s: %s -> %s (%d)", f.Field, shown(m.From), shown(m.To), m.Records))
		}
	}
	if len(moved) > 0 {
		fmt.Fprintln(w, "\nlabels that moved on records whose content did not change (the model or the settings drifting, not the registry):")
		fmt.Fprintln(w, strings.Join(moved, "\n"))
	} else if r.Unchanged > 0 {
		fmt.Fprintln(w, "\nno label moved on a record whose content did not change")
	}
}

// shown is a label for a terminal line: escaped, at most 40 runes.
func shown(s string) string {
	q := fmt.Sprintf("%q", s)
	if r := []rune(q); len(r) > 42 {
		return string(r[:40]) + "…\""
	}
	return q
}

var driftPage = template.Must(template.New("drift").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Drift: {{.Before}} to {{.After}}</title>
<style>body{font:14px system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}th{background:#f4f4f4}.n{text-align:right}</style></head>
<body><h1>Drift from {{.Before}} to {{.After}}</h1>
<p>{{.New}} new, {{.Removed}} removed, {{.Changed}} changed and {{.Unchanged}} unchanged records{{if .Unanswered}}; {{.Unanswered}} not answered in one of the runs{{end}}.
A label that moves on an unchanged record is the model or the settings drifting, not the registry.</p>
<table><tr><th>field</th><th>unchanged records moved</th><th>changed records moved</th></tr>
{{range .Fields}}<tr><td>{{.Field}}</td><td class="n">{{.UnchangedMoved}} of {{.Unchanged}}</td><td class="n">{{.ChangedMoved}} of {{.Changed}}</td></tr>
{{end}}</table>
{{range .Fields}}{{if or .UnchangedMoves .ChangedMoves}}<h2>{{.Field}}</h2><table><tr><th>records</th><th>from</th><th>to</th><th>count</th></tr>
{{range .UnchangedMoves}}<tr><td>unchanged</td><td>{{.From}}</td><td>{{.To}}</td><td class="n">{{.Records}}</td></tr>
{{end}}{{range .ChangedMoves}}<tr><td>changed</td><td>{{.From}}</td><td>{{.To}}</td><td class="n">{{.Records}}</td></tr>
{{end}}</table>{{end}}{{end}}
</body></html>
`))
