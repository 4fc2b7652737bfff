package prompt

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/trialcat/trialcat/internal/exitcode"
	"github.com/trialcat/trialcat/internal/record"
)

func mustParseFile(t testing.TB, name string) *Template {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := Parse(name, string(b))
	if err != nil {
		t.Fatal(err)
	}
	return tmpl
}

func rec(id string, data string) record.Record {
	return record.Record{Index: 7, ID: id, Data: []byte(data)}
}

const ctgov = `{"protocolSection":{
 "identificationModule":{"nctId":"NCT01","briefTitle":"A Study"},
 "designModule":{"phases":["PHASE2","PHASE3"],"enrollmentInfo":{"count":120}},
 "armsInterventionsModule":{"interventions":[{"type":"DRUG","name":"Aspirin"},{"type":"OTHER","name":"Placebo"}]},
 "descriptionModule":{"briefSummary":"Ünïcode summary that is long"}}}`

func TestRenderBlocks(t *testing.T) {
	tmpl := mustParseFile(t, "blocks.tmpl")
	got, err := tmpl.Render(rec("NCT01", ctgov))
	if err != nil {
		t.Fatal(err)
	}
	if got.System != "You sort trials." {
		t.Errorf("System = %q", got.System)
	}
	want := `Record ID: NCT01
Index: 7
Title: A Study
Phase: PHASE2, PHASE3
Interventions: DRUG=Aspirin OTHER=Placebo
Names: Aspirin; Placebo
Enrollment: 120
Sponsor: unknown
Summary: Ünïcode su…`
	if got.User != want {
		t.Errorf("User =\n%s\nwant\n%s", got.User, want)
	}
}

func TestRenderPlainTemplateIsUserMessage(t *testing.T) {
	tmpl, err := Parse("plain.tmpl", `Categorize {{.ID}}: {{get "title"}} [{{join "|" (list "conditions")}}]`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := tmpl.Render(rec("X1", `{"nct_id":"X1","title":"Asthma study","conditions":["Asthma","COPD"]}`))
	if err != nil {
		t.Fatal(err)
	}
	if got.System != "" || got.User != "Categorize X1: Asthma study [Asthma|COPD]" {
		t.Errorf("Render = %+v", got)
	}
}

func TestRenderUserBlockOnly(t *testing.T) {
	tmpl, err := Parse("u.tmpl", "{{define \"user\"}}ID {{.ID}}{{end}}\n")
	if err != nil {
		t.Fatal(err)
	}
	got, err := tmpl.Render(rec("A", `{}`))
	if err != nil {
		t.Fatal(err)
	}
	if got != (Messages{User: "ID A"}) {
		t.Errorf("Render = %+v", got)
	}
}

func TestRenderMissingField(t *testing.T) {
	tests := []struct {
		name      string
		template  string
		wantField string
	}{
		{"field helper", `{{field "protocolSection.foo"}}`, "protocolSection.foo"},
		{"record chain", `{{.Record.protocolSection.foo.bar}}`, "protocolSection.foo"},
		{"top-level key", `{{.Record.nope}}`, "nope"},
		{"inside a block", `{{define "system"}}s{{end}}{{define "user"}}x {{.Record.protocolSection.identificationModule.acronym}}{{end}}`, "protocolSection.identificationModule.acronym"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmpl, err := Parse("p.tmpl", tt.template)
			if err != nil {
				t.Fatal(err)
			}
			_, err = tmpl.Render(rec("NCT0123", ctgov))
			if err == nil {
				t.Fatal("Render succeeded, want a missing-field error")
			}
			if !errors.Is(err, ErrMissingField) || !errors.Is(err, exitcode.ErrUsage) {
				t.Errorf("error %v does not wrap ErrMissingField and exitcode.ErrUsage", err)
			}
			want := `record NCT0123: template field "` + tt.wantField + `" is missing`
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error = %q, want it to contain %q", err, want)
			}
			if !strings.Contains(err.Error(), "p.tmpl:1:") {
				t.Errorf("error = %q, want the template position", err)
			}
		})
	}
}

func TestRenderOptionalHelpersOnMissing(t *testing.T) {
	tmpl, err := Parse("o.tmpl", `[{{get "a.b"}}][{{join "," (list "a.c")}}][{{truncate 3 (get "z")}}][{{with get "q"}}has{{else}}none{{end}}][{{get "n"}}][{{field "n"}}]`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := tmpl.Render(rec("R", `{"a":{},"n":null}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := "[][][][none][][]"; got.User != want {
		t.Errorf("User = %q, want %q", got.User, want)
	}
}

func TestRenderOtherErrorsNameRecord(t *testing.T) {
	tmpl, err := Parse("e.tmpl", `{{.Record.title.sub}}`)
	if err != nil {
		t.Fatal(err)
	}
	_, err = tmpl.Render(rec("R9", `{"title":"x"}`))
	if err == nil || !strings.Contains(err.Error(), "record R9") || !errors.Is(err, exitcode.ErrUsage) {
		t.Errorf("Render error = %v, want one naming record R9 and wrapping ErrUsage", err)
	}
	if errors.Is(err, ErrMissingField) {
		t.Errorf("error %v is not a missing field", err)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		text string
		want string
	}{
		{"syntax", "line one\n{{if .ID}}unclosed", "bad.tmpl:2"},
		{"unknown function", `{{nosuch "x"}}`, `"nosuch" not defined`},
		{"system without user", `{{define "system"}}x{{end}}`, `no "user" block`},
		{"text outside blocks", "Hello {{.ID}}\n{{define \"user\"}}x{{end}}", "outside the {{define}} blocks"},
		{"empty", "  \n", "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("bad.tmpl", tt.text)
			if err == nil {
				t.Fatal("Parse succeeded")
			}
			if !errors.Is(err, exitcode.ErrUsage) {
				t.Errorf("error %v does not wrap exitcode.ErrUsage", err)
			}
			if !strings.Contains(err.Error(), "bad.tmpl") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %q, want the file name and %q", err, tt.want)
			}
		})
	}
}

func TestListShapes(t *testing.T) {
	tests := []struct {
		name string
		data string
		want string
	}{
		{"strings", `{"x":["a","b"]}`, "a/b"},
		{"objects with name", `{"x":[{"name":"n1","type":"DRUG"},{"type":"no name"},{"name":"n2"}]}`, "n1/n2"},
		{"single string", `{"x":"Asthma"}`, "Asthma"},
		{"numbers", `{"x":[1,2.5]}`, "1/2.5"},
		{"missing", `{}`, ""},
		{"null", `{"x":null}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmpl, err := Parse("l.tmpl", `{{join "/" (list "x")}}`)
			if err != nil {
				t.Fatal(err)
			}
			got, err := tmpl.Render(rec("L", tt.data))
			if err != nil {
				t.Fatal(err)
			}
			if got.User != tt.want {
				t.Errorf("User = %q, want %q", got.User, tt.want)
			}
		})
	}
}

func TestTruncate(t *testing.T) {
	tests := []struct {
		n    int
		in   any
		want string
	}{
		{5, "short", "short"},
		{5, "longer text", "longe…"},
		{6, "hello world", "hello…"},
		{2, "ééé", "éé…"},
		{3, nil, ""},
		{3, "ééé", "ééé"},
		{3, "abc\xffdef", "abc…"},
		{4, "ab\xffdef", "ab\uFFFDd…"},
		{2, "a  b", "a…"},
	}
	for _, tt := range tests {
		if got := truncate(tt.n, tt.in); got != tt.want {
			t.Errorf("truncate(%d, %q) = %q, want %q", tt.n, tt.in, got, tt.want)
		}
	}
}

// Render is called from many goroutines of one worker: each record must get its own fields.
func TestRenderConcurrent(t *testing.T) {
	tmpl, err := Parse("c.tmpl", `{{.ID}}={{field "v"}}`)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := string(rune('a' + i%26))
			got, err := tmpl.Render(rec(id, `{"v":"`+id+`"}`))
			if err != nil {
				errs <- err
				return
			}
			if got.User != id+"="+id {
				errs <- errors.New("got " + got.User + " for " + id)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestParseAcceptsByteOrderMark(t *testing.T) {
	tmpl, err := Parse("bom.tmpl", "\ufeff{{define \"system\"}}s{{end}}{{define \"user\"}}u {{.ID}}{{end}}")
	if err != nil {
		t.Fatal(err)
	}
	got, err := tmpl.Render(rec("B", `{}`))
	if err != nil || got != (Messages{System: "s", User: "u B"}) {
		t.Errorf("Render = %+v, %v", got, err)
	}
}
