package report

import (
	"bytes"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/trialcat/trialcat/internal/results"
	"github.com/trialcat/trialcat/internal/rundir"
	"github.com/trialcat/trialcat/internal/summary"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.html from the current output")

func TestWriteChartsEveryCategoryValueWithItsCount(t *testing.T) {
	f := writeFixture(t, t.TempDir())
	charts := barCharts(parsePage(t, writeReport(t, f.dir)))
	for _, col := range f.columns {
		if col == "rationale" {
			continue
		}
		bars, ok := charts[col]
		if !ok {
			t.Errorf("no chart for column %q; charts: %v", col, keys(charts))
			continue
		}
		if len(bars) != len(f.counts[col]) {
			t.Errorf("column %q: %d bars, want one per value (%d): %q", col, len(bars), len(f.counts[col]), bars)
		}
		for v, n := range f.counts[col] {
			label := v
			if v == "" {
				label = "(empty)"
			}
			want := fmt.Sprintf("%s: %d (", label, n)
			if !slices.ContainsFunc(bars, func(b string) bool { return strings.HasPrefix(b, want) }) {
				t.Errorf("column %q: no bar %q...; bars: %q", col, want, bars)
			}
		}
	}
}

func TestWriteSkipsFreeTextColumns(t *testing.T) {
	f := writeFixture(t, t.TempDir())
	root := parsePage(t, writeReport(t, f.dir))
	if _, ok := barCharts(root)["rationale"]; ok {
		t.Error("rationale (a different value on every row) is charted; want it listed as free text")
	}
	cats := root.byID("categories")
	if cats == nil {
		t.Fatal("no #categories section")
	}
	if txt := cats.allText(); !strings.Contains(txt, "Free-text columns, not charted: rationale (40 distinct values)") {
		t.Errorf("categories section does not name rationale as free text: %q", txt)
	}
}

func TestWriteEscapesDataFromTheRun(t *testing.T) {
	f := writeFixture(t, t.TempDir())
	page := writeReport(t, f.dir)
	if regexp.MustCompile(`(?i)<script`).MatchString(page) {
		t.Errorf("the page has a <script tag: data from the run reached it unescaped")
	}
	if !strings.Contains(page, "&lt;script&gt;") {
		t.Errorf("the escaped value &lt;script&gt; is not on the page")
	}
	// Parsed back, the value reads as the model wrote it, in its chart and in the failures table.
	root := parsePage(t, page)
	bars := barCharts(root)["therapeutic_area"]
	if !slices.ContainsFunc(bars, func(b string) bool { return strings.HasPrefix(b, scriptValue+": 1 (") }) {
		t.Errorf("therapeutic_area has no bar for %q: %q", scriptValue, bars)
	}
	if txt := root.byID("failures").allText(); !strings.Contains(txt, "invalid request: <script>alert(1)</script> see https://example.com/docs") {
		t.Errorf("failure message not shown as text: %q", txt)
	}
}

func TestWriteLoadsNothingFromTheNetwork(t *testing.T) {
	f := writeFixture(t, t.TempDir())
	page := writeReport(t, f.dir)
	root := parsePage(t, page)
	for _, n := range root.all(func(*node) bool { return true }) {
		for _, a := range []string{"src", "href", "action", "poster", "srcset", "data"} {
			v, ok := n.attr[a]
			if ok && !strings.HasPrefix(v, "#") {
				t.Errorf("<%s %s=%q>: the page must only link inside itself", n.name, a, v)
			}
		}
		switch n.name {
		case "script", "link", "img", "iframe", "object", "embed", "image", "use":
			t.Errorf("the page has a <%s> element", n.name)
		}
	}
	for _, bad := range []string{"url(", "@import"} {
		if strings.Contains(page, bad) {
			t.Errorf("the page's CSS has %q", bad)
		}
	}
}

func TestWriteTimelineHasOneRowPerWorkerAndEachRun(t *testing.T) {
	f := writeFixture(t, t.TempDir())
	root := parsePage(t, writeReport(t, f.dir))
	tl := root.byID("timeline")
	if tl == nil {
		t.Fatal("no #timeline section")
	}
	rows := tl.withClass("g", "row")
	if len(rows) != 2 {
		t.Fatalf("timeline has %d rows, want 2 (worker 0 and worker 1)", len(rows))
	}
	tests := []struct {
		label   string
		classes []string // class of each process run, in order
		ticks   int      // failed attempts
	}{
		{"batch 0", []string{"warn"}, 1},
		{"batch 1", []string{"cut", "warn"}, 1}, // crashed, then restarted and finished
	}
	for i, tt := range tests {
		row := rows[i]
		if got := row.child("text").allText(); got != tt.label {
			t.Errorf("row %d is labelled %q, want %q", i, got, tt.label)
		}
		var classes []string
		for _, s := range row.withClass("rect", "span") {
			classes = append(classes, strings.TrimSpace(strings.TrimPrefix(s.attr["class"], "span")))
		}
		if !slices.Equal(classes, tt.classes) {
			t.Errorf("%s: process runs %q, want %q", tt.label, classes, tt.classes)
		}
		if got := len(row.withClass("line", "tick")); got != tt.ticks {
			t.Errorf("%s: %d failed-attempt ticks, want %d", tt.label, got, tt.ticks)
		}
	}
	if txt := root.byID("notes").allText(); !strings.Contains(txt, "1 line of the worker logs are not JSON") {
		t.Errorf("the panic line in worker 1's log is not reported in the notes: %q", txt)
	}
}

func TestWriteHeaderCostAndFailures(t *testing.T) {
	f := writeFixture(t, t.TempDir())
	root := parsePage(t, writeReport(t, f.dir))
	head := root.byID("summary").allText()
	for _, want := range []string{"records_failed", "Records 43", "Succeeded 40", "Failed 3", "openai · gpt-5-mini",
		"13.0 s", "69,240 in, 2,780 out, 1,024 cached", "$0.005 ", "some models' prices are unknown", "Worker restarts 1"} {
		if !strings.Contains(head, want) {
			t.Errorf("header lacks %q: %q", want, head)
		}
	}
	cost := root.byID("cost")
	var models []string
	for _, tr := range cost.all(func(n *node) bool { return n.name == "tr" }) {
		if td := tr.child("td"); td != nil && strings.HasPrefix(td.allText(), "gpt-5") {
			models = append(models, tr.allText())
		}
	}
	// Costs are 0.000100 + i/1e6 for rows 0..38; row 39 has none.
	wantModels := []string{
		"gpt-5-mini 30 $0.003435",          // sum over i=0..29 of 0.0001+i*1e-6
		"gpt-5 10 $0.001206 (+1 unpriced)", // i=30..38
	}
	for _, w := range wantModels {
		if !slices.ContainsFunc(models, func(m string) bool { return strings.HasPrefix(m, w) }) {
			t.Errorf("cost table has no row %q...; rows: %q", w, models)
		}
	}
	if got := len(cost.withClass("tr", "worker")); got != 2 {
		t.Errorf("per-worker table has %d rows, want 2", got)
	}
	fail := root.byID("failures")
	var ids []string
	for _, tr := range fail.withClass("tr", "failure") {
		ids = append(ids, tr.child("td").allText())
	}
	if !slices.Equal(ids, f.failIDs) {
		t.Errorf("failures table lists %q, want %q", ids, f.failIDs)
	}
	classes := barCharts(root)["Failures by error class"]
	for _, c := range []string{"bad_request: 1 (", "rate_limited: 1 (", "server_error: 1 ("} {
		if !slices.ContainsFunc(classes, func(b string) bool { return strings.HasPrefix(b, c) }) {
			t.Errorf("failure classes chart lacks %q: %q", c, classes)
		}
	}
}

func TestWriteListsOnlyTheFirstFailures(t *testing.T) {
	dir := t.TempDir()
	var rows [][]string
	for i := 0; i < maxFailureRows+7; i++ {
		rows = append(rows, []string{fmt.Sprintf("ID%03d", i), "timeout", "deadline exceeded", "5", "0"})
	}
	writeCSV(t, filepath.Join(dir, failuresFile), []string{"id", "error_class", "message", "attempts", "worker"}, rows)
	root := parsePage(t, writeReport(t, dir))
	fail := root.byID("failures")
	if got := len(fail.withClass("tr", "failure")); got != maxFailureRows {
		t.Errorf("failures table has %d rows, want the first %d", got, maxFailureRows)
	}
	if txt := fail.allText(); !strings.Contains(txt, fmt.Sprintf("showing the first %d of %d failures", maxFailureRows, maxFailureRows+7)) ||
		!strings.Contains(txt, fmt.Sprintf("timeout: %d (100%%)", maxFailureRows+7)) {
		t.Errorf("failures section does not say how many there are: %q", txt)
	}
}

func TestWriteRendersWhatItHas(t *testing.T) {
	sections := []string{"summary", "categories", "timeline", "latency", "tokens", "cost", "failures"}
	tests := []struct {
		name  string
		keep  []string // fixture files kept
		notes []string // in the notes section
		texts map[string]string
	}{
		{name: "empty folder", notes: []string{"summary.json is missing", "final_results.csv is missing"},
			texts: map[string]string{"timeline": "No worker_N_log.txt files", "failures": "No failures."}},
		{name: "results only", keep: []string{resultsFile}, notes: []string{"summary.json is missing"},
			texts: map[string]string{"summary": "unknown", "categories": "therapeutic_area"}},
		{name: "summary only", keep: []string{summaryFile}, notes: []string{"final_results.csv is missing"},
			texts: map[string]string{"summary": "records_failed", "categories": "No category columns"}},
		{name: "logs only", keep: []string{"worker_0_log.txt", "worker_1_log.txt"},
			texts: map[string]string{"timeline": "batch 1"}},
		{name: "no failures file", keep: []string{summaryFile, resultsFile},
			texts: map[string]string{"failures": "final_failures.csv is missing; the classes come from summary.json"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFixture(t, dir)
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				if !slices.Contains(tt.keep, e.Name()) {
					if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
						t.Fatal(err)
					}
				}
			}
			root := parsePage(t, writeReport(t, dir))
			for _, id := range sections {
				if root.byID(id) == nil {
					t.Errorf("section #%s missing", id)
				}
			}
			var notes string
			if n := root.byID("notes"); n != nil {
				notes = n.allText()
			}
			for _, want := range tt.notes {
				if !strings.Contains(notes, want) {
					t.Errorf("notes lack %q: %q", want, notes)
				}
			}
			for id, want := range tt.texts {
				if got := root.byID(id).allText(); !strings.Contains(got, want) {
					t.Errorf("#%s lacks %q: %q", id, want, got)
				}
			}
		})
	}
}

func TestWriteReportsDamagedFilesAndKeepsWhatItRead(t *testing.T) {
	tests := []struct {
		name    string
		tail    string // appended to final_results.csv
		rows    int64  // rows counted
		note    string
		summary string // replaces summary.json when set
	}{
		{name: "torn last line", tail: "NCT99999999,oncology,dr", rows: 40, note: "ends with a torn line"},
		{name: "damaged line", tail: "NCT99999998,short\nNCT99999999,x\n", rows: 40, note: "could not be read in full"},
		{name: "bad summary", rows: 40, summary: "{not json", note: "summary.json is not valid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := writeFixture(t, t.TempDir())
			path := filepath.Join(f.dir, resultsFile)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, path, string(b)+tt.tail)
			if tt.summary != "" {
				writeFile(t, filepath.Join(f.dir, summaryFile), tt.summary)
			}
			root := parsePage(t, writeReport(t, f.dir))
			if txt := root.byID("notes").allText(); !strings.Contains(txt, tt.note) {
				t.Errorf("notes lack %q: %q", tt.note, txt)
			}
			want := fmt.Sprintf("among the %d records", tt.rows)
			if txt := root.byID("categories").allText(); !strings.Contains(txt, want) {
				t.Errorf("categories do not say %q: %q", want, txt)
			}
		})
	}
}

func TestWriteFailsOnlyWhenTheFolderIsUnusable(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	writeFile(t, file, "x")
	for _, d := range []string{filepath.Join(dir, "missing"), file} {
		if err := Write(d); err == nil {
			t.Errorf("Write(%s) = nil, want an error", d)
		}
	}
}

func TestWriteReplacesTheReportAtomically(t *testing.T) {
	f := writeFixture(t, t.TempDir())
	writeFile(t, rundir.New(f.dir).Report(), "old report")
	page := writeReport(t, f.dir)
	if !strings.HasPrefix(page, "<!DOCTYPE html>") {
		t.Errorf("report.html was not replaced: %.40q", page)
	}
	entries, err := os.ReadDir(f.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

func TestWriteKeepsBoundedCounts(t *testing.T) {
	dir := t.TempDir()
	// A column with a new value on every row keeps only maxDistinct of them; the rows of values
	// first seen after that are counted apart. A column of 7 values is counted exactly.
	var rows [][]string
	n := maxDistinct + 500
	for i := 0; i < n; i++ {
		rows = append(rows, []string{fmt.Sprint(i), fmt.Sprintf("code-%05d", i), fmt.Sprintf("g%d", i%7), "m", "1", "1", "", "1", "5", "0", "false", "0", "0", "", "model", "", "", ""})
	}
	writeCSV(t, filepath.Join(dir, resultsFile), append([]string{"id", "code", "group"}, results.Bookkeeping()...), rows)
	r, err := collect(dir)
	if err != nil {
		t.Fatal(err)
	}
	c := r.res.cats[0]
	if len(c.counts) != maxDistinct {
		t.Errorf("kept %d distinct values, want the cap %d", len(c.counts), maxDistinct)
	}
	if c.unseen != 500 {
		t.Errorf("%d rows counted as unseen, want 500", c.unseen)
	}
	if !c.freeText() {
		t.Error("a column with a new value on every row is not judged free text")
	}
	g := r.res.cats[1]
	if g.freeText() || len(g.counts) != 7 || g.counts["g0"] != int64((n+6)/7) {
		t.Errorf("7-value column: free text %v, counts %v; want exact counts", g.freeText(), g.counts)
	}
	root := parsePage(t, mustRender(t, r))
	if txt := root.byID("categories").allText(); !strings.Contains(txt, "code (over 5,000 distinct values)") {
		t.Errorf("the capped column is not listed as free text: %q", txt)
	}
}

func mustRender(tb testing.TB, r *run) string {
	tb.Helper()
	tmpl, err := parseTemplate()
	if err != nil {
		tb.Fatal(err)
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, build(r)); err != nil {
		tb.Fatal(err)
	}
	return buf.String()
}

func TestWriteGolden(t *testing.T) {
	f := writeFixture(t, t.TempDir())
	got := writeReport(t, f.dir)
	golden := filepath.Join("testdata", "fixture.golden.html")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/report -run Golden -update to create it)", err)
	}
	if got != string(want) {
		gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
		for i := 0; i < len(gl) || i < len(wl); i++ {
			var g, w string
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Fatalf("report differs from %s at line %d:\ngot:  %.200q\nwant: %.200q\n(if the change is intended, rerun with -update and review the diff)", golden, i+1, g, w)
			}
		}
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// After a resume the wall time is the last pass's, and so is its rate.
func TestWallTimeRateIsThisPasss(t *testing.T) {
	s := &summary.Summary{Records: 100, Succeeded: 100, WallSeconds: 10, Pass: summary.Pass{Answered: 20}}
	p := &page{}
	p.header(&run{dir: rundir.New(t.TempDir()), summary: s})
	for _, tl := range p.Tiles {
		if strings.HasPrefix(tl.Label, "Wall time") {
			if tl.Label != "Wall time (this pass)" || !strings.HasPrefix(tl.Sub, "2 records/s") || !strings.Contains(tl.Sub, "80 of the 100 done were done in earlier passes") {
				t.Errorf("wall time tile %+v", tl)
			}
			return
		}
	}
	t.Fatal("no wall time tile")
}

// An agent run's page charts records by turns and calls by tool; a one-shot run's has no agent
// section.
func TestWriteChartsTheAgent(t *testing.T) {
	dir := t.TempDir()
	header := append([]string{"id", "code"}, results.Bookkeeping()...)
	rows := [][]string{
		{"1", "a", "m", "1", "1", "", "3", "5", "0", "false", "0", "3", "read_section=1;submit_categorization=2", "model", "", "", ""},
		{"2", "b", "m", "1", "1", "", "2", "5", "0", "false", "0", "3", "read_section=2;submit_categorization=1", "model", "", "", ""},
		{"3", "c", "m", "1", "1", "", "9", "5", "0", "false", "0", "8", "read_section=8;fallback=1", "model", "", "", ""},
	}
	writeCSV(t, filepath.Join(dir, resultsFile), header, rows)
	page := writeReport(t, dir)
	for _, want := range []string{"Agent turns per record", "Agent tool calls by tool", "read_section", "submit_categorization", "(one-shot fallback)"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	r, err := collect(dir)
	if err != nil {
		t.Fatal(err)
	}
	if r.res.turns.counts["3"] != 2 || r.res.turns.counts["8"] != 1 || r.res.toolCalls.counts["read_section"] != 11 {
		t.Errorf("turns %v, calls %v", r.res.turns.counts, r.res.toolCalls.counts)
	}
	dir2 := t.TempDir()
	writeCSV(t, filepath.Join(dir2, resultsFile), header, [][]string{{"1", "a", "m", "1", "1", "", "1", "5", "0", "false", "0", "0", "", "model", "", ""}})
	if page := writeReport(t, dir2); strings.Contains(page, `id="agent"`) {
		t.Error("a one-shot run's page has an agent section")
	}
}

// The cost section splits the cost by service tier, by record length and by stage, with the
// share of prompt tokens the provider's cache served.
func TestWriteBreaksCostDown(t *testing.T) {
	dir := t.TempDir()
	header := append([]string{"id", "code"}, results.Bookkeeping()...)
	row := func(id, in, cached, cost, decided, escalated, tier string) []string {
		return []string{id, "a", "m", in, "10", cost, "1", "5", "0", "false", cached, "0", "", "model", decided, escalated, tier}
	}
	writeCSV(t, filepath.Join(dir, resultsFile), header, [][]string{
		row("1", "900", "0", "0.001000", "small", "", "flex"),
		row("2", "2500", "1024", "0.002000", "small", "", "flex"),
		row("3", "2500", "2048", "0.004000", "big", "confidence 0.33 below 0.6", "default"),
	})
	page := writeReport(t, dir)
	for _, want := range []string{"Per service tier", "Per record length (prompt tokens)", "Per stage",
		"cascade: escalated, decided by big", "cascade: decided by small", "under 1k", "2k to 4k", "61%"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	r, err := collect(dir)
	if err != nil {
		t.Fatal(err)
	}
	if f := r.res.tiers["flex"]; f == nil || f.Rows != 2 || math.Abs(f.CostUSD-0.003) > 1e-9 || f.CachedTokens != 1024 {
		t.Errorf("flex tier: %+v", f)
	}
	if d := r.res.lengths["2k to 4k"]; d == nil || d.Rows != 2 {
		t.Errorf("2k to 4k: %+v", d)
	}
}
