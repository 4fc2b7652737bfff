package agent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"testing"

	"github.com/trialcat/trialcat/internal/record"
	"github.com/trialcat/trialcat/internal/testkit"
)

// tokenOrdered is the decoder's Token API walked into ordered members: the reference that
// record.DecodeOrdered must agree with.
func tokenOrdered(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		if err == io.EOF {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			var obj []member
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				key, _ := kt.(string)
				v, err := tokenOrdered(dec)
				if err != nil {
					return nil, err
				}
				obj = append(obj, member{Key: key, Value: v})
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			if obj == nil {
				obj = []member{}
			}
			return obj, nil
		case '[':
			list := []any{}
			for dec.More() {
				v, err := tokenOrdered(dec)
				if err != nil {
					return nil, err
				}
				list = append(list, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return list, nil
		}
		return nil, fmt.Errorf("unexpected %v", t)
	}
	return tok, nil
}

func tokenDecode(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := tokenOrdered(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("data after the value")
	}
	return v, nil
}

// The ordered decoding the sections are cut from equals the Token API's, on the sample records
// and on JSON written to trip it; what the decoder refuses, it refuses.
func TestDecodeOrderedAgreesWithTheTokenAPI(t *testing.T) {
	inputs := testkit.SampleRecords(t)
	for _, s := range []string{`{"a":1,"a":{"b":[1,2.5e3,"x\u00e9",true,null,{}]},"c\"d":[]}`, ` { "k" : [ [ ] , { } ] } `, `[1,"two"]`, `"s"`, `12`} {
		inputs = append(inputs, []byte(s))
	}
	for i, in := range inputs {
		want, werr := tokenDecode(in)
		got, gerr := record.DecodeOrdered(in)
		if (werr != nil) != (gerr != nil) || !reflect.DeepEqual(got, want) {
			t.Fatalf("input %d: DecodeOrdered %v (%v), Token API %v (%v)", i, got, gerr, want, werr)
		}
	}
	for _, bad := range []string{``, `{`, `{"a":}`, `{"a" 1}`, `[1,]`, `{"a":tru}`, `{"a":1}x`, `[1 2]`, `{"a":"x}`, `{1:2}`, `01`, `"\x"`} {
		if _, err := record.DecodeOrdered([]byte(bad)); err == nil {
			t.Errorf("DecodeOrdered(%q) accepted what the decoder refuses", bad)
		}
	}
}
