package record

import (
	"bufio"
	"encoding/json"
	"os"
	"reflect"
	"strconv"
	"testing"
)

// paths lists every path of a decoded value (objects' keys, arrays' indexes), with one that is
// missing at each level.
func paths(v any, prefix string, out *[]string) {
	join := func(k string) string {
		if prefix == "" {
			return k
		}
		return prefix + "." + k
	}
	switch x := v.(type) {
	case map[string]any:
		*out = append(*out, join("no_such_key"))
		for k, e := range x {
			*out = append(*out, join(k))
			paths(e, join(k), out)
		}
	case []any:
		*out = append(*out, join(strconv.Itoa(len(x))), join("-1"), join("x"))
		for i, e := range x {
			*out = append(*out, join(strconv.Itoa(i)))
			paths(e, join(strconv.Itoa(i)), out)
		}
	default:
		if prefix != "" {
			*out = append(*out, join("under_a_scalar"))
		}
	}
}

func sameAsDecode(t *testing.T, data []byte) int {
	t.Helper()
	m, err := Decode(data)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	var ps []string
	paths(m, "", &ps)
	l := NewLazy(data)
	for _, p := range ps {
		want, wok := Lookup(m, p)
		got, gok := l.Lookup(p)
		if wok != gok || !reflect.DeepEqual(got, want) {
			t.Fatalf("path %q: Lazy %v (%v), Lookup %v (%v)", p, got, gok, want, wok)
		}
	}
	return len(ps)
}

// On every path of the real records, and of JSON written to trip a scanner, Lazy answers what
// Lookup answers on the decoded record.
func TestLazyLookupAgreesWithDecode(t *testing.T) {
	f, err := os.Open("../../testdata/trials.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), 16<<20)
	n := 0
	for sc.Scan() {
		n += sameAsDecode(t, sc.Bytes())
	}
	if n < 10000 {
		t.Fatalf("only %d paths checked", n)
	}
	for _, tricky := range []string{
		`{"a":1,"a":{"b":2}}`,                                // a repeated key: the last wins
		`{"a\u0062":"x","c\"d":"y","e\\f":"z"}`,              // escaped keys
		`{"s":"caf\u00e9 \"q\" \\ \n","t":"` + "\xff" + `"}`, // escapes, invalid UTF-8 (replaced by the decoder)
		` { "a" : [ 1 , [ 2 , { "b" : null } ] , true , false , -1.5e3 ] , "z" : { } , "y" : [ ] } `,
		`{"n":12345678901234567890,"f":0.1,"e":1E-7}`,
		`{"deep":{"x":{"y":{"z":"{[\"]}"}}}}`, // brackets and quotes inside strings
	} {
		sameAsDecode(t, []byte(tricky))
	}
}

// JSON that is not whole makes Lazy fall back to the decoder, which finds nothing: never a panic
// or a wrong answer.
func TestLazyOnBrokenJSON(t *testing.T) {
	for _, broken := range []string{``, `[]`, `"x"`, `{"a":`, `{"a":"x`, `{"a":[1,2`, `{"a":{"b":1}`, `{"a" 1}`, `{"a":1 "b":2}`, `{"a":tru}`} {
		l := NewLazy([]byte(broken))
		for _, p := range []string{"a", "a.b", "a.0", "b"} {
			if v, ok := l.Lookup(p); ok {
				if _, err := Decode([]byte(broken)); err != nil {
					t.Errorf("%q: Lookup(%q) = %v though the record does not decode", broken, p, v)
				}
			}
		}
	}
}

func BenchmarkRecordLookup(b *testing.B) {
	data, err := os.ReadFile("../../testdata/trials.jsonl")
	if err != nil {
		b.Fatal(err)
	}
	line := data[:bytesIndexByte(data, '\n')]
	ps := []string{"protocolSection.identificationModule.briefTitle", "protocolSection.identificationModule.officialTitle",
		"protocolSection.conditionsModule.conditions", "protocolSection.armsInterventionsModule.interventions",
		"protocolSection.designModule.phases", "protocolSection.eligibilityModule.eligibilityCriteria"}
	b.Run("decode", func(b *testing.B) {
		for range b.N {
			m, _ := Decode(line)
			for _, p := range ps {
				Lookup(m, p)
			}
		}
	})
	b.Run("lazy", func(b *testing.B) {
		for range b.N {
			l := NewLazy(line)
			for _, p := range ps {
				l.Lookup(p)
			}
		}
	})
}

func bytesIndexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return len(b)
}

// unquote agrees with encoding/json on every string it takes, and leaves the rest to it.
func FuzzUnquote(f *testing.F) {
	for _, s := range []string{`"plain"`, `"a\"b\\c\/d\b\f\n\r\t"`, `"\u00e9\u2265\uD83D\uDE00"`, `"\uD83D"`, `"\uDE00x"`,
		`"\'"`, `"\x"`, `"` + "\xff" + `"`, `"` + "\x01" + `"`, `"\u12"`, `"\u12G4"`, `"é ≥ 😀"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
			return
		}
		got, ok := unquote(raw)
		if !ok {
			return
		}
		var want string
		if err := json.Unmarshal(raw, &want); err != nil {
			t.Fatalf("unquote(%q) = %q, but encoding/json refuses it: %v", raw, got, err)
		}
		if got != want {
			t.Fatalf("unquote(%q) = %q, encoding/json %q", raw, got, want)
		}
	})
}
