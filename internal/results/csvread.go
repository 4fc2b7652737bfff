package results

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// csvReader reads the CSV that encoding/csv's Writer writes, byte for byte: unlike
// encoding/csv's Reader it keeps a "\r\n" inside a quoted field as it is, so an ID with a
// carriage return reads back equal to the one written. Records end at "\n" (a "\r" before it is
// the line end's); empty lines are skipped.
type csvReader struct {
	r      *bufio.Reader
	offset int64 // bytes consumed
	line   int   // current line, from 1
}

// errQuote marks a malformed quoted field, or a bare quote in an unquoted one.
var errQuote = errors.New(`extraneous or missing " in field`)

func newCSVReader(r io.Reader) *csvReader {
	return &csvReader{r: bufio.NewReaderSize(r, 64<<10), line: 1}
}

// reset reads from r, which is at offset in its file, keeping the buffer.
func (c *csvReader) reset(r io.Reader, offset int64) {
	c.r.Reset(r)
	c.offset, c.line = offset, 1
}

func (c *csvReader) readByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		c.offset++
		if b == '\n' {
			c.line++
		}
	}
	return b, err
}

func (c *csvReader) unread() {
	_ = c.r.UnreadByte()
	c.offset--
	if b, _ := c.r.Peek(1); len(b) == 1 && b[0] == '\n' {
		c.line--
	}
}

// Read returns the next record and the line it starts on. At the end it returns io.EOF. A
// record cut short (the end of the input inside a quoted field) or malformed is returned with
// the fields read so far and an error; the caller decides whether that is a torn last line.
func (c *csvReader) Read() (fields []string, line int, err error) {
	// Skip empty lines.
	for {
		b, err := c.readByte()
		if err != nil {
			return nil, c.line, io.EOF
		}
		if b == '\n' {
			continue
		}
		if b == '\r' {
			if n, err := c.r.Peek(1); err == nil && n[0] == '\n' {
				continue
			}
		}
		c.unread()
		break
	}
	line = c.line
	var field []byte
	for {
		b, err := c.readByte()
		if err != nil { // the input ends after a field
			return append(fields, string(field)), line, nil
		}
		switch {
		case b == '"' && len(field) == 0:
			if field, err = c.quoted(field); err != nil {
				return append(fields, string(field)), line, err
			}
			next, err := c.readByte()
			switch {
			case err != nil:
				return append(fields, string(field)), line, nil
			case next == ',':
				fields, field = append(fields, string(field)), field[:0]
			case next == '\n':
				return append(fields, string(field)), line, nil
			case next == '\r':
				if after, err := c.readByte(); err == nil && after == '\n' {
					return append(fields, string(field)), line, nil
				}
				return append(fields, string(field)), line, c.bad()
			default:
				return append(fields, string(field)), line, c.bad()
			}
		case b == '"':
			return append(fields, string(field)), line, c.bad()
		case b == ',':
			fields, field = append(fields, string(field)), field[:0]
		case b == '\n':
			if n := len(field); n > 0 && field[n-1] == '\r' {
				field = field[:n-1]
			}
			return append(fields, string(field)), line, nil
		default:
			field = append(field, b)
		}
	}
}

// bad skips the rest of a malformed line, so that reading can go on and tell a torn last line
// from damage in the middle, and returns the error naming the line.
func (c *csvReader) bad() error {
	err := fmt.Errorf("line %d: %w", c.line, errQuote)
	for {
		b, rerr := c.readByte()
		if rerr != nil || b == '\n' {
			return err
		}
	}
}

// quoted reads a quoted field's content after its opening quote, up to and including its
// closing quote; "" is one quote. The end of the input inside it is an error.
func (c *csvReader) quoted(field []byte) ([]byte, error) {
	for {
		b, err := c.readByte()
		if err != nil {
			return field, fmt.Errorf("line %d: the input ends inside a quoted field: %w", c.line, errQuote)
		}
		if b != '"' {
			field = append(field, b)
			continue
		}
		next, err := c.readByte()
		if err == nil && next == '"' {
			field = append(field, '"')
			continue
		}
		if err == nil {
			c.unread()
		}
		return field, nil
	}
}
