package engine_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/trialcat/trialcat/internal/testkit"

	"github.com/trialcat/trialcat/internal/fakeai"
	"github.com/trialcat/trialcat/internal/lockfile"
	"github.com/trialcat/trialcat/internal/rundir"
)

// batchArgs are the coordinator's arguments for a Batch API run of the bundled sample.
func batchArgs(url, out string, workers int, extra ...string) []string {
	return append([]string{"--workers", fmt.Sprint(workers), "--input", sample, "--out", out, "--base-url", url,
		"--backend", "batch-api", "--batch-poll", "50ms", "--progress", "off"}, extra...)
}

// batchRun runs the coordinator with the Batch API backend against url.
func batchRun(t *testing.T, url, out string, extra ...string) runResult {
	t.Helper()
	return runBin(t, []string{"OPENAI_API_KEY=" + testKey}, "coordinator", batchArgs(url, out, 4, extra...)...)
}

// startBatchRun starts one in the background.
func startBatchRun(t *testing.T, url, out string, workers int) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	return startBin(t, []string{"OPENAI_API_KEY=" + testKey}, "coordinator", batchArgs(url, out, workers)...)
}

// batchRunComplete runs the Batch API backend to the end: exit 0, every record once.
func batchRunComplete(t *testing.T, url, out string, extra ...string) {
	t.Helper()
	if res := batchRun(t, url, out, extra...); res.code != 0 {
		t.Fatalf("batch-api run: exit %d\n%s", res.code, res.stderr)
	}
	assertExactlyOnce(t, out, sampleIDs(t, sample))
}

type summaryFile struct {
	Status, Backend              string
	Succeeded, Failed, Remaining int
	EstimatedCostUSD             float64 `json:"estimated_cost_usd"`
	InputTokens, OutputTokens    int64
}

func readSummaryFile(t *testing.T, out string) summaryFile {
	t.Helper()
	var s summaryFile
	data, err := os.ReadFile(filepath.Join(out, "summary.json"))
	if err == nil {
		err = json.Unmarshal(data, &s)
	}
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// oneBatchPerPart checks that no input file got two batches: nothing was submitted twice.
func oneBatchPerPart(t *testing.T, api *fakeai.Server, wantBatches int) {
	t.Helper()
	st := api.BatchStats()
	for file, n := range st.CreatedFor {
		if n != 1 {
			t.Errorf("input file %s got %d batches: submitted twice", file, n)
		}
	}
	if st.Created != wantBatches {
		t.Errorf("%d batches created; want %d", st.Created, wantBatches)
	}
}

// TestBatchAPIRunMatchesLiveAtHalfThePrice runs the bundled trials through the Batch API and
// live against the same fake: the same final columns and IDs, one batch per worker batch, and
// the cost at half.
func TestBatchAPIRunMatchesLiveAtHalfThePrice(t *testing.T) {
	t.Parallel()
	api, url := startFake(t, fakeai.Config{Batch: fakeai.BatchConfig{Validating: 50 * time.Millisecond, InProgress: 300 * time.Millisecond, Finalizing: 50 * time.Millisecond}})
	dir := t.TempDir()
	batchOut, liveOut := filepath.Join(dir, "batch"), filepath.Join(dir, "live")
	if res := batchRun(t, url, batchOut); res.code != 0 {
		t.Fatalf("batch-api run: exit %d\n%s", res.code, res.stderr)
	}
	live := runBin(t, []string{"OPENAI_API_KEY=" + testKey}, "coordinator", "--workers", "4", "--input", sample, "--out", liveOut, "--base-url", url, "--progress", "off")
	if live.code != 0 {
		t.Fatalf("live run: exit %d\n%s", live.code, live.stderr)
	}
	ids := sampleIDs(t, sample)
	assertExactlyOnce(t, batchOut, ids)
	b, l := readCSV(t, filepath.Join(batchOut, "final_results.csv")), readCSV(t, filepath.Join(liveOut, "final_results.csv"))
	if strings.Join(b[0], ",") != strings.Join(l[0], ",") || strings.Join(firstColumn(b), ",") != strings.Join(firstColumn(l), ",") {
		t.Errorf("the batch run's columns or IDs differ from the live run's:\n%v\n%v", b[0], l[0])
	}
	oneBatchPerPart(t, api, 4)
	bs, ls := readSummaryFile(t, batchOut), readSummaryFile(t, liveOut)
	if bs.Backend != "batch-api" || bs.InputTokens != ls.InputTokens || bs.OutputTokens != ls.OutputTokens {
		t.Errorf("summaries: batch %+v, live %+v; want the same tokens and backend batch-api", bs, ls)
	}
	if ratio := bs.EstimatedCostUSD / ls.EstimatedCostUSD; ratio < 0.499 || ratio > 0.501 {
		t.Errorf("batch cost $%.6f is %.3f of live $%.6f; want half", bs.EstimatedCostUSD, ratio, ls.EstimatedCostUSD)
	}
	for n := range 4 {
		for id, count := range attemptCounts(t, rundir.New(batchOut).Worker(n).Attempts) {
			if count != 1 {
				t.Errorf("record %s has %d attempts in the journal; want 1", id, count)
			}
		}
	}
}

// attemptCounts counts the attempts journal's lines per ID.
func attemptCounts(t *testing.T, path string) map[string]int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var id string
		if strings.HasPrefix(line, "-") {
			if json.Unmarshal([]byte(line[1:]), &id) == nil {
				out[id]--
			}
			continue
		}
		if json.Unmarshal([]byte(line), &id) == nil {
			out[id]++
		}
	}
	return out
}

// killedAt starts a batch-api run, waits until every worker's record shows cond, kills the
// coordinator with SIGKILL (its workers die with it) and waits until the batch locks are free.
func killedAt(t *testing.T, url, out, what string, cond func(part map[string]any) bool) {
	t.Helper()
	cmd, _ := startBatchRun(t, url, out, 4)
	waitFor(t, what+" in every worker's record", 60*time.Second, func() bool {
		for n := range 4 {
			var st struct{ Parts []map[string]any }
			data, err := os.ReadFile(rundir.New(out).Worker(n).BatchAPI)
			if err != nil || json.Unmarshal(data, &st) != nil || len(st.Parts) == 0 || !cond(st.Parts[0]) {
				return false
			}
		}
		return true
	})
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	waitFor(t, "the workers die with their coordinator", 30*time.Second, func() bool {
		for n := range 4 {
			if lockfile.Holder(rundir.New(out).Worker(n).Lock) != "" {
				return false
			}
		}
		return true
	})
}

func TestBatchAPIKilledBetweenUploadAndCreate(t *testing.T) {
	t.Parallel()
	// Creates hang: the coordinator is killed with every input file uploaded and no batch.
	api, url := startFake(t, fakeai.Config{Batch: fakeai.BatchConfig{StallCreate: time.Hour}})
	out := filepath.Join(t.TempDir(), "out")
	killedAt(t, url, out, "an uploaded input file", func(p map[string]any) bool { return p["input_file_id"] != nil })
	api.SetBatchConfig(fakeai.BatchConfig{InProgress: 100 * time.Millisecond})
	batchRunComplete(t, url, out)
	oneBatchPerPart(t, api, 4)
	if up := api.BatchStats().Uploads; up != 4 {
		t.Errorf("%d uploads; want 4 (the recorded input files are reused)", up)
	}
}

func TestBatchAPIKilledWhileTheBatchRuns(t *testing.T) {
	t.Parallel()
	api, url := startFake(t, fakeai.Config{Batch: fakeai.BatchConfig{InProgress: time.Hour}})
	out := filepath.Join(t.TempDir(), "out")
	killedAt(t, url, out, "a created batch", func(p map[string]any) bool { return p["batch_id"] != nil })
	api.SetBatchConfig(fakeai.BatchConfig{InProgress: 0})
	batchRunComplete(t, url, out)
	oneBatchPerPart(t, api, 4)
	for id, n := range api.Stats().PerID {
		if n != 1 {
			t.Errorf("record %s asked %d times; want once", id, n)
		}
	}
}

func TestBatchAPICreateAnswerLostIsNotSubmittedTwice(t *testing.T) {
	t.Parallel()
	// Every worker's first create makes the batch and drops the connection before answering.
	api, url := startFake(t, fakeai.Config{Batch: fakeai.BatchConfig{DropCreateAnswers: 4, InProgress: 100 * time.Millisecond}})
	out := filepath.Join(t.TempDir(), "out")
	batchRunComplete(t, url, out)
	oneBatchPerPart(t, api, 4)
}

func TestBatchAPIExpiredThenLive(t *testing.T) {
	t.Parallel()
	api, url := startFake(t, fakeai.Config{Batch: fakeai.BatchConfig{InProgress: 100 * time.Millisecond, ExpireAfterShare: 0.6}})
	out := filepath.Join(t.TempDir(), "out")
	res := batchRun(t, url, out)
	if res.code != 1 || !strings.Contains(res.stderr, "not answered by the Batch API") {
		t.Fatalf("an expired batch: exit %d; want 1 saying what was not answered\n%s", res.code, res.stderr)
	}
	s := readSummaryFile(t, out)
	if s.Succeeded != 4*15 || s.Remaining != 4*10 || s.Failed != 0 {
		t.Errorf("after expiry: %+v; want 60 answered (0.6 of each batch of 25) and 40 remaining, none failed", s)
	}
	live := runBin(t, []string{"OPENAI_API_KEY=" + testKey}, "coordinator", "--workers", "4", "--input", sample, "--out", out,
		"--base-url", url, "--backend", "live", "--progress", "off")
	if live.code != 0 {
		t.Fatalf("live rerun: exit %d\n%s", live.code, live.stderr)
	}
	ids := sampleIDs(t, sample)
	if ok, _ := assertExactlyOnce(t, out, ids); ok != len(ids) {
		t.Errorf("%d answered after the live rerun; want %d", ok, len(ids))
	}
	for id, n := range api.Stats().PerID {
		if n != 1 {
			t.Errorf("record %s asked %d times; want once (the expired requests were never run)", id, n)
		}
	}
}

func TestBatchAPICompletedWithoutOutputFile(t *testing.T) {
	t.Parallel()
	api, url := startFake(t, fakeai.Config{Batch: fakeai.BatchConfig{InProgress: 50 * time.Millisecond, NoOutputFile: true}})
	out := filepath.Join(t.TempDir(), "out")
	res := batchRun(t, url, out)
	if res.code != 1 || !strings.Contains(res.stderr, "completed with no output file") {
		t.Fatalf("exit %d; want 1 naming the batch that completed with no output file\n%s", res.code, res.stderr)
	}
	if s := readSummaryFile(t, out); s.Remaining != 100 || s.Failed != 0 {
		t.Errorf("summary %+v; want every record remaining, none failed", s)
	}
	api.SetBatchConfig(fakeai.BatchConfig{InProgress: 50 * time.Millisecond})
	batchRunComplete(t, url, out)
	oneBatchPerPart(t, api, 8)
}

func TestBatchAPIMalformedAndStrayLines(t *testing.T) {
	t.Parallel()
	_, url := startFake(t, fakeai.Config{Batch: fakeai.BatchConfig{InProgress: 50 * time.Millisecond, MalformedLine: true, UnknownCustomID: true}})
	out := filepath.Join(t.TempDir(), "out")
	batchRunComplete(t, url, out)
	log, _ := os.ReadFile(rundir.New(out).Worker(0).Log)
	for _, want := range []string{"is not an answer line", "a custom_id this part did not ask"} {
		if !strings.Contains(string(log), want) {
			t.Errorf("worker_0_log.txt does not say %q", want)
		}
	}
}

func TestBatchAPIInterruptLeavesTheBatchesRunning(t *testing.T) {
	t.Parallel()
	api, url := startFake(t, fakeai.Config{Batch: fakeai.BatchConfig{InProgress: time.Hour}})
	out := filepath.Join(t.TempDir(), "out")
	cmd, buf := startBatchRun(t, url, out, 4)
	waitFor(t, "four batches", 60*time.Second, func() bool { return api.BatchStats().Created == 4 })
	cmd.Process.Signal(syscall.SIGINT)
	if code := exitCodeOf(cmd.Wait()); code != 130 || !strings.Contains(buf.String(), "coordinator cancel --out") {
		t.Fatalf("exit %d; want 130 and how to collect or cancel the batches\n%s", code, buf.String())
	}
	if st := api.BatchStats(); st.Cancelled != 0 {
		t.Errorf("Ctrl-C cancelled %d batches; they must go on", st.Cancelled)
	}
}

func TestExportThenImportRoundTrip(t *testing.T) {
	t.Parallel()
	_, url := startFake(t, fakeai.Config{})
	out := filepath.Join(t.TempDir(), "out")
	// No key: export and import call no API.
	res := runBin(t, nil, "coordinator", "export", "--input", sample, "--workers", "3", "--out", out)
	if res.code != 0 {
		t.Fatalf("export: exit %d\n%s", res.code, res.stderr)
	}
	var outputs []string
	for n := range 3 {
		in := rundir.New(out).Export(n)
		o := strings.TrimSuffix(in, ".jsonl") + ".out.jsonl"
		testkit.AnswerLikeVLLM(t, url, in, o)
		outputs = append(outputs, o)
	}
	// A line for a record of no batch is reported, not imported.
	stray := filepath.Join(t.TempDir(), "stray.jsonl")
	os.WriteFile(stray, []byte(`{"custom_id":"NCT-NOT-IN-RUN","response":{"status_code":200,"body":{}},"error":null}`+"\n"), 0o644)
	imp := runBin(t, nil, "coordinator", append([]string{"import", "--out", out}, append(outputs, stray)...)...)
	if imp.code != 0 || !strings.Contains(imp.stdout, "1 lines matched no record") {
		t.Fatalf("import: exit %d\n%s%s", imp.code, imp.stdout, imp.stderr)
	}
	ids := sampleIDs(t, sample)
	if ok, _ := assertExactlyOnce(t, out, ids); ok != len(ids) {
		t.Errorf("%d answered after import; want %d", ok, len(ids))
	}
	// Imported twice: nothing doubles.
	if again := runBin(t, nil, "coordinator", append([]string{"import", "--out", out}, outputs...)...); again.code != 0 {
		t.Fatalf("second import: exit %d\n%s", again.code, again.stderr)
	}
	assertExactlyOnce(t, out, ids)
	// A second export has nothing left to ask.
	if res := runBin(t, nil, "coordinator", "export", "--out", out); res.code != 0 {
		t.Fatalf("second export: exit %d\n%s", res.code, res.stderr)
	}
	if data, _ := os.ReadFile(rundir.New(out).Export(0)); len(data) != 0 {
		t.Errorf("export after everything was imported wrote %d bytes; want none", len(data))
	}
}

func TestCancelStopsTheRunsBatches(t *testing.T) {
	t.Parallel()
	api, url, out := interruptedBatchRun(t)
	c := runBin(t, []string{"OPENAI_API_KEY=" + testKey}, "coordinator", "cancel", "--out", out)
	if c.code != 0 || api.BatchStats().Cancelled != 2 || !strings.Contains(c.stdout, "may still be billed") {
		t.Fatalf("cancel: exit %d, %d cancelled\n%s%s", c.code, api.BatchStats().Cancelled, c.stdout, c.stderr)
	}
	// Status asks the API when it has the key: the batches are cancelled, though no worker
	// has polled them since; without the key it shows what the workers last saw.
	if st := runBin(t, []string{"OPENAI_API_KEY=" + testKey}, "coordinator", "status", "--out", out); !strings.Contains(st.stdout, "cancelled 0/50") {
		t.Errorf("status with the key does not show the cancelled batches:\n%s%s", st.stdout, st.stderr)
	}
	if st := runBin(t, nil, "coordinator", "status", "--out", out); !strings.Contains(st.stdout, "in_progress 0/50") {
		t.Errorf("status without the key does not show the last polled state:\n%s%s", st.stdout, st.stderr)
	}
	// The rerun collects the cancelled batches (nothing ran) and leaves their records to do.
	res := runBin(t, []string{"OPENAI_API_KEY=" + testKey}, "coordinator", batchArgs(url, out, 2)...)
	if res.code != 1 {
		t.Errorf("rerun after cancel: exit %d; want 1 (records left to do)\n%s", res.code, res.stderr)
	}
	if s := readSummaryFile(t, out); s.Remaining != 100 || s.Failed != 0 {
		t.Errorf("after cancel and rerun: %+v; want 100 remaining, none failed", s)
	}
}

func TestBatchAPISplitsInputFilesBelowTheLimits(t *testing.T) {
	t.Parallel()
	// The fake refuses input files of more than 10 requests, as the API refuses more than
	// 50,000; --batch-max-requests 10 keeps every file under it.
	api, url := startFake(t, fakeai.Config{Batch: fakeai.BatchConfig{InProgress: 50 * time.Millisecond, MaxRequests: 10}})
	out := filepath.Join(t.TempDir(), "out")
	if res := batchRun(t, url, out, "--batch-max-requests", "10"); res.code != 0 {
		t.Fatalf("exit %d\n%s", res.code, res.stderr)
	}
	assertExactlyOnce(t, out, sampleIDs(t, sample))
	oneBatchPerPart(t, api, 4*3) // 25 records a worker: files of 10, 10 and 5
	if res := runBin(t, []string{"OPENAI_API_KEY=" + testKey}, "coordinator", "--workers", "4", "--input", sample, "--out", filepath.Join(t.TempDir(), "o2"),
		"--base-url", url, "--backend", "batch-api", "--batch-poll", "50ms", "--progress", "off"); res.code != 1 || !strings.Contains(res.stderr, "the limit is 10") {
		t.Errorf("files over the server's limit: exit %d; want 1 with the server's reason\n%s", res.code, res.stderr)
	}
}

// TestBatchAPILyingServer: an output file with far more lines than requests is not read to its
// end (the answers before the flood are kept), and a batch still running past its own window is
// collected as expired instead of polled for ever.
func TestBatchAPILyingServer(t *testing.T) {
	t.Parallel()
	t.Run("flooded output file", func(t *testing.T) {
		t.Parallel()
		_, url := startFake(t, fakeai.Config{Batch: fakeai.BatchConfig{InProgress: 50 * time.Millisecond, StrayLines: 5000}})
		out := filepath.Join(t.TempDir(), "out")
		res := batchRun(t, url, out)
		if res.code != 0 {
			t.Fatalf("exit %d; the 25 answers come before the flood and all records are answered\n%s", res.code, res.stderr)
		}
		assertExactlyOnce(t, out, sampleIDs(t, sample))
		log, _ := os.ReadFile(rundir.New(out).Worker(0).Log)
		if n := strings.Count(string(log), "did not ask"); n > 5 {
			t.Errorf("%d log lines for stray custom_ids; want at most 5", n)
		}
		if !strings.Contains(string(log), "stopped reading a Batch API file") {
			t.Error("the worker read the whole flood")
		}
	})
	t.Run("running past its window", func(t *testing.T) {
		t.Parallel()
		_, url := startFake(t, fakeai.Config{Batch: fakeai.BatchConfig{InProgress: time.Hour, ExpiresIn: time.Second}})
		out := filepath.Join(t.TempDir(), "out")
		res := batchRun(t, url, out)
		if res.code != 1 || !strings.Contains(res.stderr, "not answered by the Batch API") {
			t.Fatalf("exit %d; want 1 with every record left to do\n%s", res.code, res.stderr)
		}
		if s := readSummaryFile(t, out); s.Remaining != 100 {
			t.Errorf("summary %+v; want 100 remaining", s)
		}
	})
}

// TestBatchAPIUsesTheResponseCache: a Batch API run stores its answers in the response cache,
// and a second run over the same records takes them all from it, creating no batch.
func TestBatchAPIUsesTheResponseCache(t *testing.T) {
	t.Parallel()
	api, url := startFake(t, fakeai.Config{Batch: fakeai.BatchConfig{InProgress: 50 * time.Millisecond}})
	dir := t.TempDir()
	cacheDir := filepath.Join(dir, "cache")
	batchRunComplete(t, url, filepath.Join(dir, "first"), "--cache", cacheDir)
	created := api.BatchStats().Created
	out := filepath.Join(dir, "second")
	res := batchRun(t, url, out, "--cache", cacheDir)
	if res.code != 0 || !strings.Contains(res.stdout, "100 answers from the response cache") {
		t.Fatalf("second run: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	if n := api.BatchStats().Created; n != created {
		t.Errorf("the second run created %d batches; want none (all cached)", n-created)
	}
	assertExactlyOnce(t, out, sampleIDs(t, sample))
}

// A live pass held up by Batch API batches still running says how to collect them: rerunning
// the live pass would skip them again.
func TestALivePassBesideRunningBatchesSaysHowToCollectThem(t *testing.T) {
	t.Parallel()
	_, url, out := interruptedBatchRun(t)
	live := runBin(t, []string{"OPENAI_API_KEY=" + testKey}, "coordinator", "--workers", "2", "--input", sample, "--out", out,
		"--base-url", url, "--backend", "live", "--progress", "off")
	if live.code != 1 {
		t.Fatalf("the live pass: exit %d; want 1 (records in running batches)\n%s", live.code, tail(live.stderr, 20))
	}
	last := strings.TrimSpace(live.stderr[strings.LastIndex(strings.TrimSpace(live.stderr), "\n")+1:])
	if !strings.Contains(last, "Batch API batches that may still be running") || !strings.Contains(last, "--backend batch-api") ||
		strings.Contains(last, "failed") {
		t.Errorf("the last line: %q", last)
	}
}

// interruptedBatchRun starts a Batch API run of two batches that never end at the fake, and
// stops the coordinator with Ctrl-C once both are created: the batches go on running.
func interruptedBatchRun(t *testing.T) (*fakeai.Server, string, string) {
	t.Helper()
	api, url := startFake(t, fakeai.Config{Batch: fakeai.BatchConfig{InProgress: time.Hour}})
	out := filepath.Join(t.TempDir(), "out")
	cmd, _ := startBatchRun(t, url, out, 2)
	waitFor(t, "two batches", 60*time.Second, func() bool { return api.BatchStats().Created == 2 })
	cmd.Process.Signal(syscall.SIGINT)
	cmd.Wait()
	return api, url, out
}
