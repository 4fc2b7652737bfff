package compare

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/trialcat/trialcat/internal/results"
)

// Labels are one side of a comparison: a label per record and category column.
type Labels struct {
	// Source names where they came from (a run folder, a CSV file, the registry).
	Source   string
	IDColumn string
	// Fields are the category columns, in the source's order.
	Fields []string
	// Values maps an ID to its labels by field ("" where the source gives none).
	Values map[string]map[string]string
	// Rationale holds each ID's rationale, when the source has one.
	Rationale map[string]string
	// Order is the IDs in the source's order.
	Order []string
	// Header is the source's columns; Ragged counts its rows with more or fewer cells than
	// the header (their missing cells are unlabelled), RaggedLines the first of them.
	Header      []string
	Ragged      int
	RaggedLines []int
}

// ReviewPrefix starts the columns of a review sheet a reviewer fills in: review_<field>.
const ReviewPrefix = "review_"

// RationaleColumn is the free-text column of the default schema, never compared.
const RationaleColumn = "rationale"

// ReadCSV reads labels from a CSV file with a header: the first column is the ID; category
// columns are those of fields when given, else every column that is not the ID, a results
// file's bookkeeping column or the rationale. A review sheet (columns review_<field>) gives the
// reviewer's labels: the review_ columns, with empty cells (not reviewed yet) left out.
func ReadCSV(path string, fields []string) (*Labels, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("%s: no header row: %w", path, err)
	}
	l := &Labels{Source: path, IDColumn: header[0], Values: map[string]map[string]string{}, Rationale: map[string]string{}, Header: header}
	col := map[string]int{}
	review := false
	for i, h := range header {
		col[h] = i
		review = review || strings.HasPrefix(h, ReviewPrefix)
	}
	skip := map[string]bool{header[0]: true, RationaleColumn: true}
	for _, b := range results.Bookkeeping() {
		skip[b] = true
	}
	src := map[string]int{} // field → the column its labels come from
	switch {
	case review:
		for _, h := range header {
			if name, ok := strings.CutPrefix(h, ReviewPrefix); ok && name != "notes" {
				l.Fields = append(l.Fields, name)
				src[name] = col[h]
			}
		}
	case len(fields) > 0:
		for _, name := range fields {
			if i, ok := col[name]; ok {
				l.Fields = append(l.Fields, name)
				src[name] = i
			}
		}
	default:
		for i, h := range header {
			if !skip[h] {
				l.Fields = append(l.Fields, h)
				src[h] = i
			}
		}
	}
	ratCol, hasRat := col[RationaleColumn]
	line := 1
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		line++
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %w", path, line, err)
		}
		if len(rec) == 0 || rec[0] == "" {
			continue
		}
		if len(rec) != len(header) {
			if l.Ragged++; len(l.RaggedLines) < 5 {
				l.RaggedLines = append(l.RaggedLines, line)
			}
		}
		id := unguard(rec[0])
		if _, dup := l.Values[id]; dup {
			return nil, fmt.Errorf("%s: ID %s is there twice (line %d); one label per record", path, id, line)
		}
		vals := map[string]string{}
		for _, name := range l.Fields {
			if i := src[name]; i < len(rec) {
				if v := strings.TrimSpace(rec[i]); v != "" {
					vals[name] = unguard(v)
				}
			}
		}
		if review && len(vals) == 0 {
			continue // not reviewed yet
		}
		l.Values[id] = vals
		l.Order = append(l.Order, id)
		if hasRat && ratCol < len(rec) {
			l.Rationale[id] = rec[ratCol]
		}
	}
	if review {
		// A field nobody reviewed is not compared.
		l.Fields = slices.DeleteFunc(l.Fields, func(name string) bool {
			for _, v := range l.Values {
				if v[name] != "" {
					return false
				}
			}
			return true
		})
	}
	return l, nil
}

// unguard undoes the spreadsheet-formula guard of the final files (a leading ' before =, +, -,
// @), so labels compare equal to the values the workers wrote.
func unguard(s string) string {
	if len(s) > 1 && s[0] == '\'' && strings.ContainsRune("=+-@\t\r", rune(s[1])) {
		return s[1:]
	}
	return s
}

// Report is a comparison of two sides.
type Report struct {
	A, B    string           `json:"-"`
	Fields  map[string]Field `json:"fields"`
	Order   []string         `json:"-"` // field names in order
	Common  int              `json:"common"`
	OnlyInA int              `json:"only_in_a"`
	OnlyInB int              `json:"only_in_b"`
	// Notes say what in the inputs the figures had to work around (ragged rows).
	Notes []string `json:"notes,omitempty"`
	// Disagreements are the records and fields whose labels differ, in A's order.
	Disagreements []Disagreement `json:"-"`
	// Reliability is A's calibration against B, when A's answers carry confidences (--votes).
	Reliability []Reliability `json:"reliability,omitempty"`
}

// Disagreement is one record's differing labels on one field.
type Disagreement struct {
	ID, Field, A, B        string
	RationaleA, RationaleB string
}

// Compare measures the agreement of b with a on the fields both have. Seed makes the kappa
// intervals repeatable.
func Compare(a, b *Labels, seed uint64) (*Report, error) {
	var fields []string
	for _, f := range a.Fields {
		if slices.Contains(b.Fields, f) {
			fields = append(fields, f)
		}
	}
	if len(fields) == 0 {
		return nil, fmt.Errorf("%s and %s have no category column in common: %s; %s", a.Source, b.Source, columnsOf(a), columnsOf(b))
	}
	rep := &Report{A: a.Source, B: b.Source, Fields: map[string]Field{}, Order: fields}
	for side, l := range map[string]*Labels{"A": a, "B": b} {
		if l.Ragged > 0 {
			rep.Notes = append(rep.Notes, fmt.Sprintf("%s (%s): %d rows have more or fewer cells than its header (lines %v): their missing cells count as unlabelled",
				side, l.Source, l.Ragged, l.RaggedLines))
		}
	}
	slices.Sort(rep.Notes)
	for _, id := range a.Order {
		if _, ok := b.Values[id]; ok {
			rep.Common++
		} else {
			rep.OnlyInA++
		}
	}
	for _, id := range b.Order {
		if _, ok := a.Values[id]; !ok {
			rep.OnlyInB++
		}
	}
	for i, name := range fields {
		var pairs []pair
		for _, id := range a.Order {
			bv, ok := b.Values[id]
			if !ok {
				continue
			}
			x, y := a.Values[id][name], bv[name]
			if x == "" || y == "" {
				continue // a side without a label for this field (a review left blank)
			}
			pairs = append(pairs, pair{x, y})
			if x != y {
				rep.Disagreements = append(rep.Disagreements, Disagreement{ID: id, Field: name, A: x, B: y,
					RationaleA: a.Rationale[id], RationaleB: b.Rationale[id]})
			}
		}
		f := measure(name, pairs, seed+uint64(i))
		rep.Fields[name] = f
	}
	return rep, nil
}

// WriteDisagreements writes the disagreements as CSV: id, field, both labels, both rationales.
func (r *Report) WriteDisagreements(w io.Writer) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"id", "field", "a", "b", "rationale_a", "rationale_b"})
	for _, d := range r.Disagreements {
		_ = cw.Write([]string{results.SafeCell(d.ID), d.Field, results.SafeCell(d.A), results.SafeCell(d.B),
			results.SafeCell(d.RationaleA), results.SafeCell(d.RationaleB)})
	}
	cw.Flush()
	return cw.Error()
}

// columnsOf says which category columns l has, or that it has none and what its header holds.
func columnsOf(l *Labels) string {
	if len(l.Fields) > 0 {
		return fmt.Sprintf("%s has %s", l.Source, strings.Join(l.Fields, ", "))
	}
	if len(l.Header) > 0 {
		return fmt.Sprintf("%s has no category column (its header: %s)", l.Source, strings.Join(l.Header, ", "))
	}
	return l.Source + " has no category column"
}
