package record

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strconv"
	"testing"

	"github.com/trialcat/trialcat/internal/testkit"
)

// paths lists every path of a decoded value (objects' keys, arrays' indexes), with one that is
// missing at each level.
func paths(v any) []string {
	var out []string
	testkit.WalkJSON(v, func(p string, v any) {
		if p != "" {
			out = append(out, p)
		}
		switch x := v.(type) {
		case map[string]any:
			out = append(out, testkit.JoinPath(p, "no_such_key"))
		case []any:
			out = append(out, testkit.JoinPath(p, strconv.Itoa(len(x))), testkit.JoinPath(p, "-1"), testkit.JoinPath(p, "x"))
		default:
			if p != "" {
				out = append(out, testkit.JoinPath(p, "under_a_scalar"))
			}
		}
	})
	return out
}

func sameAsDecode(t *testing.T, data []byte) int {
	t.Helper()
	m, err := Decode(data)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	ps := paths(m)
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
	n := 0
	for _, rec := range testkit.SampleRecords(t) {
		n += sameAsDecode(t, rec)
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
	line := testkit.SampleRecords(b)[0]
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

// fastValue decodes what it takes as encoding/json does.
func FuzzFastValue(f *testing.F) {
	for _, s := range []string{`{"a":[1,-0.5e+3,true,false,null,"x\n"],"a":{}}`, `[]`, `{}`, `01`, `-`, `1.`, `1e`, `"\ud800"`,
		`[1,]`, `{"a" : 1 , "b" :[ ] }`, `tru`, `nul`, `[1 2]`, "\"\xff\"", `{"\u00e9":1}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, ok := fastValue(raw)
		if !ok {
			return
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var want any
		if err := dec.Decode(&want); err != nil || dec.InputOffset() != int64(len(raw)) {
			t.Fatalf("fastValue(%q) = %v, but encoding/json refuses it (%v)", raw, got, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("fastValue(%q) = %#v, encoding/json %#v", raw, got, want)
		}
	})
}
