package prompt

import (
	"reflect"
	"testing"

	"github.com/trialcat/trialcat/internal/record"
	"github.com/trialcat/trialcat/internal/testkit"
)

// list answers what toList answers on the decoded value, for every array (and a few other
// paths) of the sample records, and for arrays written to trip it.
func TestListAgreesWithTheDecodedRecord(t *testing.T) {
	check := func(data []byte) int {
		m, err := record.Decode(data)
		if err != nil {
			t.Fatal(err)
		}
		var ps []string
		testkit.WalkJSON(m, func(p string, v any) {
			if _, ok := v.([]any); ok {
				ps = append(ps, p)
			}
		})
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
	n := 0
	for _, rec := range testkit.SampleRecords(t) {
		n += check(rec)
	}
	if n < 1000 {
		t.Fatalf("only %d paths checked", n)
	}
	check([]byte(`{"a":[{"name":"x"},{"name":null},{"other":1},{"name":{"k":[1]}},"s","",3,true,null,[1,"2"],{"name":"y","name":"z"}],"b":[],"c":"one"}`))
}
