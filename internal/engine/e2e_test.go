package engine_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/trialcat/trialcat/internal/buildinfo"
	"github.com/trialcat/trialcat/internal/testkit"

	"github.com/trialcat/trialcat/internal/fakeai"
	"github.com/trialcat/trialcat/internal/lockfile"
	"github.com/trialcat/trialcat/internal/rundir"
	"github.com/trialcat/trialcat/internal/taxonomy"
)

func TestOfflineRunOnBundledSample(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "out")
	res := runBin(t, nil, "coordinator", "--workers", "4", "--input", sample, "--out", out)
	if res.code != 0 {
		t.Fatalf("exit %d\n%s", res.code, res.stderr)
	}
	if !strings.Contains(res.stderr, "OPENAI_API_KEY is not set: using the offline categorizer") {
		t.Errorf("auto provider did not say it fell back to offline:\n%s", res.stderr)
	}
	for n := 0; n < 4; n++ {
		for _, f := range []string{"batch_%d.json", "worker_%d_results.csv", "worker_%d_log.txt"} {
			if _, err := os.Stat(filepath.Join(out, fmt.Sprintf(f, n))); err != nil {
				t.Errorf("missing %s: %v", fmt.Sprintf(f, n), err)
			}
		}
	}
	rows := readCSV(t, filepath.Join(out, "final_results.csv"))
	wantHeader := append([]string{"nct_id"}, taxonomy.MustSchema().Columns()...)
	wantHeader = append(wantHeader, "model", "input_tokens", "output_tokens", "cost_usd", "attempts", "latency_ms", "worker", "cached", "cached_tokens", "turns", "tool_calls", "source", "decided_by", "escalated", "service_tier")
	if !reflect.DeepEqual(rows[0], wantHeader) {
		t.Errorf("header = %v\nwant %v", rows[0], wantHeader)
	}
	if got, want := firstColumn(rows), sampleIDs(t, sample); !reflect.DeepEqual(got, want) {
		t.Errorf("final_results.csv IDs are not the input's, in order:\n got %v\nwant %v", got, want)
	}
	var sum struct {
		Status    string `json:"status"`
		Records   int64  `json:"records"`
		Succeeded int64  `json:"succeeded"`
		Failed    int64  `json:"failed"`
		Workers   []struct {
			Records  int64  `json:"records"`
			ExitCode int    `json:"exit_code"`
			Exit     string `json:"exit"`
		} `json:"workers"`
	}
	data, err := os.ReadFile(filepath.Join(out, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &sum); err != nil {
		t.Fatal(err)
	}
	if sum.Status != "complete" || sum.Records != 100 || sum.Succeeded != 100 || sum.Failed != 0 || len(sum.Workers) != 4 {
		t.Errorf("summary = %+v", sum)
	}
	// The design's split: 3 batches of 25 and the last takes the remainder.
	for i, w := range sum.Workers {
		if w.Records != 25 || w.ExitCode != 0 {
			t.Errorf("worker %d: %+v", i, w)
		}
	}
	if !strings.Contains(res.stdout, "100 records: 100 succeeded, 0 failed") {
		t.Errorf("human summary missing:\n%s", res.stdout)
	}
}

// answerFor is the fake server's deterministic answer for a record, used to check that the
// final file holds exactly the server's answers.
func answerFor(id string) map[string]any {
	areas := []string{"oncology", "cardiovascular", "neurology"}
	h := 0
	for _, c := range id {
		h = h*31 + int(c)
	}
	if h < 0 {
		h = -h
	}
	return map[string]any{
		"therapeutic_area":       areas[h%len(areas)],
		"intervention_type":      "drug",
		"trial_purpose":          "treatment",
		"population":             "adult",
		"eligibility_complexity": "medium",
		"rationale":              "server answer for " + id,
	}
}

func TestAPIRunEveryInputFormat(t *testing.T) {
	t.Parallel()
	ids := sampleIDs(t, sample)[:40]
	dir := t.TempDir()
	inputs := writeFormats(t, dir, 40)
	for _, format := range []string{"jsonl", "json", "studies", "csv"} {
		t.Run(format, func(t *testing.T) {
			fake, url := startFake(t, fakeai.Config{Answer: func(id string, _ fakeai.ChatRequest) map[string]any { return answerFor(id) }})
			out := filepath.Join(t.TempDir(), "out")
			res := runBin(t, []string{"OPENAI_API_KEY=" + testKey}, "coordinator",
				"--workers", "20", "--input", inputs[format], "--out", out, "--base-url", url)
			if res.code != 0 {
				t.Fatalf("exit %d\n%s", res.code, res.stderr)
			}
			rows := readCSV(t, filepath.Join(out, "final_results.csv"))
			if got := firstColumn(rows); !reflect.DeepEqual(got, ids) {
				t.Fatalf("IDs not in input order:\n got %v\nwant %v", got, ids)
			}
			cols := rows[0]
			for _, row := range rows[1:] {
				want := answerFor(row[0])
				for i, c := range cols {
					if v, ok := want[c]; ok && row[i] != v {
						t.Errorf("%s %s = %q, server answered %q", row[0], c, row[i], v)
					}
				}
				if m := row[slices.Index(cols, "model")]; m != "gpt-5-mini" {
					t.Errorf("%s: model column %q", row[0], m)
				}
			}
			for n := 0; n < 20; n++ {
				if _, err := os.Stat(filepath.Join(out, fmt.Sprintf("batch_%d.json", n))); err != nil {
					t.Errorf("batch_%d.json: %v", n, err)
				}
			}
			st := fake.Stats()
			for _, id := range ids {
				if st.PerID[id] != 1 {
					t.Errorf("%s requested %d times, want 1", id, st.PerID[id])
				}
			}
			assertNoKey(t, out)
		})
	}
}

// writeFormats writes the first n sample records as JSON Lines, a JSON array, a ClinicalTrials.gov
// API v2 page and a flat CSV, returning the paths by format.
func writeFormats(t testing.TB, dir string, n int) map[string]string {
	t.Helper()
	data, err := os.ReadFile(sample)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")[:n]
	paths := map[string]string{
		"jsonl":   filepath.Join(dir, "trials.jsonl"),
		"json":    filepath.Join(dir, "trials.json"),
		"studies": filepath.Join(dir, "page.json"),
		"csv":     filepath.Join(dir, "trials.csv"),
	}
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(paths["jsonl"], strings.Join(lines, "\n")+"\n")
	write(paths["json"], "[\n"+strings.Join(lines, ",\n")+"\n]\n")
	write(paths["studies"], `{"studies":[`+strings.Join(lines, ",")+`],"nextPageToken":"abc"}`)
	var csv strings.Builder
	csv.WriteString("nct_id,title,conditions\n")
	for _, l := range lines {
		var rec struct {
			ProtocolSection struct {
				IdentificationModule struct {
					NctID      string `json:"nctId"`
					BriefTitle string `json:"briefTitle"`
				} `json:"identificationModule"`
				ConditionsModule struct {
					Conditions []string `json:"conditions"`
				} `json:"conditionsModule"`
			} `json:"protocolSection"`
		}
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatal(err)
		}
		p := rec.ProtocolSection
		fmt.Fprintf(&csv, "%s,%q,%q\n", p.IdentificationModule.NctID,
			strings.ReplaceAll(p.IdentificationModule.BriefTitle, `"`, `'`), strings.Join(p.ConditionsModule.Conditions, "; "))
	}
	write(paths["csv"], csv.String())
	return paths
}

// assertNoKey fails if the API key is in any file under dir.
func assertNoKey(t testing.TB, dir string) {
	t.Helper()
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if strings.Contains(string(data), testKey) {
			t.Errorf("API key found in %s", p)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("cannot check every file for the key: %v", err)
	}
}

func TestHandRunWorkerRedoesBatchAndRerunMakesNoRequests(t *testing.T) {
	t.Parallel()
	fake, url := startFake(t, fakeai.Config{})
	out := filepath.Join(t.TempDir(), "out")
	env := []string{"OPENAI_API_KEY=" + testKey}
	args := []string{"--workers", "5", "--input", sample, "--out", out, "--base-url", url}
	if res := runBin(t, env, "coordinator", args...); res.code != 0 {
		t.Fatalf("first run: exit %d\n%s", res.code, res.stderr)
	}
	first := fake.Stats().Requests
	if first != 100 {
		t.Errorf("first run made %d requests, want 100", first)
	}

	if err := os.Remove(filepath.Join(out, "worker_3_results.csv")); err != nil {
		t.Fatal(err)
	}
	res := runBin(t, env, "worker", "--batch", filepath.Join(out, "batch_3.json"))
	if res.code != 0 {
		t.Fatalf("worker by hand: exit %d\n%s", res.code, res.stderr)
	}
	if got := len(readCSV(t, filepath.Join(out, "worker_3_results.csv"))) - 1; got != 20 {
		t.Errorf("worker 3 redid %d records, want 20", got)
	}
	afterWorker := fake.Stats().Requests
	if afterWorker-first != 20 {
		t.Errorf("worker by hand made %d requests, want 20", afterWorker-first)
	}

	if res := runBin(t, env, "coordinator", args...); res.code != 0 {
		t.Fatalf("rerun: exit %d\n%s", res.code, res.stderr)
	}
	if got := fake.Stats().Requests; got != afterWorker {
		t.Errorf("rerun made %d new requests, want 0", got-afterWorker)
	}
	ok, failed := assertExactlyOnce(t, out, sampleIDs(t, sample))
	if ok != 100 || failed != 0 {
		t.Errorf("after rerun: %d succeeded, %d failed", ok, failed)
	}
}

func TestUsageErrorsLeaveOutputUntouched(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	// A finished run to protect.
	if res := runBin(t, nil, "coordinator", "--workers", "2", "--input", sample, "--out", out); res.code != 0 {
		t.Fatalf("setup run: exit %d\n%s", res.code, res.stderr)
	}
	before := snapshot(t, out)
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"zero workers", []string{"--workers", "0", "--input", sample}, nil, "--workers 0"},
		{"missing input", []string{"--input", filepath.Join(dir, "nope.json")}, nil, "nope.json"},
		{"input is a folder", []string{"--input", dir}, nil, "directory"},
		{"malformed json", []string{"--input", write("bad.json", "[{\"nct_id\":\"A\"},\n{\"nct_id\": }]")}, nil, "bad.json:2"},
		{"no id", []string{"--input", write("noid.jsonl", "{\"title\":\"x\"}\n")}, nil, "no ID"},
		{"duplicate ids", []string{"--input", write("dup.jsonl", "{\"nct_id\":\"A\"}\n{\"nct_id\":\"A\"}\n")}, nil, "--dedupe"},
		{"empty file", []string{"--input", write("empty.json", "")}, nil, "empty"},
		{"openai without key", []string{"--provider", "openai", "--input", sample}, nil, "OPENAI_API_KEY"},
		{"offline with schema", []string{"--provider", "offline", "--schema", write("s.json", `{"type":"object","properties":{"x":{"type":"string"}}}`), "--input", sample}, nil, "--schema"},
		{"unknown flag", []string{"--wrokers", "3", "--input", sample}, nil, "did you mean --workers?"},
		{"bad value", []string{"--workers", "many", "--input", sample}, nil, "see coordinator --help"},
		{"misspelt command", []string{"stauts"}, nil, `did you mean "status"?`},
		{"empty array", []string{"--input", write("empty-array.json", " [ ] ")}, nil, "no records"},
		{"top-level scalar", []string{"--input", write("scalar.json", "42\n")}, nil, "scalar.json"},
		{"non-utf8", []string{"--input", write("latin1.jsonl", "{\"nct_id\":\"A\",\"title\":\"caf\xe9\"}\n")}, nil, "UTF-8"},
		{"ragged csv", []string{"--input", write("ragged.csv", "nct_id,title\nA,x\nB,y,z\n")}, nil, "ragged.csv:3"},
		{"unknown format", []string{"--input", write("blob.bin", "\x00\x01\x02binary")}, nil, "blob.bin"},
		{"out is a file", []string{"--input", sample, "--out", write("afile", "x")}, nil, "not a folder"},
		{"out under a file", []string{"--input", sample, "--out", filepath.Join(dir, "afile", "sub")}, nil, "afile"},
		{"invalid schema", []string{"--provider", "openai", "--input", sample, "--schema", write("bad-schema.json", `{"type":"object","properties":{"x":{"type":"object"}}}`)}, []string{"OPENAI_API_KEY=" + testKey}, "bad-schema.json"},
		{"template missing field", []string{"--provider", "openai", "--input", sample, "--prompt", write("p.tmpl", `Record ID: {{.ID}} {{field "protocolSection.noSuchModule.x"}}`)}, []string{"OPENAI_API_KEY=" + testKey}, "noSuchModule"},
		{"temperature on reasoning model", []string{"--provider", "openai", "--input", sample, "--temperature", "0.2"}, []string{"OPENAI_API_KEY=" + testKey}, "reasoning model"},
		{"other settings", []string{"--workers", "3", "--input", sample}, nil, "--fresh"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"--out", out}, tt.args...) // a later --out wins
			res := runBin(t, tt.env, "coordinator", args...)
			if res.code != 2 {
				t.Errorf("exit %d, want 2\n%s", res.code, res.stderr)
			}
			if !strings.Contains(res.stderr, tt.want) {
				t.Errorf("message does not mention %q:\n%s", tt.want, res.stderr)
			}
			// What was wrong and what to do, never the whole help page.
			if strings.Contains(res.stderr+res.stdout, "GLOBAL OPTIONS") {
				t.Errorf("a usage error printed the help page:\n%s", res.stderr+res.stdout)
			}
			if after := snapshot(t, out); after != before {
				t.Errorf("output folder changed")
			}
		})
	}
}

func TestCredentialsInTheBaseURLAreNeverStoredOrShown(t *testing.T) {
	t.Parallel()
	_, url := startFake(t, fakeai.Config{})
	const secret = "pa55-w0rd-xyz"
	withCreds := strings.Replace(url, "http://", "http://someone:"+secret+"@", 1)
	out := filepath.Join(t.TempDir(), "out")
	res := runBin(t, []string{"OPENAI_API_KEY=" + testKey}, "coordinator", "--workers", "2", "--input", sample, "--out", out,
		"--base-url", withCreds, "--log-level", "debug")
	if res.code != 0 {
		t.Fatalf("exit %d\n%s", res.code, tail(res.stderr, 20))
	}
	if strings.Contains(res.stderr+res.stdout, secret) {
		t.Error("the password of --base-url is in the coordinator's output")
	}
	err := filepath.Walk(out, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(data), secret) {
			t.Errorf("the password of --base-url is in %s", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var spec struct {
		BaseURL string `json:"base_url"`
	}
	data, _ := os.ReadFile(filepath.Join(out, "run.json"))
	if err := json.Unmarshal(data, &spec); err != nil || spec.BaseURL != url {
		t.Errorf("run.json base_url %q, want %q (no user:password)", spec.BaseURL, url)
	}
}

func TestGNUParallelRecipe(t *testing.T) {
	t.Parallel()
	needBinaries(t)
	par, err := exec.LookPath("parallel")
	if err != nil {
		testkit.Need(t, "GNU parallel is not installed (.ci/run installs it)")
	}
	out := filepath.Join(t.TempDir(), "out")
	env := []string{"PATH=" + binDir + ":" + os.Getenv("PATH")}
	if res := runBin(t, env, "coordinator", "split", "--workers", "4", "--input", sample, "--out", out); res.code != 0 ||
		!strings.Contains(res.stdout, "100 records in 4 batches") {
		t.Fatalf("split: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	if _, err := os.Stat(filepath.Join(out, "final_results.csv")); err == nil {
		t.Fatal("split ran something: final_results.csv exists")
	}
	// Batch 2 is held by "another worker": its job fails, the others run.
	held, _, err := lockfile.Acquire(rundir.New(out).Worker(2).Lock)
	if err != nil {
		t.Fatal(err)
	}
	batches, _ := filepath.Glob(filepath.Join(out, "batch_*.json"))
	runParallel := func(extra ...string) int {
		args := append([]string{"-j", "4", "--joblog", filepath.Join(out, "parallel.log")}, extra...)
		args = append(args, filepath.Join(binDir, "worker"), "--batch", "{}", ":::")
		cmd := exec.Command(par, append(args, batches...)...)
		cmd.Env = append([]string{"HOME=" + t.TempDir()}, env...)
		var buf bytes.Buffer
		cmd.Stdout, cmd.Stderr = &buf, &buf
		return exitCodeOf(cmd.Run())
	}
	if code := runParallel(); code != 1 {
		t.Fatalf("parallel exit %d; want 1 (one job failed)", code)
	}
	m := runBin(t, env, "coordinator", "merge", "--out", out)
	if m.code != 1 || !strings.Contains(m.stdout, "batches not finished: 2 (25 to do)") || !strings.Contains(m.stdout, "batch_2.json") {
		t.Errorf("merge after a failed job: exit %d\n%s", m.code, m.stdout)
	}
	held.Release()
	// The recipe's rerun: only the failed job runs again.
	if code := runParallel("--resume-failed"); code != 0 {
		t.Fatalf("parallel --resume-failed exit %d", code)
	}
	if m := runBin(t, env, "coordinator", "merge", "--out", out); m.code != 0 || !strings.Contains(m.stdout, "merged 100 records: 100 in") {
		t.Fatalf("final merge: exit %d\n%s%s", m.code, m.stdout, m.stderr)
	}
	assertExactlyOnce(t, out, sampleIDs(t, sample))
	log, _ := os.ReadFile(filepath.Join(out, "parallel.log"))
	if n := strings.Count(string(log), "batch_2.json"); n != 2 {
		t.Errorf("batch 2 ran %d times in the joblog; want 2 (failed, then resumed)", n)
	}
	for _, b := range []string{"batch_0.json", "batch_1.json", "batch_3.json"} {
		if n := strings.Count(string(log), b); n != 1 {
			t.Errorf("%s ran %d times; want once", b, n)
		}
	}
}

// TestStreamDeliversRecordsWhileTheRunGoes reads --stream - while the run is still going: the
// first line comes long before the run ends, every answered record comes once, and the
// summary stays off standard output.
func TestStreamDeliversRecordsWhileTheRunGoes(t *testing.T) {
	t.Parallel()
	needBinaries(t)
	_, url := startFake(t, fakeai.Config{Latency: fakeai.LatencyModel{Base: 100 * time.Millisecond}})
	out := filepath.Join(t.TempDir(), "out")
	cmd := exec.Command(filepath.Join(binDir, "coordinator"), "--workers", "2", "--input", sample, "--out", out,
		"--base-url", url, "--stream", "-", "--progress", "off")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "OPENAI_API_KEY=" + testKey}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// A failed check leaves the run going: stop it, and its workers with it.
		if cmd.ProcessState == nil {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_ = cmd.Wait()
		}
	})
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	ids := map[string]int{}
	first := true
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("stdout line is not a record: %q", sc.Text())
		}
		id, _ := m["nct_id"].(string)
		ids[id]++
		if first {
			first = false
			// 100 records at 100 ms over 2 workers take about 5 s: the first line is early.
			if _, err := os.Stat(filepath.Join(out, "summary.json")); err == nil {
				t.Error("the first streamed record came after the run ended")
			}
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	if len(ids) != 100 {
		t.Errorf("streamed %d records; want 100", len(ids))
	}
	for id, n := range ids {
		if n != 1 {
			t.Errorf("record %s streamed %d times", id, n)
		}
	}
	if !strings.Contains(stderr.String(), "100 records: 100 succeeded") {
		t.Errorf("the summary is not on stderr:\n%s", stderr.String())
	}
	assertExactlyOnce(t, out, sampleIDs(t, sample))
	// summary.json says when the first and the last record came: the run's edges.
	var sum struct {
		StartedAt time.Time `json:"started_at"`
		Finished  time.Time `json:"finished_at"`
		Phases    struct {
			First time.Time `json:"first_record_at"`
			Last  time.Time `json:"last_record_at"`
		} `json:"phases"`
	}
	data, _ := os.ReadFile(filepath.Join(out, "summary.json"))
	if err := json.Unmarshal(data, &sum); err != nil {
		t.Fatal(err)
	}
	if p := sum.Phases; p.First.IsZero() || p.Last.Before(p.First) || p.First.Before(sum.StartedAt) || sum.Finished.Before(p.Last) ||
		p.Last.Sub(p.First) < time.Second {
		t.Errorf("phases: first record %v, last %v, run %v to %v; want both inside the run, seconds apart", p.First, p.Last, sum.StartedAt, sum.Finished)
	}
}

// Both binaries name their build, as the changelog numbers it.
func TestBothBinariesSayTheirVersion(t *testing.T) {
	t.Parallel()
	for _, bin := range []string{"coordinator", "worker"} {
		res := runBin(t, nil, bin, "--version")
		if res.code != 0 || !strings.Contains(res.stdout, bin+" version "+buildinfo.Release) || !strings.Contains(res.stdout, "go1.") {
			t.Errorf("%s --version: exit %d, %q", bin, res.code, res.stdout)
		}
	}
}
