package input

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"
	"unicode/utf8"

	"github.com/trialcat/trialcat/internal/exitcode"
)

// Hints shared by several errors.
const (
	hintUTF8    = "re-encode the file as UTF-8, for example: iconv -f WINDOWS-1252 -t UTF-8 in > out"
	hintFormats = "accepted formats: a JSON array of objects, JSON Lines (one object per line), " +
		`a ClinicalTrials.gov API v2 page ({"studies": [...]}), or CSV with a header row`
)

// Error is a problem with the input file or the options that read it. It wraps
// exitcode.ErrUsage: the run stops with exit code 2 before anything is written.
type Error struct {
	Path   string // the input file, as given
	Line   int    // 1-based line, 0 when unknown
	Column int    // 1-based column in characters, 0 when unknown
	Index  int64  // 0-based position of the record among all input records, -1 when unknown
	ID     string // the record's ID, when known
	Msg    string // what is wrong
	Hint   string // what to do about it
}

// Error reads "path:line:col: record N (ID x): msg; hint", leaving out what is unknown.
func (e *Error) Error() string {
	var b strings.Builder
	if e.Path != "" {
		b.WriteString(e.Path)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
			if e.Column > 0 {
				fmt.Fprintf(&b, ":%d", e.Column)
			}
		}
		b.WriteString(": ")
	}
	if e.Index >= 0 {
		fmt.Fprintf(&b, "record %d", e.Index)
		if e.ID != "" {
			fmt.Fprintf(&b, " (ID %s)", e.ID)
		}
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	if e.Hint != "" {
		b.WriteString("; ")
		b.WriteString(e.Hint)
	}
	return b.String()
}

// Unwrap returns exitcode.ErrUsage.
func (e *Error) Unwrap() error { return exitcode.ErrUsage }

// locator turns file offsets into line and column by reading the file again. It is used only
// when reporting an error, so reading never has to track lines.
type locator struct{ path string }

// errorf returns an *Error about the whole file.
func (l locator) errorf(hint, format string, args ...any) *Error {
	return &Error{Path: l.path, Index: -1, Msg: fmt.Sprintf(format, args...), Hint: hint}
}

// at returns an *Error located at a file offset.
func (l locator) at(off int64, index int64, msg, hint string) *Error {
	line, col := l.position(off)
	return &Error{Path: l.path, Line: line, Column: col, Index: index, Msg: msg, Hint: hint}
}

// syntax converts a parser error to an *Error for the record at index; other errors are read
// errors.
func (l locator) syntax(err error, index int64) error {
	var se *syntaxError
	if errors.As(err, &se) {
		return l.at(se.off, index, se.msg, se.hint)
	}
	return fmt.Errorf("read %s: %w", l.path, err)
}

// position returns the 1-based line and column (in characters, not counting a byte order mark)
// of a file offset, or 0, 0 when the file cannot be read.
func (l locator) position(off int64) (line, col int) {
	f, err := os.Open(l.path)
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, readSize)
	if bom, _ := r.Peek(3); string(bom) == bomUTF8 && off >= 3 {
		r.Discard(3)
		off -= 3
	}
	line, col = 1, 1
	for off > 0 {
		chunk, err := r.Peek(int(min(off, readSize)))
		for _, c := range chunk {
			switch {
			case c == '\n':
				line, col = line+1, 1
			case c&0xC0 != 0x80: // not a UTF-8 continuation byte
				col++
			}
		}
		r.Discard(len(chunk))
		off -= int64(len(chunk))
		if err != nil {
			break
		}
	}
	return line, col
}

// firstBadUTF8 returns the file offset and value of the first byte that is not valid UTF-8;
// the offset is -1 when there is none.
func (l locator) firstBadUTF8() (int64, byte) {
	f, err := os.Open(l.path)
	if err != nil {
		return -1, 0
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, readSize)
	var off int64
	for {
		c, n, err := r.ReadRune()
		if err != nil {
			return -1, 0
		}
		if c == utf8.RuneError && n == 1 {
			r.UnreadRune()
			b, _ := r.ReadByte()
			return off, b
		}
		off += int64(n)
	}
}

// charColumn converts a 1-based byte column on a 1-based line to a column in characters.
func (l locator) charColumn(line, byteCol int) int {
	f, err := os.Open(l.path)
	if err != nil || line < 1 || byteCol < 1 {
		return byteCol
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, readSize)
	for n := 1; n < line; n++ {
		for {
			_, err := r.ReadSlice('\n')
			if err == nil {
				break
			}
			if err != bufio.ErrBufferFull {
				return byteCol
			}
		}
	}
	if line == 1 {
		if bom, _ := r.Peek(3); string(bom) == bomUTF8 {
			r.Discard(3)
		}
	}
	col := 1
	for i := 1; i < byteCol; i++ {
		c, err := r.ReadByte()
		if err != nil {
			break
		}
		if c&0xC0 != 0x80 {
			col++
		}
	}
	return col
}
