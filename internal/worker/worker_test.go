package worker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/trialcat/trialcat/internal/testkit"

	"github.com/trialcat/trialcat/internal/batch"
	"github.com/trialcat/trialcat/internal/exitcode"
	"github.com/trialcat/trialcat/internal/fakeai"
	"github.com/trialcat/trialcat/internal/input"
	"github.com/trialcat/trialcat/internal/lockfile"
	"github.com/trialcat/trialcat/internal/results"
	"github.com/trialcat/trialcat/internal/rundir"
	"github.com/trialcat/trialcat/internal/runspec"
	"github.com/trialcat/trialcat/internal/taxonomy"
	"github.com/trialcat/trialcat/internal/wire"
)

const key = "sk-worker-test-key"

// setup writes batch_0.json with the first n sample records and a run.json for the fake server.
func setup(t *testing.T, n int, cfg fakeai.Config, maxAttempts int) (dir string, fake *fakeai.Server, ids []string) {
	t.Helper()
	dir = t.TempDir()
	r, err := input.Open("../../testdata/trials.jsonl", input.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	w, err := batch.Create(filepath.Join(dir, "batch_0.json"))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		rec, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, rec.ID)
		if err := w.Add(rec.ID, rec.Data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	cfg.APIKey = key
	fake = fakeai.New(cfg)
	hs := httptest.NewServer(fake)
	t.Cleanup(hs.Close)
	spec := &runspec.Spec{
		Version: runspec.Version, Provider: runspec.ProviderOpenAI, Model: "gpt-5-mini", BaseURL: hs.URL + "/v1",
		Prompt: taxonomy.Prompt(), PromptSource: "default", Schema: taxonomy.Schema(), SchemaSource: "default",
		IDColumn: "nct_id", MaxAttempts: maxAttempts, Timeout: runspec.Duration(5 * time.Second), Concurrency: 2,
	}
	if err := runspec.Save(rundir.New(dir).Run(), spec); err != nil {
		t.Fatal(err)
	}
	return dir, fake, ids
}

func deps() Deps {
	return Deps{Getenv: func(k string) string {
		if k == "OPENAI_API_KEY" {
			return key
		}
		return ""
	}}
}

func resultIDs(t *testing.T, path string) []string {
	t.Helper()
	var ids []string
	if _, _, err := results.Read(path, func(row []string) error {
		ids = append(ids, results.RowID(row))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return ids
}

func TestRunAnswersEveryRecordAndResumeSkipsThem(t *testing.T) {
	dir, fake, ids := setup(t, 8, fakeai.Config{}, 3)
	batchPath := filepath.Join(dir, "batch_0.json")
	var events bytes.Buffer
	d := deps()
	d.Stdout = &events
	if err := Run(context.Background(), Options{BatchPath: batchPath, Events: true}, d); err != nil {
		t.Fatal(err)
	}
	if got := resultIDs(t, filepath.Join(dir, "worker_0_results.csv")); len(got) != 8 {
		t.Fatalf("%d results, want 8", len(got))
	}
	okEvents := 0
	for _, line := range bytes.Split(bytes.TrimSpace(events.Bytes()), []byte("\n")) {
		ev, err := wire.Decode(line)
		if err != nil {
			t.Fatalf("bad event line %q: %v", line, err)
		}
		if ev.Type == wire.Record && ev.OK && ev.InputTokens > 0 {
			okEvents++
		}
	}
	if okEvents != 8 {
		t.Errorf("%d record events with usage, want 8", okEvents)
	}
	logData, err := os.ReadFile(filepath.Join(dir, "worker_0_log.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if !bytes.Contains(logData, []byte(`"id":"`+id+`"`)) {
			t.Errorf("log has no request line for %s", id)
		}
	}
	// Started again: nothing left to do, no request made.
	before := fake.Stats().Requests
	if err := Run(context.Background(), Options{BatchPath: batchPath}, deps()); err != nil {
		t.Fatal(err)
	}
	if got := fake.Stats().Requests; got != before {
		t.Errorf("second run made %d requests, want 0", got-before)
	}
}

func TestAttemptsSurviveRestarts(t *testing.T) {
	// Every request fails with a 500: the record may be tried max-attempts times in all.
	dir, fake, ids := setup(t, 1, fakeai.Config{Rate500: 1}, 4)
	// A previous worker process spent 3 attempts and died mid-write of the 4th line.
	journal := filepath.Join(dir, "worker_0_attempts.log")
	a, _, err := results.OpenAttemptLog(journal)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := a.Record(ids[0]); err != nil {
			t.Fatal(err)
		}
	}
	a.Close()
	f, err := os.OpenFile(journal, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`"NCT0`) // torn
	f.Close()
	err = Run(context.Background(), Options{BatchPath: filepath.Join(dir, "batch_0.json")}, deps())
	if !errors.Is(err, exitcode.ErrRecordsFailed) {
		t.Fatalf("err = %v, want some records failed", err)
	}
	if n := fake.Stats().PerID[ids[0]]; n != 1 {
		t.Errorf("record requested %d times, want 1 (3 of 4 attempts were spent before the restart)", n)
	}
	var rows [][]string
	if _, _, err := results.Read(filepath.Join(dir, "worker_0_failures.csv"), func(r []string) error {
		rows = append(rows, r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0][1] != "server_error" || rows[0][3] != "4" {
		t.Errorf("failures = %v, want one server_error row after 4 attempts", rows)
	}
}

func TestTornResultsLineIsRedone(t *testing.T) {
	dir, fake, ids := setup(t, 3, fakeai.Config{}, 3)
	batchPath := filepath.Join(dir, "batch_0.json")
	if err := Run(context.Background(), Options{BatchPath: batchPath}, deps()); err != nil {
		t.Fatal(err)
	}
	// Cut the last row in half, as a SIGKILL mid-write would.
	p := filepath.Join(dir, "worker_0_results.csv")
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	lastStart := bytes.LastIndexByte(data[:len(data)-1], '\n') + 1
	torn := string(data[lastStart : lastStart+15])
	if err := os.WriteFile(p, data[:lastStart+15], 0o644); err != nil {
		t.Fatal(err)
	}
	before := fake.Stats().PerID
	if err := Run(context.Background(), Options{BatchPath: batchPath}, deps()); err != nil {
		t.Fatal(err)
	}
	got := resultIDs(t, p)
	if len(got) != 3 {
		t.Fatalf("results after resume: %v", got)
	}
	redone := 0
	for _, id := range ids {
		redone += fake.Stats().PerID[id] - before[id]
	}
	if redone != 1 {
		t.Errorf("%d records redone, want 1 (the torn row %q)", redone, torn)
	}
}

func TestHandRunErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, batch, want string
		getenv            func(string) string
	}{
		{"badly named batch", filepath.Join(dir, "mybatch.json"), "batch_N.json", nil},
		{"no run.json beside it", filepath.Join(dir, "batch_2.json"), "run the coordinator first", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Run(context.Background(), Options{BatchPath: tt.batch}, Deps{Getenv: tt.getenv})
			if !errors.Is(err, exitcode.ErrUsage) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want a usage error mentioning %q", err, tt.want)
			}
		})
	}
	t.Run("no key", func(t *testing.T) {
		d, _, _ := setup(t, 1, fakeai.Config{}, 1)
		err := Run(context.Background(), Options{BatchPath: filepath.Join(d, "batch_0.json")}, Deps{Getenv: func(string) string { return "" }})
		if !errors.Is(err, exitcode.ErrUsage) || !strings.Contains(err.Error(), "OPENAI_API_KEY") {
			t.Errorf("err = %v", err)
		}
	})
}

func TestTooLongRecordFailsWithoutARequest(t *testing.T) {
	dir, fake, ids := setup(t, 3, fakeai.Config{}, 3)
	spec, err := runspec.Load(rundir.New(dir).Run())
	if err != nil {
		t.Fatal(err)
	}
	spec.MaxInputTokens = 1800 // the system prompt alone is ~1,400 tokens; some records go over
	if err := runspec.Save(rundir.New(dir).Run(), spec); err != nil {
		t.Fatal(err)
	}
	err = Run(context.Background(), Options{BatchPath: filepath.Join(dir, "batch_0.json")}, deps())
	var fails [][]string
	if _, _, rerr := results.Read(filepath.Join(dir, "worker_0_failures.csv"), func(r []string) error {
		fails = append(fails, r)
		return nil
	}); rerr != nil {
		t.Fatal(rerr)
	}
	if len(fails) == 0 {
		t.Fatalf("no record was over 1,800 tokens; pick a lower limit (err %v)", err)
	}
	if !errors.Is(err, exitcode.ErrRecordsFailed) {
		t.Errorf("err = %v", err)
	}
	for _, f := range fails {
		if f[1] != "too_long" || !strings.Contains(f[2], "--max-input-tokens") {
			t.Errorf("failure row %v", f)
		}
		if n := fake.Stats().PerID[f[0]]; n != 0 {
			t.Errorf("too-long record %s was sent %d times", f[0], n)
		}
	}
	if got := len(resultIDs(t, filepath.Join(dir, "worker_0_results.csv"))); got+len(fails) != len(ids) {
		t.Errorf("%d answered + %d too long != %d", got, len(fails), len(ids))
	}
}

func TestSecondWorkerOnABatchIsRefused(t *testing.T) {
	dir, fake, _ := setup(t, 3, fakeai.Config{}, 3)
	files, err := rundir.ForBatch(filepath.Join(dir, "batch_0.json"))
	if err != nil {
		t.Fatal(err)
	}
	held, _, err := lockfile.Acquire(files.Lock) // the first worker
	if err != nil {
		t.Fatal(err)
	}
	err = Run(context.Background(), Options{BatchPath: files.Batch}, deps())
	held.Release()
	if !errors.Is(err, exitcode.ErrUsage) || !strings.Contains(err.Error(), "another worker (pid "+strconv.Itoa(os.Getpid())+")") {
		t.Fatalf("second worker: %v; want a usage error naming the holder", err)
	}
	if n := fake.Stats().Requests; n != 0 {
		t.Errorf("the refused worker made %d requests", n)
	}
	if _, err := os.Stat(files.Results); err == nil {
		t.Error("the refused worker created its results file")
	}
}

// tmpfs mounts a small file system for a test (root only; skips elsewhere).
func tmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		testkit.Need(t, fmt.Sprintf("cannot mount a tmpfs to fill (needs root): %v %s", err, out))
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	return dir
}

func TestFullDiskIsReportedAsSuch(t *testing.T) {
	disk := tmpfs(t, "2m")
	src, _, _ := setup(t, 40, fakeai.Config{}, 3)
	for _, n := range []string{"batch_0.json", "run.json"} {
		data, err := os.ReadFile(filepath.Join(src, n))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(disk, n), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Leave room for the header and a few rows.
	var st syscall.Statfs_t
	if err := syscall.Statfs(disk, &st); err != nil {
		t.Fatal(err)
	}
	free := int64(st.Bavail) * st.Bsize
	if err := os.WriteFile(filepath.Join(disk, "filler"), make([]byte, free-12<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	err := Run(context.Background(), Options{BatchPath: filepath.Join(disk, "batch_0.json")}, deps())
	if !errors.Is(err, exitcode.ErrStorage) || exitcode.WorkerCode(err) != exitcode.Storage {
		t.Fatalf("Run on a full disk = %v (exit %d); want the storage error, exit 4", err, exitcode.WorkerCode(err))
	}
	if !strings.Contains(err.Error(), "no space left on device writing worker_0_") {
		t.Errorf("message %q does not say the disk is full and which file", err)
	}
}

func TestResolveBatchFromTheScheduler(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []int{0, 1, 2} {
		if err := os.WriteFile(rundir.New(dir).Batch(n), []byte("[]"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	for _, tc := range []struct {
		name    string
		opts    Options
		getenv  func(string) string
		want    int // batch number, or -1 for a usage error
		message string
	}{
		{"--index", Options{RunDir: dir, Index: 2}, env("SLURM_ARRAY_TASK_ID", "1"), 2, ""},
		{"Slurm array task", Options{RunDir: dir, Index: -1}, env("SLURM_ARRAY_TASK_ID", "1", "JOB_COMPLETION_INDEX", "0"), 1, ""},
		{"Kubernetes Indexed Job", Options{RunDir: dir, Index: -1}, env("JOB_COMPLETION_INDEX", "2"), 2, ""},
		{"no index", Options{RunDir: dir, Index: -1}, env(), -1, "--index N, or SLURM_ARRAY_TASK_ID (a Slurm array task) or JOB_COMPLETION_INDEX"},
		{"not a number", Options{RunDir: dir, Index: -1}, env("SLURM_ARRAY_TASK_ID", "x"), -1, `SLURM_ARRAY_TASK_ID="x"`},
		{"no such batch", Options{RunDir: dir, Index: 7}, env(), -1, "its batches: 0 to 2"},
		{"both", Options{RunDir: dir, BatchPath: "b", Index: 1}, env(), -1, "give one"},
		{"neither", Options{Index: -1}, env(), -1, "is required"},
		{"--index -1", Options{RunDir: dir, Index: -1, IndexGiven: true}, env("SLURM_ARRAY_TASK_ID", "1"), -1, "--index -1 is not a batch number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ResolveBatch(tc.opts, tc.getenv)
			if tc.want < 0 {
				if !errors.Is(err, exitcode.ErrUsage) || !strings.Contains(err.Error(), tc.message) {
					t.Errorf("ResolveBatch = %q, %v; want a usage error saying %q", got, err, tc.message)
				}
				return
			}
			if err != nil || got != rundir.New(dir).Batch(tc.want) {
				t.Errorf("ResolveBatch = %q, %v; want batch %d", got, err, tc.want)
			}
		})
	}
}
