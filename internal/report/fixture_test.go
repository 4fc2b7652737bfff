package report

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trialcat/trialcat/internal/results"
	"github.com/trialcat/trialcat/internal/rundir"
	"github.com/trialcat/trialcat/internal/taxonomy"
)

// scriptValue is a category value that must reach the page as text, never as markup.
const scriptValue = `<script>alert('x')</script>`

// fixtureStart is the fixed start of the fixture run, so the page is the same on every run.
var fixtureStart = time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC)

// fixture describes what writeFixture wrote, for the assertions.
type fixture struct {
	dir     string
	columns []string                    // schema columns
	counts  map[string]map[string]int64 // column → value → rows
	failIDs []string
}

// writeFixture writes a run folder like the coordinator leaves it: summary.json, a
// final_results.csv with the default taxonomy's columns, final_failures.csv and two worker logs,
// worker 1 having crashed once and been restarted.
func writeFixture(tb testing.TB, dir string) fixture {
	tb.Helper()
	f := fixture{dir: dir, columns: taxonomy.MustSchema().Columns(), counts: map[string]map[string]int64{}}
	header := results.Layout{IDColumn: "nct_id", Columns: f.columns}.Header()
	var rows [][]string
	for i := 0; i < 40; i++ {
		area := "oncology"
		switch {
		case i == 39:
			area = scriptValue
		case i >= 32:
			area = "neurology"
		case i >= 20:
			area = "cardiovascular"
		}
		values := map[string]string{
			"therapeutic_area":       area,
			"intervention_type":      []string{"drug", "device", "behavioral"}[i%3],
			"trial_purpose":          map[bool]string{true: "treatment", false: "prevention"}[i < 30],
			"population":             map[bool]string{true: "adult", false: "older_adult"}[i%2 == 0],
			"eligibility_complexity": []string{"low", "low", "medium", "high"}[i%4],
			"rationale":              fmt.Sprintf("Rationale for row %d: conditions and interventions.", i),
		}
		if i == 5 {
			values["population"] = ""
		}
		row := []string{fmt.Sprintf("NCT%08d", i)}
		for _, c := range f.columns {
			v, ok := values[c]
			if !ok {
				tb.Fatalf("fixture has no value for schema column %q: update writeFixture", c)
			}
			row = append(row, v)
			if f.counts[c] == nil {
				f.counts[c] = map[string]int64{}
			}
			f.counts[c][v]++
		}
		model, cost := "gpt-5-mini", fmt.Sprintf("0.%06d", 100+i)
		if i >= 30 {
			model = "gpt-5"
		}
		if i == 39 {
			cost = "" // price unknown
		}
		row = append(row, model, fmt.Sprint(1000+i*37), fmt.Sprint(50+i), cost, fmt.Sprint(1+i%3/2),
			fmt.Sprint(120+i*45), fmt.Sprint(i%2), "false", "0", "0", "", "model", "", "", "default")
		rows = append(rows, row)
	}
	writeCSV(tb, filepath.Join(dir, resultsFile), header, rows)

	failures := [][]string{
		{"NCT90000001", "rate_limited", "Rate limit reached for requests. Please try again later.", "5", "0"},
		{"NCT90000002", "bad_request", "invalid request: <script>alert(1)</script> see https://example.com/docs", "1", "1"},
		{"NCT90000003", "server_error", "HTTP 500: internal error", "5", "1"},
	}
	for _, r := range failures {
		f.failIDs = append(f.failIDs, r[0])
	}
	writeCSV(tb, filepath.Join(dir, failuresFile), results.Layout{IDColumn: "nct_id"}.FailureHeader(), failures)

	at := func(s float64) string {
		return fixtureStart.Add(time.Duration(s * float64(time.Second))).Format(time.RFC3339Nano)
	}
	writeFile(tb, filepath.Join(dir, "worker_0_log.txt"), strings.Join([]string{
		`{"level":"info","worker":0,"pending":21,"done":0,"time":"` + at(0.2) + `","message":"batch started"}`,
		`{"level":"debug","worker":0,"id":"NCT00000000","attempt":1,"latency_ms":120,"status":"ok","time":"` + at(0.4) + `","message":"request"}`,
		`{"level":"info","worker":0,"id":"NCT90000001","attempt":1,"latency_ms":3,"status":"error","class":"rate_limited","http_status":429,"time":"` + at(2) + `","message":"request"}`,
		`{"level":"warn","worker":0,"id":"NCT90000001","class":"rate_limited","attempts":5,"time":"` + at(6) + `","message":"record failed"}`,
		`{"level":"info","worker":0,"answered":20,"failed":1,"abandoned":0,"seconds":9.8,"time":"` + at(10) + `","message":"batch finished"}`,
	}, "\n")+"\n")
	writeFile(tb, filepath.Join(dir, "worker_1_log.txt"), strings.Join([]string{
		`{"level":"info","worker":1,"pending":22,"done":0,"time":"` + at(1) + `","message":"batch started"}`,
		`{"level":"info","worker":1,"id":"NCT90000003","attempt":1,"latency_ms":80,"status":"error","class":"server_error","http_status":500,"time":"` + at(3) + `","message":"request"}`,
		`{"level":"debug","worker":1,"id":"NCT00000001","attempt":1,"latency_ms":165,"status":"ok","time":"` + at(4) + `","message":"request"}`,
		`panic: worker crashed on purpose`,
		`{"level":"info","worker":1,"pending":20,"done":2,"time":"` + at(6) + `","message":"batch started"}`,
		`{"level":"debug","worker":1,"id":"NCT00000003","attempt":1,"latency_ms":210,"status":"ok","time":"` + at(7) + `","message":"request"}`,
		`{"level":"info","worker":1,"answered":18,"failed":2,"abandoned":0,"seconds":6,"time":"` + at(12) + `","message":"batch finished"}`,
	}, "\n")+"\n")

	sum := map[string]any{
		"status": "records_failed", "out": "out", "provider": "openai", "model": "gpt-5-mini",
		"records": 43, "succeeded": 40, "failed": 3,
		"failed_by_class": map[string]int{"rate_limited": 1, "bad_request": 1, "server_error": 1},
		"input_tokens":    69240, "cached_input_tokens": 1024, "output_tokens": 2780,
		"estimated_cost_usd": 0.005, "cost_known": false, "retries": 12, "rate_limited_429s": 7, "restarts": 1,
		"wall_seconds": 13.0, "started_at": fixtureStart.Add(-500 * time.Millisecond), "finished_at": fixtureStart.Add(12500 * time.Millisecond),
		"workers": []map[string]any{
			{"batch": 0, "records": 21, "seconds": 9.9, "exit": "exit 1", "exit_code": 1, "restarts": 0, "started": true, "succeeded": 20, "failed": 1},
			{"batch": 1, "records": 22, "seconds": 11.2, "exit": "exit 1", "exit_code": 1, "restarts": 1, "started": true, "succeeded": 20, "failed": 2},
		},
	}
	b, err := json.MarshalIndent(sum, "", "  ")
	if err != nil {
		tb.Fatal(err)
	}
	writeFile(tb, filepath.Join(dir, summaryFile), string(b))
	return f
}

func writeCSV(tb testing.TB, path string, header []string, rows [][]string) {
	tb.Helper()
	var sb strings.Builder
	w := csv.NewWriter(&sb)
	if err := w.Write(header); err != nil {
		tb.Fatal(err)
	}
	if err := w.WriteAll(rows); err != nil {
		tb.Fatal(err)
	}
	writeFile(tb, path, sb.String())
}

func writeFile(tb testing.TB, path, content string) {
	tb.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		tb.Fatal(err)
	}
}

// writeReport runs Write on dir and returns the page.
func writeReport(tb testing.TB, dir string) string {
	tb.Helper()
	if err := Write(dir); err != nil {
		tb.Fatalf("Write(%s): %v", dir, err)
	}
	b, err := os.ReadFile(rundir.New(dir).Report())
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}
