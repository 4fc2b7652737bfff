package compare

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trialcat/trialcat/internal/testkit"
)

func write(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCompareCountsMissingAndExtraIDs(t *testing.T) {
	a, err := ReadCSV(write(t, "a.csv", "nct_id,area,purpose,rationale,model,cost_usd\n"+
		"N1,onc,treat,r1,m,0.1\nN2,onc,prev,r2,m,0.1\nN3,cardio,treat,r3,m,0.1\nN4,neuro,treat,r4,m,0.1\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(a.Fields, ",") != "area,purpose" {
		t.Errorf("fields %v; want the categories, not the ID, rationale or bookkeeping", a.Fields)
	}
	// B: a person's labels on N1-N3 and N9, in another column order; N3's purpose not given.
	b, err := ReadCSV(write(t, "b.csv", "id,purpose,area\nN1,treat,onc\nN2,treat,onc\nN3,,neuro\nN9,treat,onc\n"), a.Fields)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Compare(a, b, 1)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Common != 3 || rep.OnlyInA != 1 || rep.OnlyInB != 1 {
		t.Errorf("common %d, only in A %d, only in B %d; want 3, 1, 1", rep.Common, rep.OnlyInA, rep.OnlyInB)
	}
	area, purpose := rep.Fields["area"], rep.Fields["purpose"]
	if area.N != 3 || !near(*area.Agreement, 2.0/3) {
		t.Errorf("area: n %d agreement %v; want 3, 2/3", area.N, *area.Agreement)
	}
	if purpose.N != 2 || !near(*purpose.Agreement, 0.5) {
		t.Errorf("purpose: n %d agreement %v; want 2 (N3 has no label on B), 1/2", purpose.N, *purpose.Agreement)
	}
	if len(rep.Disagreements) != 2 || rep.Disagreements[0].RationaleA == "" {
		t.Errorf("disagreements %+v; want N2's purpose and N3's area, with A's rationale", rep.Disagreements)
	}
	var js struct {
		Fields map[string]struct {
			N       int       `json:"n"`
			Kappa   *float64  `json:"kappa"`
			KappaCI []float64 `json:"kappa_ci"`
		} `json:"fields"`
		OnlyInA int `json:"only_in_a"`
		OnlyInB int `json:"only_in_b"`
	}
	var buf bytes.Buffer
	if err := rep.JSON(&buf); err != nil || json.Unmarshal(buf.Bytes(), &js) != nil {
		t.Fatalf("JSON: %v\n%s", err, buf.String())
	}
	if js.Fields["area"].N != 3 || js.OnlyInA != 1 || js.OnlyInB != 1 {
		t.Errorf("JSON %s", buf.String())
	}
}

func TestReviewSheetGivesTheReviewersLabels(t *testing.T) {
	sheet := write(t, "review_sample.csv", "nct_id,title,area,rationale,review_area,review_notes\n"+
		"N1,t1,onc,r,onc,\nN2,t2,onc,r,cardio,unsure\nN3,t3,neuro,r,,\n")
	l, err := ReadCSV(sheet, nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(l.Fields, ",") != "area" || len(l.Order) != 2 || l.Values["N2"]["area"] != "cardio" {
		t.Errorf("review sheet read as fields %v, IDs %v, values %v; want the review_ column, N3 (not reviewed) left out", l.Fields, l.Order, l.Values)
	}
}

func TestGuardedCellsCompareEqual(t *testing.T) {
	a, _ := ReadCSV(write(t, "a.csv", "id,v\nX,'=1\n"), nil)
	b, _ := ReadCSV(write(t, "b.csv", "id,v\nX,=1\n"), nil)
	rep, err := Compare(a, b, 1)
	if err != nil || *rep.Fields["v"].Agreement != 1 {
		t.Errorf("a guarded cell (final files) and the raw value differ: %+v, %v", rep, err)
	}
}

func TestNoCommonColumnIsAnError(t *testing.T) {
	a, _ := ReadCSV(write(t, "a.csv", "id,x\n1,a\n"), nil)
	b, _ := ReadCSV(write(t, "b.csv", "id,y\n1,a\n"), nil)
	if _, err := Compare(a, b, 1); err == nil || !strings.Contains(err.Error(), "no category column in common") {
		t.Errorf("err = %v", err)
	}
}

// TestPageInABrowser renders compare.html in headless Chromium: the tables are there and nothing
// is loaded from the network.
func TestPageInABrowser(t *testing.T) {
	const chromium = "/usr/bin/chromium"
	if _, err := os.Stat(chromium); err != nil {
		testkit.Need(t, chromium+" is not installed (.ci/run installs it)")
	}
	a, _ := ReadCSV(write(t, "a.csv", "id,area\n1,onc\n2,onc\n3,cardio\n4,<b>x</b>\n"), nil)
	b, _ := ReadCSV(write(t, "b.csv", "id,area\n1,onc\n2,cardio\n3,cardio\n4,<b>x</b>\n"), nil)
	rep, err := Compare(a, b, 1)
	if err != nil {
		t.Fatal(err)
	}
	page := filepath.Join(t.TempDir(), "compare.html")
	var buf bytes.Buffer
	if err := rep.HTML(&buf); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"http://", "https://", "<script", "<link", "<img"} {
		if strings.Contains(buf.String(), bad) {
			t.Errorf("the page holds %q: it must be self-contained", bad)
		}
	}
	os.WriteFile(page, buf.Bytes(), 0o644)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir="+t.TempDir(), "--dump-dom", "file://"+page)
	dom, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	for _, want := range []string{"Cohen's kappa", "<h2>area</h2>", `class="diag">1</td>`, "&lt;b&gt;x&lt;/b&gt;"} {
		if !bytes.Contains(dom, []byte(want)) {
			t.Errorf("the rendered page lacks %q", want)
		}
	}
}

// Labels are data, not terminal output: a NUL or an escape sequence is shown escaped, and a
// 10 MB label is cut in the tables (whole in the CSV and JSON), so a confusion table stays a table.
func TestHostileLabelsStayReadable(t *testing.T) {
	huge := strings.Repeat("x", 10<<20)
	a, err := ReadCSV(write(t, "a.csv", "id,area\n1,onc\n2,\x1b[31mred\n3,"+huge+"\n4,nul\x00byte\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ReadCSV(write(t, "b.csv", "id,area\n1,onc\n2,onc\n3,onc\n4,onc\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Compare(a, b, 1)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	rep.Print(&out, true)
	if out.Len() > 20<<10 {
		t.Errorf("the printed comparison is %d bytes for four records", out.Len())
	}
	for _, bad := range []string{"\x00", "\x1b"} {
		if strings.Contains(out.String(), bad) {
			t.Errorf("the output carries %q raw", bad)
		}
	}
	if !strings.Contains(out.String(), `\x1b[31mred`) || !strings.Contains(out.String(), `nul\x00byte`) {
		t.Errorf("control characters are not shown escaped:\n%s", out.String())
	}
	var page strings.Builder
	if err := rep.HTML(&page); err != nil {
		t.Fatal(err)
	}
	if page.Len() > 100<<10 {
		t.Errorf("compare.html is %d bytes for four records", page.Len())
	}
}

func TestRaggedRowsAndNoSharedColumnsAreSaid(t *testing.T) {
	a, _ := ReadCSV(write(t, "a.csv", "id,area,phase\n1,onc\n2,onc,2\n3,cardio,3,extra\n"), nil)
	b, _ := ReadCSV(write(t, "b.csv", "id,area,phase\n1,onc,1\n2,onc,2\n3,cardio,3\n"), nil)
	rep, err := Compare(a, b, 1)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	rep.Print(&out, false)
	if !strings.Contains(out.String(), "2 rows have more or fewer cells than its header (lines [2 4])") {
		t.Errorf("ragged rows are not said:\n%s", out.String())
	}
	none, _ := ReadCSV(write(t, "n.csv", "id,model,cost_usd\n1,m,0\n"), nil)
	_, err = Compare(a, none, 1)
	if err == nil || strings.Contains(err.Error(), "(columns )") || !strings.Contains(err.Error(), "no category column (its header: id, model, cost_usd)") {
		t.Errorf("no shared columns: %v", err)
	}
}
