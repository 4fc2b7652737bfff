package schema

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/trialcat/trialcat/internal/exitcode"
)

func mustParseFile(t testing.TB, name string) *Schema {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Parse(data, name)
	if err != nil {
		t.Fatalf("Parse(%s): %v", name, err)
	}
	return s
}

func TestParseKeepsFileOrder(t *testing.T) {
	s := mustParseFile(t, "study.json")
	want := []string{"zeta_area", "arms", "score", "blinded", "tags", "alpha_note"}
	if got := s.Columns(); !reflect.DeepEqual(got, want) {
		t.Errorf("Columns() = %v, want %v", got, want)
	}
	if s.Name != "Study_Summary_v2" {
		t.Errorf("Name = %q, want Study_Summary_v2", s.Name)
	}
	if s.Source() != "study.json" {
		t.Errorf("Source() = %q", s.Source())
	}
	if got, want := s.Required, []string{"zeta_area", "arms", "score", "blinded", "tags"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Required = %v, want %v", got, want)
	}
	score := s.Properties[2]
	if score.Type != TypeNumber || !score.Nullable {
		t.Errorf("score = %+v, want nullable number", score)
	}
	tags := s.Properties[4]
	if tags.Items == nil || !reflect.DeepEqual(tags.Items.Enum, []string{"a", "b"}) {
		t.Errorf("tags.Items = %+v", tags.Items)
	}
	if s.Properties[5].MaxLength != 20 {
		t.Errorf("alpha_note MaxLength = %d", s.Properties[5].MaxLength)
	}
}

func TestParseName(t *testing.T) {
	tests := []struct {
		title string
		want  string
	}{
		{`"clinical_trial_categorization"`, "clinical_trial_categorization"},
		{`"Trial: area & type!"`, "Trial_area_type"},
		{`"!!!"`, DefaultName},
		{`""`, DefaultName},
		{`"` + strings.Repeat("x", 80) + `"`, strings.Repeat("x", 64)},
	}
	for _, tt := range tests {
		s, err := Parse([]byte(`{"title": `+tt.title+`, "properties": {"a": {"type": "string"}}}`), "t.json")
		if err != nil {
			t.Fatalf("title %s: %v", tt.title, err)
		}
		if s.Name != tt.want {
			t.Errorf("title %s: Name = %q, want %q", tt.title, s.Name, tt.want)
		}
	}
	s, err := Parse([]byte(`{"properties": {"a": {"type": "string"}}}`), "t.json")
	if err != nil || s.Name != DefaultName {
		t.Errorf("no title: Name = %v, %v; want %q", s, err, DefaultName)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		json string
		want string // substring of the error
	}{
		{"empty file", ``, "empty"},
		{"syntax", "{\n  \"properties\": {\n    \"a\": {\"type\": \"string\",}\n  }\n}", "line 3"},
		{"truncated", `{"properties": {"a": {"type": "string"}}`, "ends early"},
		{"not object", `["a"]`, "not an object"},
		{"trailing data", `{"properties": {"a": {"type": "string"}}} {}`, "after the schema"},
		{"no properties", `{"type": "object"}`, `no "properties"`},
		{"empty properties", `{"properties": {}}`, "empty"},
		{"properties array", `{"properties": []}`, "must be an object"},
		{"top type", `{"type": "array", "properties": {"a": {"type": "string"}}}`, `must be "object"`},
		{"additional true", `{"properties": {"a": {"type": "string"}}, "additionalProperties": true}`, "additionalProperties"},
		{"unsupported top keyword", `{"properties": {"a": {"type": "string"}}, "$defs": {}}`, `"$defs"`},
		{"unsupported type", `{"properties": {"a": {"type": "date"}}}`, `unsupported type "date"`},
		{"missing type", `{"properties": {"a": {"description": "x"}}}`, `no "type"`},
		{"nested object", `{"properties": {"a": {"type": "object", "properties": {}}}}`, "nested objects"},
		{"object items", `{"properties": {"a": {"type": "array", "items": {"type": "object"}}}}`, "nested objects"},
		{"array of arrays", `{"properties": {"a": {"type": "array", "items": {"type": "array", "items": {"type": "string"}}}}}`, "arrays of arrays"},
		{"array without items", `{"properties": {"a": {"type": "array"}}}`, `without "items"`},
		{"union", `{"properties": {"a": {"type": ["string", "integer"]}}}`, "not supported"},
		{"enum non-string", `{"properties": {"a": {"type": "string", "enum": ["x", 1]}}}`, "only strings"},
		{"enum integer type", `{"properties": {"a": {"type": "integer", "enum": [1, 2]}}}`, "only supported for strings"},
		{"empty enum", `{"properties": {"a": {"type": "string", "enum": []}}}`, "empty"},
		{"duplicate enum", `{"properties": {"a": {"type": "string", "enum": ["x", "x"]}}}`, "twice"},
		{"reserved column", `{"properties": {"cost_usd": {"type": "number"}}}`, `"cost_usd"`},
		{"reserved column any case", `{"properties": {"Model": {"type": "string"}}}`, `"Model"`},
		{"duplicate key", `{"properties": {"a": {"type": "string"}, "a": {"type": "string"}}}`, "twice"},
		{"required unknown", `{"properties": {"a": {"type": "string"}}, "required": ["b"]}`, `"b"`},
		{"required not strings", `{"properties": {"a": {"type": "string"}}, "required": [1]}`, "property names"},
		{"unsupported keyword", `{"properties": {"a": {"type": "integer", "minimum": 0}}}`, `"minimum"`},
		{"maxLength on integer", `{"properties": {"a": {"type": "integer", "maxLength": 3}}}`, "only to strings"},
		{"maxLength negative", `{"properties": {"a": {"type": "string", "maxLength": -1}}}`, "positive whole number"},
		{"items on string", `{"properties": {"a": {"type": "string", "items": {"type": "string"}}}}`, "only to arrays"},
		{"property not object", `{"properties": {"a": "string"}}`, "must be an object"},
		{"empty name", `{"properties": {"": {"type": "string"}}}`, "empty name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.json), "my-schema.json")
			if err == nil {
				t.Fatal("Parse succeeded, want an error")
			}
			if !errors.Is(err, exitcode.ErrUsage) {
				t.Errorf("error %v does not wrap exitcode.ErrUsage", err)
			}
			if !strings.Contains(err.Error(), "my-schema.json") {
				t.Errorf("error %q does not name the file", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestParseNullableEnum(t *testing.T) {
	s, err := Parse([]byte(`{"properties": {"a": {"type": ["null", "string"], "enum": ["x", null]}}}`), "t.json")
	if err != nil {
		t.Fatal(err)
	}
	p := s.Properties[0]
	if !p.Nullable || p.Type != TypeString || !reflect.DeepEqual(p.Enum, []string{"x"}) {
		t.Errorf("property = %+v, want nullable string enum [x]", p)
	}
}

func TestStrictJSON(t *testing.T) {
	s := mustParseFile(t, "study.json")
	got, err := json.Marshal(s.StrictJSON())
	if err != nil {
		t.Fatal(err)
	}
	want := `{"additionalProperties":false,` +
		`"properties":{` +
		`"zeta_area":{"description":"Main area.","enum":["onc","cardio","other"],"type":"string"},` +
		`"arms":{"description":"Number of arms.","type":"integer"},` +
		`"score":{"type":["number","null"]},` +
		`"blinded":{"type":"boolean"},` +
		`"tags":{"items":{"enum":["a","b"],"type":"string"},"type":"array"},` +
		`"alpha_note":{"description":"At most 20 characters.","type":["string","null"]}},` +
		`"required":["zeta_area","arms","score","blinded","tags","alpha_note"],` +
		`"type":"object"}`
	if string(got) != want {
		t.Errorf("StrictJSON =\n%s\nwant\n%s", got, want)
	}
}

func TestStrictJSONOptionalEnumAllowsNull(t *testing.T) {
	s, err := Parse([]byte(`{"properties": {"a": {"type": "string", "enum": ["x"], "description": "A.", "maxLength": 5}}}`), "t.json")
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.Marshal(s.StrictJSON())
	if err != nil {
		t.Fatal(err)
	}
	want := `{"additionalProperties":false,"properties":{"a":{"description":"A. (At most 5 characters.)","enum":["x",null],"type":["string","null"]}},"required":["a"],"type":"object"}`
	if string(got) != want {
		t.Errorf("StrictJSON =\n%s\nwant\n%s", got, want)
	}
	// The null the strict schema allows must pass validation.
	if _, err := s.Validate([]byte(`{"a": null}`)); err != nil {
		t.Errorf("Validate(null optional) = %v", err)
	}
}

func TestValidate(t *testing.T) {
	s := mustParseFile(t, "study.json")
	tests := []struct {
		name     string
		answer   string
		want     map[string]any
		problems []string // substrings, one per expected problem, in order
	}{
		{
			name:   "all fields",
			answer: `{"zeta_area":"onc","arms":2,"score":1.5,"blinded":true,"tags":["a","b"],"alpha_note":"short"}`,
			want:   map[string]any{"zeta_area": "onc", "arms": int64(2), "score": 1.5, "blinded": true, "tags": []any{"a", "b"}, "alpha_note": "short"},
		},
		{
			name:   "optional missing, nullable null, integral float",
			answer: `{"zeta_area":"other","arms":3.0,"score":null,"blinded":false,"tags":[]}`,
			want:   map[string]any{"zeta_area": "other", "arms": int64(3), "score": nil, "blinded": false, "tags": []any{}},
		},
		{
			name:   "optional null",
			answer: `{"zeta_area":"other","arms":1,"score":2,"blinded":false,"tags":[],"alpha_note":null}`,
			want:   map[string]any{"zeta_area": "other", "arms": int64(1), "score": 2.0, "blinded": false, "tags": []any{}, "alpha_note": nil},
		},
		{
			name:     "missing required",
			answer:   `{"zeta_area":"onc","score":1,"blinded":true,"tags":[]}`,
			problems: []string{`missing required property "arms"`},
		},
		{
			name:     "unknown property",
			answer:   `{"zeta_area":"onc","arms":1,"score":1,"blinded":true,"tags":[],"extra":1}`,
			problems: []string{`unknown property "extra"`},
		},
		{
			name:     "enum is case-sensitive",
			answer:   `{"zeta_area":"Onc","arms":1,"score":1,"blinded":true,"tags":[]}`,
			problems: []string{`zeta_area: "Onc" is not one of (onc, cardio, other)`},
		},
		{
			name:     "wrong types",
			answer:   `{"zeta_area":1,"arms":"2","score":"x","blinded":"yes","tags":"a"}`,
			problems: []string{"zeta_area: want string", "arms: want integer", "score: want number", "blinded: want boolean", "tags: want array"},
		},
		{
			name:     "integer not integral",
			answer:   `{"zeta_area":"onc","arms":2.5,"score":1,"blinded":true,"tags":[]}`,
			problems: []string{"arms: \"2.5\" is not a whole number"},
		},
		{
			name:     "required not nullable",
			answer:   `{"zeta_area":null,"arms":1,"score":1,"blinded":true,"tags":[]}`,
			problems: []string{"zeta_area: null"},
		},
		{
			name:     "array item checked",
			answer:   `{"zeta_area":"onc","arms":1,"score":1,"blinded":true,"tags":["a","c"]}`,
			problems: []string{`tags: item 1: "c" is not one of (a, b)`},
		},
		{
			name:     "maxLength",
			answer:   `{"zeta_area":"onc","arms":1,"score":1,"blinded":true,"tags":[],"alpha_note":"ééééééééééééééééééééé"}`,
			problems: []string{"alpha_note: 21 characters, longer than maxLength 20"},
		},
		{
			name:     "not json",
			answer:   "Sure! Here is the answer:\n```json\n{}\n```",
			problems: []string{"not valid JSON"},
		},
		{
			name:     "not an object",
			answer:   `["onc"]`,
			problems: []string{"array, not an object"},
		},
		{
			name:     "trailing text",
			answer:   `{"zeta_area":"onc","arms":1,"score":1,"blinded":true,"tags":[]} thanks`,
			problems: []string{"text after the JSON object"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Validate([]byte(tt.answer))
			if tt.problems == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("values = %#v, want %#v", got, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate succeeded with %v, want problems %q", got, tt.problems)
			}
			if !errors.Is(err, ErrInvalidAnswer) {
				t.Errorf("error %v does not wrap ErrInvalidAnswer", err)
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error %T is not a *ValidationError", err)
			}
			if len(ve.Problems) != len(tt.problems) {
				t.Fatalf("problems = %q, want %d like %q", ve.Problems, len(tt.problems), tt.problems)
			}
			for i, want := range tt.problems {
				if !strings.Contains(ve.Problems[i], want) {
					t.Errorf("problem %d = %q, want it to contain %q", i, ve.Problems[i], want)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("Error() spans lines: %q", err)
			}
		})
	}
}

func TestValidateTruncatesLongValues(t *testing.T) {
	s := mustParseFile(t, "study.json")
	long := strings.Repeat("x", 5000)
	_, err := s.Validate([]byte(`{"zeta_area":"` + long + `","arms":1,"score":1,"blinded":true,"tags":[]}`))
	if err == nil {
		t.Fatal("Validate succeeded")
	}
	if len(err.Error()) > 300 {
		t.Errorf("error is %d bytes long; long values must be cut: %.120s…", len(err.Error()), err)
	}
}

func TestCells(t *testing.T) {
	s := mustParseFile(t, "study.json")
	tests := []struct {
		name   string
		values map[string]any
		want   []string
	}{
		{
			name:   "validated values",
			values: map[string]any{"zeta_area": "onc", "arms": int64(2), "score": 1000000.0, "blinded": true, "tags": []any{"a", "b"}, "alpha_note": "n"},
			want:   []string{"onc", "2", "1000000", "true", "a;b", "n"},
		},
		{
			name:   "null and missing are empty",
			values: map[string]any{"zeta_area": "other", "arms": int64(0), "score": nil, "blinded": false, "tags": []any{}},
			want:   []string{"other", "0", "", "false", "", ""},
		},
		{
			name:   "small floats and json numbers",
			values: map[string]any{"arms": json.Number("1e3"), "score": 0.000001},
			want:   []string{"", "1000", "0.000001", "", "", ""},
		},
		{
			name:   "plain Go values",
			values: map[string]any{"arms": 7, "tags": []string{"x", "y"}},
			want:   []string{"", "7", "", "", "x;y", ""},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := s.Cells(tt.values); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Cells = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCellsRoundTripFromValidate(t *testing.T) {
	s := mustParseFile(t, "study.json")
	values, err := s.Validate([]byte(`{"zeta_area":"cardio","arms":1e2,"score":2.50,"blinded":false,"tags":["b"]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"cardio", "100", "2.5", "false", "b", ""}
	if got := s.Cells(values); !reflect.DeepEqual(got, want) {
		t.Errorf("Cells = %q, want %q", got, want)
	}
}

func TestParseAcceptsByteOrderMark(t *testing.T) {
	s, err := Parse([]byte("\xef\xbb\xbf{\"properties\": {\"a\": {\"type\": \"string\"}}}"), "bom.json")
	if err != nil || len(s.Properties) != 1 {
		t.Errorf("Parse with a UTF-8 byte order mark = %v, %v", s, err)
	}
}
