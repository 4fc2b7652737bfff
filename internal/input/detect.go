package input

import (
	"bytes"
	"fmt"
	"io"
)

// Byte order marks.
const (
	bomUTF8    = "\xEF\xBB\xBF"
	bomUTF16LE = "\xFF\xFE"
	bomUTF16BE = "\xFE\xFF"
)

// sniffSize is how much of the start of the file is checked for binary content.
const sniffSize = 8 << 10

// detect reads the start of r (at most the first object, for '{') and returns its format.
//
//   - '[' is a JSON array.
//   - '{' is a studies page when that object has a "studies" key holding an array, else JSON
//     Lines.
//   - A file that is one JSON scalar is an error.
//   - Binary data and XML are errors; anything else is read as CSV.
func detect(r io.Reader, loc locator) (Format, error) {
	p := newParser(r, 0, nil)
	if p.ensure(3) == 3 && string(p.buf[:3]) == bomUTF8 {
		p.pos = 3
	}
	if n := p.ensure(2); n == 2 && (string(p.buf[p.pos:p.pos+2]) == bomUTF16LE || string(p.buf[p.pos:p.pos+2]) == bomUTF16BE) {
		return "", loc.errorf(hintUTF8, "the file is UTF-16 encoded")
	}
	c, ok := p.skipWS()
	if !ok {
		if p.rerr != nil {
			return "", fmt.Errorf("read %s: %w", loc.path, p.rerr)
		}
		return "", loc.errorf("the file must hold at least one record", "empty file")
	}
	start := p.offset()
	switch k := startKind(c); k {
	case kindArray:
		return FormatJSON, nil
	case kindObject:
		return probeObject(p), nil
	case kindNone:
	default:
		// A file that is a single scalar is JSON, just not records. Anything longer that
		// starts like a scalar ("id",title or null_flag,x) is left to CSV.
		if _, err := p.value(0, 0); err == nil && p.rest("") == nil {
			return "", loc.at(start, -1, "the file holds a single JSON value, "+k.String()+", not records", hintFormats)
		}
		return FormatCSV, nil
	}
	p.ensure(sniffSize)
	head := p.buf[p.pos:p.end]
	switch {
	case bytes.HasPrefix(head, []byte("\x1F\x8B")):
		return "", loc.errorf("decompress it first (gunzip); "+hintFormats, "unrecognised input format: the file is gzip-compressed")
	case c == '<':
		return "", loc.at(start, -1, "unrecognised input format: the file looks like XML or HTML", hintFormats)
	case binary(head):
		return "", loc.errorf(hintFormats, "unrecognised input format: the file looks binary")
	}
	return FormatCSV, nil
}

// binary reports whether text holds control characters that no text format uses.
func binary(head []byte) bool {
	for _, c := range head {
		if c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != '\f' || c == 0x7F {
			return true
		}
	}
	return false
}

// probeObject reads the object at p.pos member by member and reports FormatCTGov as soon as it
// finds a "studies" key holding an array, else FormatJSONL. Errors are left for the real read
// to report.
func probeObject(p *parser) Format {
	p.skip() // {
	for first := true; ; first = false {
		c, ok := p.skipWS()
		if !ok {
			return FormatJSONL
		}
		if !first {
			if c != ',' {
				return FormatJSONL // '}' or an error
			}
			p.skip()
			if c, ok = p.skipWS(); !ok {
				return FormatJSONL
			}
		}
		if c != '"' {
			return FormatJSONL
		}
		p.out = p.out[:0]
		if p.str() != nil {
			return FormatJSONL
		}
		key := string(p.out)
		if c, ok = p.skipWS(); !ok || c != ':' {
			return FormatJSONL
		}
		p.skip()
		if key == `"studies"` {
			if c, ok = p.skipWS(); ok && c == '[' {
				return FormatCTGov
			}
		}
		p.out = p.out[:0]
		if _, err := p.value(0, 1); err != nil {
			return FormatJSONL
		}
	}
}
