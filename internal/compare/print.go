package compare

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"strings"
	"text/tabwriter"
	"unicode"
	"unicode/utf8"
)

// Print writes the comparison for a person: a line per field, then each field's confusion table
// when confusion is set.
func (r *Report) Print(w io.Writer, confusion bool) {
	fmt.Fprintf(w, "A: %s\nB: %s\n", r.A, r.B)
	fmt.Fprintf(w, "records in both: %d; only in A: %d; only in B: %d\n", r.Common, r.OnlyInA, r.OnlyInB)
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "field\tn\tagreement\tkappa\tkappa 95% CI\t")
	for _, name := range r.Order {
		f := r.Fields[name]
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t\n", name, f.N, pctOf(f.Agreement), num(f.Kappa), ci(f.KappaCI))
	}
	tw.Flush()
	for _, name := range r.Order {
		if f := r.Fields[name]; f.Note != "" {
			fmt.Fprintf(w, "  %s: %s\n", name, f.Note)
		}
	}
	PrintReliability(w, r.Reliability)
	if !confusion {
		return
	}
	for _, name := range r.Order {
		f := r.Fields[name]
		if f.N == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s: rows A, columns B\n", name)
		tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', tabwriter.AlignRight)
		shown := make([]string, len(f.Labels))
		for i, l := range f.Labels {
			shown[i] = Shown(l)
		}
		fmt.Fprintf(tw, "\t%s\t\n", strings.Join(shown, "\t"))
		for j, a := range f.Labels {
			row := make([]string, len(f.Labels))
			for i, b := range f.Labels {
				row[i] = fmt.Sprint(f.Confusion[a][b])
			}
			fmt.Fprintf(tw, "%s\t%s\t\n", shown[j], strings.Join(row, "\t"))
		}
		tw.Flush()
	}
}

// JSON writes the comparison as one object: {"fields": {...}, "common", "only_in_a", "only_in_b"}.
func (r *Report) JSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func pctOf(p *float64) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100**p)
}

func num(p *float64) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprintf("%.3f", *p)
}

func ci(v []float64) string {
	if len(v) != 2 {
		return "-"
	}
	return fmt.Sprintf("[%.3f, %.3f]", v[0], v[1])
}

// MaxShown is the most runes of a label shown in a table or on the page; the whole label is in
// disagreements.csv and the JSON.
const MaxShown = 40

// Shown is a label as a table shows it: control characters (a NUL, an escape sequence) written
// as escapes rather than sent to the terminal, and a label longer than MaxShown cut with "…".
func Shown(label string) string {
	var b strings.Builder
	n := 0
	for _, r := range label {
		if n == MaxShown {
			b.WriteString("…")
			break
		}
		switch {
		case r == '\t':
			b.WriteString(" ")
		case unicode.IsControl(r) || r == utf8.RuneError:
			fmt.Fprintf(&b, "\\x%02x", r)
		default:
			b.WriteRune(r)
		}
		n++
	}
	return b.String()
}

// MaxListed bounds the disagreements shown on the page (all are in the CSV).
const MaxListed = 200

var page = template.Must(template.New("compare").Funcs(template.FuncMap{
	"pct": pctOf, "num": num, "ci": ci,
	"cell":  func(f Field, a, b string) int { return f.Confusion[a][b] },
	"shown": Shown,
	"field": func(r *Report, name string) Field { return r.Fields[name] },
	"bandX": func(i int) int { return 45 + 90*i },
	"bandY": func(a float64) float64 { return 110 - 100*a },
	"bandH": func(a float64) float64 { return 100 * a },
	"deref": func(p *float64) float64 { return *p },
	"share": share,
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>trialcat compare</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:2rem;color:#1d2430;max-width:70rem}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #d4d9e1;padding:.25rem .5rem;text-align:right}
th{background:#f1f4f8}td.l,th.l{text-align:left}td.diag{background:#e3f4e6;font-weight:600}
.note{color:#7a4b00}.muted{color:#5b6472}
</style></head><body>
<h1>Agreement of two sets of labels</h1>
<p>A: <code>{{.A}}</code><br>B: <code>{{.B}}</code></p>
<p>Records in both: <b>{{.Common}}</b>; only in A: {{.OnlyInA}}; only in B: {{.OnlyInB}}.</p>
{{range .Notes}}<p class="note">{{.}}</p>{{end}}
<table><tr><th class="l">field</th><th>n</th><th>agreement</th><th>Cohen's kappa</th><th>kappa 95% CI</th></tr>
{{range .Order}}{{$f := field $ .}}<tr><td class="l">{{.}}</td><td>{{$f.N}}</td><td>{{pct $f.Agreement}}</td><td>{{num $f.Kappa}}</td><td>{{ci $f.KappaCI}}</td></tr>
{{end}}</table>
<p class="muted">Kappa corrects agreement for chance; it understates agreement when one label dominates, so read both.
The interval is the 2.5th to 97.5th percentile of kappa over 1,000 bootstrap resamples of the records.</p>
{{range .Order}}{{$f := field $ .}}
<h2>{{.}}</h2>{{if $f.Note}}<p class="note">{{$f.Note}}</p>{{end}}
{{if $f.N}}<table><tr><th class="l">A \ B</th>{{range $f.Labels}}<th>{{shown .}}</th>{{end}}</tr>
{{range $a := $f.Labels}}<tr><th class="l">{{shown $a}}</th>{{range $b := $f.Labels}}<td{{if eq $a $b}} class="diag"{{end}}>{{cell $f $a $b}}</td>{{end}}</tr>
{{end}}</table>{{end}}
{{end}}
{{if .Reliability}}<h2>Reliability of A's confidence</h2>
{{range .Reliability}}<h3>{{.Field}}</h3><svg width="420" height="140" role="img" aria-label="accuracy by confidence band"><line x1="40" y1="110" x2="410" y2="110" stroke="#999"/>
{{range $i, $b := .Bands}}<rect x="{{bandX $i}}" y="{{bandY $b.Accuracy}}" width="70" height="{{bandH $b.Accuracy}}" fill="#4e79a7"><title>{{$b.Records}} answers, {{share $b.Accuracy}} confirmed</title></rect><text x="{{bandX $i}}" y="125" font-size="11">{{printf "%.1f-%.1f" $b.From $b.To}} ({{$b.Records}})</text>
{{end}}</svg>{{if .Threshold}}<p>Confidence &ge; {{printf "%.3f" (deref .Threshold)}} reaches {{share .Target}} accuracy on {{share .Coverage}} of the records.</p>{{else}}<p>No threshold reaches {{share .Target}} accuracy.</p>{{end}}
{{end}}{{end}}
<h2>Disagreements{{if gt (len .Disagreements) 200}} (the first 200; all are in disagreements.csv){{end}}</h2>
<table><tr><th class="l">id</th><th class="l">field</th><th class="l">A</th><th class="l">B</th><th class="l">rationale A</th><th class="l">rationale B</th></tr>
{{range $i, $d := .Disagreements}}{{if lt $i 200}}<tr><td class="l">{{$d.ID}}</td><td class="l">{{$d.Field}}</td><td class="l">{{shown $d.A}}</td><td class="l">{{shown $d.B}}</td><td class="l">{{$d.RationaleA}}</td><td class="l">{{$d.RationaleB}}</td></tr>
{{end}}{{end}}</table>
</body></html>
`))

// HTML writes the comparison as one self-contained page.
func (r *Report) HTML(w io.Writer) error {
	return page.Execute(w, r)
}
