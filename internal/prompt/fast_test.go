package prompt

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/trialcat/trialcat/internal/record"
	"github.com/trialcat/trialcat/internal/testkit"
)

// directTemplates are templates in the direct renderer's subset, each construct it walks, and
// some it leaves to text/template (which must then render them alone, with the same output).
var directTemplates = map[string]string{
	"if-else":  `{{if get "a"}}A={{get "a"}}{{else if get "b"}}B{{else}}none{{end}}|{{if not (get "a")}}no a{{end}}`,
	"with":     `{{with get "a"}}[{{.}}]{{else}}-{{end}}{{with get "n"}}<{{.}}>{{end}}{{with get "t"}}t={{.}}{{end}}`,
	"or-and":   `{{or (get "x") (get "a") "dflt"}}|{{and (get "a") (get "b")}}|{{or (get "x") (get "y")}}|{{and "1" (get "x") "2"}}`,
	"range":    `{{range list "l"}}<{{.}}>{{else}}empty{{end}}{{range get "objs"}}({{at . "type"}}:{{at . "name"}}){{else}}no objs{{end}}`,
	"range-r":  `{{range get "a"}}{{.}}{{end}}`,
	"printf":   `{{printf "%v|%s|%d|%q" (get "t") (get "a") 7 .ID}}{{printf "%v" (get "n")}}{{print 1 2 "x" (get "a")}}`,
	"pipes":    `{{get "long" | truncate 5}}|{{join ", " (list "l") | truncate 8}}|{{.ID}}/{{.Index}}|{{truncate 3 .ID}}`,
	"field":    `{{field "a"}}{{field "z"}}`,
	"values":   `{{get "n"}}|{{get "f"}}|{{get "t"}}|{{get "null"}}|{{get "obj"}}|{{get "l"}}|{{get "objs.0.name"}}`,
	"record":   `{{.Record.a}}`,
	"builtins": `{{len (list "l")}}{{if eq (get "a") "x"}}y{{end}}`,
	"vars":     `{{$x := get "a"}}{{$x}}`,
	"float":    `{{printf "%v" 1.0}}{{truncate 1e1 (get "long")}}`,
	"blocks":   `{{define "system"}}static {{/* c */}}text{{end}}{{define "user"}}{{get "a"}}{{end}}`,
	"dynsys":   `{{define "system"}}sys {{.ID}}{{end}}{{define "user"}}{{get "a"}}{{end}}`,
	"tmplcall": `{{define "x"}}X{{get "a"}}{{end}}{{define "user"}}{{template "x"}}{{end}}`,
}

// outsideSubset are the templates above and in the tree the direct renderer leaves to
// text/template whole.
var outsideSubset = map[string]bool{"record": true, "builtins": true, "vars": true, "float": true, "tmplcall": true,
	"../prompt/testdata/blocks.tmpl": true}

// hostileRecords are shapes the walk must render as text/template does, or leave to it.
var hostileRecords = []string{
	`{"a":"A","b":"B","n":12,"f":-1.5e3,"t":true,"null":null,"obj":{"k":1},"l":["x","y"],"objs":[{"type":"DRUG","name":"N"},{"name":"M"}],"long":"abcdefghij"}`,
	`{"a":"","b":0,"l":"single","objs":"not a list"}`,
	`{"a":["x",null,"y"],"l":[1,true,null,{"name":"n"},{"x":1},["z"]],"objs":[null,1]}`,
	`{"a":{"x":1},"objs":{}}`,
	`{"a":"\u00e9\ud83d\ude00\n\t\"q\"","long":"ééééééé  ","l":[]}`,
	`{"a":"dup","a":"last","objs":[{"type":1.0,"name":[1]}]}`,
	"{\"a\":\"bad \xff byte\",\"long\":\"x\xffyyyyyyyy\"}",
	`{"a":12345678901234567890,"n":1e400,"t":false}`,
	`{"z":null,"a":null}`,
	`{}`,
	`[1,2]`,
	`{"a":"x",}`,
	`{"a":"x"`,
	`"just a string"`,
}

// TestDirectMatchesTemplate renders every template of the tree and the subset's constructs over
// the sample's records and hostile ones both ways: the direct renderer and text/template must
// give the same messages and the same errors.
func TestDirectMatchesTemplate(t *testing.T) {
	sources := map[string]string{}
	for name, text := range directTemplates {
		sources[name] = text
	}
	files, _ := filepath.Glob("../*/*.tmpl")
	more, _ := filepath.Glob("../*/testdata/*.tmpl")
	for _, f := range append(files, more...) {
		if strings.Contains(f, "report") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sources[f] = string(b)
	}
	var recs []record.Record
	for i, line := range testkit.SampleRecords(t) {
		recs = append(recs, record.Record{ID: "S" + string(rune('0'+i%10)), Index: int64(i), Data: line})
	}
	for i, h := range hostileRecords {
		recs = append(recs, record.Record{ID: "H-é", Index: int64(i), Data: []byte(h)})
	}
	for name, text := range sources {
		tmpl, err := Parse(name, text)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		slow, _ := Parse(name, text)
		slow.direct = nil
		direct := 0
		for _, rec := range recs {
			want, wantErr := slow.Render(rec)
			got, gotErr := tmpl.Render(rec)
			if errText(gotErr) != errText(wantErr) || got != want {
				t.Errorf("%s on %.60s:\n got  %q, %v\n want %q, %v", name, rec.Data, got, gotErr, want, wantErr)
			}
			if _, ok := tmpl.renderDirect(data{ID: rec.ID, Index: rec.Index, rec: record.NewLazy(rec.Data)}); ok {
				direct++
			}
		}
		t.Logf("%s: %d of %d records rendered directly", name, direct, len(recs))
		wantDirect := !outsideSubset[name]
		if wantDirect != (tmpl.direct != nil) {
			t.Errorf("%s: in the direct subset = %v, want %v", name, tmpl.direct != nil, wantDirect)
		}
	}
}

// The default prompt, and the agent's, render every sample record directly: the fast path is
// the one a run takes.
func TestDefaultPromptsRenderDirectly(t *testing.T) {
	for _, f := range []string{"../taxonomy/prompt.tmpl", "../taxonomy/agent.tmpl"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		tmpl, err := Parse(f, string(b))
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range testkit.SampleRecords(t) {
			if _, ok := tmpl.renderDirect(data{ID: "X", rec: record.NewLazy(line)}); !ok {
				t.Fatalf("%s: sample record %d left to text/template", f, i)
			}
		}
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// The direct renderer and text/template agree on any record.
func FuzzDirect(f *testing.F) {
	for _, h := range hostileRecords {
		f.Add([]byte(h))
	}
	b, err := os.ReadFile("../taxonomy/prompt.tmpl")
	if err != nil {
		f.Fatal(err)
	}
	texts := []string{string(b)}
	for _, name := range []string{"if-else", "with", "or-and", "range", "printf", "pipes", "values", "field"} {
		texts = append(texts, directTemplates[name])
	}
	var fast, slow []*Template
	for _, text := range texts {
		a, err := Parse("f", text)
		if err != nil {
			f.Fatal(err)
		}
		s, _ := Parse("f", text)
		s.direct = nil
		fast, slow = append(fast, a), append(slow, s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rec := record.Record{ID: "F", Data: data}
		for i := range fast {
			got, gotErr := fast[i].Render(rec)
			want, wantErr := slow[i].Render(rec)
			if errText(gotErr) != errText(wantErr) || got != want {
				t.Fatalf("template %d on %q:\n got  %q, %v\n want %q, %v", i, data, got, gotErr, want, wantErr)
			}
		}
	})
}
