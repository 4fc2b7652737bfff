package offline

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/trialcat/trialcat/internal/record"
	"github.com/trialcat/trialcat/internal/taxonomy"
)

const samplePath = "../../testdata/trials.jsonl"

type sampleRecord struct {
	id   string
	data json.RawMessage
	m    map[string]any
}

func readSample(t testing.TB) []sampleRecord {
	t.Helper()
	f, err := os.Open(samplePath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var recs []sampleRecord
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), 16<<20)
	for sc.Scan() {
		line := append([]byte(nil), sc.Bytes()...)
		m, err := record.Decode(line)
		if err != nil {
			t.Fatalf("%s line %d: %v", samplePath, len(recs)+1, err)
		}
		recs = append(recs, sampleRecord{id: record.IDOf(m, ""), data: line, m: m})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(recs) != 100 {
		t.Fatalf("%s: %d records, want 100", samplePath, len(recs))
	}
	return recs
}

// categorize runs Categorize and checks the answer against the default schema.
func categorize(t testing.TB, id string, data []byte) map[string]any {
	t.Helper()
	got, err := Categorize(data)
	if err != nil {
		t.Fatalf("record %s: %v", id, err)
	}
	answer, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := taxonomy.MustSchema().Validate(answer); err != nil {
		t.Errorf("record %s: answer %s is not valid: %v", id, answer, err)
	}
	return got
}

func lookupStrings(m map[string]any, path string) []string {
	v, _ := record.Lookup(m, path)
	list, _ := v.([]any)
	var out []string
	for _, e := range list {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func lookupString(m map[string]any, path string) string {
	v, _ := record.Lookup(m, path)
	s, _ := v.(string)
	return s
}

func objectsField(m map[string]any, path, key string) []string {
	v, _ := record.Lookup(m, path)
	list, _ := v.([]any)
	var out []string
	for _, e := range list {
		if o, ok := e.(map[string]any); ok {
			if s, ok := o[key].(string); ok {
				out = append(out, s)
			}
		}
	}
	return out
}

func TestSampleAnswersAreValidAndDeterministic(t *testing.T) {
	for _, r := range readSample(t) {
		first := categorize(t, r.id, r.data)
		if again := categorize(t, r.id, r.data); !reflect.DeepEqual(first, again) {
			t.Errorf("record %s: two runs differ: %v and %v", r.id, first, again)
		}
		why := first["rationale"].(string)
		for _, want := range []string{"area", "intervention", "purpose", "population", "complexity"} {
			if !strings.Contains(strings.ToLower(why), want) {
				t.Errorf("record %s: rationale %q does not explain %s", r.id, why, want)
			}
		}
	}
}

// The answers must agree with what each record's own structured fields say.
func TestSampleAgreesWithRecordFields(t *testing.T) {
	typeWant := map[string]string{
		"DRUG": "drug", "BIOLOGICAL": "biological", "DEVICE": "device", "PROCEDURE": "procedure_surgery",
		"RADIATION": "radiation", "BEHAVIORAL": "behavioral", "DIETARY_SUPPLEMENT": "dietary_supplement",
		"DIAGNOSTIC_TEST": "diagnostic_test", "GENETIC": "genetic", "OTHER": "other",
	}
	purposeWant := map[string]string{
		"TREATMENT": "treatment", "PREVENTION": "prevention", "DIAGNOSTIC": "diagnostic",
		"SUPPORTIVE_CARE": "supportive_care", "SCREENING": "screening", "BASIC_SCIENCE": "basic_science",
		"HEALTH_SERVICES_RESEARCH": "health_services_research", "DEVICE_FEASIBILITY": "other", "OTHER": "other",
	}
	agesWant := map[string]string{
		"CHILD": "pediatric", "CHILD,ADULT": "pediatric_and_adult", "ADULT": "adult",
		"ADULT,OLDER_ADULT": "adult_and_older_adult", "OLDER_ADULT": "older_adult",
		"CHILD,ADULT,OLDER_ADULT": "all_ages",
	}
	checked := map[string]int{}
	for _, r := range readSample(t) {
		got := categorize(t, r.id, r.data)
		studyType := lookupString(r.m, "protocolSection.designModule.studyType")
		types := objectsField(r.m, "protocolSection.armsInterventionsModule.interventions", "type")
		names := objectsField(r.m, "protocolSection.armsInterventionsModule.interventions", "name")
		distinct := map[string]bool{}
		for _, ty := range types {
			distinct[ty] = true
		}
		// Antibodies, cell and gene therapies are biologicals whatever type the registry gives.
		biologic := regexp.MustCompile(`(?i)mab\b|\bcar[- ]?t\b|cell therap|vaccin|gene therap`)
		some, all := false, len(names) > 0
		for _, n := range names {
			some = some || biologic.MatchString(n)
			all = all && biologic.MatchString(n)
		}
		if all {
			checked["biologic by name"]++
			if it := got["intervention_type"]; it != "biological" {
				t.Errorf("record %s: every intervention is a biologic by name (%q), but intervention_type = %v", r.id, names, it)
			}
		}
		if some {
			distinct = nil // the one-type rule does not apply: the majority rule does
		}
		switch {
		case studyType == "OBSERVATIONAL" && len(types) == 0:
			checked["observational without interventions"]++
			if got["intervention_type"] != "none_observational" {
				t.Errorf("record %s: observational without interventions gives intervention_type %v", r.id, got["intervention_type"])
			}
		case len(distinct) == 1 && !(studyType == "OBSERVATIONAL" && types[0] == "OTHER"):
			checked["one intervention type"]++
			if want := typeWant[types[0]]; got["intervention_type"] != want {
				t.Errorf("record %s: every intervention is %s, but intervention_type = %v, want %s", r.id, types[0], got["intervention_type"], want)
			}
		}
		if studyType == "OBSERVATIONAL" {
			checked["observational purpose"]++
			if got["trial_purpose"] != "observational" {
				t.Errorf("record %s: observational study gives trial_purpose %v", r.id, got["trial_purpose"])
			}
		} else if p := lookupString(r.m, "protocolSection.designModule.designInfo.primaryPurpose"); p != "" {
			checked["primary purpose"]++
			if got["trial_purpose"] != purposeWant[p] {
				t.Errorf("record %s: primaryPurpose %s gives trial_purpose %v, want %s", r.id, p, got["trial_purpose"], purposeWant[p])
			}
		}
		if ages := strings.Join(lookupStrings(r.m, "protocolSection.eligibilityModule.stdAges"), ","); ages != "" {
			checked["stdAges"]++
			if got["population"] != agesWant[ages] {
				t.Errorf("record %s: stdAges %s gives population %v, want %s", r.id, ages, got["population"], agesWant[ages])
			}
		}
	}
	t.Logf("records checked per rule: %v", checked)
	for _, rule := range []string{"observational without interventions", "one intervention type", "observational purpose", "primary purpose", "stdAges", "biologic by name"} {
		if checked[rule] == 0 {
			t.Errorf("no sample record exercised the rule %q", rule)
		}
	}
}

func TestSampleTherapeuticAreas(t *testing.T) {
	// Independent of the implementation's keyword lists: words that name a cancer.
	cancer := regexp.MustCompile(`(?i)cancer|neoplasm|tumou?r|carcinoma|lymphoma|leuka?emia|myeloma|sarcoma|melanoma|glioma|meningioma|malignan|nsclc|myelofibrosis`)
	dist := map[string]int{}
	neoplasmBranch, neoplasmOncology := 0, 0
	for _, r := range readSample(t) {
		got := categorize(t, r.id, r.data)
		area := got["therapeutic_area"].(string)
		dist[area]++
		conditions := lookupStrings(r.m, "protocolSection.conditionsModule.conditions")
		titles := lookupString(r.m, "protocolSection.identificationModule.briefTitle") + " " +
			lookupString(r.m, "protocolSection.identificationModule.officialTitle")
		named := cancer.MatchString(titles)
		for _, c := range conditions {
			named = named || cancer.MatchString(c)
		}
		branches := objectsField(r.m, "derivedSection.conditionBrowseModule.browseBranches", "abbrev")
		neoplasms := contains(branches, "BC04")
		if neoplasms {
			neoplasmBranch++
			if area == "oncology" {
				neoplasmOncology++
			}
		}
		// Among several conditions, the one the title aims at wins: a cancer that is only one of
		// them does not make the trial an oncology one when the title names another.
		titleAimsElsewhere := false
		for _, c := range conditions {
			if cancer.MatchString(c) {
				continue
			}
			for _, w := range strings.Fields(strings.ToLower(c)) {
				titleAimsElsewhere = titleAimsElsewhere || (len(w) >= 5 && strings.Contains(strings.ToLower(titles), w))
			}
		}
		switch {
		case named && area != "oncology" && !(titleAimsElsewhere && !cancer.MatchString(titles)):
			t.Errorf("record %s: a cancer is named in the conditions or titles (%q), but area = %s (%s)", r.id, conditions, area, got["rationale"])
		case !named && neoplasms:
			t.Logf("record %s: MeSH branch Neoplasms, but no cancer in its conditions or titles (%q): area %s", r.id, conditions, area)
		case !named && area == "oncology":
			t.Errorf("record %s: area oncology without a cancer in its conditions, titles or MeSH branches: %s", r.id, got["rationale"])
		}
	}
	t.Logf("therapeutic_area distribution: %s", describe(dist))
	t.Logf("MeSH branch Neoplasms: %d records, %d oncology", neoplasmBranch, neoplasmOncology)
	if dist["other"] >= 15 {
		t.Errorf("%d of 100 sample records fall in area other; want fewer than 15", dist["other"])
	}
	if neoplasmBranch == 0 || neoplasmOncology*10 < neoplasmBranch*8 {
		t.Errorf("only %d of %d records with MeSH branch Neoplasms are oncology", neoplasmOncology, neoplasmBranch)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func describe(dist map[string]int) string {
	keys := make([]string, 0, len(dist))
	for k := range dist {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return dist[keys[i]] > dist[keys[j]] || dist[keys[i]] == dist[keys[j]] && keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, dist[k])
	}
	return strings.Join(parts, " ")
}

func TestFlatRecords(t *testing.T) {
	bullets := "Inclusion Criteria:\n" + strings.Repeat("* adult patient with confirmed diagnosis\n", 35)
	tests := []struct {
		name string
		data string
		want map[string]string // fields to check; rationale is checked to mention wantWhy
		why  []string
	}{
		{
			name: "minimal",
			data: `{"nct_id":"X1","title":"Inhaled budesonide in adults","conditions":["Asthma"]}`,
			want: map[string]string{"therapeutic_area": "respiratory", "intervention_type": "other", "trial_purpose": "other", "population": "unknown", "eligibility_complexity": "low"},
			why:  []string{`conditions "Asthma"`},
		},
		{
			name: "csv-like row",
			data: `{"nct_id":"X2","title":"Drug A in breast cancer","conditions":"Breast Cancer; Anemia","keywords":"HER2","intervention_type":"Drug","phase":"Phase 3","study_type":"Interventional","primary_purpose":"Treatment","min_age":"18 Years","max_age":"75 Years","eligibility":"Adults with HER2-positive disease."}`,
			want: map[string]string{"therapeutic_area": "oncology", "intervention_type": "drug", "trial_purpose": "treatment", "population": "adult_and_older_adult", "eligibility_complexity": "low"},
			why:  []string{"intervention_type DRUG", "primary_purpose TREATMENT", "min_age 18 Years"},
		},
		{
			name: "observational registry, spaced keys",
			data: `{"NCT Number":"X3","Study Title":"Heart failure registry","Conditions":"Heart Failure","Study Type":"Observational [Patient Registry]","Age":"n/a","Min Age":"6 Months","Max Age":"17 Years"}`,
			want: map[string]string{"therapeutic_area": "cardiovascular", "intervention_type": "none_observational", "trial_purpose": "observational", "population": "pediatric"},
		},
		{
			name: "intervention labels",
			data: `{"nct_id":"X4","title":"Knee osteoarthritis","interventions":["Drug: Celecoxib","Procedure: Arthroscopy"],"std_ages":"Child, Adult, Older Adult"}`,
			want: map[string]string{"therapeutic_area": "musculoskeletal_pain", "intervention_type": "combination", "population": "all_ages"},
		},
		{
			name: "intervention objects with a majority",
			data: `{"nct_id":"X5","title":"Hepatitis C cure","interventions":[{"type":"DRUG","name":"a"},{"type":"DRUG","name":"b"},{"type":"BEHAVIORAL","name":"c"}]}`,
			want: map[string]string{"therapeutic_area": "infectious_disease", "intervention_type": "drug"},
		},
		{
			name: "CAR-T cells registered as a drug",
			data: `{"nct_id":"X8","title":"CD19 CAR-T in relapsed lymphoma","interventions":[{"type":"DRUG","name":"CD19 CAR-T cells"},{"type":"DRUG","name":"Fludarabine"}],"intervention_type":"DRUG"}`,
			want: map[string]string{"therapeutic_area": "oncology"},
		},
		{
			name: "healthy volunteers, no disease",
			data: `{"nct_id":"X9","title":"Pain perception under virtual reality","conditions":"Pain Perception","healthy_volunteers":"Yes"}`,
			want: map[string]string{"therapeutic_area": "other"},
			why:  []string{"healthy volunteers"},
		},
		{
			name: "the condition the title aims at",
			data: `{"nct_id":"X10","title":"An app for stress relief before surgery","conditions":"Psychological Stress; Knee Replacement; Prostate Cancer"}`,
			want: map[string]string{"therapeutic_area": "psychiatry_mental_health"},
		},
		{
			name: "nothing recognizable",
			data: `{"nct_id":"X6","title":"Pharmacokinetics of XY-12 in healthy volunteers","healthy_volunteers":"Yes"}`,
			want: map[string]string{"therapeutic_area": "other", "intervention_type": "other", "population": "unknown"},
			why:  []string{"Area other"},
		},
		{
			name: "long criteria",
			data: `{"nct_id":"X7","title":"Migraine prevention","criteria":` + mustJSON(t, bullets) + `,"minimum_age":"65 Years"}`,
			want: map[string]string{"therapeutic_area": "neurology", "eligibility_complexity": "high", "population": "older_adult"},
			why:  []string{"35 criteria"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := categorize(t, tt.name, []byte(tt.data))
			for k, want := range tt.want {
				if got[k] != want {
					t.Errorf("%s = %v, want %s (rationale: %s)", k, got[k], want, got["rationale"])
				}
			}
			for _, w := range tt.why {
				if !strings.Contains(got["rationale"].(string), w) {
					t.Errorf("rationale %q does not mention %q", got["rationale"], w)
				}
			}
		})
	}
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCategorizeRejectsNonObjects(t *testing.T) {
	for _, data := range []string{`[1,2]`, `"x"`, `{`, ``} {
		if _, err := Categorize(json.RawMessage(data)); err == nil {
			t.Errorf("Categorize(%q) succeeded", data)
		}
	}
}

func TestDecideIntervention(t *testing.T) {
	tests := []struct {
		name      string
		studyType string
		types     []string
		want      string
	}{
		{"no interventions, interventional", "INTERVENTIONAL", nil, "other"},
		{"no interventions, observational", "OBSERVATIONAL", nil, "none_observational"},
		{"observational exposure of type OTHER", "OBSERVATIONAL", []string{"OTHER", "OTHER"}, "none_observational"},
		{"observational exposure of a drug", "OBSERVATIONAL", []string{"DRUG"}, "drug"},
		{"placebo of type OTHER is ignored", "INTERVENTIONAL", []string{"DRUG", "OTHER", "OTHER"}, "drug"},
		{"only OTHER", "INTERVENTIONAL", []string{"OTHER"}, "other"},
		{"strict majority wins", "INTERVENTIONAL", []string{"DRUG", "DRUG", "RADIATION"}, "drug"},
		{"no majority", "INTERVENTIONAL", []string{"DRUG", "RADIATION"}, "combination"},
		{"no majority of three", "INTERVENTIONAL", []string{"DRUG", "DRUG", "PROCEDURE", "RADIATION"}, "combination"},
		{"combination product", "INTERVENTIONAL", []string{"COMBINATION_PRODUCT"}, "combination"},
		{"genetic", "INTERVENTIONAL", []string{"GENETIC"}, "genetic"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, why := decideIntervention(facts{studyType: tt.studyType, typeFrom: "studyType", types: tt.types, typesFrom: "interventions[].type"})
			if got != tt.want {
				t.Errorf("decideIntervention = %s (%s), want %s", got, why, tt.want)
			}
		})
	}
}

func TestDecideComplexity(t *testing.T) {
	words := func(n int) string { return strings.TrimSpace(strings.Repeat("word ", n)) }
	lines := func(n int) string { return strings.Repeat("* short criterion\n", n) }
	tests := []struct {
		name     string
		criteria string
		want     string
	}{
		{"none", "", "low"},
		{"short", words(149), "low"},
		{"150 words", words(150), "medium"},
		{"499 words", words(499), "medium"},
		{"500 words", words(500), "high"},
		{"few words, 12 criteria", lines(12), "medium"},
		{"few words, 11 criteria", lines(11), "low"},
		{"few words, 30 criteria", lines(30), "high"},
		{"numbered", "Inclusion Criteria:\n" + strings.Repeat("12. numbered item\n", 30), "high"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, why := decideComplexity(tt.criteria); got != tt.want {
				t.Errorf("decideComplexity = %s (%s), want %s", got, why, tt.want)
			}
		})
	}
}

func TestAgeYears(t *testing.T) {
	tests := []struct {
		in   string
		want float64
		ok   bool
	}{
		{"18 Years", 18, true},
		{"6 Months", 0.5, true},
		{"1 Year", 1, true},
		{"52 Weeks", 1, true},
		{"21", 21, true},
		{"N/A", 0, false},
		{"", 0, false},
		{"eighteen years", 0, false},
	}
	for _, tt := range tests {
		got, ok := ageYears(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ageYears(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestKeywordMatching(t *testing.T) {
	rules := []areaRule{{"x", []string{"neoplas", "copd$", "*sarcoma", "back pain"}}}
	kw := compile(rules)[0]
	tests := []struct {
		text string
		want bool
	}{
		{"Neoplasms, Plasma Cell", true},
		{"Paraneoplastic syndrome", false}, // word start only
		{"COPD", true},
		{"COPDX", false}, // whole word
		{"Osteosarcoma", true},
		{"Low Back-Pain", true},
		{"backpain", false},
	}
	for _, tt := range tests {
		if got := matchesAny(normalize(tt.text), kw); got != tt.want {
			t.Errorf("match %q = %v, want %v", tt.text, got, tt.want)
		}
	}
}

// The keyword rules must cover every area of the schema but "other", in the schema's order (the
// order breaks ties, as the README says).
func TestAreaRulesMatchSchema(t *testing.T) {
	var enum []string
	for _, p := range taxonomy.MustSchema().Properties {
		if p.Name == "therapeutic_area" {
			enum = p.Enum
		}
	}
	var rules []string
	for _, r := range areaRules() {
		rules = append(rules, r.area)
	}
	if want := append(rules, areaOther); !reflect.DeepEqual(enum, want) {
		t.Errorf("schema areas %v\nrule areas + other %v", enum, want)
	}
	if len(rules) != numAreas {
		t.Errorf("numAreas = %d, but there are %d rules", numAreas, len(rules))
	}
	for _, abbrev := range []string{"BC01", "BC04", "BC05", "BC06", "BC07", "BC08", "BC09", "BC10", "BC11", "BC14", "BC15", "BC16", "BC17", "BC18", "BC19", "BC20", "BXM"} {
		if a := branchArea(abbrev); !contains(enum, a) || a == areaOther {
			t.Errorf("branch %s maps to %q, not an area of the schema", abbrev, a)
		}
	}
}
