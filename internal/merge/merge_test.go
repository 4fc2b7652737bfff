package merge

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/trialcat/trialcat/internal/exitcode"
	"github.com/trialcat/trialcat/internal/record"
	"github.com/trialcat/trialcat/internal/results"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

var layout = results.Layout{IDColumn: "nct_id", Columns: []string{"phase"}}

var header = layout.Header()

// idsOf returns a Batch.IDs function over a fixed list.
func idsOf(ids ...string) func(yield func(string) error) error {
	return func(yield func(string) error) error {
		for _, id := range ids {
			if err := yield(id); err != nil {
				return err
			}
		}
		return nil
	}
}

// readLines reads a fixture listing one ID per line.
func readLines(tb testing.TB, path string) []string {
	tb.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return strings.Fields(string(data))
}

// readCSV reads a whole output file.
func readCSV(tb testing.TB, path string) [][]string {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	return rows
}

// column returns column i of rows after the header.
func column(rows [][]string, i int) []string {
	var c []string
	for _, r := range rows[1:] {
		c = append(c, r[i])
	}
	return c
}

// writeWorkerFile writes a worker CSV with the given header and rows.
func writeWorkerFile(tb testing.TB, path string, head []string, rows [][]string) {
	tb.Helper()
	w, err := results.OpenWriter(path, head)
	if err != nil {
		tb.Fatal(err)
	}
	for _, r := range rows {
		if err := w.Append(r); err != nil {
			tb.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
}

// resultRow builds a results row for id.
func resultRow(id, phase, worker string) []string {
	return []string{id, phase, "m", "10", "2", "0.001", "1", "100", worker, "false", "0", "0", "", "", "", "", ""}
}

// dirNames lists a directory, to check no temporary file is left.
func dirNames(tb testing.TB, dir string) []string {
	tb.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

func TestMergeGolden(t *testing.T) {
	src := filepath.Join("testdata", "mixed")
	out := t.TempDir()
	opts := Options{
		Layout:       layout,
		OutPath:      filepath.Join(out, "final_results.csv"),
		FailuresPath: filepath.Join(out, "final_failures.csv"),
	}
	for n := 1; n <= 2; n++ {
		opts.Batches = append(opts.Batches, Batch{
			Number:       n,
			ResultsPath:  filepath.Join(src, fmt.Sprintf("worker_%d_results.csv", n)),
			FailuresPath: filepath.Join(src, fmt.Sprintf("worker_%d_failures.csv", n)),
			IDs:          idsOf(readLines(t, filepath.Join(src, fmt.Sprintf("batch_%d.ids", n)))...),
		})
	}
	stats, err := Merge(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	want := Stats{
		Records: 7, Succeeded: 4, Failed: 1, Missing: 2, TornLines: 1, DuplicateRows: 1, Stray: 1,
		PerBatch: []BatchStats{
			{Number: 1, Records: 5, Succeeded: 3, Failed: 1, Missing: 1, Stray: 1},
			{Number: 2, Records: 2, Succeeded: 1, Missing: 1},
		},
	}
	if fmt.Sprint(stats) != fmt.Sprint(want) {
		t.Errorf("stats = %+v\nwant    %+v", stats, want)
	}
	for _, name := range []string{"final_results.csv", "final_failures.csv"} {
		got, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		golden := filepath.Join(src, name+".golden")
		if *update {
			if err := os.WriteFile(golden, got, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		wantContent, err := os.ReadFile(golden)
		if err != nil {
			t.Fatalf("%v (run go test -update to create it)", err)
		}
		if string(got) != string(wantContent) {
			t.Errorf("%s differs from %s:\n%s", name, golden, got)
		}
	}
}

func TestMergeSemantics(t *testing.T) {
	type files struct{ results, failures [][]string } // nil = file absent
	tests := []struct {
		name        string
		ids         []string
		worker      files
		wantResults []string // IDs in final_results, in order
		wantFailed  []string // "id:class:attempts" in final_failures, in order
	}{
		{
			name:        "all succeeded, shuffled rows come out in input order",
			ids:         []string{"A", "B", "C"},
			worker:      files{results: [][]string{resultRow("C", "x", "1"), resultRow("A", "x", "1"), resultRow("B", "x", "1")}},
			wantResults: []string{"A", "B", "C"},
		},
		{
			name: "success wins over an earlier failure",
			ids:  []string{"A"},
			worker: files{
				results:  [][]string{resultRow("A", "x", "1")},
				failures: [][]string{{"A", "timeout", "t/o", "1", "1"}},
			},
			wantResults: []string{"A"},
		},
		{
			name:       "last failure wins",
			ids:        []string{"A"},
			worker:     files{failures: [][]string{{"A", "timeout", "t/o", "1", "1"}, {"A", "bad_output", "invalid", "4", "1"}}},
			wantFailed: []string{"A:bad_output:4"},
		},
		{
			name:       "no worker files: every record missing",
			ids:        []string{"A", "B"},
			wantFailed: nil, // not done: in neither file
		},
		{
			name: "failures and missing interleave in input order",
			ids:  []string{"A", "B", "C", "D"},
			worker: files{
				results:  [][]string{resultRow("C", "x", "1")},
				failures: [][]string{{"D", "timeout", "t/o", "2", "1"}},
			},
			wantResults: []string{"C"},
			wantFailed:  []string{"D:timeout:2"},
		},
		{
			name:        "stray and duplicate rows dropped",
			ids:         []string{"A"},
			worker:      files{results: [][]string{resultRow("Z", "x", "1"), resultRow("A", "first", "1"), resultRow("A", "second", "1")}},
			wantResults: []string{"A"},
		},
		{
			name:        "an ID repeated in the input is written once",
			ids:         []string{"A", "A"},
			worker:      files{results: [][]string{resultRow("A", "x", "1")}},
			wantResults: []string{"A"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			b := Batch{
				Number:       1,
				ResultsPath:  filepath.Join(dir, "worker_1_results.csv"),
				FailuresPath: filepath.Join(dir, "worker_1_failures.csv"),
				IDs:          idsOf(tt.ids...),
			}
			if tt.worker.results != nil {
				writeWorkerFile(t, b.ResultsPath, header, tt.worker.results)
			}
			if tt.worker.failures != nil {
				writeWorkerFile(t, b.FailuresPath, layout.FailureHeader(), tt.worker.failures)
			}
			opts := Options{
				Batches: []Batch{b}, Layout: layout,
				OutPath: filepath.Join(dir, "final_results.csv"), FailuresPath: filepath.Join(dir, "final_failures.csv"),
			}
			stats, err := Merge(context.Background(), opts)
			if err != nil {
				t.Fatal(err)
			}
			res := readCSV(t, opts.OutPath)
			fails := readCSV(t, opts.FailuresPath)
			if !slices.Equal(res[0], header) || !slices.Equal(fails[0], layout.FailureHeader()) {
				t.Fatalf("headers = %q / %q", res[0], fails[0])
			}
			if got := column(res, 0); !slices.Equal(got, tt.wantResults) {
				t.Errorf("results IDs = %q, want %q", got, tt.wantResults)
			}
			var gotFailed []string
			for _, r := range fails[1:] {
				gotFailed = append(gotFailed, r[0]+":"+r[1]+":"+r[3])
			}
			if !slices.Equal(gotFailed, tt.wantFailed) {
				t.Errorf("failures = %q, want %q", gotFailed, tt.wantFailed)
			}
			// Every record is accounted for exactly once: answered, failed, or not done (in
			// neither file).
			if stats.Succeeded+stats.Failed+stats.Missing != stats.Records || stats.Succeeded+stats.Failed != int64(len(res)-1+len(fails)-1) {
				t.Errorf("stats %+v do not add up to the %d+%d rows written", stats, len(res)-1, len(fails)-1)
			}
		})
	}
}

func TestMergeFirstResultWins(t *testing.T) {
	dir := t.TempDir()
	b := Batch{Number: 1, ResultsPath: filepath.Join(dir, "r.csv"), FailuresPath: filepath.Join(dir, "f.csv"), IDs: idsOf("A")}
	writeWorkerFile(t, b.ResultsPath, header, [][]string{resultRow("A", "first", "1"), resultRow("A", "second", "1")})
	opts := Options{Batches: []Batch{b}, Layout: layout, OutPath: filepath.Join(dir, "out.csv"), FailuresPath: filepath.Join(dir, "fail.csv")}
	stats, err := Merge(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if rows := readCSV(t, opts.OutPath); len(rows) != 2 || rows[1][1] != "first" || stats.DuplicateRows != 1 {
		t.Fatalf("rows = %q, duplicates = %d; want only the first row and 1 duplicate", rows, stats.DuplicateRows)
	}
}

func TestMergeLeavesUndoneRecordsOutOfFailures(t *testing.T) {
	// A record no worker finished (an interrupted run) is not a failure: it is in neither file,
	// counted as missing, and a rerun does it.
	dir := t.TempDir()
	opts := Options{
		Batches: []Batch{{Number: 4, ResultsPath: filepath.Join(dir, "r.csv"), FailuresPath: filepath.Join(dir, "f.csv"), IDs: idsOf("A")}},
		Layout:  layout, OutPath: filepath.Join(dir, "out.csv"), FailuresPath: filepath.Join(dir, "fail.csv"),
	}
	stats, err := Merge(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := readCSV(t, opts.FailuresPath); len(got) != 1 {
		t.Errorf("final_failures = %q, want only its header", got)
	}
	if stats.Missing != 1 || stats.Failed != 0 {
		t.Errorf("stats %+v; want 1 missing, 0 failed", stats)
	}
}

func TestMergeRealRecords(t *testing.T) {
	// The 100 real trials, split into 3 batches; each worker wrote its rows in a random order and
	// a few records failed. The outputs must follow the input order.
	f, err := os.Open("../../testdata/trials.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ids []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		m, err := record.Decode(sc.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		id := record.IDOf(m, "")
		if id == "" {
			t.Fatalf("record %d has no ID", len(ids))
		}
		ids = append(ids, id)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	var batches []Batch
	var wantResults, wantFailed []string
	for n, start := 1, 0; start < len(ids); n, start = n+1, start+40 {
		part := ids[start:min(start+40, len(ids))]
		var rows, fails [][]string
		for i, id := range part {
			if i%7 == 3 {
				fails = append(fails, []string{id, "timeout", "request timed out", "3", fmt.Sprint(n)})
				wantFailed = append(wantFailed, id)
				continue
			}
			rows = append(rows, resultRow(id, "x", fmt.Sprint(n)))
			wantResults = append(wantResults, id)
		}
		rng.Shuffle(len(rows), func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
		rng.Shuffle(len(fails), func(i, j int) { fails[i], fails[j] = fails[j], fails[i] })
		b := Batch{
			Number:       n,
			ResultsPath:  filepath.Join(dir, fmt.Sprintf("worker_%d_results.csv", n)),
			FailuresPath: filepath.Join(dir, fmt.Sprintf("worker_%d_failures.csv", n)),
			IDs:          idsOf(part...),
		}
		writeWorkerFile(t, b.ResultsPath, header, rows)
		writeWorkerFile(t, b.FailuresPath, layout.FailureHeader(), fails)
		batches = append(batches, b)
	}
	opts := Options{Batches: batches, Layout: layout, OutPath: filepath.Join(dir, "final_results.csv"), FailuresPath: filepath.Join(dir, "final_failures.csv")}
	stats, err := Merge(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := column(readCSV(t, opts.OutPath), 0); !slices.Equal(got, wantResults) {
		t.Errorf("final_results IDs out of input order:\n got %q\nwant %q", got, wantResults)
	}
	if got := column(readCSV(t, opts.FailuresPath), 0); !slices.Equal(got, wantFailed) {
		t.Errorf("final_failures IDs = %q, want %q", got, wantFailed)
	}
	if stats.Records != int64(len(ids)) || len(stats.PerBatch) != 3 {
		t.Errorf("stats = %+v, want %d records in 3 batches", stats, len(ids))
	}
}

func TestMergeErrorsKeepExistingOutputs(t *testing.T) {
	errIDs := errors.New("batch file unreadable")
	tests := []struct {
		name      string
		setup     func(tb testing.TB, b *Batch)
		ctx       func() context.Context
		wantErr   error
		wantUsage bool
	}{
		{
			name: "results header from another run",
			setup: func(tb testing.TB, b *Batch) {
				writeWorkerFile(tb, b.ResultsPath, results.Layout{IDColumn: "id", Columns: []string{"other"}}.Header(), nil)
			},
			wantErr: exitcode.ErrUsage,
		},
		{
			name: "failures header from another run",
			setup: func(tb testing.TB, b *Batch) {
				writeWorkerFile(tb, b.FailuresPath, []string{"id", "why"}, nil)
			},
			wantErr: exitcode.ErrUsage,
		},
		{
			name: "damaged middle line",
			setup: func(tb testing.TB, b *Batch) {
				content := strings.Join(header, ",") + "\nA,short\n" + strings.Join(resultRow("B", "x", "1"), ",") + "\n"
				if err := os.WriteFile(b.ResultsPath, []byte(content), 0o644); err != nil {
					tb.Fatal(err)
				}
			},
		},
		{
			name: "IDs cannot be read",
			setup: func(tb testing.TB, b *Batch) {
				b.IDs = func(yield func(string) error) error {
					if err := yield("A"); err != nil {
						return err
					}
					return errIDs
				}
			},
			wantErr: errIDs,
		},
		{
			name:  "cancelled",
			setup: func(tb testing.TB, b *Batch) {},
			ctx: func() context.Context {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return ctx
			},
			wantErr: context.Canceled,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			b := Batch{
				Number: 1, IDs: idsOf("A", "B"),
				ResultsPath:  filepath.Join(dir, "worker_1_results.csv"),
				FailuresPath: filepath.Join(dir, "worker_1_failures.csv"),
			}
			tt.setup(t, &b)
			outDir := t.TempDir()
			opts := Options{
				Batches: []Batch{b}, Layout: layout,
				OutPath: filepath.Join(outDir, "final_results.csv"), FailuresPath: filepath.Join(outDir, "final_failures.csv"),
			}
			for _, p := range []string{opts.OutPath, opts.FailuresPath} {
				if err := os.WriteFile(p, []byte("previous run\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			ctx := context.Background()
			if tt.ctx != nil {
				ctx = tt.ctx()
			}
			_, err := Merge(ctx, opts)
			if err == nil {
				t.Fatal("Merge: want an error")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error = %v, want %v", err, tt.wantErr)
			}
			for _, p := range []string{opts.OutPath, opts.FailuresPath} {
				if got, _ := os.ReadFile(p); string(got) != "previous run\n" {
					t.Errorf("%s was replaced by a failed merge: %q", filepath.Base(p), got)
				}
			}
			if names := dirNames(t, outDir); len(names) != 2 {
				t.Errorf("output directory holds %q, want only the two previous files", names)
			}
		})
	}
}

func TestMergeReplacesOutputsOnSuccess(t *testing.T) {
	dir := t.TempDir()
	opts := Options{
		Batches: []Batch{{Number: 1, ResultsPath: filepath.Join(dir, "r.csv"), FailuresPath: filepath.Join(dir, "f.csv"), IDs: idsOf()}},
		Layout:  layout, OutPath: filepath.Join(dir, "final_results.csv"), FailuresPath: filepath.Join(dir, "final_failures.csv"),
	}
	for _, p := range []string{opts.OutPath, opts.FailuresPath} {
		if err := os.WriteFile(p, []byte("previous run\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Merge(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	if got := readCSV(t, opts.FailuresPath); len(got) != 1 || !slices.Equal(got[0], layout.FailureHeader()) {
		t.Errorf("final_failures = %q, want the header only", got)
	}
	if got := readCSV(t, opts.OutPath); len(got) != 1 || !slices.Equal(got[0], header) {
		t.Errorf("final_results = %q, want the header only", got)
	}
	if names := dirNames(t, dir); !slices.Equal(names, []string{"final_failures.csv", "final_results.csv"}) {
		t.Errorf("directory holds %q, want only the two outputs", names)
	}
}

func TestMergeReplacesResultsFirstAndMarksTheGap(t *testing.T) {
	// The failures file cannot be replaced (a non-empty folder holds its name): the merge fails
	// after results were renamed. Results first means an ID can at worst be in both files, never
	// in neither; the marker stays so that the next start merges again.
	dir := t.TempDir()
	b := Batch{Number: 1, ResultsPath: filepath.Join(dir, "r.csv"), FailuresPath: filepath.Join(dir, "f.csv"), IDs: idsOf("A")}
	writeWorkerFile(t, b.ResultsPath, header, [][]string{resultRow("A", "now answered", "1")})
	opts := Options{Batches: []Batch{b}, Layout: layout, OutPath: filepath.Join(dir, "out.csv"),
		FailuresPath: filepath.Join(dir, "fail"), MarkerPath: filepath.Join(dir, ".merging")}
	if err := os.MkdirAll(filepath.Join(opts.FailuresPath, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Merge(context.Background(), opts); err == nil {
		t.Fatal("merge succeeded though its failures file could not be replaced")
	}
	if rows := readCSV(t, opts.OutPath); len(rows) != 2 || rows[1][0] != "A" {
		t.Errorf("results %q; want the new results in place (renamed first)", rows)
	}
	if _, err := os.Stat(opts.MarkerPath); err != nil {
		t.Errorf("the merge marker is gone after a half-done merge: %v", err)
	}
	// A merge that fails before any rename leaves no marker and nothing replaced.
	opts.Batches[0].IDs = func(func(string) error) error { return errors.New("batch unreadable") }
	os.Remove(opts.MarkerPath)
	if err := os.RemoveAll(opts.FailuresPath); err != nil {
		t.Fatal(err)
	}
	if _, err := Merge(context.Background(), opts); err == nil {
		t.Fatal("merge of an unreadable batch succeeded")
	}
	if _, err := os.Stat(opts.MarkerPath); err == nil {
		t.Error("a merge that replaced nothing left its marker")
	}
	// A whole merge removes it.
	opts.Batches[0].IDs = idsOf("A")
	if _, err := Merge(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(opts.MarkerPath); err == nil {
		t.Error("the marker is still there after a whole merge")
	}
}

// A running merge takes batches one at a time while the run goes on: the existing outputs stay
// as they were until Finish, which puts every batch in, in order; Abort leaves no trace.
func TestRunningMergeKeepsOutputsUntilFinish(t *testing.T) {
	dir := t.TempDir()
	var batches []Batch
	for n, ids := range [][]string{{"A", "B"}, {"C"}} {
		res := filepath.Join(dir, fmt.Sprintf("r%d.csv", n))
		var rows [][]string
		for _, id := range ids {
			rows = append(rows, resultRow(id, "PHASE2", fmt.Sprint(n)))
		}
		writeWorkerFile(t, res, header, rows)
		batches = append(batches, Batch{Number: n, ResultsPath: res, FailuresPath: filepath.Join(dir, fmt.Sprintf("f%d.csv", n)), IDs: idsOf(ids...)})
	}
	opts := Options{Batches: batches, Layout: layout, OutPath: filepath.Join(dir, "final_results.csv"), FailuresPath: filepath.Join(dir, "final_failures.csv"),
		MarkerPath: filepath.Join(dir, ".merging")}
	if err := os.WriteFile(opts.OutPath, []byte("previous run\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, finish := range []bool{false, true} {
		r, err := Start(opts)
		if err != nil {
			t.Fatal(err)
		}
		// The later batch ends first: it waits in a segment of its own.
		if err := r.Add(context.Background(), batches[1]); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(opts.OutPath); string(got) != "previous run\n" {
			t.Fatalf("final_results.csv changed before Finish: %q", got)
		}
		if !finish {
			r.Abort()
			if names := dirNames(t, dir); slices.ContainsFunc(names, func(n string) bool { return strings.Contains(n, ".tmp-") }) {
				t.Fatalf("Abort left temporary files: %q", names)
			}
			continue
		}
		if err := r.Add(context.Background(), batches[0]); err != nil {
			t.Fatal(err)
		}
		st, err := r.Finish()
		if err != nil {
			t.Fatal(err)
		}
		if got := column(readCSV(t, opts.OutPath), 0); !slices.Equal(got, []string{"A", "B", "C"}) || st.Succeeded != 3 {
			t.Errorf("final IDs %q (%d succeeded); want A, B, C", got, st.Succeeded)
		}
		if _, err := os.Stat(opts.MarkerPath); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("marker left after Finish: %v", err)
		}
		if names := dirNames(t, dir); slices.ContainsFunc(names, func(n string) bool { return strings.Contains(n, ".tmp-") }) {
			t.Errorf("Finish left temporary files: %q", names)
		}
		if len(st.PerBatch) != 2 || st.PerBatch[0].Number != 0 {
			t.Errorf("PerBatch %+v; want batch 0 then 1", st.PerBatch)
		}
	}
}
