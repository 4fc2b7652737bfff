package engine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/trialcat/trialcat/internal/engine"
	"github.com/trialcat/trialcat/internal/exitcode"
	"github.com/trialcat/trialcat/internal/fakeai"
	"github.com/trialcat/trialcat/internal/llm"
	"github.com/trialcat/trialcat/internal/offline"
	"github.com/trialcat/trialcat/internal/results"
	"github.com/trialcat/trialcat/internal/rundir"
	"github.com/trialcat/trialcat/internal/signals"
	"github.com/trialcat/trialcat/internal/summary"
	"github.com/trialcat/trialcat/internal/worker"
)

// The in-process tests call engine.Run directly, with this test binary as the worker
// binary: TestMain sees the worker's argv and runs fakeWorkerMain instead of the tests. The fake
// worker is the real worker (offline provider) with faults read from fakePlanFile in the run
// folder, and it notes every start in fakeStartsFile, so the tests count processes.
const (
	fakePlanFile   = "fake-worker-plan.json"
	fakeStartsFile = "fake-worker-starts.log"
)

// fakePlan says how the fake worker of each batch misbehaves.
type fakePlan struct {
	// CrashAlways batches exit 2 at once, every time, having done nothing.
	CrashAlways []int `json:"crash_always"`
	// CrashFirstAfter batches crash (exit 2) in their first process once they have answered
	// the given number of records; later processes run normally.
	CrashFirstAfter map[int]int `json:"crash_first_after"`
	// Refuse batches report that the API refused the run and exit 3.
	Refuse []int `json:"refuse"`
	// Poison is a record ID whose request kills its worker process, every time.
	Poison string `json:"poison"`
	// DiskFull batches report that they cannot write their files and exit 4.
	DiskFull []int `json:"disk_full"`
}

func fakeWorkerMain(args []string) int {
	ctx, _, stop := signals.Context(context.Background())
	defer stop()
	deps := worker.Deps{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv, NewProvider: fakeProvider}
	err := worker.Run(ctx, worker.Options{Serve: true, Events: true}, deps)
	return exitcode.WorkerCode(err)
}

// fakeProvider applies the plan in the run folder to one batch a fake worker was assigned: it is
// called once per batch, when the worker has taken the batch's lock and opened its log, before
// any request.
func fakeProvider(def llm.Provider, files rundir.Worker) (llm.Provider, error) {
	dir := files.Dir.Path()
	var plan fakePlan
	if b, err := os.ReadFile(filepath.Join(dir, fakePlanFile)); err == nil {
		if err := json.Unmarshal(b, &plan); err != nil {
			return nil, fmt.Errorf("%w: %w", err, exitcode.ErrUsage)
		}
	}
	n := files.Number
	starts := noteStart(dir, n)
	if slices.Contains(plan.CrashAlways, n) {
		os.Exit(2)
	}
	if slices.Contains(plan.Refuse, n) {
		// What the API answers a bad key: the worker stops the run at the first request.
		return llm.ProviderFunc(func(context.Context, llm.Request) (llm.Reply, error) {
			return llm.Reply{}, &llm.Error{Class: llm.ClassAuth, Status: 401, Message: "invalid key"}
		}), nil
	}
	if slices.Contains(plan.DiskFull, n) {
		return nil, exitcode.StorageFailed(fmt.Sprintf("no space left on device writing worker_%d_results.csv; free space in %s and rerun the same command", n, dir))
	}
	// Crash once left records are answered: with concurrency 1 the next request starts after
	// their rows are on disk.
	var left atomic.Int64
	left.Store(-1)
	if k, ok := plan.CrashFirstAfter[n]; ok && starts == 1 {
		left.Store(int64(k))
	}
	if plan.Poison == "" && left.Load() < 0 {
		return def, nil // the run's own provider
	}
	return llm.ProviderFunc(func(ctx context.Context, req llm.Request) (llm.Reply, error) {
		if plan.Poison != "" && req.RecordID == plan.Poison {
			os.Exit(137) // as the kernel's OOM killer would end it
		}
		if left.Load() >= 0 && left.Add(-1) < 0 {
			os.Exit(2)
		}
		return offline.Provider{}.Complete(ctx, req)
	}), nil
}

// noteStart appends one line to the starts file and returns this batch's starts so far.
func noteStart(dir string, n int) int {
	path := filepath.Join(dir, fakeStartsFile)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err == nil {
		fmt.Fprintf(f, "%d %d\n", n, os.Getpid())
		f.Close()
	}
	return countStarts(dir)[n]
}

// startPIDs lists the processes that took up each batch, in order.
func startPIDs(dir string) map[int][]int {
	b, _ := os.ReadFile(filepath.Join(dir, fakeStartsFile))
	pids := map[int][]int{}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var n, pid int
		if _, err := fmt.Sscan(l, &n, &pid); err == nil {
			pids[n] = append(pids[n], pid)
		}
	}
	return pids
}

func countStarts(dir string) map[int]int {
	counts := map[int]int{}
	for n, pids := range startPIDs(dir) {
		counts[n] = len(pids)
	}
	return counts
}

// runInProcess runs the coordinator in this process over the bundled sample, offline, with the
// test binary as its worker and plan as the workers' faults.
func runInProcess(t *testing.T, plan fakePlan, mod func(*engine.Options)) (*summary.Summary, error, string) {
	t.Helper()
	return runInProcessIn(t, t.TempDir(), plan, mod)
}

// runInProcessIn is runInProcess into the folder out (a rerun resumes it). With Options.Provider
// openai the key is testKey.
func runInProcessIn(t *testing.T, out string, plan fakePlan, mod func(*engine.Options)) (*summary.Summary, error, string) {
	t.Helper()
	b, err := json.Marshal(plan)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, fakePlanFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	opts := engine.Options{
		Input: sample, Out: out, Workers: 4, Provider: "offline", Model: engine.DefaultModel,
		MaxAttempts: engine.DefaultMaxAttempts, Timeout: engine.DefaultTimeout, Concurrency: 1,
		MaxRestarts: engine.DefaultMaxRestarts, WorkerBin: exe, Grace: engine.DefaultGrace,
	}
	if mod != nil {
		mod(&opts)
	}
	var stdout bytes.Buffer
	sum, err := engine.Run(t.Context(), opts, engine.Deps{
		Log:    hclog.New(&hclog.LoggerOptions{Output: io.Discard}),
		Stdout: &stdout,
		Getenv: func(k string) string {
			switch k {
			case "PATH", "HOME", "GOCOVERDIR":
				return os.Getenv(k)
			case "OPENAI_API_KEY":
				if opts.Provider == "openai" {
					return testKey
				}
			}
			return ""
		},
	})
	return sum, err, out
}

// The coordinator keeps --workers processes up and hands each the next batch as it ends one; a
// process that dies is replaced by one that resumes its batch, and the run goes on with it.
func TestWorkersStayUpAcrossBatches(t *testing.T) {
	t.Parallel()
	sum, err, out := runInProcess(t, fakePlan{CrashFirstAfter: map[int]int{5: 3}}, func(o *engine.Options) {
		o.Workers, o.Batches = 2, "10"
	})
	if err != nil {
		t.Fatalf("Run = %v; want every record answered", err)
	}
	if sum.Succeeded != 100 || sum.Restarts != 1 {
		t.Errorf("succeeded %d, restarts %d; want 100 and 1", sum.Succeeded, sum.Restarts)
	}
	pids := startPIDs(out)
	distinct := map[int]bool{}
	for n := range 10 {
		want := 1
		if n == 5 {
			want = 2
		}
		if len(pids[n]) != want {
			t.Errorf("batch %d taken up by %v; want %d process(es)", n, pids[n], want)
		}
		for _, p := range pids[n] {
			distinct[p] = true
		}
	}
	// Two slots, one crash: three processes for ten batches.
	if len(distinct) != 3 || sum.WorkerProcesses != 3 {
		t.Errorf("%d distinct worker processes, summary.json says %d; want 3 for 2 slots and 1 crash: %v", len(distinct), sum.WorkerProcesses, pids)
	}
	if p := pids[5]; len(p) == 2 && p[0] == p[1] {
		t.Errorf("batch 5 resumed in the process that crashed (%d)", p[0])
	}
}

func TestRestartsRunOut(t *testing.T) {
	t.Parallel()
	for _, restarts := range []int{0, 2} {
		t.Run(fmt.Sprint(restarts), func(t *testing.T) {
			t.Parallel()
			sum, err, out := runInProcess(t, fakePlan{CrashAlways: []int{1}}, func(o *engine.Options) { o.MaxRestarts = restarts })
			if !errors.Is(err, exitcode.ErrRecordsFailed) {
				t.Fatalf("Run = %v; want records failed", err)
			}
			if got := countStarts(out)[1]; got != restarts+1 {
				t.Errorf("batch 1 was started %d times with --max-restarts %d; want %d", got, restarts, restarts+1)
			}
			if sum.Restarts != int64(restarts) || sum.Workers[1].Restarts != restarts || sum.Workers[1].Processes != restarts+1 {
				t.Errorf("summary: restarts %d, batch 1 %+v; want %d restarts", sum.Restarts, sum.Workers[1].WorkerRun, restarts)
			}
			// Batch 1's 25 records remain for a rerun; they did not fail. The others are answered.
			if sum.Succeeded != 75 || sum.Failed != 0 || sum.Remaining != 25 {
				t.Errorf("succeeded %d, failed %d, remaining %d; want 75, 0 and 25", sum.Succeeded, sum.Failed, sum.Remaining)
			}
		})
	}
}

func TestRestartedWorkerResumesWithoutRedoing(t *testing.T) {
	t.Parallel()
	sum, err, out := runInProcess(t, fakePlan{CrashFirstAfter: map[int]int{0: 10, 2: 1}}, nil)
	if err != nil {
		t.Fatalf("Run = %v; want every record answered", err)
	}
	if c := countStarts(out); c[0] != 2 || c[2] != 2 || c[1] != 1 || c[3] != 1 {
		t.Errorf("starts per batch %v; want two for batches 0 and 2, one for the others", c)
	}
	if sum.Succeeded != 100 || sum.Restarts != 2 {
		t.Errorf("succeeded %d restarts %d; want 100 and 2", sum.Succeeded, sum.Restarts)
	}
	// The restarted process resumes: no record of the batch is answered twice.
	dir := rundir.New(out)
	for _, n := range []int{0, 2} {
		rows := map[string]int{}
		if _, err := results.ReadFile(dir.Worker(n).Results, func(_ results.Layout, r results.Row) error {
			rows[r.ID]++
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		for id, k := range rows {
			if k != 1 {
				t.Errorf("batch %d answered %s %d times; want once", n, id, k)
			}
		}
		if len(rows) != 25 {
			t.Errorf("batch %d has %d rows; want 25", n, len(rows))
		}
	}
}

func TestRefusedRunStopsEveryWorker(t *testing.T) {
	t.Parallel()
	sum, err, _ := runInProcess(t, fakePlan{Refuse: []int{0}}, func(o *engine.Options) { o.Workers, o.Batches = 1, "4" })
	if !errors.Is(err, exitcode.ErrFatalAPI) {
		t.Fatalf("Run = %v; want the API's refusal", err)
	}
	// One worker at a time: batch 0 refuses, so no later batch may start.
	if len(sum.Workers) != 4 {
		t.Fatalf("%d batches; want 4", len(sum.Workers))
	}
	for _, w := range sum.Workers[1:] {
		if w.Started {
			t.Errorf("batch %d started after the API refused the run", w.Batch)
		}
	}
	if sum.Status != summary.StatusAPIRefused {
		t.Errorf("status %q; want %q", sum.Status, summary.StatusAPIRefused)
	}
}

func TestBudgetStopsEveryWorkerInProcess(t *testing.T) {
	t.Parallel()
	fake, url := startFake(t, fakeai.Config{})
	sum, err, _ := runInProcess(t, fakePlan{}, func(o *engine.Options) {
		o.Provider, o.BaseURL, o.MaxCostUSD, o.Workers = "openai", url, 0.005, 2
	})
	if !errors.Is(err, exitcode.ErrBudget) {
		t.Fatalf("Run = %v; want the budget reached", err)
	}
	if sum.Status != summary.StatusBudgetReached {
		t.Errorf("status %q", sum.Status)
	}
	// Spend stops within the record that crossed the budget and the requests in flight (two
	// workers, one each) or sent before the stop reached them.
	perRecord := sum.CostUSD / float64(sum.Succeeded)
	if sum.CostUSD < 0.005 || sum.CostUSD > 0.005+3*perRecord+1e-9 {
		t.Errorf("spent $%.5f (%d records at $%.5f) against a $0.005 budget", sum.CostUSD, sum.Succeeded, perRecord)
	}
	if got := fake.Stats().Requests; int64(got) > sum.Succeeded+2 {
		t.Errorf("%d requests for %d answers: requests went on after the budget", got, sum.Succeeded)
	}
}

func TestRerunAsksOnlyWhatIsLeft(t *testing.T) {
	t.Parallel()
	out := t.TempDir()
	// First pass: batch 2 crashes every time and gets no restart.
	_, err, _ := runInProcessIn(t, out, fakePlan{CrashAlways: []int{2}}, func(o *engine.Options) { o.MaxRestarts = 0 })
	if !errors.Is(err, exitcode.ErrRecordsFailed) {
		t.Fatalf("first pass = %v; want records failed", err)
	}
	dir := rundir.New(out)
	before := map[int][]byte{}
	for _, n := range []int{0, 1, 3} {
		before[n], _ = os.ReadFile(dir.Worker(n).Results)
	}
	// The rerun resumes: batch 2 is done now, the others' files are not touched.
	sum, err, _ := runInProcessIn(t, out, fakePlan{}, nil)
	if err != nil {
		t.Fatalf("rerun = %v", err)
	}
	if sum.Succeeded != 100 {
		t.Errorf("%d succeeded after the rerun; want 100", sum.Succeeded)
	}
	for n, b := range before {
		if after, _ := os.ReadFile(dir.Worker(n).Results); !bytes.Equal(after, b) {
			t.Errorf("batch %d's results changed on the rerun; it was done", n)
		}
	}
}

func TestIDsWithLineBreaksAreDoneOnce(t *testing.T) {
	t.Parallel()
	// IDs that hold CR, LF or CRLF must count as done when read back, byte for byte: a rerun
	// asks nothing again.
	ids := []string{"A\r\nB", "C\nD", "E\rF", "plain", "G\r\n\r\nH"} // (IDs are trimmed: inner breaks only)
	var in bytes.Buffer
	for _, id := range ids {
		line, _ := json.Marshal(map[string]string{"nct_id": id, "brief_title": "A study of " + id, "conditions": "Asthma"})
		in.Write(append(line, '\n'))
	}
	input := filepath.Join(t.TempDir(), "ids.jsonl")
	if err := os.WriteFile(input, in.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	mod := func(o *engine.Options) { o.Input, o.Workers = input, 2 }
	sum, err, _ := runInProcessIn(t, out, fakePlan{}, mod)
	if err != nil || sum.Succeeded != int64(len(ids)) {
		t.Fatalf("first run: %v, %d succeeded", err, sum.Succeeded)
	}
	dir := rundir.New(out)
	before := map[int][]byte{}
	for _, n := range []int{0, 1} {
		before[n], _ = os.ReadFile(dir.Worker(n).Results)
	}
	sum, err, _ = runInProcessIn(t, out, fakePlan{}, mod)
	if err != nil || sum.Succeeded != int64(len(ids)) || sum.Remaining != 0 {
		t.Fatalf("rerun: %v, %d succeeded, %d remaining", err, sum.Succeeded, sum.Remaining)
	}
	for n, b := range before {
		if after, _ := os.ReadFile(dir.Worker(n).Results); !bytes.Equal(after, b) {
			t.Errorf("batch %d was answered again on the rerun:\n%q", n, after)
		}
	}
	var got []string
	if _, err := results.ReadFile(dir.FinalResults(), func(_ results.Layout, r results.Row) error {
		got = append(got, r.ID)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, ids) {
		t.Errorf("final results IDs %q, want %q", got, ids)
	}
}

func TestRecordThatKillsItsWorkerFailsAlone(t *testing.T) {
	t.Parallel()
	ids := sampleIDs(t, sample)
	poison := ids[30] // batch 1 of 4, with concurrency 2 beside it
	sum, err, out := runInProcess(t, fakePlan{Poison: poison}, func(o *engine.Options) { o.Concurrency = 2 })
	if !errors.Is(err, exitcode.ErrRecordsFailed) {
		t.Fatalf("Run = %v; want records failed", err)
	}
	// With default flags the record ends as worker_crashed; every other record is answered.
	if sum.Succeeded != 99 || sum.Failed != 1 || sum.Remaining != 0 || sum.FailedByClass["worker_crashed"] != 1 {
		t.Errorf("succeeded %d failed %d remaining %d by class %v; want 99, 1 worker_crashed, 0", sum.Succeeded, sum.Failed, sum.Remaining, sum.FailedByClass)
	}
	var failures []results.Failure
	if _, err := (results.Layout{IDColumn: "nct_id"}).ReadFailures(rundir.New(out).FinalFailures(), func(f results.Failure) error {
		failures = append(failures, f)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(failures) != 1 || failures[0].ID != poison || failures[0].Attempts != engine.DefaultMaxAttempts {
		t.Errorf("failures %+v; want %s after %d attempts", failures, poison, engine.DefaultMaxAttempts)
	}
	// It killed its worker at most --max-attempts times.
	if starts := countStarts(out)[1]; starts > engine.DefaultMaxAttempts+1 {
		t.Errorf("batch 1 was started %d times; the poison record may take at most %d", starts, engine.DefaultMaxAttempts)
	}
}

func TestFinishedRunAskedAgainDoesNothing(t *testing.T) {
	t.Parallel()
	out := t.TempDir()
	if _, err, _ := runInProcessIn(t, out, fakePlan{}, nil); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, out)
	starts := countStarts(out)
	sum, err, _ := runInProcessIn(t, out, fakePlan{}, nil)
	if err != nil || sum == nil || sum.Succeeded != 100 {
		t.Fatalf("rerun of a finished run = %v (%+v); want success with its summary", err, sum)
	}
	if after := snapshot(t, out); after != before {
		t.Error("the rerun of a finished run changed its folder")
	}
	if got := countStarts(out); fmt.Sprint(got) != fmt.Sprint(starts) {
		t.Errorf("workers started %v, before %v: a finished run needs none", got, starts)
	}
	// Without its final files, it merges them again, still without a worker.
	dir := rundir.New(out)
	if err := os.Remove(dir.FinalResults()); err != nil {
		t.Fatal(err)
	}
	if _, err, _ := runInProcessIn(t, out, fakePlan{}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir.FinalResults()); err != nil {
		t.Error("final_results.csv was not merged again")
	}
	if got := countStarts(out); fmt.Sprint(got) != fmt.Sprint(starts) {
		t.Errorf("workers started %v, before %v", got, starts)
	}
}

func TestStartRemovesTemporaryFilesOfAKilledWrite(t *testing.T) {
	t.Parallel()
	out := t.TempDir()
	if _, err, _ := runInProcessIn(t, out, fakePlan{}, nil); err != nil {
		t.Fatal(err)
	}
	left := []string{".batch_2.json.tmp-81723", ".final_results.csv.tmp-11", ".report.html.tmp-990"}
	for _, n := range left {
		if err := os.WriteFile(filepath.Join(out, n), []byte("half"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err, _ := runInProcessIn(t, out, fakePlan{}, nil); err != nil {
		t.Fatal(err)
	}
	for _, n := range left {
		if _, err := os.Stat(filepath.Join(out, n)); err == nil {
			t.Errorf("%s is still there after a start", n)
		}
	}
}

func TestStartRepairsAMergeCutBetweenItsRenames(t *testing.T) {
	t.Parallel()
	out := t.TempDir()
	if _, err, _ := runInProcessIn(t, out, fakePlan{}, nil); err != nil {
		t.Fatal(err)
	}
	// What a kill between the two renames leaves: new results, the old failures (listing an ID
	// that is answered now), and the marker.
	dir := rundir.New(out)
	id := sampleIDs(t, sample)[5]
	old := "nct_id,error_class,message,attempts,worker\n" + id + ",server_error,boom,5,0\n"
	if err := os.WriteFile(dir.FinalFailures(), []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir.Merging(), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	sum, err, _ := runInProcessIn(t, out, fakePlan{}, nil)
	if err != nil || sum.Failed != 0 || sum.Succeeded != 100 {
		t.Fatalf("start after a cut merge: %v, %+v", err, sum)
	}
	if rows := readCSV(t, dir.FinalFailures()); len(rows) != 1 {
		t.Errorf("final_failures.csv still lists %q; the start should have merged again", rows[1:])
	}
	if _, err := os.Stat(dir.Merging()); err == nil {
		t.Error("the merge marker is still there")
	}
}

func TestFullDiskStopsTheRunSayingSo(t *testing.T) {
	t.Parallel()
	sum, err, _ := runInProcess(t, fakePlan{DiskFull: []int{2}}, func(o *engine.Options) { o.Workers, o.Batches = 1, "4" })
	if !errors.Is(err, exitcode.ErrStorage) || exitcode.Code(err) != exitcode.Failed {
		t.Fatalf("Run = %v (%+v); want the storage error (exit 1)", err, sum)
	}
	if !strings.HasPrefix(err.Error(), "no space left on device writing worker_2_results.csv") {
		t.Errorf("error %q; want it to say the disk is full and where", err)
	}
	if sum.Status != summary.StatusStorage || sum.Workers[3].Started {
		t.Errorf("status %q, batch 3 started %v; want storage_error and no batch after the full disk", sum.Status, sum.Workers[3].Started)
	}
}
