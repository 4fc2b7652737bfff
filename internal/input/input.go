package input

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/trialcat/trialcat/internal/record"
)

// Format is an input format, detected from the file's content.
type Format string

// Input formats.
const (
	FormatJSON  Format = "json"  // a JSON array of objects
	FormatJSONL Format = "jsonl" // JSON Lines: one object per line
	FormatCTGov Format = "ctgov" // a ClinicalTrials.gov API v2 page: {"studies": [...], ...}
	FormatCSV   Format = "csv"   // CSV with a header row
)

// Options say how records are identified.
type Options struct {
	// IDField is the dotted path of the ID ("a.b.0.c"); "" means record.DefaultIDFields.
	IDField string
	// Dedupe keeps the first record of each ID and drops later ones (Scan reports them) instead
	// of failing.
	Dedupe bool
	// Keep, when above 0, has Scan keep the records of an input file of at most Keep bytes
	// (Stats.Kept), so that a small input is not read and parsed a second time.
	Keep int64
}

// fields returns the ID fields to look for, in order.
func (o Options) fields() []string {
	if o.IDField == "" {
		return record.DefaultIDFields
	}
	return []string{o.IDField}
}

// check validates the options.
func (o Options) check(path string) error {
	if o.IDField != "" && strings.Contains("."+o.IDField+".", "..") {
		return &Error{Path: path, Index: -1, Msg: fmt.Sprintf("--id-field %q has an empty path segment", o.IDField),
			Hint: "write the path as names and array indexes joined by single dots, like protocolSection.identificationModule.nctId"}
	}
	return nil
}

// Duplicate is a record whose ID an earlier record already has.
type Duplicate struct {
	ID         string
	Index      int64 // 0-based position among all input records
	FirstIndex int64 // position of the first record with this ID
}

// Stats describe an input that Scan found valid.
type Stats struct {
	Format  Format
	Records int64       // records kept (after dropping duplicates)
	SHA256  string      // hex SHA-256 of the file's bytes
	Dropped []Duplicate // duplicates dropped, when Options.Dedupe
	// Kept are the records a Reader would return, in order (Index is their place), when
	// Options.Keep allowed the file's size; nil otherwise. Their bytes live outside the Go
	// heap until Free is called; nothing may read them after that.
	Kept []record.Record
	// Free releases the kept records' memory (a no-op when none were kept). Call it once.
	Free func()
}

// maxListed is how many duplicates an error lists.
const maxListed = 10

// Scan reads the whole input once, streaming, and validates every record: format, syntax,
// UTF-8, IDs and their uniqueness. Run it before anything is written, so bad input stops the
// run (exit 2) with nothing touched. It holds one record and the set of IDs in memory.
func Scan(ctx context.Context, path string, opts Options) (st Stats, err error) {
	f, format, err := open(path, opts)
	if err != nil {
		return Stats{}, err
	}
	defer f.Close()
	h := sha256.New()
	it, err := newIter(path, f, io.TeeReader(f, h), format, opts)
	if err != nil {
		return Stats{}, err
	}
	st = Stats{Format: format, Free: func() {}}
	var arena []byte // the kept records' bytes, one allocation for the whole input
	var frees []func()
	if fi, err := f.Stat(); err == nil && opts.Keep > 0 && fi.Size() <= opts.Keep {
		var free func()
		arena, free = newArena(int(fi.Size()))
		frees = append(frees, free)
		st.Kept = []record.Record{}
	}
	freeAll := func() {
		for _, f := range frees {
			f()
		}
		frees = nil
	}
	defer func() {
		if err != nil || st.Kept == nil {
			freeAll() // an error returns no records
		}
	}()
	seen := make(map[string]int64)
	var dups []Duplicate
	var nDups int64
	var firstDup raw
	for i := 0; ; i++ {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				if cause := context.Cause(ctx); cause != err {
					return Stats{}, fmt.Errorf("scan %s: %w: %w", path, err, cause)
				}
				return Stats{}, fmt.Errorf("scan %s: %w", path, err)
			}
		}
		r, index, err := it.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return Stats{}, err
		}
		first, dup := seen[r.id]
		if !dup {
			seen[r.id] = index
			if st.Kept != nil {
				if len(arena)+len(r.data) > cap(arena) { // compact JSON outgrew the file (a CSV)
					var free func()
					arena, free = newArena(max(2*cap(arena), len(r.data)))
					frees = append(frees, free)
				}
				at := len(arena)
				arena = append(arena, r.data...)
				st.Kept = append(st.Kept, record.Record{Index: st.Records, ID: r.id, Data: json.RawMessage(arena[at:len(arena):len(arena)])})
			}
			st.Records++
			continue
		}
		d := Duplicate{ID: r.id, Index: index, FirstIndex: first}
		if opts.Dedupe {
			st.Dropped = append(st.Dropped, d)
			continue
		}
		if nDups == 0 {
			firstDup = raw{off: r.off, line: r.line}
		}
		nDups++
		if len(dups) < maxListed {
			dups = append(dups, d)
		}
	}
	if nDups > 0 {
		return Stats{}, it.duplicates(firstDup, dups, nDups)
	}
	if _, err := io.Copy(h, f); err != nil {
		return Stats{}, fmt.Errorf("read %s: %w", path, err)
	}
	st.SHA256 = hex.EncodeToString(h.Sum(nil))
	if st.Kept != nil {
		st.Free = freeAll
	}
	return st, nil
}

// Reader streams the records of an input file.
type Reader struct {
	f      *os.File
	format Format
	it     *iter
	dedupe bool
	seen   map[string]struct{}
	kept   int64
	err    error
}

// Open opens an input file and detects its format. Read it with Next and Close it.
func Open(path string, opts Options) (*Reader, error) {
	f, format, err := open(path, opts)
	if err != nil {
		return nil, err
	}
	it, err := newIter(path, f, f, format, opts)
	if err != nil {
		f.Close()
		return nil, err
	}
	r := &Reader{f: f, format: format, it: it, dedupe: opts.Dedupe}
	if opts.Dedupe {
		r.seen = make(map[string]struct{})
	}
	return r, nil
}

// Format is the detected input format.
func (r *Reader) Format() Format { return r.format }

// Next returns the next record, or io.EOF after the last. With Options.Dedupe it skips records
// whose ID was seen before, as Scan does; Index counts the records returned. Errors are
// sticky.
func (r *Reader) Next() (record.Record, error) {
	if r.err != nil {
		return record.Record{}, r.err
	}
	for {
		rr, _, err := r.it.next()
		if err != nil {
			r.err = err
			return record.Record{}, err
		}
		if r.dedupe {
			if _, dup := r.seen[rr.id]; dup {
				continue
			}
			r.seen[rr.id] = struct{}{}
		}
		rec := record.Record{Index: r.kept, ID: rr.id, Data: json.RawMessage(bytes.Clone(rr.data))}
		r.kept++
		return rec, nil
	}
}

// Close closes the file.
func (r *Reader) Close() error {
	if r.err == nil {
		r.err = errors.New("input reader closed")
	}
	return r.f.Close()
}

// iter reads records from a source and checks that each has an ID.
type iter struct {
	loc    locator
	src    source
	format Format
	fields []string
	n      int64 // records read
}

// newIter reads the file r, positioned at its start, as format; a zip is read from f itself.
func newIter(path string, f *os.File, r io.Reader, format Format, opts Options) (*iter, error) {
	it := &iter{loc: locator{path}, format: format, fields: opts.fields()}
	if format == FormatZip {
		src, err := newZipSource(f, it.loc, it.fields)
		if err != nil {
			return nil, err
		}
		it.src = src
		return it, nil
	}
	br := bufio.NewReaderSize(r, readSize)
	var base int64
	if b, _ := br.Peek(3); string(b) == bomUTF8 {
		br.Discard(3)
		base = 3
	}
	if format == FormatCSV {
		src, err := newCSVSource(br, it.loc, opts.IDField)
		if err != nil {
			return nil, err
		}
		it.src = src
		return it, nil
	}
	it.src = newJSONSource(newParser(br, base, it.fields), it.loc, format)
	return it, nil
}

// next returns the next record and its index among all input records.
func (it *iter) next() (raw, int64, error) {
	r, err := it.src.next()
	if err == io.EOF && it.n == 0 {
		return raw{}, 0, it.noRecords()
	}
	if err != nil {
		return raw{}, 0, err
	}
	index := it.n
	it.n++
	if r.id == "" {
		return raw{}, 0, it.noID(r, index)
	}
	return r, index, nil
}

// at returns an *Error located at the record r.
func (it *iter) at(r raw, index int64, msg, hint string) *Error {
	if r.off >= 0 {
		return it.loc.at(r.off, index, msg, hint)
	}
	return &Error{Path: it.loc.path, Line: r.line, Index: index, Msg: msg, Hint: hint}
}

func (it *iter) noRecords() error {
	what := map[Format]string{
		FormatJSON:  "the JSON array is empty",
		FormatCTGov: `the "studies" list is empty`,
		FormatCSV:   "the CSV file has a header row but no data rows",
	}[it.format]
	if what == "" {
		what = "the file holds no objects"
	}
	return it.loc.errorf("the input must hold at least one record", "no records: %s", what)
}

// noID explains why the record r has no ID. It decodes the record, which only errors do.
func (it *iter) noID(r raw, index int64) error {
	where := "field"
	if it.format == FormatCSV {
		where = "column"
	}
	hint := "pass --id-field PATH to name the " + where + " that holds the ID"
	if len(it.fields) == 1 {
		hint = "check --id-field; every record needs an ID there"
	}
	m, err := record.Decode(r.data)
	if err != nil {
		return fmt.Errorf("decode record %d of %s: %w", index, it.loc.path, err)
	}
	var wrong []string
	for _, f := range it.fields {
		v, ok := record.Lookup(m, f)
		if !ok {
			continue
		}
		switch v := v.(type) {
		case string: // record.IDOf stops at the first string, however blank
			return it.at(r, index, fmt.Sprintf("empty ID: %s %s is %q", where, f, v),
				"every record needs a non-empty ID")
		case map[string]any:
			wrong = append(wrong, f+" is an object")
		case []any:
			wrong = append(wrong, f+" is an array")
		case bool:
			wrong = append(wrong, f+" is a boolean")
		case nil:
			wrong = append(wrong, f+" is null")
		}
	}
	msg := "no ID: looked for " + strings.Join(it.fields, ", ")
	if len(wrong) > 0 {
		msg += " (" + strings.Join(wrong, ", ") + "; an ID must be a string or a number)"
	}
	if src, ok := it.src.(*csvSource); ok {
		cols := src.header
		if len(cols) == 1 && index == 0 && strings.ContainsAny(cols[0], " \t") {
			// One "column" with spaces in its name: most likely not CSV at all, but text that
			// fell through to the CSV reader.
			head := cols[0]
			if len(head) > 60 {
				head = head[:60] + "..."
			}
			return it.at(r, index, fmt.Sprintf("the file is neither JSON (an array, JSON Lines or an API v2 page) nor a CSV file with a header row: it starts %q", head),
				"give records as a JSON array, JSON Lines, a ClinicalTrials.gov API v2 page or CSV with a header row naming the ID column")
		}
		if len(cols) > 10 {
			cols = append(cols[:10:10], "...")
		}
		msg += "; the CSV header has " + strings.Join(cols, ", ")
	}
	return it.at(r, index, msg, hint)
}

// duplicates reports repeated IDs, located at the first repeat.
func (it *iter) duplicates(first raw, dups []Duplicate, total int64) error {
	var b strings.Builder
	fmt.Fprintf(&b, "duplicate ID, first seen at record %d; %d records repeat an earlier ID: ", dups[0].FirstIndex, total)
	for i, d := range dups {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s (records %d and %d)", d.ID, d.FirstIndex, d.Index)
	}
	if more := total - int64(len(dups)); more > 0 {
		fmt.Fprintf(&b, " and %d more", more)
	}
	e := it.at(first, dups[0].Index, b.String(), "--dedupe keeps the first record of each ID and drops the rest")
	e.ID = dups[0].ID
	return e
}

// open opens path for reading and detects its format; the file is left at its start.
func open(path string, opts Options) (*os.File, Format, error) {
	loc := locator{path}
	if err := opts.check(path); err != nil {
		return nil, "", err
	}
	f, err := os.Open(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, "", loc.errorf("check the path", "no such file")
	case errors.Is(err, fs.ErrPermission):
		return nil, "", loc.errorf("make the file readable", "permission denied")
	case err != nil:
		return nil, "", loc.errorf("", "cannot open: %v", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, "", fmt.Errorf("stat %s: %w", path, err)
	}
	if st.IsDir() {
		f.Close()
		return nil, "", loc.errorf("pass the input file, not a folder", "is a directory")
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, "", loc.errorf("save the input to a file first", "not a regular file (the input is read more than once)")
	}
	if isZip(f) {
		return f, FormatZip, nil
	}
	format, err := detect(f, loc)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, "", err
	}
	return f, format, nil
}
