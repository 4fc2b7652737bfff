package record

import (
	"bytes"
	"encoding/json"
	"sort"
)

// tapeMin is the size from which a Lazy indexes every container's end in one pass before its
// first lookup. Below it, skipping a nested value again at each depth costs less than the index.
const tapeMin = 2048

// tape is the end of every object and array of a record, by the offset of its first byte: one
// scan of the record instead of one per depth a lookup goes down.
type tape struct {
	opens, ends []int32 // ends[k] is the offset just after the container opening at opens[k]
}

// buildTape scans b once; ok is false when its brackets or strings do not balance, and the
// caller then skips values the slow way (which finds the same error where it matters).
func buildTape(b []byte) (t tape, ok bool) {
	if len(b) > 1<<31-1 {
		return tape{}, false
	}
	var stack []int32
	for i := 0; i < len(b); {
		for i < len(b) && !structural[b[i]] {
			i++
		}
		if i >= len(b) {
			break
		}
		switch b[i] {
		case '"':
			j := skipString(b, i)
			if j < 0 {
				return tape{}, false
			}
			i = j
			continue
		case '{', '[':
			stack = append(stack, int32(len(t.opens)))
			t.opens = append(t.opens, int32(i))
			t.ends = append(t.ends, -1)
		default: // '}' or ']'
			if len(stack) == 0 {
				return tape{}, false
			}
			t.ends[stack[len(stack)-1]] = int32(i + 1)
			stack = stack[:len(stack)-1]
		}
		i++
	}
	return t, len(stack) == 0
}

// end is skipValue's answer for the container opening at i.
func (t *tape) end(i int) (int, bool) {
	k := sort.Search(len(t.opens), func(k int) bool { return t.opens[k] >= int32(i) })
	if k == len(t.opens) || t.opens[k] != int32(i) {
		return 0, false
	}
	return int(t.ends[k]), true
}

// skip is skipValue, through the tape when there is one.
func (l *Lazy) skip(i int) int {
	b := l.data
	if i < len(b) && (b[i] == '{' || b[i] == '[') {
		if !l.taped {
			l.taped = true
			if len(b) >= tapeMin {
				if t, ok := buildTape(b); ok {
					l.tape = &t
				}
			}
		}
		if l.tape != nil {
			if e, ok := l.tape.end(i); ok {
				return e
			}
		}
	}
	return skipValue(b, i)
}

// fastValue decodes one whole JSON value as Decode would (objects as map[string]any, numbers as
// json.Number), for the JSON it can be sure of: ok is false for anything else (an escape or byte
// unquote leaves to the decoder, a malformed value, trailing bytes), which the decoder then
// decides.
func fastValue(raw []byte) (any, bool) {
	v, i, ok := fast(raw, 0, 0)
	return v, ok && i == len(raw)
}

func fast(b []byte, i, depth int) (any, int, bool) {
	if depth > maxDepth || i >= len(b) {
		return nil, i, false
	}
	switch c := b[i]; c {
	case '{':
		obj := map[string]any{}
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == '}' {
			return obj, i + 1, true
		}
		for {
			if i >= len(b) || b[i] != '"' {
				return nil, i, false
			}
			kend := skipString(b, i)
			if kend < 0 {
				return nil, i, false
			}
			key, ok := fastString(b[i:kend])
			if !ok {
				return nil, i, false
			}
			i = skipWS(b, kend)
			if i >= len(b) || b[i] != ':' {
				return nil, i, false
			}
			v, next, ok := fast(b, skipWS(b, i+1), depth+1)
			if !ok {
				return nil, next, false
			}
			obj[key] = v // a repeated key: the last wins, as in Decode
			i = skipWS(b, next)
			if i >= len(b) {
				return nil, i, false
			}
			if b[i] == '}' {
				return obj, i + 1, true
			}
			if b[i] != ',' {
				return nil, i, false
			}
			i = skipWS(b, i+1)
		}
	case '[':
		list := []any{}
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == ']' {
			return list, i + 1, true
		}
		for {
			v, next, ok := fast(b, i, depth+1)
			if !ok {
				return nil, next, false
			}
			list = append(list, v)
			i = skipWS(b, next)
			if i >= len(b) {
				return nil, i, false
			}
			if b[i] == ']' {
				return list, i + 1, true
			}
			if b[i] != ',' {
				return nil, i, false
			}
			i = skipWS(b, i+1)
		}
	case '"':
		end := skipString(b, i)
		if end < 0 {
			return nil, i, false
		}
		s, ok := fastString(b[i:end])
		return s, end, ok
	case 't':
		return true, i + 4, bytes.HasPrefix(b[i:], []byte("true"))
	case 'f':
		return false, i + 5, bytes.HasPrefix(b[i:], []byte("false"))
	case 'n':
		return nil, i + 4, bytes.HasPrefix(b[i:], []byte("null"))
	default:
		end, ok := number(b, i)
		if !ok {
			return nil, i, false
		}
		return json.Number(b[i:end]), end, true
	}
}

// fastString is a JSON string's value when stringValue or unquote can be sure of it.
func fastString(raw []byte) (string, bool) {
	if s, ok := PlainString(raw); ok {
		return s, true
	}
	return unquote(raw)
}

// number returns the end of the JSON number at b[i:]: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func number(b []byte, i int) (int, bool) {
	digits := func(i int) int {
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(i)
	default:
		return i, false
	}
	if i < len(b) && b[i] == '.' {
		j := digits(i + 1)
		if j == i+1 {
			return i, false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(i)
		if j == i {
			return i, false
		}
		i = j
	}
	return i, true
}
