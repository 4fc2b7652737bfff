package engine_test

import (
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/trialcat/trialcat/internal/fakeai"
)

type compareJSON struct {
	Fields map[string]struct {
		N         int       `json:"n"`
		Agreement *float64  `json:"agreement"`
		Kappa     *float64  `json:"kappa"`
		KappaCI   []float64 `json:"kappa_ci"`
	} `json:"fields"`
	Common  int `json:"common"`
	OnlyInA int `json:"only_in_a"`
	OnlyInB int `json:"only_in_b"`
}

func compareRuns(t *testing.T, args ...string) compareJSON {
	t.Helper()
	res := runBin(t, nil, "coordinator", append([]string{"compare"}, args...)...)
	if res.code != 0 {
		t.Fatalf("compare %v: exit %d\n%s%s", args, res.code, res.stdout, res.stderr)
	}
	var c compareJSON
	if err := json.Unmarshal([]byte(res.stdout), &c); err != nil {
		t.Fatalf("compare --json printed no JSON object: %v\n%s", err, res.stdout)
	}
	return c
}

// TestCompareOfflineWithTheRegistryAndAnAPIRun compares the offline categorizer's run of the
// bundled trials with what the records state (purpose and population come from those fields,
// so they agree fully) and with an API run (the fake's answers).
func TestCompareOfflineWithTheRegistryAndAnAPIRun(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	off, api := filepath.Join(dir, "offline"), filepath.Join(dir, "api")
	if res := runBin(t, nil, "coordinator", "--workers", "2", "--input", sample, "--out", off, "--progress", "off"); res.code != 0 {
		t.Fatalf("offline run: exit %d\n%s", res.code, res.stderr)
	}
	reg := compareRuns(t, off, "--against-registry", "--input", sample, "--json")
	for _, f := range []string{"trial_purpose", "population"} {
		if got := reg.Fields[f]; got.N != 100 || *got.Agreement != 1 {
			t.Errorf("%s against the registry: n %d agreement %v; want all 100 equal (the offline rules read those fields)", f, got.N, *got.Agreement)
		}
	}
	if it := reg.Fields["intervention_type"]; it.N != 100 || *it.Agreement >= 1 || *it.Agreement < 0.8 {
		t.Errorf("intervention_type against the registry: %+v; want most but not all equal (biologics found by name differ)", it)
	}
	_, url := startFake(t, fakeai.Config{})
	if res := runBin(t, []string{"OPENAI_API_KEY=" + testKey}, "coordinator", "--workers", "2", "--input", sample, "--out", api,
		"--base-url", url, "--progress", "off"); res.code != 0 {
		t.Fatalf("API run: exit %d\n%s", res.code, res.stderr)
	}
	cmpOut := filepath.Join(dir, "cmp")
	c := compareRuns(t, off, api, "--json", "--out", cmpOut)
	if c.Common != 100 || c.OnlyInA != 0 || c.OnlyInB != 0 || len(c.Fields) != 5 {
		t.Errorf("offline vs API: %+v; want 100 in common and the 5 category fields (not the rationale)", c)
	}
	for _, f := range []string{"compare.html", "disagreements.csv"} {
		if _, err := os.Stat(filepath.Join(cmpOut, f)); err != nil {
			t.Errorf("--out did not write %s", f)
		}
	}
}

// TestReviewSheetRoundTrip draws a stratified sample, fills the review columns as a person
// would (agreeing except on a known number of records), and reads it back with compare.
func TestReviewSheetRoundTrip(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "run")
	if res := runBin(t, nil, "coordinator", "--workers", "2", "--input", sample, "--out", out, "--progress", "off"); res.code != 0 {
		t.Fatalf("run: exit %d\n%s", res.code, res.stderr)
	}
	res := runBin(t, nil, "coordinator", "sample", "--out", out, "--n", "20", "--by", "therapeutic_area", "--seed", "3")
	if res.code != 0 {
		t.Fatalf("sample: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	sheet := filepath.Join(out, "review_sample.csv")
	f, err := os.Open(sheet)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 21 {
		t.Fatalf("review sheet has %d rows; want a header and 20 records", len(rows))
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	for _, want := range []string{"nct_id", "title", "conditions", "therapeutic_area", "rationale", "review_therapeutic_area", "review_notes"} {
		if _, ok := col[want]; !ok {
			t.Fatalf("review sheet lacks column %s: %v", want, rows[0])
		}
	}
	areas := map[string]bool{}
	for _, r := range rows[1:] {
		areas[r[col["therapeutic_area"]]] = true
		if r[col["title"]] == "" {
			t.Errorf("record %s has no title on the sheet", r[0])
		}
	}
	if len(areas) < 5 {
		t.Errorf("the stratified sample covers %d areas; want most of the run's", len(areas))
	}
	// The reviewer agrees on the area of all but 4 records and reviews only that field.
	for i, r := range rows[1:] {
		v := r[col["therapeutic_area"]]
		if i < 4 {
			v = "other_area_by_reviewer"
		}
		r[col["review_therapeutic_area"]] = v
	}
	var b strings.Builder
	w := csv.NewWriter(&b)
	w.WriteAll(rows)
	os.WriteFile(sheet, []byte(b.String()), 0o644)
	c := compareRuns(t, out, sheet, "--json")
	got := c.Fields["therapeutic_area"]
	if len(c.Fields) != 1 || got.N != 20 || *got.Agreement != 16.0/20 || c.OnlyInA != 80 {
		t.Errorf("run vs review sheet: %+v (area %+v); want area only, 20 reviewed, 80%% agreement, 80 not in the sample", c, got)
	}
}

// TestCacheAsksOnlyChangedAndNewRecords runs the bundled trials with a response cache, then a
// new download of them in which three records changed and two are new: the second run asks
// exactly those five, and takes the rest from the cache at no cost.
func TestCacheAsksOnlyChangedAndNewRecords(t *testing.T) {
	t.Parallel()
	api, url := startFake(t, fakeai.Config{})
	dir := t.TempDir()
	cacheDir := filepath.Join(dir, "cache")
	env := []string{"OPENAI_API_KEY=" + testKey}
	run := func(input, out string) runResult {
		res := runBin(t, env, "coordinator", "--workers", "4", "--input", input, "--out", out, "--base-url", url,
			"--cache", cacheDir, "--progress", "off")
		if res.code != 0 {
			t.Fatalf("run on %s: exit %d\n%s", input, res.code, res.stderr)
		}
		return res
	}
	run(sample, filepath.Join(dir, "first"))
	before := api.Stats().PerID

	// The next download: records 10, 20 and 30 edited, two new ones at the end.
	data, err := os.ReadFile(sample)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	edit := func(line, title, newID string) string {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		idm := rec["protocolSection"].(map[string]any)["identificationModule"].(map[string]any)
		idm["briefTitle"] = title
		if newID != "" {
			idm["nctId"] = newID
		}
		b, _ := json.Marshal(rec)
		return string(b)
	}
	want := map[string]bool{}
	for _, i := range []int{10, 20, 30} {
		lines[i] = edit(lines[i], "An edited title for this download", "")
		want[sampleIDOf(t, lines[i])] = true
	}
	for i, id := range []string{"NCT99999901", "NCT99999902"} {
		lines = append(lines, edit(lines[i], "A new trial", id))
		want[id] = true
	}
	next := filepath.Join(dir, "next.jsonl")
	os.WriteFile(next, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
	// The estimate counts the cache's records as free.
	est := runBin(t, env, "coordinator", "estimate", "--workers", "4", "--input", next, "--base-url", url, "--cache", cacheDir)
	if est.code != 0 || !strings.Contains(est.stdout, "97 records are answered from it at no cost; the figures below are for the other 5") ||
		!strings.Contains(est.stdout, "estimate: 5 records") {
		t.Errorf("estimate with the cache: exit %d\n%s%s", est.code, est.stdout, est.stderr)
	}
	out := filepath.Join(dir, "second")
	res := run(next, out)

	asked := map[string]bool{}
	for id, n := range api.Stats().PerID {
		if n > before[id] {
			asked[id] = true
		}
	}
	if len(asked) != len(want) {
		t.Errorf("the second run asked %d records %v; want exactly the %d changed and new ones %v", len(asked), asked, len(want), want)
	}
	for id := range want {
		if !asked[id] {
			t.Errorf("changed or new record %s was not asked", id)
		}
	}
	rows := readCSV(t, filepath.Join(out, "final_results.csv"))
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	cached := 0
	for _, r := range rows[1:] {
		isCached := r[col["cached"]] == "true"
		if isCached == want[r[0]] {
			t.Errorf("record %s: cached=%s", r[0], r[col["cached"]])
		}
		if isCached {
			cached++
			if r[col["cost_usd"]] != "0.000000" {
				t.Errorf("cached record %s costs %s; want 0", r[0], r[col["cost_usd"]])
			}
		}
	}
	if cached != 97 || len(rows)-1 != 102 || !strings.Contains(res.stdout, "97 answers from the response cache") {
		t.Errorf("%d cached of %d rows; want 97 of 102\n%s", cached, len(rows)-1, res.stdout)
	}
	if s := readSummaryFile(t, out); s.Succeeded != 102 {
		t.Errorf("summary: %+v", s)
	}
	st := runBin(t, nil, "coordinator", "cache", "stats", "--cache", cacheDir)
	if st.code != 0 || !strings.Contains(st.stdout, "105 answers") { // 100, then 3 changed and 2 new
		t.Errorf("cache stats: exit %d\n%s%s", st.code, st.stdout, st.stderr)
	}
}
