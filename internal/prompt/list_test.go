package prompt

import (
	"bufio"
	"os"
	"reflect"
	"strconv"
	"testing"

	"github.com/trialcat/trialcat/internal/record"
)

// arrayPaths lists the paths of every array in a decoded value.
func arrayPaths(v any, prefix string, out *[]string) {
	join := func(k string) string {
		if prefix == "" {
			return k
		}
		return prefix + "." + k
	}
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			arrayPaths(e, join(k), out)
		}
	case []any:
		*out = append(*out, prefix)
		for i, e := range x {
			arrayPaths(e, join(strconv.Itoa(i)), out)
		}
	}
}

// list answers what toList answers on the decoded value, for every array (and a few other
// paths) of the sample records, and for arrays written to trip it.
func TestListAgreesWithTheDecodedRecord(t *testing.T) {
	check := func(data []byte) int {
		m, err := record.Decode(data)
		if err != nil {
			t.Fatal(err)
		}
		var ps []string
		arrayPaths(m, "", &ps)
		ps = append(ps, "no_such_field", "protocolSection.identificationModule.briefTitle", "protocolSection", "protocolSection.conditionsModule.conditions.0")
		lazy := record.NewLazy(data)
		for _, p := range ps {
			v, _ := record.Lookup(m, p)
			want := toList(v)
			if got := list(lazy, p); !reflect.DeepEqual(got, want) && !(len(got) == 0 && len(want) == 0) {
				t.Fatalf("list(%q) = %q, toList = %q", p, got, want)
			}
		}
		return len(ps)
	}
	f, err := os.Open("../../testdata/trials.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), 16<<20)
	n := 0
	for sc.Scan() {
		n += check(sc.Bytes())
	}
	if n < 1000 {
		t.Fatalf("only %d paths checked", n)
	}
	check([]byte(`{"a":[{"name":"x"},{"name":null},{"other":1},{"name":{"k":[1]}},"s","",3,true,null,[1,"2"],{"name":"y","name":"z"}],"b":[],"c":"one"}`))
}
