package record

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Lazy answers Lookup on a record's JSON without decoding all of it: each object on a path is
// indexed once (its members' spans, found by skipping their values), and only the value found is
// decoded. Its answers are those of Lookup on Decode's map, keys repeated in an object included
// (the last wins); JSON it does not follow is decoded whole and looked up the slow way. A Lazy is
// for one goroutine.
type Lazy struct {
	data []byte
	// objects indexes each object visited by its offset: member name to its value's span.
	objects map[int]map[string]span
	full    map[string]any
	fullErr error
	decoded bool
	// tape, once taped, holds every container's end (nil for a small or unbalanced record).
	tape  *tape
	taped bool
}

type span struct{ start, end int }

// NewLazy returns a Lazy over data, which it does not copy.
func NewLazy(data []byte) *Lazy { return &Lazy{data: data} }

// Map is the whole record decoded (Decode), once.
func (l *Lazy) Map() (map[string]any, error) {
	if !l.decoded {
		l.full, l.fullErr = Decode(l.data)
		l.decoded = true
	}
	return l.full, l.fullErr
}

// IsObject reports whether the record's JSON starts as an object (Decode's first check).
func (l *Lazy) IsObject() bool {
	i := skipWS(l.data, 0)
	return i < len(l.data) && l.data[i] == '{'
}

// Lookup is Lookup(Decode(data), path) without the decoding of what the path does not reach.
func (l *Lazy) Lookup(path string) (any, bool) {
	v, ok, sure := l.lookup(path)
	if sure {
		return v, ok
	}
	m, err := l.Map()
	if err != nil {
		return nil, false
	}
	return Lookup(m, path)
}

// lookup walks the raw JSON; sure is false when it met something it does not follow.
func (l *Lazy) lookup(path string) (v any, found, sure bool) {
	start, end, found, sure := l.span(path)
	if !found || !sure {
		return nil, found, sure
	}
	val, ok := decodeValue(l.data[start:end])
	return val, ok, ok
}

// span finds the value at path in the raw JSON; sure is false when it met something it does not
// follow.
func (l *Lazy) span(path string) (start, end int, found, sure bool) {
	b := l.data
	cur := skipWS(b, 0)
	if cur >= len(b) || b[cur] != '{' {
		return 0, 0, false, false
	}
	end = -1
	for rest := path; ; {
		seg, more, _ := strings.Cut(rest, ".")
		switch b[cur] {
		case '{':
			members, ok := l.members(cur)
			if !ok {
				return 0, 0, false, false
			}
			sp, ok := members[seg]
			if !ok {
				return 0, 0, false, true
			}
			cur, end = sp.start, sp.end
		case '[':
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 {
				return 0, 0, false, true
			}
			s, e, ok, sure := l.element(cur, i)
			if !sure {
				return 0, 0, false, false
			}
			if !ok {
				return 0, 0, false, true
			}
			cur, end = s, e
		default:
			return 0, 0, false, true // a path through a string, number, boolean or null
		}
		if !strings.Contains(rest, ".") {
			break
		}
		rest = more
	}
	return cur, end, true, true
}

// members indexes the object at offset at.
func (l *Lazy) members(at int) (map[string]span, bool) {
	if m, ok := l.objects[at]; ok {
		return m, true
	}
	b := l.data
	m := map[string]span{}
	i := skipWS(b, at+1)
	if i < len(b) && b[i] == '}' {
		l.remember(at, m)
		return m, true
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return nil, false
		}
		kend := skipString(b, i)
		if kend < 0 {
			return nil, false
		}
		key, ok := PlainString(b[i:kend])
		if !ok {
			return nil, false
		}
		i = skipWS(b, kend)
		if i >= len(b) || b[i] != ':' {
			return nil, false
		}
		vs := skipWS(b, i+1)
		ve := l.skip(vs)
		if ve < 0 {
			return nil, false
		}
		m[key] = span{vs, ve} // a repeated key: the last wins, as in Decode
		i = skipWS(b, ve)
		if i >= len(b) {
			return nil, false
		}
		if b[i] == '}' {
			l.remember(at, m)
			return m, true
		}
		if b[i] != ',' {
			return nil, false
		}
		i = skipWS(b, i+1)
	}
}

func (l *Lazy) remember(at int, m map[string]span) {
	if l.objects == nil {
		l.objects = map[int]map[string]span{}
	}
	l.objects[at] = m
}

// element finds element n of the array at offset at.
func (l *Lazy) element(at, n int) (start, end int, found, sure bool) {
	b := l.data
	i := skipWS(b, at+1)
	if i < len(b) && b[i] == ']' {
		return 0, 0, false, true
	}
	for k := 0; ; k++ {
		e := l.skip(i)
		if e < 0 {
			return 0, 0, false, false
		}
		if k == n {
			return i, e, true, true
		}
		i = skipWS(b, e)
		if i >= len(b) {
			return 0, 0, false, false
		}
		if b[i] == ']' {
			return 0, 0, false, true
		}
		if b[i] != ',' {
			return 0, 0, false, false
		}
		i = skipWS(b, i+1)
	}
}

// decodeValue decodes one JSON value as Decode would (numbers as json.Number); a plain string is
// taken without the decoder.
func decodeValue(raw []byte) (any, bool) {
	if s, ok := PlainString(raw); ok {
		return s, true
	}
	if v, ok := fastValue(raw); ok {
		return v, true
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, false
		}
		return s, true
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil || dec.InputOffset() != int64(len(raw)) {
		return nil, false // not one whole value ("01" decodes as 0 and leaves the 1)
	}
	return v, true
}

// PlainString is a JSON string's value when it needs no decoding: no escapes, no control
// characters, valid UTF-8 (the decoder replaces invalid bytes, so those go through it); ok is
// false for any other JSON, which encoding/json then decodes.
func PlainString(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	in := raw[1 : len(raw)-1]
	for _, c := range in {
		if c == '\\' || c == '"' || c < 0x20 {
			return "", false
		}
	}
	if !utf8.Valid(in) {
		return "", false
	}
	return string(in), true
}

// unquote decodes a JSON string whose escapes are the common ones (\" \\ \/ \b \f \n \r \t,
// \uXXXX outside the surrogates or as a whole surrogate pair) and whose bytes are valid UTF-8; ok
// is false for anything else, which the decoder then takes (its answers are the reference).
func unquote(raw []byte) (string, bool) {
	in := raw[1 : len(raw)-1]
	if !utf8.Valid(in) {
		return "", false
	}
	out := make([]byte, 0, len(in))
	for i := 0; i < len(in); {
		c := in[i]
		switch {
		case c == '"' || c < 0x20:
			return "", false
		case c != '\\':
			j := i + 1
			for j < len(in) && in[j] != '\\' && in[j] != '"' && in[j] >= 0x20 {
				j++
			}
			out = append(out, in[i:j]...)
			i = j
			continue
		}
		if i+1 >= len(in) {
			return "", false
		}
		switch e := in[i+1]; e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := hex4(in, i+2)
			if !ok {
				return "", false
			}
			i += 6
			if utf16.IsSurrogate(r) {
				if i+6 > len(in) || in[i] != '\\' || in[i+1] != 'u' {
					return "", false
				}
				r2, ok := hex4(in, i+2)
				if !ok {
					return "", false
				}
				if r = utf16.DecodeRune(r, r2); r == utf8.RuneError {
					return "", false
				}
				i += 6
			}
			out = utf8.AppendRune(out, r)
			continue
		default:
			return "", false
		}
		i += 2
	}
	return string(out), true
}

// hex4 reads the four hex digits at in[i:].
func hex4(in []byte, i int) (rune, bool) {
	if i+4 > len(in) {
		return 0, false
	}
	var r rune
	for _, c := range in[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the offset after the string starting at i, or -1.
func skipString(b []byte, i int) int {
	for i++; i < len(b); {
		q := bytes.IndexByte(b[i:], '"')
		if q < 0 {
			return -1
		}
		q += i
		// The quote ends the string unless an odd run of backslashes escapes it.
		n := 0
		for k := q - 1; k >= i && b[k] == '\\'; k-- {
			n++
		}
		if n%2 == 0 {
			return q + 1
		}
		i = q + 1
	}
	return -1
}

// structural marks the bytes a container's skip stops at: a string's start and the brackets.
var structural = [256]bool{'"': true, '{': true, '}': true, '[': true, ']': true}

// skipValue returns the offset after the value starting at i, or -1 when there is none whole.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			for i < len(b) && !structural[b[i]] {
				i++
			}
			if i >= len(b) {
				return -1
			}
			switch b[i] {
			case '"':
				j := skipString(b, i)
				if j < 0 {
					return -1
				}
				i = j
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return -1
	}
	j := i
	for j < len(b) && !strings.ContainsRune(",}] \t\r\n", rune(b[j])) {
		j++
	}
	if j == i {
		return -1
	}
	return j
}

// Names is what a list of named things needs from the array at path, without decoding the rest
// of its objects: each element decoded as Lookup would, except that an object element is only its
// "name" member (named false when it has none). isArray is false when path holds something else
// (or nothing: found false); the caller then looks it up whole.
func (l *Lazy) Names(path string) (items []Named, isArray, found bool) {
	start, end, found, sure := l.span(path)
	if !sure {
		return l.namesSlow(path)
	}
	if !found {
		return nil, false, false
	}
	b := l.data
	if b[start] != '[' {
		return nil, false, true
	}
	i := skipWS(b, start+1)
	if i < end && b[i] == ']' {
		return []Named{}, true, true
	}
	for {
		e := l.skip(i)
		if e < 0 || e > end {
			return l.namesSlow(path)
		}
		item, ok := l.named(i, e)
		if !ok {
			return l.namesSlow(path)
		}
		items = append(items, item)
		i = skipWS(b, e)
		if i >= end {
			return l.namesSlow(path)
		}
		if b[i] == ']' {
			return items, true, true
		}
		if b[i] != ',' {
			return l.namesSlow(path)
		}
		i = skipWS(b, i+1)
	}
}

// Named is one element of Names.
type Named struct {
	// Value is the element (for an object: its "name" member, nil when named is false).
	Value any
	// Object says the element is an object; Named that it has a "name" member.
	Object, Named bool
}

// named reads the element at b[s:e].
func (l *Lazy) named(s, e int) (Named, bool) {
	if l.data[s] != '{' {
		v, ok := decodeValue(l.data[s:e])
		return Named{Value: v}, ok
	}
	members, ok := l.members(s)
	if !ok {
		return Named{}, false
	}
	sp, ok := members["name"]
	if !ok {
		return Named{Object: true}, true
	}
	v, ok := decodeValue(l.data[sp.start:sp.end])
	return Named{Value: v, Object: true, Named: true}, ok
}

func (l *Lazy) namesSlow(path string) ([]Named, bool, bool) {
	v, ok := l.Lookup(path)
	return fromDecoded(v), isArrayValue(v), ok
}

func isArrayValue(v any) bool {
	_, ok := v.([]any)
	return ok
}

// fromDecoded is Names of a decoded value.
func fromDecoded(v any) []Named {
	arr, ok := v.([]any)
	if !ok {
		return nil
	}
	out := make([]Named, 0, len(arr))
	for _, e := range arr {
		if m, ok := e.(map[string]any); ok {
			name, has := m["name"]
			out = append(out, Named{Value: name, Object: true, Named: has})
			continue
		}
		out = append(out, Named{Value: e})
	}
	return out
}

// Member is one key and value of a JSON object, in the object's order (DecodeOrdered).
type Member struct {
	Key   string
	Value any // an object ([]Member), []any, string, json.Number, bool or nil
}

// DecodeOrdered decodes JSON keeping each object's members in order: objects as []Member, arrays
// as []any, numbers as json.Number. Scalars go through the decoder (or unquote), so what it
// accepts is what encoding/json accepts.
func DecodeOrdered(data []byte) (any, error) {
	v, i, err := ordered(data, skipWS(data, 0), 0)
	if err != nil {
		return nil, err
	}
	if skipWS(data, i) != len(data) {
		return nil, fmt.Errorf("invalid character after the top-level value at offset %d", i)
	}
	return v, nil
}

// maxDepth bounds DecodeOrdered's nesting, as encoding/json's does.
const maxDepth = 10000

func ordered(b []byte, i, depth int) (any, int, error) {
	if depth > maxDepth {
		return nil, i, fmt.Errorf("exceeded max depth")
	}
	if i >= len(b) {
		return nil, i, io.ErrUnexpectedEOF
	}
	switch b[i] {
	case '{':
		obj := []Member{}
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == '}' {
			return obj, i + 1, nil
		}
		for {
			if i >= len(b) || b[i] != '"' {
				return nil, i, fmt.Errorf("expected a key at offset %d", i)
			}
			kend := skipString(b, i)
			if kend < 0 {
				return nil, i, io.ErrUnexpectedEOF
			}
			key, ok := decodeValue(b[i:kend])
			ks, isStr := key.(string)
			if !ok || !isStr {
				return nil, i, fmt.Errorf("invalid key at offset %d", i)
			}
			i = skipWS(b, kend)
			if i >= len(b) || b[i] != ':' {
				return nil, i, fmt.Errorf("expected ':' at offset %d", i)
			}
			v, next, err := ordered(b, skipWS(b, i+1), depth+1)
			if err != nil {
				return nil, next, err
			}
			obj = append(obj, Member{Key: ks, Value: v})
			i = skipWS(b, next)
			if i >= len(b) {
				return nil, i, io.ErrUnexpectedEOF
			}
			if b[i] == '}' {
				return obj, i + 1, nil
			}
			if b[i] != ',' {
				return nil, i, fmt.Errorf("expected ',' or '}' at offset %d", i)
			}
			i = skipWS(b, i+1)
		}
	case '[':
		list := []any{}
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == ']' {
			return list, i + 1, nil
		}
		for {
			v, next, err := ordered(b, i, depth+1)
			if err != nil {
				return nil, next, err
			}
			list = append(list, v)
			i = skipWS(b, next)
			if i >= len(b) {
				return nil, i, io.ErrUnexpectedEOF
			}
			if b[i] == ']' {
				return list, i + 1, nil
			}
			if b[i] != ',' {
				return nil, i, fmt.Errorf("expected ',' or ']' at offset %d", i)
			}
			i = skipWS(b, i+1)
		}
	}
	end := skipValue(b, i)
	if end < 0 {
		return nil, i, io.ErrUnexpectedEOF
	}
	v, ok := decodeValue(b[i:end])
	if !ok {
		return nil, i, fmt.Errorf("invalid value at offset %d", i)
	}
	return v, end, nil
}
