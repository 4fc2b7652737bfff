package taxonomy

import (
	"bufio"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/trialcat/trialcat/internal/prompt"
	"github.com/trialcat/trialcat/internal/record"
	"github.com/trialcat/trialcat/internal/schema"
)

const samplePath = "../../testdata/trials.jsonl"

// readSample reads the bundled sample of real records.
func readSample(t testing.TB) []record.Record {
	t.Helper()
	f, err := os.Open(samplePath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var recs []record.Record
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), 16<<20)
	for sc.Scan() {
		line := append([]byte(nil), sc.Bytes()...)
		m, err := record.Decode(line)
		if err != nil {
			t.Fatalf("%s line %d: %v", samplePath, len(recs)+1, err)
		}
		recs = append(recs, record.Record{Index: int64(len(recs)), ID: record.IDOf(m, ""), Data: line})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(recs) != 100 {
		t.Fatalf("%s has %d records, want 100", samplePath, len(recs))
	}
	return recs
}

func TestSchemaParses(t *testing.T) {
	s := MustSchema()
	if s.Name != "clinical_trial_categorization" {
		t.Errorf("Name = %q", s.Name)
	}
	want := []string{"therapeutic_area", "intervention_type", "trial_purpose", "population", "eligibility_complexity", "rationale"}
	if got := s.Columns(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("Columns = %v, want %v", got, want)
	}
	if strings.Join(s.Required, ",") != strings.Join(want, ",") {
		t.Errorf("Required = %v, want all of %v", s.Required, want)
	}
	for _, p := range s.Properties {
		if p.Name == "rationale" {
			if p.Type != schema.TypeString || p.MaxLength == 0 {
				t.Errorf("rationale = %+v, want a string with maxLength", p)
			}
			continue
		}
		if len(p.Enum) == 0 || p.Enum[len(p.Enum)-1] == "" {
			t.Errorf("%s has no enum", p.Name)
		}
	}
	// Schema returns a copy: changing it must not change the embedded schema.
	b := Schema()
	b[0] = 'x'
	if MustSchema() == nil || Schema()[0] != '{' {
		t.Error("Schema() does not return a copy")
	}
}

// Every value must be explained to the model and to the user.
func TestEveryValueDocumented(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := prompt.Parse("prompt.tmpl", Prompt())
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := tmpl.Render(record.Record{ID: "X", Data: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range MustSchema().Properties {
		if !strings.Contains(msgs.System, "\n"+p.Name+":") {
			t.Errorf("the system prompt does not explain field %s", p.Name)
		}
		for _, v := range p.Enum {
			if !strings.Contains(msgs.System, "\n- "+v+": ") {
				t.Errorf("the system prompt does not explain %s value %q as a line \"- %s: ...\"", p.Name, v, v)
			}
			if !regexp.MustCompile("(?m)^\\| `" + regexp.QuoteMeta(v) + "` \\|").Match(readme) {
				t.Errorf("README.md has no table row for %s value `%s`", p.Name, v)
			}
		}
	}
}

func TestPromptRendersEverySampleRecord(t *testing.T) {
	tmpl, err := prompt.Parse("prompt.tmpl", Prompt())
	if err != nil {
		t.Fatal(err)
	}
	var system string
	for _, rec := range readSample(t) {
		msgs, err := tmpl.Render(rec)
		if err != nil {
			t.Errorf("record %s: %v", rec.ID, err)
			continue
		}
		if system == "" {
			system = msgs.System
		} else if msgs.System != system {
			t.Errorf("record %s: the system message changes with the record; it must be static to be cached", rec.ID)
		}
		if !strings.HasPrefix(msgs.User, "Record ID: "+rec.ID+"\n") {
			t.Errorf("record %s: user message does not start with the Record ID line: %.60q", rec.ID, msgs.User)
		}
		m, err := record.Decode(rec.Data)
		if err != nil {
			t.Fatal(err)
		}
		for _, path := range []string{"protocolSection.identificationModule.briefTitle", "protocolSection.conditionsModule.conditions.0", "protocolSection.designModule.studyType"} {
			if v, ok := record.Lookup(m, path); ok && !strings.Contains(msgs.User, v.(string)) {
				t.Errorf("record %s: user message lacks %s %q", rec.ID, path, v)
			}
		}
		if crit, ok := record.Lookup(m, "protocolSection.eligibilityModule.eligibilityCriteria"); ok {
			first := strings.SplitN(crit.(string), "\n", 2)[0]
			if !strings.Contains(msgs.User, first) {
				t.Errorf("record %s: user message lacks the eligibility criteria", rec.ID)
			}
		}
		for _, bad := range []string{"<no value>", "map[", "contactsLocationsModule", "geoPoint"} {
			if strings.Contains(msgs.User, bad) {
				t.Errorf("record %s: user message contains %q", rec.ID, bad)
			}
		}
		if len(msgs.User) > len(rec.Data) && len(rec.Data) > 20000 {
			t.Errorf("record %s: user message (%d bytes) is not smaller than the raw record", rec.ID, len(msgs.User))
		}
	}
}

func TestPromptRendersFlatRecords(t *testing.T) {
	tmpl, err := prompt.Parse("prompt.tmpl", Prompt())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		data string
		want []string
	}{
		{
			name: "minimal",
			data: `{"nct_id":"X1","title":"Inhaled steroid in adults","conditions":["Asthma"]}`,
			want: []string{"Record ID: X1\n", "Title: Inhaled steroid in adults", "Conditions: Asthma"},
		},
		{
			name: "csv-like strings",
			data: `{"nct_id":"X2","title":"T","conditions":"COPD","intervention_type":"Drug","phase":"Phase 2","study_type":"Interventional","min_age":"18 Years","eligibility":"Inclusion: adults","healthy_volunteers":"No"}`,
			want: []string{"Conditions: COPD", "Intervention types: Drug", "Phases: Phase 2", "Study type: Interventional", "Minimum age: 18 Years", "Eligibility criteria:\nInclusion: adults"},
		},
		{
			name: "nothing but an id",
			data: `{"nct_id":"X3"}`,
			want: []string{"Record ID: X3\n"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := record.Decode([]byte(tt.data))
			if err != nil {
				t.Fatal(err)
			}
			msgs, err := tmpl.Render(record.Record{ID: record.IDOf(m, ""), Data: []byte(tt.data)})
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(msgs.User, w) {
					t.Errorf("user message lacks %q:\n%s", w, msgs.User)
				}
			}
			if strings.Contains(msgs.User, "<no value>") {
				t.Errorf("user message contains <no value>:\n%s", msgs.User)
			}
		})
	}
}

// Every value of every enum field of the default schema has its meaning in the default prompt, so
// an agent's lookup_category can serve it; and the agent's template renders.
func TestDefinitionsCoverTheSchema(t *testing.T) {
	defs := Definitions()
	for _, p := range MustSchema().Properties {
		d, ok := defs[p.Name]
		if !ok {
			t.Fatalf("no definition of %s in prompt.tmpl", p.Name)
		}
		if d.Summary == "" {
			t.Errorf("%s: empty summary", p.Name)
		}
		got := map[string]bool{}
		for _, v := range d.Values {
			got[v.Name] = true
			if v.Meaning == "" {
				t.Errorf("%s=%s: empty meaning", p.Name, v.Name)
			}
		}
		for _, e := range p.Enum {
			if !got[e] {
				t.Errorf("%s: value %s has no meaning in prompt.tmpl", p.Name, e)
			}
		}
		if len(d.Values) != len(p.Enum) {
			t.Errorf("%s: %d values defined, the schema has %d", p.Name, len(d.Values), len(p.Enum))
		}
	}
	if r := defs["therapeutic_area"].Rules; len(r) == 0 || !strings.Contains(r[0], "Cancer wins") {
		t.Errorf("therapeutic_area rules = %q", r)
	}
}
