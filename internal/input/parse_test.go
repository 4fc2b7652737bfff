package input

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf8"

	"github.com/trialcat/trialcat/internal/record"
)

// parse runs the parser over data and returns the compact value and, for an object, its ID.
// Small inputs are read one byte at a time, so that every token crosses a read boundary.
func parse(data []byte, idField string) (out []byte, id string, err error) {
	fields := Options{IDField: idField}.fields()
	var r io.Reader = bytes.NewReader(data)
	if len(data) < 4096 {
		r = iotest.OneByteReader(r)
	} else {
		r = &chunkReader{r: r, n: 997}
	}
	p := newParser(r, 0, fields)
	c, ok := p.skipWS()
	if ok && c == '{' {
		id, err = p.record()
	} else {
		_, err = p.value(0, 0)
	}
	if err == nil {
		err = p.rest("the value")
	}
	return p.out, id, err
}

// checkParse compares the parser with encoding/json and record.IDOf on data.
func checkParse(tb testing.TB, data []byte, idField string) {
	tb.Helper()
	out, id, err := parse(data, idField)
	var se *syntaxError
	if err != nil && !errors.As(err, &se) {
		tb.Fatalf("parse(%q): %v is not a syntax error", data, err)
	}
	valid := json.Valid(data) && utf8.Valid(data)
	if (err == nil) != valid {
		tb.Fatalf("parse(%q) error = %v, but json.Valid && utf8.Valid = %v", data, err, valid)
	}
	if !valid {
		if se.off < 0 || se.off > int64(len(data)) {
			tb.Fatalf("parse(%q): error offset %d outside the input", data, se.off)
		}
		return
	}
	var want bytes.Buffer
	if err := json.Compact(&want, data); err != nil {
		tb.Fatal(err)
	}
	if !bytes.Equal(out, want.Bytes()) {
		tb.Fatalf("parse(%q) = %q, json.Compact = %q", data, out, want.Bytes())
	}
	m, err := record.Decode(data)
	if err != nil {
		return // not an object
	}
	if wantID := record.IDOf(m, idField); id != wantID {
		tb.Fatalf("parse(%q) ID with field %q = %q, record.IDOf = %q", data, idField, id, wantID)
	}
}

// parseSeeds are inputs that exercise the grammar and the ID rules.
var parseSeeds = []struct {
	data    string
	idField string
}{
	{`{}`, ""},
	{` { "a" : [ 1 , -2.5e+3 , 0 , true , false , null , "x" ] } `, ""},
	{`{"nct_id":"A","nctId":"B"}`, ""},
	{`{"nctId":"B","nct_id":"A"}`, ""},
	{`{"nct_id":"  ","nctId":"B"}`, ""},
	{`{"nct_id":null,"nctId":"B"}`, ""},
	{`{"nct_id":{"x":1},"NCTId":7}`, ""},
	{`{"nct_id":"A","nct_id":"B"}`, ""},
	{`{"nct_id":"A","nct_id":[1]}`, ""},
	{`{"protocolSection":{"identificationModule":{"nctId":"N1"}},"protocolSection":{"x":1}}`, ""},
	{`{"protocolSection":{"identificationModule":{"nctId":"N1","nctId":"N2"}}}`, ""},
	{`{"protocolSection":{"identificationModule":{"nctId":" \t\u00a0N1\n"}}}`, ""},
	{`{"n\u0063t_id":"esc\"aped\\"}`, ""},
	{`{"nct_id":"\ud800"}`, ""},
	{`{"nct_id":1.0e-5}`, ""},
	{`{"nct_id":-0}`, ""},
	{`{"a":[{"b":"x"},{"b":"y"}]}`, "a.1.b"},
	{`{"a":[{"b":"x"},{"b":"y"}]}`, "a.01.b"},
	{`{"a":[{"b":"x"},{"b":"y"}]}`, "a.+1.b"},
	{`{"a":{"1":{"b":"z"}}}`, "a.1.b"},
	{`{"a":[[5]]}`, "a.0.0"},
	{`{"a":[[5]]}`, "a.0"},
	{`{"a":"é😀\u2028"}`, "a"},
	{`{"":{"":"e"}}`, "."},
	{`[1,[2,{"a":[]}]]`, ""},
	{`"str"`, ""},
	{`123`, ""},
	// Invalid.
	{``, ""},
	{`{`, ""},
	{`{"a"}`, ""},
	{`{"a":}`, ""},
	{`{"a":1,}`, ""},
	{`[1,]`, ""},
	{`[1 2]`, ""},
	{`01`, ""},
	{`1.`, ""},
	{`1e`, ""},
	{`-`, ""},
	{`.5`, ""},
	{`+1`, ""},
	{`tru`, ""},
	{`nul`, ""},
	{`"\x"`, ""},
	{`"\u12G4"`, ""},
	{`"\u12`, ""},
	{"\"a\tb\"", ""},
	{"\"caf\xe9\"", ""},
	{"\"\xed\xa0\x80\"", ""}, // an encoded surrogate
	{"{\"a\":1}\xff", ""},
	{`{} {}`, ""},
	{`{"a":1}}`, ""},
	{`'a'`, ""},
}

func TestParseMatchesEncodingJSON(t *testing.T) {
	for _, s := range parseSeeds {
		checkParse(t, []byte(s.data), s.idField)
	}
	for i, l := range trials(t) {
		checkParse(t, l, "")
		if i < 10 {
			checkParse(t, l, "protocolSection.conditionsModule.conditions.0")
			checkParse(t, l, "protocolSection.statusModule")
		}
		var pretty bytes.Buffer
		json.Indent(&pretty, l, "", "\t")
		checkParse(t, pretty.Bytes(), "")
	}
}

func TestParseDepthLimit(t *testing.T) {
	deep := strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1)
	_, _, err := parse([]byte(deep), "")
	var se *syntaxError
	if !errors.As(err, &se) || !strings.Contains(se.msg, "nested deeper") {
		t.Errorf("parse(%d nested arrays) = %v, want a nesting error", maxDepth+1, err)
	}
	ok := strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth)
	if _, _, err := parse([]byte(ok), ""); err != nil {
		t.Errorf("parse(%d nested arrays) = %v", maxDepth, err)
	}
}

func TestParseReadError(t *testing.T) {
	boom := errors.New("disk on fire")
	p := newParser(&failAfter{data: []byte(`{"nct_id":"A"}`), n: 4, err: boom}, 0, record.DefaultIDFields)
	p.skipWS()
	if _, err := p.record(); !errors.Is(err, boom) {
		t.Errorf("record() = %v, want the read error", err)
	}
}

// chunkReader reads at most n bytes at a time.
type chunkReader struct {
	r io.Reader
	n int
}

func (c *chunkReader) Read(b []byte) (int, error) { return c.r.Read(b[:min(len(b), c.n)]) }

// failAfter returns n bytes of data, then err.
type failAfter struct {
	data []byte
	n    int
	err  error
}

func (f *failAfter) Read(b []byte) (int, error) {
	if f.n == 0 {
		return 0, f.err
	}
	k := copy(b, f.data[:f.n])
	f.data, f.n = f.data[k:], f.n-k
	return k, nil
}

func FuzzParse(f *testing.F) {
	for _, s := range parseSeeds {
		f.Add([]byte(s.data), s.idField)
	}
	f.Fuzz(func(t *testing.T, data []byte, idField string) {
		if strings.Contains("."+idField+".", "..") && idField != "" {
			return // Options.check refuses these
		}
		checkParse(t, data, idField)
	})
}

// plainRun finds the first byte a string needs attention at, as the byte table does, wherever
// it sits in an eight-byte word.
func TestPlainRun(t *testing.T) {
	special := []byte{'"', '\\', 0x00, 0x1F, 0x7F + 1, 0xC3, 0xFF, '\n'}
	for n := 0; n <= 20; n++ {
		for at := 0; at <= n; at++ {
			for _, c := range special {
				b := []byte(strings.Repeat("a ~!#", 5)[:n])
				want := n
				if at < n {
					b[at], want = c, at
				}
				if got := plainRun(b); got != want {
					t.Fatalf("plainRun(%q) = %d, want %d", b, got, want)
				}
			}
		}
	}
}
