package results

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/trialcat/trialcat/internal/exitcode"
)

// Writer appends rows to one CSV file. It is not safe for concurrent use.
type Writer struct {
	path   string
	f      *os.File
	fields int
	buf    bytes.Buffer
	cw     *csv.Writer
}

// OpenWriter opens path for appending rows, creating it (0644) with header if it does not exist.
// If it exists, its header must equal header, and a torn last line left by a crash is truncated
// away before anything is appended.
func OpenWriter(path string, header []string) (*Writer, error) {
	if len(header) == 0 {
		return nil, fmt.Errorf("open %s: empty header", path)
	}
	if err := upgradeIfLegacy(path, header); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	w := &Writer{path: path, f: f, fields: len(header)}
	w.cw = csv.NewWriter(&w.buf)
	if err := w.prepare(header); err != nil {
		_ = f.Close()
		return nil, err
	}
	return w, nil
}

// prepare checks the existing content, truncates a torn last line and writes the header to an
// empty file.
func (w *Writer) prepare(header []string) error {
	fi, err := w.f.Stat()
	if err != nil {
		return fmt.Errorf("open %s: %w", w.path, err)
	}
	headerLine, err := w.encode(header)
	if err != nil {
		return fmt.Errorf("open %s: %w", w.path, err)
	}
	var got []string
	s, err := scan(w.path, w.f, fi.Size(), func(rec []string, _ int64) error {
		if got == nil {
			got = rec
			if !slices.Equal(got, header) {
				return mismatch(w.path, got, header)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if got == nil && fi.Size() > 0 {
		// No complete header: a crash while writing it leaves a prefix of it. Anything else is
		// someone else's file, which must not be truncated.
		content := make([]byte, fi.Size())
		if _, err := w.f.ReadAt(content, 0); err != nil {
			return fmt.Errorf("open %s: %w", w.path, err)
		}
		if !s.torn || !bytes.HasPrefix(headerLine, content) {
			return fmt.Errorf("open %s: the file has no CSV header line, so this tool did not write it; "+
				"move it away or choose another output directory: %w", w.path, exitcode.ErrUsage)
		}
	}
	if s.torn {
		if err := w.f.Truncate(s.good); err != nil {
			return fmt.Errorf("open %s: truncate torn last line: %w", w.path, err)
		}
	}
	if s.good == 0 {
		if _, err := w.f.Write(headerLine); err != nil {
			return fmt.Errorf("open %s: write header: %w", w.path, err)
		}
	}
	return nil
}

func mismatch(path string, got, want []string) error {
	return fmt.Errorf("%s has columns %q but this run writes %q: the file belongs to a different run "+
		"(another schema or ID column); move it away or choose another output directory: %w",
		path, got, want, exitcode.ErrUsage)
}

// encode returns row as one CSV line.
func (w *Writer) encode(row []string) ([]byte, error) {
	w.buf.Reset()
	if err := w.cw.Write(row); err != nil {
		return nil, err
	}
	w.cw.Flush()
	if err := w.cw.Error(); err != nil {
		return nil, err
	}
	return w.buf.Bytes(), nil
}

// Append writes one row with a single write to the operating system; nothing stays buffered in
// the process. The row must have as many fields as the header.
func (w *Writer) Append(row []string) error {
	if w.f == nil {
		return fmt.Errorf("append %s: %w", w.path, os.ErrClosed)
	}
	if len(row) != w.fields {
		return fmt.Errorf("append %s: row has %d fields, the header has %d", w.path, len(row), w.fields)
	}
	line, err := w.encode(row)
	if err != nil {
		return fmt.Errorf("append %s: %w", w.path, err)
	}
	if _, err := w.f.Write(line); err != nil {
		return fmt.Errorf("append %s: %w", w.path, err)
	}
	return nil
}

// Close syncs the file to disk and closes it. Closing twice is not an error.
func (w *Writer) Close() error {
	if w.f == nil {
		return nil
	}
	f := w.f
	w.f = nil
	err := f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("close %s: %w", w.path, err)
	}
	return nil
}

// Read streams the CSV file at path: it returns the header and calls fn with each complete row
// after it. A torn last line (no trailing newline, an unclosed quote or a wrong field count on the
// last line) is not passed to fn and is reported as torn. A damaged line elsewhere is an error
// naming the file and line. A missing file has no rows and is not an error. An error from fn stops
// the reading and is returned as is.
func Read(path string, fn func(row []string) error) (header []string, torn bool, err error) {
	return read(path, nil, fn)
}

// Index is Read, and gives fn the offset each row starts at, for RowReader.At: a reader that
// needs the rows later in another order keeps offsets, not rows.
func Index(path string, fn func(row []string, at int64) error) (header []string, torn bool, err error) {
	return readAt(path, nil, fn)
}

// read is Read, calling onHeader (when set) with the header before any row.
func read(path string, onHeader func([]string) error, fn func(row []string) error) (header []string, torn bool, err error) {
	return readAt(path, onHeader, func(row []string, _ int64) error { return fn(row) })
}

func readAt(path string, onHeader func([]string) error, fn func(row []string, at int64) error) (header []string, torn bool, err error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, false, fmt.Errorf("read %s: %w", path, err)
	}
	s, err := scan(path, f, fi.Size(), func(rec []string, at int64) error {
		if header == nil {
			header = rec
			if onHeader != nil {
				return onHeader(rec)
			}
			return nil
		}
		return fn(rec, at)
	})
	if err != nil {
		return header, false, err
	}
	return header, s.torn, nil
}

// scanResult tells how much of a file is sound.
type scanResult struct {
	good int64 // offset just past the last complete row
	torn bool  // the last line is torn; everything from good on is to be discarded
}

// scan reads the CSV in r (of the given size) from the start and calls fn with each complete row,
// header included. A row is complete when it parsed, has the header's field count and ends with a
// newline. Only the last row may be incomplete (torn); an incomplete row followed by more data is
// an error naming the line.
func scan(path string, r io.ReaderAt, size int64, fn func(rec []string, start int64) error) (scanResult, error) {
	var res scanResult
	if size == 0 {
		return res, nil
	}
	last := make([]byte, 1)
	if _, err := r.ReadAt(last, size-1); err != nil {
		return res, fmt.Errorf("read %s: %w", path, err)
	}
	endsWithNewline := last[0] == '\n'

	cr := newCSVReader(io.NewSectionReader(r, 0, size))
	type row struct {
		rec  []string
		at   int64 // offset the row (or the empty lines before it) starts at
		end  int64 // offset just past the row
		line int   // line the row starts on
		err  error // why the row is not complete, nil if it is
	}
	fields := -1 // set by the header
	check := func(p *row) error {
		if p.err != nil {
			return p.err
		}
		if fields >= 0 && len(p.rec) != fields {
			return fmt.Errorf("line %d has %d fields, want %d", p.line, len(p.rec), fields)
		}
		return nil
	}
	emit := func(p *row) error {
		if fields < 0 {
			fields = len(p.rec)
		}
		res.good = p.end
		return fn(p.rec, p.at) // returned as is
	}
	var pending *row // judged once the next row was read, because only the last may be torn
	for {
		at := cr.offset
		rec, line, err := cr.Read()
		if err == io.EOF {
			break
		}
		if pending != nil {
			if err := check(pending); err != nil {
				return res, fmt.Errorf("read %s: %w: the file is damaged; move it away and rerun", path, err)
			}
			if err := emit(pending); err != nil {
				return res, err
			}
		}
		pending = &row{rec: rec, at: at, end: cr.offset, line: line, err: err}
	}
	if pending != nil {
		if check(pending) != nil || !endsWithNewline {
			res.torn = true
			return res, nil
		}
		if err := emit(pending); err != nil {
			return res, err
		}
	}
	return res, nil
}

// RowReader reads the rows of one results or failures file at the offsets Index gave.
type RowReader struct {
	path string
	f    *os.File
	cr   *csvReader
}

// OpenRows opens path for RowReader.At; a missing file is an error.
func OpenRows(path string) (*RowReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return &RowReader{path: path, f: f, cr: newCSVReader(f)}, nil
}

// At reads the row that starts at offset at. Rows read in file order cost no seek.
func (r *RowReader) At(at int64) ([]string, error) {
	if at != r.cr.offset {
		if _, err := r.f.Seek(at, io.SeekStart); err != nil {
			return nil, fmt.Errorf("read %s: %w", r.path, err)
		}
		r.cr.reset(r.f, at)
	}
	rec, _, err := r.cr.Read()
	if err != nil {
		return nil, fmt.Errorf("read %s at byte %d: %w (the file changed since it was indexed)", r.path, at, err)
	}
	return rec, nil
}

// Close closes the file.
func (r *RowReader) Close() error { return r.f.Close() }

// SafeCell guards a cell against spreadsheet formula injection; see the package documentation.
func SafeCell(s string) string {
	if s == "" || !strings.ContainsRune("=+-@\t\r", rune(s[0])) || isPlainNumber(s) {
		return s
	}
	return "'" + s
}

// isPlainNumber reports whether s is a decimal number: optional sign, digits with at most one
// decimal point (at least one digit), and an optional exponent.
func isPlainNumber(s string) bool {
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	digits, dot := 0, false
	for ; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			digits++
		case c == '.' && !dot:
			dot = true
		default:
			goto exp
		}
	}
exp:
	if digits == 0 {
		return false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == start {
			return false
		}
	}
	return i == len(s)
}
