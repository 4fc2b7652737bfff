package worker

import (
	"bufio"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/trialcat/trialcat/internal/offline"
	"github.com/trialcat/trialcat/internal/record"
	"github.com/trialcat/trialcat/internal/runspec"
	"github.com/trialcat/trialcat/internal/taxonomy"
)

// An answer is doubtful when a voted field is below --confidence, or when a field contradicts
// what the record states itself; an answer that agrees with the record and is confident is not.
func TestDoubtful(t *testing.T) {
	f, err := os.Open("../../testdata/trials.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	sc.Scan()
	data := append([]byte(nil), sc.Bytes()...)
	rec := record.Record{ID: "x", Data: data}
	sch := taxonomy.MustSchema()
	r := &runner{schema: sch, spec: &runspec.Spec{Confidence: 0.6}}
	reg, err := offline.FromRegistry(data)
	if err != nil {
		t.Fatal(err)
	}
	cols := sch.Columns()
	cells := make([]string, len(cols))
	for i, c := range cols {
		if v, ok := reg[c]; ok && v != "unknown" {
			cells[i] = v
		} else if p := sch.Properties[i]; len(p.Enum) > 0 {
			cells[i] = p.Enum[0]
		}
	}
	if why := r.doubtful(rec, cells, map[string]float64{"therapeutic_area": 1}); why != "" {
		t.Errorf("an answer that agrees with the record is doubtful: %s", why)
	}
	if why := r.doubtful(rec, cells, map[string]float64{"therapeutic_area": 0.34}); !strings.Contains(why, "therapeutic_area confidence 0.34 below 0.60") {
		t.Errorf("a low confidence: %q", why)
	}
	i := slices.Index(cols, "intervention_type")
	other := "behavioral"
	if cells[i] == other {
		other = "device"
	}
	cells[i] = other
	if why := r.doubtful(rec, cells, nil); !strings.Contains(why, "intervention_type "+other+" contradicts the record's own "+reg["intervention_type"]) {
		t.Errorf("a contradiction: %q (the registry says %v)", why, reg)
	}
}
