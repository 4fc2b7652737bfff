package input

import (
	"fmt"
	"io"
)

// raw is one record as a source yields it. data is valid until the next call.
type raw struct {
	data []byte // compact JSON object
	id   string // "" when the record has no usable ID
	off  int64  // file offset of the record, -1 when line is used instead
	line int    // 1-based line of the record when off is -1
}

// source yields the records of one input format, in order, then io.EOF. Its errors are *Error
// for bad input and plain errors for failed reads.
type source interface {
	next() (raw, error)
}

// States of a jsonSource.
const (
	stArrayStart = iota // before the '[' of a JSON array
	stPageStart         // before the '{' of a studies page
	stPageKeys          // between the members of a studies page
	stFirst             // just after '[': the first element or ']'
	stNext              // after an element: ',' or ']'
	stLines             // JSON Lines
	stDone              // after the end; only io.EOF follows
)

// jsonSource reads a JSON array, a studies page or JSON Lines with a parser.
type jsonSource struct {
	p       *parser
	loc     locator
	format  Format
	state   int
	n       int64 // records read so far
	members int   // members of the studies page read so far
	studies bool  // the page's "studies" key has been seen
}

func newJSONSource(p *parser, loc locator, format Format) *jsonSource {
	s := &jsonSource{p: p, loc: loc, format: format}
	switch format {
	case FormatJSON:
		s.state = stArrayStart
	case FormatCTGov:
		s.state = stPageStart
	default:
		s.state = stLines
	}
	return s
}

// prev is the index of the last record read, for errors found after it.
func (s *jsonSource) prev() int64 { return s.n - 1 }

func (s *jsonSource) next() (raw, error) {
	p := s.p
	for {
		switch s.state {
		case stDone:
			return raw{}, io.EOF
		case stLines:
			return s.line()
		case stArrayStart, stPageStart:
			p.skipWS()
			p.skip() // '[' or '{', as detected
			if s.state == stArrayStart {
				s.state = stFirst
			} else {
				s.state = stPageKeys
			}
		case stPageKeys:
			if err := s.pageMember(); err != nil {
				return raw{}, err
			}
		case stFirst, stNext:
			c, ok := p.skipWS()
			if !ok {
				return raw{}, s.loc.syntax(p.eofErr(), s.prev())
			}
			if s.state == stNext {
				switch c {
				case ',':
					p.skip()
					if c, ok = p.skipWS(); !ok {
						return raw{}, s.loc.syntax(p.eofErr(), s.prev())
					}
					if c == ']' {
						return raw{}, s.loc.at(p.offset(), s.prev(), "trailing comma before ']'",
							"remove the comma after the last record")
					}
				case ']':
				default:
					return raw{}, s.loc.syntax(p.unexpected("after array element"), s.prev())
				}
			}
			if c == ']' {
				p.skip()
				if err := s.endArray(); err != nil {
					return raw{}, err
				}
				continue
			}
			s.state = stNext
			return s.record(c)
		}
	}
}

// endArray moves on after the records' closing ']'.
func (s *jsonSource) endArray() error {
	if s.format == FormatCTGov {
		s.state = stPageKeys
		return nil
	}
	s.state = stDone
	if err := s.p.rest("the end of the JSON array"); err != nil {
		return s.loc.syntax(err, -1)
	}
	return nil
}

// pageMember reads one member of a studies page. At the "studies" key it stops inside the
// array; other members are skipped; at the closing '}' it checks that nothing follows.
func (s *jsonSource) pageMember() error {
	p := s.p
	c, ok := p.skipWS()
	if !ok {
		return s.loc.syntax(p.eofErr(), -1)
	}
	afterComma := false
	if s.members > 0 {
		switch c {
		case ',':
			p.skip()
			if c, ok = p.skipWS(); !ok {
				return s.loc.syntax(p.eofErr(), -1)
			}
			afterComma = true
		case '}':
		default:
			return s.loc.syntax(p.unexpected("after object key:value pair"), -1)
		}
	}
	if c == '}' {
		if afterComma {
			return s.loc.at(p.offset(), -1, "trailing comma before '}'", "remove the comma after the last member")
		}
		p.skip()
		s.state = stDone
		if err := p.rest("the end of the studies page"); err != nil {
			return s.loc.syntax(err, -1)
		}
		return nil
	}
	if c != '"' {
		return s.loc.syntax(p.unexpected("looking for beginning of object key string"), -1)
	}
	keyOff := p.offset()
	p.out = p.out[:0]
	if err := p.str(); err != nil {
		return s.loc.syntax(err, -1)
	}
	key := string(p.out)
	if c, ok = p.skipWS(); !ok {
		return s.loc.syntax(p.eofErr(), -1)
	}
	if c != ':' {
		return s.loc.syntax(p.unexpected("after object key"), -1)
	}
	p.skip()
	s.members++
	if key != `"studies"` {
		p.out = p.out[:0]
		if _, err := p.value(0, 1); err != nil {
			return s.loc.syntax(err, -1)
		}
		p.out = p.out[:0]
		return nil
	}
	if s.studies {
		return s.loc.at(keyOff, -1, `the page has a second "studies" key`, `keep one "studies" list per file`)
	}
	s.studies = true
	if c, ok = p.skipWS(); !ok {
		return s.loc.syntax(p.eofErr(), -1)
	}
	if c != '[' {
		return s.loc.at(p.offset(), -1, `"studies" is not an array`, `a ClinicalTrials.gov page holds its records in "studies": [...]`)
	}
	p.skip()
	s.state = stFirst
	return nil
}

// record reads the element that starts with c.
func (s *jsonSource) record(c byte) (raw, error) {
	p := s.p
	if c != '{' {
		if k := startKind(c); k != kindNone {
			return raw{}, s.loc.at(p.offset(), s.n, "record is not a JSON object (got "+k.String()+")",
				"every record must be an object {...}")
		}
		return raw{}, s.loc.syntax(p.unexpected("looking for beginning of value"), s.n)
	}
	id, err := p.record()
	if err != nil {
		return raw{}, s.loc.syntax(err, s.n)
	}
	s.n++
	return raw{data: p.out, id: id, off: p.recOff}, nil
}

// line reads the next record of JSON Lines, skipping blank lines.
func (s *jsonSource) line() (raw, error) {
	p := s.p
	c, ok := p.skipWS()
	if !ok {
		if p.rerr != nil {
			return raw{}, fmt.Errorf("read %s: %w", s.loc.path, p.rerr)
		}
		s.state = stDone
		return raw{}, io.EOF
	}
	p.singleLine = true
	defer func() { p.singleLine = false }()
	r, err := s.record(c)
	if err != nil {
		return raw{}, err
	}
	// The rest of the line must be blank.
	for p.more() && p.buf[p.pos] != '\n' {
		switch p.buf[p.pos] {
		case ' ', '\t', '\r':
			p.skip()
		default:
			return raw{}, s.loc.syntax(p.errAt(p.offset(), "unexpected data after the object on the same line",
				"JSON Lines needs one object per line"), s.prev())
		}
	}
	if p.rerr != nil {
		return raw{}, fmt.Errorf("read %s: %w", s.loc.path, p.rerr)
	}
	return r, nil
}
