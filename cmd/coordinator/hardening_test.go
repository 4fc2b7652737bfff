package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trialcat/trialcat/internal/fakeai"
	"github.com/trialcat/trialcat/internal/testkit"
)

// A base URL no request could reach is refused before anything is written, naming the URL and
// the fix; so is a base URL without a key, which used to run offline without a word.
func TestBadBaseURLsStopTheRunBeforeAnythingIsWritten(t *testing.T) {
	in := sample(t, 3)
	key := map[string]string{"OPENAI_API_KEY": testkit.Key}
	cases := []struct {
		name string
		vars map[string]string
		args []string
		want []string
	}{
		{"no scheme", key, []string{"--base-url", "127.0.0.1:9/v1"}, []string{"127.0.0.1:9/v1", "no scheme", "http://"}},
		{"a leading space", key, []string{"--base-url", " http://127.0.0.1:9/v1"}, []string{"spaces"}},
		{"ftp", key, []string{"--base-url", "ftp://127.0.0.1:9/v1"}, []string{"scheme ftp"}},
		{"from the environment", map[string]string{"OPENAI_API_KEY": testkit.Key, "OPENAI_BASE_URL": "localhost:8000"}, nil, []string{"OPENAI_BASE_URL", "no scheme"}},
		{"no key", nil, []string{"--base-url", "http://127.0.0.1:9/v1"}, []string{"OPENAI_API_KEY is not set", "offline"}},
	}
	for _, tc := range cases {
		out := filepath.Join(t.TempDir(), "run")
		// The run finds its worker binary first: any executable does, it is never started.
		for _, cmd := range [][]string{{"--worker-bin", "/bin/true"}, {"split"}, {"estimate"}} {
			args := append(append(append([]string{}, cmd...), "--input", in, "--out", out, "--workers", "1"), tc.args...)
			r := coordinator(t, tc.vars, args...)
			if cmd := strings.Join(cmd, ""); cmd == "estimate" && tc.name == "no key" {
				continue // an estimate asks no server: it needs no key
			}
			r.want(t, 2, tc.name+" "+strings.Join(cmd, ""))
			for _, w := range tc.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("%s %v: the message lacks %q:\n%s", tc.name, cmd, w, r.stderr)
				}
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s %v: --out was created", tc.name, cmd)
			}
		}
	}
}

// splitRun splits n sample records into batches files of a new run folder.
func splitRun(t *testing.T, n, batches int) (in, out string) {
	t.Helper()
	in, out = sample(t, n), filepath.Join(t.TempDir(), "run")
	coordinator(t, nil, "split", "--input", in, "--out", out, "--workers", fmt.Sprint(batches)).want(t, 0, "split")
	return in, out
}

// firstID is the first record ID in a batch file.
func firstID(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`"nctId"\s*:\s*"([^"]+)"`).FindSubmatch(data)
	if m == nil {
		t.Fatalf("no nctId in %s", path)
	}
	return string(m[1])
}

// A batch file changed after the split (an ID renamed, a record deleted, the file cut short) is
// refused before anything runs, naming the batch and the fix; so is a worker run on it by hand.
func TestABatchChangedAfterTheSplitIsRefused(t *testing.T) {
	needWorker(t)
	edits := map[string]func(data []byte, id string) []byte{
		"an ID renamed": func(data []byte, id string) []byte {
			return bytes.ReplaceAll(data, []byte(id), []byte("NCT99999999"))
		},
		"a record deleted": func(data []byte, _ string) []byte {
			var recs []json.RawMessage
			if err := json.Unmarshal(data, &recs); err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(recs[1:])
			return b
		},
		"cut short": func(data []byte, _ string) []byte { return data[:len(data)/2] },
	}
	for name, edit := range edits {
		in, out := splitRun(t, 9, 3)
		path := filepath.Join(out, "batch_1.json")
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond) // the edit is newer than the split's index
		if err := os.WriteFile(path, edit(data, firstID(t, path)), 0o644); err != nil {
			t.Fatal(err)
		}
		r := coordinator(t, nil, "--input", in, "--out", out, "--workers", "3", "--worker-bin", workerBin, "--progress", "off")
		r.want(t, 2, name)
		for _, w := range []string{"batch_1.json was changed after the split", "delete it and rerun"} {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("%s: the message lacks %q:\n%s", name, w, r.stderr)
			}
		}
		if _, err := os.Stat(filepath.Join(out, "worker_0_results.csv")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: a worker ran before the refusal", name)
		}
		cmd := exec.Command(workerBin, "--batch", path)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
		msg, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(msg), "changed after the split") {
			t.Errorf("%s: worker --batch on the edited batch: %v\n%s", name, err, msg)
		}
		// The fix the message gives works: the split writes the batch again.
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		coordinator(t, nil, "--input", in, "--out", out, "--workers", "3", "--worker-bin", workerBin, "--progress", "off").want(t, 0, name+": after the fix")
		if got := len(rows(t, filepath.Join(out, "final_results.csv"))); got != 9 {
			t.Errorf("%s: %d rows after the fix, want 9", name, got)
		}
	}
}

// Batches run by hand after a merge: the same coordinator command merges again (it decides
// "done" from the workers' files), and merge leaves every file a run leaves.
func TestBatchesRunByHandAreMergedByTheRerunAndByMerge(t *testing.T) {
	needWorker(t)
	in, out := splitRun(t, 8, 4)
	testkit.RunWorker(t, workerBin, "--batch", filepath.Join(out, "batch_0.json"))
	m := coordinator(t, nil, "merge", "--out", out)
	m.want(t, 1, "merge with 3 batches not run")
	for _, f := range []string{"summary.json", "report.html", "results.jsonl"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("merge left no %s: %v", f, err)
		}
	}
	if got := lines(t, filepath.Join(out, "results.jsonl")); got != 2 {
		t.Errorf("results.jsonl has %d lines after merging batch 0, want 2", got)
	}
	for n := 1; n < 4; n++ {
		testkit.RunWorker(t, workerBin, "--batch", filepath.Join(out, fmt.Sprintf("batch_%d.json", n)))
	}
	r := coordinator(t, nil, "--input", in, "--out", out, "--workers", "4", "--worker-bin", workerBin, "--progress", "off")
	r.want(t, 0, "the same command after the batches ran by hand")
	if strings.Contains(r.stderr, "nothing to do") {
		t.Errorf("the rerun said nothing to do with the final files behind the workers':\n%s", r.stderr)
	}
	if got := len(rows(t, filepath.Join(out, "final_results.csv"))); got != 8 {
		t.Errorf("final_results.csv has %d rows, want 8", got)
	}
	if got := lines(t, filepath.Join(out, "results.jsonl")); got != 8 {
		t.Errorf("results.jsonl has %d lines, want 8", got)
	}
	var sum struct {
		Succeeded, Remaining int64
	}
	b, _ := os.ReadFile(filepath.Join(out, "summary.json"))
	if err := json.Unmarshal(b, &sum); err != nil || sum.Succeeded != 8 || sum.Remaining != 0 {
		t.Errorf("summary.json: %+v (%v)", sum, err)
	}
	// And now it is done: the same command asks nothing.
	again := coordinator(t, nil, "--input", in, "--out", out, "--workers", "4", "--worker-bin", workerBin, "--progress", "off")
	again.want(t, 0, "a finished run again")
	if !strings.Contains(again.stderr, "nothing to do") {
		t.Errorf("a finished run again:\n%s", again.stderr)
	}
}

func lines(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

// A review sheet someone has begun to fill in is never overwritten: sample refuses, and with
// --replace moves it aside first. An untouched sheet is simply replaced.
func TestSampleKeepsAReviewersWork(t *testing.T) {
	out := offlineRun(t, 10)
	coordinator(t, nil, "sample", "--out", out, "--n", "4").want(t, 0, "sample")
	sheet := filepath.Join(out, "review_sample.csv")
	coordinator(t, nil, "sample", "--out", out, "--n", "5").want(t, 0, "sample over an untouched sheet")
	if got := len(rows(t, sheet)); got != 5 {
		t.Fatalf("the untouched sheet was not replaced: %d rows", got)
	}
	all := testkit.ReadCSV(t, sheet)
	col := -1
	for i, h := range all[0] {
		if h == "review_trial_purpose" {
			col = i
		}
	}
	all[1][col] = "treatment"
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	w.WriteAll(all)
	if err := os.WriteFile(sheet, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	r := coordinator(t, nil, "sample", "--out", out, "--n", "3")
	r.want(t, 2, "sample over a sheet with a reviewer's answer")
	if !strings.Contains(r.stderr, "1 review_ cells filled in") || !strings.Contains(r.stderr, "--replace") {
		t.Errorf("the refusal says:\n%s", r.stderr)
	}
	if after, _ := os.ReadFile(sheet); !bytes.Equal(after, b.Bytes()) {
		t.Fatal("the reviewer's sheet was changed")
	}
	coordinator(t, nil, "sample", "--out", out, "--n", "3", "--replace").want(t, 0, "sample --replace")
	kept, _ := filepath.Glob(filepath.Join(out, "previous-*", "review_sample.csv"))
	if len(kept) != 1 {
		t.Fatalf("--replace kept %v", kept)
	}
	if old, _ := os.ReadFile(kept[0]); !bytes.Equal(old, b.Bytes()) {
		t.Error("the kept sheet is not the reviewer's")
	}
}

// A model missing from the price table has an unknown cost: null in summary.json, "unknown" in
// the summary and in status, never $0.
func TestAnUnpricedModelsCostIsUnknownNotZero(t *testing.T) {
	needWorker(t)
	_, url := testkit.StartFake(t, fakeai.Config{})
	out := filepath.Join(t.TempDir(), "run")
	vars := map[string]string{"OPENAI_API_KEY": testkit.Key}
	r := coordinator(t, vars, "--input", sample(t, 3), "--out", out, "--workers", "1", "--base-url", url,
		"--model", "my-local-model", "--worker-bin", workerBin, "--progress", "off")
	r.want(t, 0, "a run with an unpriced model")
	b, _ := os.ReadFile(filepath.Join(out, "summary.json"))
	if !strings.Contains(string(b), `"estimated_cost_usd": null`) || !strings.Contains(string(b), `"cost_known": false`) {
		t.Errorf("summary.json:\n%s", b)
	}
	if !strings.Contains(r.stdout, "estimated cost unknown") {
		t.Errorf("the summary does not say the cost is unknown:\n%s", r.stdout)
	}
	st := coordinator(t, nil, "status", "--out", out)
	if !strings.Contains(st.stdout, "cost so far unknown") {
		t.Errorf("status:\n%s", st.stdout)
	}
}

// --cache naming a file is refused before anything is written, naming the cache.
func TestCacheThatIsAFileIsRefusedFirst(t *testing.T) {
	file := filepath.Join(t.TempDir(), "cache")
	os.WriteFile(file, []byte("x"), 0o644)
	out := filepath.Join(t.TempDir(), "run")
	r := coordinator(t, map[string]string{"OPENAI_API_KEY": testkit.Key}, "split", "--input", sample(t, 2), "--out", out,
		"--base-url", "http://127.0.0.1:9/v1", "--cache", file)
	r.want(t, 2, "--cache FILE")
	if !strings.Contains(r.stderr, "--cache "+file+" is a file, not a folder") {
		t.Errorf("the message:\n%s", r.stderr)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Error("--out was created")
	}
}

// The last line counts what is wrong: it never says records failed when none did.
func TestTheLastLineSaysWhatIsNotDone(t *testing.T) {
	needWorker(t)
	_, out := splitRun(t, 4, 2)
	r := coordinator(t, nil, "merge", "--out", out)
	r.want(t, 1, "merge of a run nothing ran on")
	last := strings.TrimSpace(r.stderr[strings.LastIndex(strings.TrimSpace(r.stderr), "\n")+1:])
	if strings.Contains(last, "failed") || !strings.Contains(last, "4 of 4 records are not done") {
		t.Errorf("the last line: %q", last)
	}
}

// https:// against a server that speaks plain HTTP reaches no API: the run stops within about
// ten seconds saying so (it used to retry every record for minutes).
func TestHTTPSAgainstAPlainServerStopsTheRunSoon(t *testing.T) {
	needWorker(t)
	_, url := testkit.StartFake(t, fakeai.Config{})
	out := filepath.Join(t.TempDir(), "run")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	r := coordinatorCtx(ctx, t, map[string]string{"OPENAI_API_KEY": testkit.Key}, "--input", sample(t, 20), "--out", out, "--workers", "2",
		"--base-url", strings.Replace(url, "http://", "https://", 1), "--worker-bin", workerBin, "--progress", "off")
	if ctx.Err() != nil {
		t.Fatal("the run was still retrying after 90 s")
	}
	r.want(t, 1, "https against plain HTTP")
	if !strings.Contains(r.stderr, "use http://") {
		t.Errorf("the message does not say to use http://:\n%s", r.stderr)
	}
	if got := len(rows(t, filepath.Join(out, "final_failures.csv"))); got != 0 {
		t.Errorf("%d records failed; they should stay to do", got)
	}
}

// A scheduler's tasks without Slurm: `coordinator limits` serves the run's limit and workers run
// by hand with --rate-share take their permits from it (and say so); the answers all land.
func TestWorkersByHandTakeTheirPermitsFromTheLimitServer(t *testing.T) {
	needWorker(t)
	_, url := testkit.StartFake(t, fakeai.Config{})
	vars := map[string]string{"OPENAI_API_KEY": testkit.Key}
	in, out := sample(t, 6), filepath.Join(t.TempDir(), "run")
	coordinator(t, vars, "split", "--input", in, "--out", out, "--workers", "2", "--rpm", "6000", "--base-url", url).want(t, 0, "split")
	stop := startLimits(t, out)
	defer func() {
		if r := stop(); r.code != 0 {
			t.Errorf("limits: exit %d (%v)", r.code, r.err)
		}
	}()
	errs := make(chan error, 2)
	logs := make([]string, 2)
	for n := range 2 {
		go func() {
			cmd := exec.Command(workerBin, "--run-dir", out, "--index", fmt.Sprint(n), "--rate-share", "2")
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "OPENAI_API_KEY=" + testkit.Key}
			b, err := cmd.CombinedOutput()
			logs[n] = string(b)
			errs <- err
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("worker: %v\n%s\n%s", err, logs[0], logs[1])
		}
	}
	for n := range 2 {
		log, _ := os.ReadFile(filepath.Join(out, fmt.Sprintf("worker_%d_log.txt", n)))
		if !strings.Contains(string(log), "taking rate permits from the run's limit server") {
			t.Errorf("worker %d did not use the limit server:\n%s", n, log)
		}
	}
	coordinator(t, nil, "merge", "--out", out).want(t, 0, "merge")
	if got := len(rows(t, filepath.Join(out, "final_results.csv"))); got != 6 {
		t.Errorf("%d rows, want 6", got)
	}
}

// Without --rpm the run adopts the limit the server states in its x-ratelimit headers: they
// reach the run's limiter from every answer.
func TestTheRunLearnsTheServersLimitWithoutRPM(t *testing.T) {
	needWorker(t)
	_, url := testkit.StartFake(t, fakeai.Config{RPM: 100000, TPM: 50000000})
	out := filepath.Join(t.TempDir(), "run")
	r := coordinator(t, map[string]string{"OPENAI_API_KEY": testkit.Key}, "--input", sample(t, 6), "--out", out, "--workers", "2",
		"--base-url", url, "--worker-bin", workerBin, "--progress", "off")
	r.want(t, 0, "a run against a server that states its limits")
	for _, w := range []string{"allows 100000 requests a minute", "allows 50000000 tokens a minute"} {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("the run did not learn the server's limit (%q):\n%s", w, r.stderr)
		}
	}
}

// compare says which labels are not values of the run's schema, and a hostile label (10 MB,
// control characters) leaves the output a table.
func TestCompareSaysLabelsOutsideTheSchema(t *testing.T) {
	out := offlineRun(t, 6)
	sheet := testkit.ReadCSV(t, filepath.Join(out, "final_results.csv"))
	col := slices.Index(sheet[0], "trial_purpose")
	sheet[1][col] = "treatmnet"
	sheet[2][col] = strings.Repeat("y", 1<<20) + "\x00"
	var b bytes.Buffer
	csv.NewWriter(&b).WriteAll(sheet)
	labels := filepath.Join(t.TempDir(), "labels.csv")
	os.WriteFile(labels, b.Bytes(), 0o644)
	r := coordinator(t, nil, "compare", out, labels)
	r.want(t, 0, "compare with hostile labels")
	if !strings.Contains(r.stdout, "B: 2 labels of trial_purpose are not values of the run's schema") {
		t.Errorf("the labels outside the schema are not said:\n%.2000s", r.stdout)
	}
	if len(r.stdout) > 50<<10 || strings.Contains(r.stdout, "\x00") {
		t.Errorf("compare printed %d bytes (NUL raw: %v)", len(r.stdout), strings.Contains(r.stdout, "\x00"))
	}
}

// A damaged cache entry is a miss the worker says, not a silent one: the record is asked again.
func TestADamagedCacheEntryIsLoggedAndAskedAgain(t *testing.T) {
	needWorker(t)
	srv, url := testkit.StartFake(t, fakeai.Config{})
	in, cacheDir := sample(t, 3), filepath.Join(t.TempDir(), "cache")
	vars := map[string]string{"OPENAI_API_KEY": testkit.Key}
	run := func(out string) {
		coordinator(t, vars, "--input", in, "--out", out, "--workers", "1", "--base-url", url, "--cache", cacheDir,
			"--worker-bin", workerBin, "--progress", "off").want(t, 0, "a run with --cache")
	}
	run(filepath.Join(t.TempDir(), "a"))
	entries, _ := filepath.Glob(filepath.Join(cacheDir, "*", "*.json"))
	if len(entries) != 3 {
		t.Fatalf("%d cache entries, want 3", len(entries))
	}
	for _, e := range entries {
		if err := os.WriteFile(e, []byte(`{"model":"gpt-5-mini","content":`), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "b")
	run(out)
	if n := srv.Stats().Requests; n != 6 {
		t.Errorf("%d requests; the damaged entries should have been asked again (want 6)", n)
	}
	log, _ := os.ReadFile(filepath.Join(out, "worker_0_log.txt"))
	if got := strings.Count(string(log), "cannot use the cached answer"); got != 3 {
		t.Errorf("the worker logged %d damaged entries, want 3:\n%s", got, log)
	}
}
