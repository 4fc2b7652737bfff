// Package review keeps a person's corrections of a run's answers: read from a filled review sheet
// (the one `coordinator sample` writes, or any CSV whose first column is the ID and whose
// columns are review_<field>), validated against the schema as a whole (one bad cell and nothing
// is imported), and stored in the run folder keyed by record ID and the content hash of the
// record the person saw. The merge applies them to final_results.csv (source review) while the
// record is unchanged; a correction whose record has changed since is stale and is not applied.
package review

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/trialcat/trialcat/internal/safefile"
	"github.com/trialcat/trialcat/internal/schema"
)

// Prefix starts a sheet's review columns.
const Prefix = "review_"

// Correction is one record's corrections.
type Correction struct {
	ID string `json:"id"`
	// SHA256 is the content hash of the record the person corrected (record.ContentHash).
	SHA256 string `json:"sha256"`
	// Values are the corrected cells by field, as the results files write them.
	Values     map[string]string `json:"values"`
	Sheet      string            `json:"sheet"`
	ImportedAt time.Time         `json:"imported_at"`
}

// File is a run's corrections.json.
type File struct {
	Corrections []Correction `json:"corrections"`
}

// Load reads the corrections at path by ID; a missing file holds none.
func Load(path string) (map[string]Correction, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]Correction{}, nil
	}
	if err != nil {
		return nil, err
	}
	var f File
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%s is damaged (%v); restore it from a backup, or move it away to drop the corrections", path, err)
	}
	out := make(map[string]Correction, len(f.Corrections))
	for _, c := range f.Corrections {
		out[c.ID] = c
	}
	return out, nil
}

// Save writes the corrections atomically, by ID.
func Save(path string, cs map[string]Correction) error {
	f := File{Corrections: make([]Correction, 0, len(cs))}
	for _, id := range slices.Sorted(maps.Keys(cs)) {
		f.Corrections = append(f.Corrections, cs[id])
	}
	return safefile.WriteJSON(path, f)
}

// Row is one sheet row's corrections.
type Row struct {
	Line   int
	ID     string
	Values map[string]string
}

// SheetError says which row and field of a sheet is wrong.
type SheetError struct {
	Sheet string
	Line  int
	Field string
	Msg   string
}

func (e *SheetError) Error() string {
	where := e.Sheet
	if e.Line > 0 {
		where += fmt.Sprintf(" line %d", e.Line)
	}
	if e.Field != "" {
		where += ", " + Prefix + e.Field
	}
	return where + ": " + e.Msg
}

// ReadSheet reads and checks every filled review cell of the sheet at path against sch. Its first
// column is the record ID; review_<field> columns hold corrections (review_notes and empty
// cells are not corrections). The first bad cell fails the whole sheet.
func ReadSheet(path string, sch *schema.Schema) ([]Row, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	header, err := r.Read()
	if err != nil {
		return nil, &SheetError{Sheet: path, Msg: fmt.Sprintf("no header row (%v)", err)}
	}
	cols := map[int]string{}
	for i, h := range header {
		name, ok := strings.CutPrefix(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")), Prefix)
		if !ok || name == "notes" || i == 0 {
			continue
		}
		if !slices.Contains(sch.Columns(), name) {
			return nil, &SheetError{Sheet: path, Line: 1, Field: name, Msg: fmt.Sprintf("the run's schema has no field %q (its fields: %s)", name, strings.Join(sch.Columns(), ", "))}
		}
		cols[i] = name
	}
	if len(cols) == 0 {
		return nil, &SheetError{Sheet: path, Line: 1, Msg: "no review_<field> column: fill in the sheet coordinator sample wrote, or name the columns review_<field>"}
	}
	var rows []Row
	seen := map[string]int{}
	for line := 2; ; line++ {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, &SheetError{Sheet: path, Line: line, Msg: err.Error()}
		}
		if len(rec) == 0 || strings.TrimSpace(rec[0]) == "" {
			continue
		}
		id := strings.TrimSpace(rec[0])
		row := Row{Line: line, ID: id, Values: map[string]string{}}
		for i, field := range cols {
			if i >= len(rec) || strings.TrimSpace(rec[i]) == "" {
				continue
			}
			v, err := sch.CheckCell(field, rec[i])
			if err != nil {
				return nil, &SheetError{Sheet: path, Line: line, Field: field, Msg: err.Error()}
			}
			row.Values[field] = v
		}
		if len(row.Values) == 0 {
			continue
		}
		if first, dup := seen[id]; dup {
			return nil, &SheetError{Sheet: path, Line: line, Msg: fmt.Sprintf("%s is corrected again (first on line %d): keep one row per record", id, first)}
		}
		seen[id] = line
		rows = append(rows, row)
	}
	return rows, nil
}
