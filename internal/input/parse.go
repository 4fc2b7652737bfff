package input

import (
	"bytes"
	binenc "encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/bits"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The JSON formats are read by a small streaming parser rather than json.Decoder: it validates
// and compacts one record at a time in a single pass, knows the exact byte offset of every error
// (json.Decoder's SyntaxError offsets are not file offsets once Token has been used), rejects
// invalid UTF-8 (json.Decoder silently replaces it) and picks the ID up while parsing, so a
// record is never decoded into maps just to find its ID. Its grammar is the one encoding/json
// accepts; parse_test.go checks that against json.Valid and json.Compact.

const (
	readSize = 64 << 10 // bytes read from the file at a time
	maxDepth = 10000    // nesting limit, as in encoding/json
)

// kind is the JSON type of a value.
type kind uint8

const (
	kindNone kind = iota
	kindObject
	kindArray
	kindString
	kindNumber
	kindBool
	kindNull
)

// String names the kind for messages: "got an array".
func (k kind) String() string {
	switch k {
	case kindObject:
		return "an object"
	case kindArray:
		return "an array"
	case kindString:
		return "a string"
	case kindNumber:
		return "a number"
	case kindBool:
		return "a boolean"
	case kindNull:
		return "null"
	}
	return "nothing"
}

// startKind is the kind of the value that starts with c, or kindNone.
func startKind(c byte) kind {
	switch {
	case c == '{':
		return kindObject
	case c == '[':
		return kindArray
	case c == '"':
		return kindString
	case c == '-' || isDigit(c):
		return kindNumber
	case c == 't' || c == 'f':
		return kindBool
	case c == 'n':
		return kindNull
	}
	return kindNone
}

// syntaxError is a problem at a byte offset of the file. Sources turn it into an *Error.
type syntaxError struct {
	off  int64
	msg  string
	hint string
}

func (e *syntaxError) Error() string { return fmt.Sprintf("offset %d: %s", e.off, e.msg) }

// capture is where an ID field's value sits in parser.out.
type capture struct {
	kind       kind
	start, end int
}

// parser reads JSON from r. Structure outside records (the array brackets, a page's other keys)
// is consumed with skip; a record is parsed by record, which leaves its compact form in out.
type parser struct {
	r    io.Reader
	buf  []byte
	pos  int   // next unread byte in buf
	end  int   // end of data in buf
	base int64 // file offset of buf[0]
	eof  bool
	rerr error // read error other than io.EOF

	// singleLine makes a newline end the value being parsed with an error (JSON Lines).
	singleLine bool

	out    []byte // compact JSON of the value being parsed
	recOff int64  // file offset of the current record's '{'

	fields []string   // ID fields, in order of preference
	segs   [][]string // fields split at dots
	idx    [][]int    // array index of each segment, -1 when it is not one
	capt   []capture  // what was found for each field in the current record
	all    uint64     // one bit per field
}

// newParser reads from r, whose first byte is at file offset base.
func newParser(r io.Reader, base int64, fields []string) *parser {
	p := &parser{r: r, buf: make([]byte, readSize), base: base, fields: fields}
	for i, f := range fields {
		segs := strings.Split(f, ".")
		idx := make([]int, len(segs))
		for j, s := range segs {
			idx[j] = -1
			if n, err := strconv.Atoi(s); err == nil && n >= 0 { // as record.Lookup does
				idx[j] = n
			}
		}
		p.segs = append(p.segs, segs)
		p.idx = append(p.idx, idx)
		p.all |= 1 << i
	}
	p.capt = make([]capture, len(fields))
	return p
}

// offset is the file offset of the next unread byte.
func (p *parser) offset() int64 { return p.base + int64(p.pos) }

// more reports whether a byte is available at p.pos, reading when the buffer is used up.
func (p *parser) more() bool {
	if p.pos < p.end {
		return true
	}
	if p.eof || p.rerr != nil {
		return false
	}
	p.base += int64(p.end)
	p.pos, p.end = 0, 0
	p.read()
	return p.end > 0
}

// ensure tries to make n bytes available from p.pos and returns how many are.
func (p *parser) ensure(n int) int {
	for p.end-p.pos < n && !p.eof && p.rerr == nil {
		if p.pos > 0 {
			copy(p.buf, p.buf[p.pos:p.end])
			p.base += int64(p.pos)
			p.end -= p.pos
			p.pos = 0
		}
		p.read()
	}
	return min(n, p.end-p.pos)
}

// read appends at least one byte to buf unless the input ends or fails.
func (p *parser) read() {
	for range 100 {
		n, err := p.r.Read(p.buf[p.end:])
		p.end += n
		if err == io.EOF {
			p.eof = true
		} else if err != nil {
			p.rerr = err
		}
		if n > 0 || err != nil {
			return
		}
	}
	p.rerr = io.ErrNoProgress
}

// skip consumes one byte that the caller has looked at.
func (p *parser) skip() { p.pos++ }

// take appends the byte at p.pos to out and consumes it.
func (p *parser) take() {
	p.out = append(p.out, p.buf[p.pos])
	p.pos++
}

// skipWS skips JSON whitespace and returns the next byte without consuming it; ok is false at
// the end of the input.
func (p *parser) skipWS() (c byte, ok bool) {
	for {
		for p.pos < p.end {
			switch c := p.buf[p.pos]; c {
			case ' ', '\t', '\r':
				p.pos++
			case '\n':
				if p.singleLine {
					return c, true
				}
				p.pos++
			default:
				return c, true
			}
		}
		if !p.more() {
			return 0, false
		}
	}
}

// rest skips whitespace and reports an error if anything but the end of the input follows.
func (p *parser) rest(what string) error {
	if _, ok := p.skipWS(); ok {
		return &syntaxError{off: p.offset(), msg: "unexpected data after " + what,
			hint: "the file must hold a single JSON value"}
	}
	return p.rerr
}

// errAt reports a syntax error at a file offset.
func (p *parser) errAt(off int64, msg, hint string) error {
	return &syntaxError{off: off, msg: msg, hint: hint}
}

// eofErr reports that the input ended inside a value, or the read error that ended it.
func (p *parser) eofErr() error {
	if p.rerr != nil {
		return p.rerr
	}
	return p.errAt(p.offset(), "unexpected end of file inside a JSON value",
		"the file looks truncated; check that it was copied completely")
}

// unexpected reports the character at p.pos as out of place.
func (p *parser) unexpected(context string) error {
	p.ensure(utf8.UTFMax)
	r, n := utf8.DecodeRune(p.buf[p.pos:p.end])
	switch {
	case r == utf8.RuneError && n == 1:
		return p.badUTF8()
	case r == '\n' && p.singleLine:
		return p.errAt(p.offset(), "the line ends inside a JSON value",
			"JSON Lines needs each object complete on one line; put pretty-printed records in a JSON array instead")
	}
	return p.errAt(p.offset(), "invalid character "+quoteRune(r)+" "+context, "")
}

// badUTF8 reports the invalid byte at p.pos.
func (p *parser) badUTF8() error {
	return p.errAt(p.offset(), fmt.Sprintf("invalid UTF-8 byte 0x%02X", p.buf[p.pos]), hintUTF8)
}

// record parses the object at p.pos (the caller has seen its '{') into out and returns its ID,
// "" when it has none.
func (p *parser) record() (string, error) {
	p.out = p.out[:0]
	clear(p.capt)
	p.recOff = p.offset()
	if err := p.object(p.all, 0); err != nil {
		return "", err
	}
	return p.id()
}

// id returns the ID found in the record just parsed, with the rules of record.IDOf: the first
// field present whose value is a string (trimmed, possibly empty) or a number (as spelled).
func (p *parser) id() (string, error) {
	for _, c := range p.capt {
		v := p.out[c.start:c.end]
		switch c.kind {
		case kindNumber:
			return string(v), nil
		case kindString:
			if bytes.IndexByte(v, '\\') < 0 {
				return string(bytes.TrimSpace(v[1 : len(v)-1])), nil
			}
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return "", fmt.Errorf("decode ID %s: %w", v, err)
			}
			return strings.TrimSpace(s), nil
		}
	}
	return "", nil
}

// value parses any JSON value. active holds the ID fields whose path continues inside it; depth
// is its nesting level, which is also the path segment its keys or indexes are matched against.
func (p *parser) value(active uint64, depth int) (kind, error) {
	c, ok := p.skipWS()
	if !ok {
		return kindNone, p.eofErr()
	}
	switch k := startKind(c); k {
	case kindObject:
		return k, p.object(active, depth)
	case kindArray:
		return k, p.array(active, depth)
	case kindString:
		return k, p.str()
	case kindNumber:
		return k, p.number()
	case kindBool:
		if c == 't' {
			return k, p.literal("true")
		}
		return k, p.literal("false")
	case kindNull:
		return k, p.literal("null")
	}
	return kindNone, p.unexpected("looking for beginning of value")
}

// member parses the value of an object member or array element, clearing and recording the ID
// fields that reach it.
func (p *parser) member(child, leaf uint64, depth int) error {
	for m := child | leaf; m != 0; m &= m - 1 {
		p.capt[bits.TrailingZeros64(m)] = capture{}
	}
	start := len(p.out)
	k, err := p.value(child, depth+1)
	if err != nil {
		return err
	}
	for m := leaf; m != 0; m &= m - 1 {
		p.capt[bits.TrailingZeros64(m)] = capture{kind: k, start: start, end: len(p.out)}
	}
	return nil
}

func (p *parser) object(active uint64, depth int) error {
	if depth >= maxDepth {
		return p.errAt(p.offset(), fmt.Sprintf("JSON nested deeper than %d levels", maxDepth), "")
	}
	p.take() // {
	c, ok := p.skipWS()
	if !ok {
		return p.eofErr()
	}
	if c == '}' {
		p.take()
		return nil
	}
	for {
		if c != '"' {
			if c == '}' {
				return p.errAt(p.offset(), "trailing comma before '}'", "remove the comma after the last member")
			}
			return p.unexpected("looking for beginning of object key string")
		}
		keyStart := len(p.out)
		if err := p.str(); err != nil {
			return err
		}
		var child, leaf uint64
		if active != 0 {
			child, leaf = p.matchKey(p.out[keyStart:], active, depth)
		}
		if c, ok = p.skipWS(); !ok {
			return p.eofErr()
		}
		if c != ':' {
			return p.unexpected("after object key")
		}
		p.take()
		if err := p.member(child, leaf, depth); err != nil {
			return err
		}
		if c, ok = p.skipWS(); !ok {
			return p.eofErr()
		}
		switch c {
		case ',':
			p.take()
			if c, ok = p.skipWS(); !ok {
				return p.eofErr()
			}
		case '}':
			p.take()
			return nil
		default:
			return p.unexpected("after object key:value pair")
		}
	}
}

// matchKey splits the active fields whose segment at depth is the (quoted) key into those that
// continue below it and those that end at it.
func (p *parser) matchKey(quoted []byte, active uint64, depth int) (child, leaf uint64) {
	key := quoted[1 : len(quoted)-1]
	if bytes.IndexByte(key, '\\') >= 0 {
		var s string
		if json.Unmarshal(quoted, &s) != nil {
			return 0, 0
		}
		key = []byte(s)
	}
	for m := active; m != 0; m &= m - 1 {
		f := bits.TrailingZeros64(m)
		if p.segs[f][depth] != string(key) {
			continue
		}
		if len(p.segs[f]) == depth+1 {
			leaf |= 1 << f
		} else {
			child |= 1 << f
		}
	}
	return child, leaf
}

func (p *parser) array(active uint64, depth int) error {
	if depth >= maxDepth {
		return p.errAt(p.offset(), fmt.Sprintf("JSON nested deeper than %d levels", maxDepth), "")
	}
	p.take() // [
	c, ok := p.skipWS()
	if !ok {
		return p.eofErr()
	}
	if c == ']' {
		p.take()
		return nil
	}
	for i := 0; ; i++ {
		var child, leaf uint64
		for m := active; m != 0; m &= m - 1 {
			f := bits.TrailingZeros64(m)
			if p.idx[f][depth] != i {
				continue
			}
			if len(p.segs[f]) == depth+1 {
				leaf |= 1 << f
			} else {
				child |= 1 << f
			}
		}
		if err := p.member(child, leaf, depth); err != nil {
			return err
		}
		if c, ok = p.skipWS(); !ok {
			return p.eofErr()
		}
		switch c {
		case ',':
			p.take()
			if c, ok = p.skipWS(); ok && c == ']' {
				return p.errAt(p.offset(), "trailing comma before ']'", "remove the comma after the last element")
			}
		case ']':
			p.take()
			return nil
		default:
			return p.unexpected("after array element")
		}
	}
}

// plain marks the string bytes that need no attention: not '"', '\\', a control or non-ASCII.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// plainRun is the length of b's leading plain bytes. It tests eight at a time (a string's text
// is most of a record's bytes): a word is all plain when no byte is '"' or '\\' (a zero byte
// after the xor), below 0x20 (a borrow out of the byte) or 0x80 and above (its top bit). A flag
// may be raised falsely only above a byte that is not plain, so the byte loop decides there.
func plainRun(b []byte) int {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(b); i += 8 {
		x := binenc.LittleEndian.Uint64(b[i:])
		q, s := x^('"'*lo), x^('\\'*lo)
		if ((q-lo)&^q|(s-lo)&^s|(x-0x20*lo)|x)&hi != 0 {
			break
		}
	}
	for i < len(b) && plain[b[i]] {
		i++
	}
	return i
}

// str parses a string; p.pos is at its opening quote.
func (p *parser) str() error {
	p.take()
	for {
		if !p.more() {
			return p.eofErr()
		}
		b := p.buf[p.pos:p.end]
		i := plainRun(b)
		p.out = append(p.out, b[:i]...)
		p.pos += i
		if i == len(b) {
			continue
		}
		switch c := b[i]; {
		case c == '"':
			p.take()
			return nil
		case c == '\\':
			if err := p.escape(); err != nil {
				return err
			}
		case c == '\n' && p.singleLine:
			return p.errAt(p.offset(), "the line ends inside a string",
				"JSON Lines needs each object complete on one line; write a newline in a string as \\n")
		case c < 0x20:
			return p.errAt(p.offset(), fmt.Sprintf("invalid control character %U in string", c),
				"escape it, for example \\n, \\t or \\u00XX")
		default:
			p.ensure(utf8.UTFMax)
			r, n := utf8.DecodeRune(p.buf[p.pos:p.end])
			if r == utf8.RuneError && n == 1 {
				return p.badUTF8()
			}
			p.out = append(p.out, p.buf[p.pos:p.pos+n]...)
			p.pos += n
		}
	}
}

// escape parses an escape sequence; p.pos is at its backslash.
func (p *parser) escape() error {
	n := p.ensure(6)
	if n < 2 {
		p.pos += n
		return p.eofErr()
	}
	switch p.buf[p.pos+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		p.out = append(p.out, p.buf[p.pos:p.pos+2]...)
		p.pos += 2
		return nil
	case 'u':
		for j := 2; j < 6; j++ {
			if j >= n {
				p.pos += n
				return p.eofErr()
			}
			if !isHex(p.buf[p.pos+j]) {
				p.pos += j
				return p.unexpected("in \\u hexadecimal character escape")
			}
		}
		p.out = append(p.out, p.buf[p.pos:p.pos+6]...)
		p.pos += 6
		return nil
	}
	p.pos++
	return p.unexpected("in string escape code")
}

// number parses a number; p.pos is at its first byte.
func (p *parser) number() error {
	if p.buf[p.pos] == '-' {
		p.take()
		if !p.more() {
			return p.eofErr()
		}
		if !isDigit(p.buf[p.pos]) {
			return p.unexpected("in numeric literal")
		}
	}
	if p.buf[p.pos] == '0' {
		p.take()
	} else {
		p.digits()
	}
	if p.more() && p.buf[p.pos] == '.' {
		p.take()
		if !p.more() {
			return p.eofErr()
		}
		if !isDigit(p.buf[p.pos]) {
			return p.unexpected("after decimal point in numeric literal")
		}
		p.digits()
	}
	if p.more() && (p.buf[p.pos] == 'e' || p.buf[p.pos] == 'E') {
		p.take()
		if !p.more() {
			return p.eofErr()
		}
		if c := p.buf[p.pos]; c == '+' || c == '-' {
			p.take()
			if !p.more() {
				return p.eofErr()
			}
		}
		if !isDigit(p.buf[p.pos]) {
			return p.unexpected("in exponent of numeric literal")
		}
		p.digits()
	}
	return nil
}

func (p *parser) digits() {
	for p.more() && isDigit(p.buf[p.pos]) {
		p.take()
	}
}

// literal parses true, false or null.
func (p *parser) literal(word string) error {
	for i := 0; i < len(word); i++ {
		if !p.more() {
			return p.eofErr()
		}
		if p.buf[p.pos] != word[i] {
			return p.unexpected(fmt.Sprintf("in literal %s (expecting %s)", word, quoteRune(rune(word[i]))))
		}
		p.take()
	}
	return nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isHex(c byte) bool { return isDigit(c) || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

// quoteRune spells a character for a message the way encoding/json does: 'x', '\n'.
func quoteRune(r rune) string {
	if r == '\'' {
		return `'\''`
	}
	if r == '"' {
		return `'"'`
	}
	s := strconv.Quote(string(r))
	return "'" + s[1:len(s)-1] + "'"
}
