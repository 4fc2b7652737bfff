package input

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/trialcat/trialcat/internal/record"
)

// csvSource reads CSV with a header row; each row becomes an object of strings keyed by the
// header, in header order.
type csvSource struct {
	cr      *csv.Reader
	loc     locator
	idField string
	header  []string
	n       int64
	out     []byte
	row     map[string]any
}

// newCSVSource reads the header row from r.
func newCSVSource(r io.Reader, loc locator, idField string) (*csvSource, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	s := &csvSource{cr: cr, loc: loc, idField: idField}
	header, err := cr.Read()
	if err == io.EOF {
		return nil, loc.errorf("the file must hold at least one record", "empty file")
	}
	if err != nil {
		return nil, s.fail(err, -1, header)
	}
	if err := s.checkUTF8(header, -1); err != nil {
		return nil, err
	}
	s.header = append([]string(nil), header...)
	seen := make(map[string]int, len(header))
	for i, h := range s.header {
		if j, dup := seen[h]; dup {
			return nil, &Error{Path: loc.path, Line: 1, Index: -1,
				Msg:  fmt.Sprintf("CSV header names column %q twice (columns %d and %d)", h, j+1, i+1),
				Hint: "give every column a distinct name"}
		}
		seen[h] = i
	}
	s.row = make(map[string]any, len(header))
	return s, nil
}

func (s *csvSource) next() (raw, error) {
	fields, err := s.cr.Read()
	if err == io.EOF {
		return raw{}, io.EOF
	}
	if err != nil {
		return raw{}, s.fail(err, s.n, fields)
	}
	if err := s.checkUTF8(fields, s.n); err != nil {
		return raw{}, err
	}
	line, _ := s.cr.FieldPos(0)
	s.out = append(s.out[:0], '{')
	clear(s.row)
	for i, v := range fields {
		if i > 0 {
			s.out = append(s.out, ',')
		}
		s.out = appendJSONString(s.out, s.header[i])
		s.out = append(s.out, ':')
		s.out = appendJSONString(s.out, v)
		s.row[s.header[i]] = v
	}
	s.out = append(s.out, '}')
	s.n++
	return raw{data: s.out, id: record.IDOf(s.row, s.idField), off: -1, line: line}, nil
}

// fail converts a csv error for the row at index (-1 for the header).
func (s *csvSource) fail(err error, index int64, fields []string) error {
	var pe *csv.ParseError
	if !errors.As(err, &pe) {
		return fmt.Errorf("read %s: %w", s.loc.path, err)
	}
	e := &Error{Path: s.loc.path, Line: pe.Line, Column: s.loc.charColumn(pe.Line, pe.Column), Index: index, Msg: pe.Err.Error()}
	switch {
	case errors.Is(pe.Err, csv.ErrFieldCount):
		e.Line, e.Column = pe.StartLine, 0
		e.Msg = fmt.Sprintf("CSV row has %d fields but the header has %d", len(fields), len(s.header))
		e.Hint = "every row needs one field per header column; quote fields that contain commas"
	case errors.Is(pe.Err, csv.ErrQuote), errors.Is(pe.Err, csv.ErrBareQuote):
		e.Msg = "CSV " + pe.Err.Error()
		e.Hint = `quote a field that contains quotes, commas or newlines, and double its quotes: "say ""hi"""`
	}
	return e
}

// checkUTF8 reports the first invalid byte of the file if a field is not valid UTF-8.
func (s *csvSource) checkUTF8(fields []string, index int64) error {
	for _, f := range fields {
		if utf8.ValidString(f) {
			continue
		}
		off, b := s.loc.firstBadUTF8()
		if off < 0 {
			return &Error{Path: s.loc.path, Index: index, Msg: "invalid UTF-8", Hint: hintUTF8}
		}
		return s.loc.at(off, index, fmt.Sprintf("invalid UTF-8 byte 0x%02X", b), hintUTF8)
	}
	return nil
}

// appendJSONString appends s, which is valid UTF-8, as a JSON string, escaped as
// encoding/json does with HTML escaping off.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == '\u2028' || r == '\u2029' {
				b = append(b, s[start:i]...)
				b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
				start = i + n
			}
			i += n
			continue
		}
		if c >= 0x20 && c != '"' && c != '\\' {
			i++
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
		}
		i++
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
