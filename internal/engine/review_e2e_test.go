package engine_test

import (
	"encoding/csv"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/trialcat/trialcat/internal/results"
)

// A person's corrections: a bad sheet changes nothing and names its line and field; an import
// changes exactly the reviewed cells (source review); a rerun and a --fresh run keep them; a
// correction whose record changed since is reported stale and not applied.
func TestReviewCorrectionsSurviveReruns(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "run")
	run := func(input string, extra ...string) runResult {
		t.Helper()
		r := runBin(t, nil, "coordinator", append([]string{"--workers", "2", "--input", input, "--out", out}, extra...)...)
		if r.code != 0 {
			t.Fatalf("run: exit %d\n%s", r.code, tail(r.stderr, 20))
		}
		return r
	}
	run(sample)
	if r := runBin(t, nil, "coordinator", "sample", "--out", out, "-n", "6"); r.code != 0 {
		t.Fatalf("sample: exit %d\n%s", r.code, r.stderr)
	}
	sheet := readCSV(t, filepath.Join(out, "review_sample.csv"))
	col := slices.Index(sheet[0], "review_therapeutic_area")
	colPop := slices.Index(sheet[0], "review_population")
	// Corrections different from the model's answers, so that they show.
	final := readCSV(t, filepath.Join(out, "final_results.csv"))
	answer := map[string][]string{}
	for _, r := range final[1:] {
		answer[r[0]] = r
	}
	area := slices.Index(final[0], "therapeutic_area")
	pop := slices.Index(final[0], "population")
	other := func(v, a, b string) string {
		if v == a {
			return b
		}
		return a
	}
	id1, id2 := sheet[1][0], sheet[2][0]
	sheet[1][col] = other(answer[id1][area], "dermatology", "ophthalmology")
	sheet[2][colPop] = other(answer[id2][pop], "older_adult", "pediatric")
	good := filepath.Join(dir, "good.csv")
	writeSheet(t, good, sheet)
	bad := slices.Clone(sheet)
	bad[3] = slices.Clone(sheet[3])
	bad[3][col] = "astrology"
	badPath := filepath.Join(dir, "bad.csv")
	writeSheet(t, badPath, bad)

	before, _ := os.ReadFile(filepath.Join(out, "final_results.csv"))
	r := runBin(t, nil, "coordinator", "review", "import", badPath, "--out", out)
	if r.code != 2 || !strings.Contains(r.stderr, "bad.csv line 4, review_therapeutic_area") || !strings.Contains(r.stderr, "nothing was imported") {
		t.Errorf("bad sheet: exit %d\n%s", r.code, r.stderr)
	}
	if after, _ := os.ReadFile(filepath.Join(out, "final_results.csv")); string(after) != string(before) {
		t.Error("a refused sheet changed final_results.csv")
	}
	if r := runBin(t, nil, "coordinator", "review", "import", good, "--out", out); r.code != 0 || !strings.Contains(r.stdout, "2 reviewed answers") {
		t.Fatalf("import: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	check := func(when string, wantReviewed map[string]bool) {
		t.Helper()
		rows := readCSV(t, filepath.Join(out, "final_results.csv"))
		src := slices.Index(rows[0], results.ColSource)
		for _, row := range rows[1:] {
			was := answer[row[0]]
			for i := range row {
				switch {
				case i == src:
					if want := wantReviewed[row[0]]; (row[i] == results.SourceReview) != want {
						t.Errorf("%s: %s source %q, reviewed %v", when, row[0], row[i], want)
					}
				case row[0] == id1 && i == area && wantReviewed[id1]:
					if row[i] != sheet[1][col] {
						t.Errorf("%s: %s therapeutic_area %q, the reviewer said %q", when, id1, row[i], sheet[1][col])
					}
				case row[0] == id2 && i == pop && wantReviewed[id2]:
					if row[i] != sheet[2][colPop] {
						t.Errorf("%s: %s population %q, the reviewer said %q", when, id2, row[i], sheet[2][colPop])
					}
				case i < src-11: // the schema's cells: unchanged unless reviewed
					if row[i] != was[i] {
						t.Errorf("%s: %s column %s changed from %q to %q", when, row[0], rows[0][i], was[i], row[i])
					}
				}
			}
		}
	}
	both := map[string]bool{id1: true, id2: true}
	check("after the import", both)
	run(sample)
	check("after a rerun", both)
	run(sample, "--fresh")
	check("after --fresh", both)

	// A new version of the input in which id1's record changed: its correction is stale.
	data, _ := os.ReadFile(sample)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	for i, l := range lines {
		if strings.Contains(l, `"nctId":"`+id1+`"`) {
			lines[i] = strings.Replace(l, `"briefTitle":"`, `"briefTitle":"Amended: `, 1)
		}
	}
	changed := filepath.Join(dir, "changed.jsonl")
	os.WriteFile(changed, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
	r = run(changed, "--fresh")
	if !strings.Contains(r.stdout, "1 corrections are stale") || !strings.Contains(r.stdout, id1) {
		t.Errorf("the stale correction is not reported:\n%s", r.stdout)
	}
	check("after the record changed", map[string]bool{id2: true})
}

func writeSheet(t *testing.T, path string, rows [][]string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := csv.NewWriter(f)
	w.WriteAll(rows)
	f.Close()
}
