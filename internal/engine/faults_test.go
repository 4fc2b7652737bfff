package engine_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/trialcat/trialcat/internal/fakeai"
	"github.com/trialcat/trialcat/internal/lockfile"
)

// replicate writes the bundled sample `copies` times with new IDs (NCT...-rK), as JSON Lines,
// and returns the path and the IDs in order.
func replicate(t testing.TB, dir string, copies int) (string, []string) {
	t.Helper()
	data, err := os.ReadFile(sample)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	var out bytes.Buffer
	var ids []string
	for k := 0; k < copies; k++ {
		for _, l := range lines {
			var rec map[string]any
			if err := json.Unmarshal([]byte(l), &rec); err != nil {
				t.Fatal(err)
			}
			ident := rec["protocolSection"].(map[string]any)["identificationModule"].(map[string]any)
			id := fmt.Sprintf("%s-r%d", ident["nctId"], k)
			ident["nctId"] = id
			b, err := json.Marshal(rec)
			if err != nil {
				t.Fatal(err)
			}
			out.Write(b)
			out.WriteByte('\n')
			ids = append(ids, id)
		}
	}
	p := filepath.Join(dir, fmt.Sprintf("trials-x%d.jsonl", copies))
	if err := os.WriteFile(p, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p, ids
}

// startBin starts a built binary in the background; the caller waits on it.
func startBin(t testing.TB, env []string, name string, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	needBinaries(t)
	cmd := exec.Command(filepath.Join(binDir, name), args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "SLURM_CONF=" + os.Getenv("SLURM_CONF"), "GORACE=atexit_sleep_ms=0"}, env...)
	var errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &errb, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Every wait on it ends: a process still running at the deadline is killed, and the test
	// fails saying so, instead of hanging until the package's timeout.
	deadline := time.AfterFunc(binDeadline, func() {
		t.Errorf("%s %v still running after %s: killed", name, args, binDeadline)
		_ = cmd.Process.Kill()
	})
	t.Cleanup(func() {
		deadline.Stop()
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return cmd, &errb
}

// binDeadline bounds every run of a built binary in these tests.
const binDeadline = 4 * time.Minute

// rerunAsksNothingTwice reruns the coordinator with args over the run folder out and fails the
// test unless it exits 0 without asking fake again about any record answered before.
func rerunAsksNothingTwice(t testing.TB, fake *fakeai.Server, out string, env, args []string) runResult {
	t.Helper()
	before := fake.Stats().PerID
	answered := map[string]bool{}
	files, _ := filepath.Glob(filepath.Join(out, "worker_*_results.csv"))
	for _, f := range files {
		for _, id := range firstColumn(readCSV(t, f)) {
			answered[id] = true
		}
	}
	res := runBin(t, env, "coordinator", args...)
	if res.code != 0 {
		t.Fatalf("rerun: exit %d\n%s", res.code, tail(res.stderr, 30))
	}
	after := fake.Stats().PerID
	for id := range answered {
		if after[id] != before[id] {
			t.Errorf("%s was answered before the kill but asked again on rerun (%d requests, then %d)", id, before[id], after[id])
		}
	}
	return res
}

// killAndWaitFor kills cmd (SIGKILL), reaps it, and waits for the processes pids (its children,
// or theirs) to be gone.
func killAndWaitFor(t testing.TB, cmd *exec.Cmd, what string, pids []int) {
	t.Helper()
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	waitFor(t, what, 20*time.Second, func() bool {
		for _, p := range pids {
			if alive(p) {
				return false
			}
		}
		return true
	})
}

func exitCodeOf(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}

// childPIDs lists the live child processes of pid.
func childPIDs(pid int) []int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var out []int
	for _, f := range tasks {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, s := range strings.Fields(string(data)) {
			if n, err := strconv.Atoi(s); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

// batchOf is the batch number a worker process of the run in out holds (by its batch lock), or
// -1 when it holds none (idle between batches, or not a worker).
func batchOf(out string, pid int) int {
	locks, _ := filepath.Glob(filepath.Join(out, ".batch_*.lock"))
	for _, l := range locks {
		if lockfile.Holder(l) != strconv.Itoa(pid) {
			continue
		}
		var n int
		if _, err := fmt.Sscanf(filepath.Base(l), ".batch_%d.lock", &n); err == nil {
			return n
		}
	}
	return -1
}

func alive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// A zombie has exited; it only waits to be reaped.
	fields := strings.Fields(string(data))
	return len(fields) > 2 && fields[2] != "Z"
}

// countRows counts complete data rows in the workers' results files.
func countRows(t testing.TB, out string) int {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(out, "worker_*_results.csv"))
	n := 0
	for _, f := range files {
		data, _ := os.ReadFile(f)
		n += bytes.Count(data, []byte("\n")) - 1
	}
	return n
}

func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func readSummary(t testing.TB, out string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(out, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// assertRedoneAtMost checks that only records in flight when a process was stopped were asked
// again: at most inFlight IDs were requested twice and none more often. With a server that
// never fails, a restarted worker that redid answered records would ask many more.
func assertRedoneAtMost(t testing.TB, st fakeai.Stats, inFlight int) {
	t.Helper()
	again := 0
	for id, n := range st.PerID {
		switch {
		case n > 2:
			t.Errorf("%s was requested %d times; a stop can repeat only the request in flight", id, n)
		case n == 2:
			again++
		}
	}
	if again > inFlight {
		t.Errorf("%d records were requested twice; at most %d were in flight when processes were stopped", again, inFlight)
	}
}

// assertAttemptsBounded checks no ID was requested more often than maxAttempts allows.
func assertAttemptsBounded(t testing.TB, st fakeai.Stats, max int) {
	t.Helper()
	for id, n := range st.PerID {
		if n > max {
			t.Errorf("%s was requested %d times; --max-attempts is %d", id, n, max)
		}
	}
}

func TestFaultyServerEveryRecordLands(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("end-to-end fault run")
	}
	input, ids := replicate(t, t.TempDir(), 4)
	fake, url := startFake(t, fakeai.Config{
		Seed: 7, Rate500: 0.10, RateBadJSON: 0.025, RateSchemaBreak: 0.025, RateDrop: 0.02,
		RateStall: 0.01, StallFor: 3 * time.Second,
	})
	out := filepath.Join(t.TempDir(), "out")
	res := runBin(t, []string{"OPENAI_API_KEY=" + testKey, "GORACE=atexit_sleep_ms=0"}, "coordinator",
		"--workers", "10", "--concurrency", "4", "--max-attempts", "8", "--timeout", "1s",
		"--input", input, "--out", out, "--base-url", url)
	if res.code != 0 {
		t.Fatalf("exit %d\n%s", res.code, tail(res.stderr, 40))
	}
	ok, failed := assertExactlyOnce(t, out, ids)
	if ok != 400 || failed != 0 {
		t.Errorf("%d succeeded, %d failed; want all 400 answered", ok, failed)
	}
	st := fake.Stats()
	assertAttemptsBounded(t, st, 8)
	for _, k := range []string{fakeai.Kind500, fakeai.KindBadJSON, fakeai.KindSchemaBreak, fakeai.KindDrop, fakeai.KindStall} {
		if st.Answers[k] == 0 {
			t.Errorf("the server never injected %s; the test proves nothing about it", k)
		}
	}
	t.Logf("server answers: %v over %d requests", st.Answers, st.Requests)
}

func TestKilledWorkersAreRestartedAndLoseNothing(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("end-to-end kill test")
	}
	input, ids := replicate(t, t.TempDir(), 4)
	fake, url := startFake(t, fakeai.Config{Latency: fakeai.LatencyModel{Base: 40 * time.Millisecond}})
	out := filepath.Join(t.TempDir(), "out")
	cmd, logs := startBin(t, []string{"OPENAI_API_KEY=" + testKey}, "coordinator",
		"--workers", "8", "--concurrency", "2", "--input", input, "--out", out, "--base-url", url, "--max-attempts", "3")
	// Three different workers: a record in flight when its worker is killed has spent that
	// attempt, so killing one worker again and again would fail its in-flight records by
	// --max-attempts, which is right but not what this test is about.
	rng := rand.New(rand.NewSource(1))
	killed := 0
	victims := map[int]bool{}
	for killed < 3 {
		target := 40 * (killed + 1)
		waitFor(t, fmt.Sprintf("%d answered rows", target), 60*time.Second, func() bool { return countRows(t, out) >= target })
		kids := childPIDs(cmd.Process.Pid)
		rng.Shuffle(len(kids), func(i, j int) { kids[i], kids[j] = kids[j], kids[i] })
		victim := -1
		for _, k := range kids {
			if b := batchOf(out, k); b >= 0 && !victims[b] {
				victim, victims[b] = k, true
				break
			}
		}
		if victim < 0 {
			break
		}
		if err := syscall.Kill(victim, syscall.SIGKILL); err == nil {
			killed++
		}
	}
	err := cmd.Wait()
	if code := exitCodeOf(err); code != 0 {
		t.Fatalf("exit %d\n%s", code, tail(logs.String(), 40))
	}
	if killed != 3 {
		t.Fatalf("killed %d workers, want 3", killed)
	}
	ok, failed := assertExactlyOnce(t, out, ids)
	if ok != 400 || failed != 0 {
		t.Errorf("%d succeeded, %d failed", ok, failed)
	}
	assertAttemptsBounded(t, fake.Stats(), 3)
	assertRedoneAtMost(t, fake.Stats(), 3*2) // three kills, two requests in flight each
	if r := readSummary(t, out)["restarts"].(float64); r != 3 {
		t.Errorf("summary.json restarts = %v, want 3", r)
	}
	if !strings.Contains(logs.String(), "crashed; restarting it on the same batch") {
		t.Errorf("restart not logged:\n%s", tail(logs.String(), 20))
	}
}

func TestKilledCoordinatorTakesWorkersAlongAndRerunResumes(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("end-to-end kill test")
	}
	input, ids := replicate(t, t.TempDir(), 2)
	fake, url := startFake(t, fakeai.Config{Latency: fakeai.LatencyModel{Base: 40 * time.Millisecond}})
	out := filepath.Join(t.TempDir(), "out")
	env := []string{"OPENAI_API_KEY=" + testKey}
	args := []string{"--workers", "4", "--concurrency", "2", "--input", input, "--out", out, "--base-url", url}
	cmd, _ := startBin(t, env, "coordinator", args...)
	waitFor(t, "60 answered rows", 60*time.Second, func() bool { return countRows(t, out) >= 60 })
	kids := childPIDs(cmd.Process.Pid)
	if len(kids) == 0 {
		t.Fatal("no workers running")
	}
	killAndWaitFor(t, cmd, "workers to die with the coordinator", kids)
	if _, err := os.Stat(filepath.Join(out, "final_results.csv")); err == nil {
		t.Error("final_results.csv exists after the coordinator was killed mid-run")
	}

	res := rerunAsksNothingTwice(t, fake, out, env, args)
	if !strings.Contains(res.stderr, "resuming the run") {
		t.Errorf("rerun did not say it resumes:\n%s", tail(res.stderr, 10))
	}
	ok, failed := assertExactlyOnce(t, out, ids)
	if ok != len(ids) || failed != 0 {
		t.Errorf("%d succeeded, %d failed", ok, failed)
	}
}

func TestInterruptMergesWhatIsDoneAndExits130(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("end-to-end signal test")
	}
	input, ids := replicate(t, t.TempDir(), 2)
	fake, url := startFake(t, fakeai.Config{Latency: fakeai.LatencyModel{Base: 40 * time.Millisecond}})
	out := filepath.Join(t.TempDir(), "out")
	env := []string{"OPENAI_API_KEY=" + testKey}
	args := []string{"--workers", "4", "--input", input, "--out", out, "--base-url", url}
	cmd, logs := startBin(t, env, "coordinator", args...)
	waitFor(t, "20 answered rows", 60*time.Second, func() bool { return countRows(t, out) >= 20 })
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := exitCodeOf(cmd.Wait()); code != 130 {
		t.Fatalf("exit %d, want 130\n%s", code, tail(logs.String(), 30))
	}
	if !strings.Contains(logs.String(), "rerun the same command to resume") {
		t.Errorf("no resume hint:\n%s", tail(logs.String(), 10))
	}
	sum := readSummary(t, out)
	if sum["status"] != "interrupted" {
		t.Errorf("summary status = %v", sum["status"])
	}
	partial := len(readCSV(t, filepath.Join(out, "final_results.csv"))) - 1
	if partial < 20 || partial >= len(ids) {
		t.Errorf("final_results.csv has %d rows after the interrupt, want the part that was done", partial)
	}
	// Undone records are not failures: final_failures.csv lists none, and summary.json, the
	// final files and `status` agree on what remains.
	if _, failed := assertExactlyOnce(t, out, ids); failed != 0 {
		t.Errorf("%d records listed as failed after an interrupt; none failed", failed)
	}
	remaining := len(ids) - partial
	if got := sum["remaining"].(float64); int(got) != remaining || sum["failed"].(float64) != 0 {
		t.Errorf("summary: failed %v, remaining %v; want 0 and %d", sum["failed"], got, remaining)
	}
	st := runBin(t, nil, "coordinator", "status", "--out", out)
	if want := fmt.Sprintf("failed 0, remaining %d", remaining); !strings.Contains(st.stdout, want) {
		t.Errorf("status does not say %q:\n%s", want, st.stdout)
	}

	res := runBin(t, env, "coordinator", args...)
	if res.code != 0 {
		t.Fatalf("rerun: exit %d\n%s", res.code, tail(res.stderr, 30))
	}
	if ok, _ := assertExactlyOnce(t, out, ids); ok != len(ids) {
		t.Errorf("after rerun %d of %d succeeded", ok, len(ids))
	}
	// The rerun asks only what was not answered: at most the four requests in flight at the
	// interrupt are asked twice.
	assertRedoneAtMost(t, fake.Stats(), 4)
}

func TestAPIRefusalStopsTheRunEarly(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  fakeai.Config
		want string
	}{
		{"bad key", fakeai.Config{Unauthorized: true}, "the API refused the key (HTTP 401"},
		{"no quota", fakeai.Config{InsufficientQuota: true}, "the API refused the run for lack of quota (HTTP 429"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake, url := startFake(t, tt.cfg)
			out := filepath.Join(t.TempDir(), "out")
			res := runBin(t, []string{"OPENAI_API_KEY=" + testKey, "GORACE=atexit_sleep_ms=0"}, "coordinator",
				"--workers", "4", "--input", sample, "--out", out, "--base-url", url)
			if res.code != 1 {
				t.Fatalf("exit %d, want 1\n%s", res.code, tail(res.stderr, 20))
			}
			// The last line says what was refused and what to check.
			last := tail(strings.TrimSpace(res.stderr), 1)
			if !strings.HasPrefix(last, "coordinator: "+tt.want) {
				t.Errorf("last line %q does not start with %q", last, "coordinator: "+tt.want)
			}
			if tt.name == "bad key" && !strings.HasSuffix(last, "check OPENAI_API_KEY") {
				t.Errorf("last line %q does not say to check OPENAI_API_KEY", last)
			}
			if strings.Contains(res.stderr, testKey) {
				t.Error("the key appears in the coordinator's output")
			}
			// Each worker stops at its first refusal instead of burning through every record.
			if n := fake.Stats().Requests; n > 8 {
				t.Errorf("%d requests made against a refusing API, want at most a few per worker", n)
			}
			if readSummary(t, out)["status"] != "api_refused" {
				t.Error("summary.json does not say the API refused the run")
			}
			assertExactlyOnce(t, out, sampleIDs(t, sample))
		})
	}
}

func TestBadRequestFailsOneRecordAndRerunRetriesOnlyIt(t *testing.T) {
	t.Parallel()
	ids := sampleIDs(t, sample)
	bad := ids[17]
	fake, url := startFake(t, fakeai.Config{FailIDs: map[string]int{bad: 400}})
	out := filepath.Join(t.TempDir(), "out")
	env := []string{"OPENAI_API_KEY=" + testKey, "GORACE=atexit_sleep_ms=0"}
	args := []string{"--workers", "4", "--input", sample, "--out", out, "--base-url", url}
	res := runBin(t, env, "coordinator", args...)
	if res.code != 1 {
		t.Fatalf("exit %d, want 1\n%s", res.code, tail(res.stderr, 20))
	}
	fails := readCSV(t, filepath.Join(out, "final_failures.csv"))
	if len(fails) != 2 || fails[1][0] != bad || fails[1][1] != "bad_request" || fails[1][3] != "1" {
		t.Errorf("final_failures.csv = %v, want one bad_request row for %s after 1 attempt", fails, bad)
	}
	ok, _ := assertExactlyOnce(t, out, ids)
	if ok != 99 {
		t.Errorf("%d succeeded, want 99", ok)
	}
	before := fake.Stats()
	res = runBin(t, env, "coordinator", args...)
	if res.code != 1 {
		t.Fatalf("rerun exit %d, want 1", res.code)
	}
	after := fake.Stats()
	if got := after.Requests - before.Requests; got != 1 {
		t.Errorf("rerun made %d requests, want 1 (only the failed record)", got)
	}
	if after.PerID[bad] != 2 {
		t.Errorf("failed record requested %d times in all, want 2", after.PerID[bad])
	}
	assertExactlyOnce(t, out, ids)
}

func TestKeyNeverInArgvOrFiles(t *testing.T) {
	t.Parallel()
	_, url := startFake(t, fakeai.Config{Latency: fakeai.LatencyModel{Base: 30 * time.Millisecond}})
	out := filepath.Join(t.TempDir(), "out")
	cmd, logs := startBin(t, []string{"OPENAI_API_KEY=" + testKey}, "coordinator",
		"--workers", "3", "--input", sample, "--out", out, "--base-url", url)
	waitFor(t, "workers", 30*time.Second, func() bool { return len(childPIDs(cmd.Process.Pid)) > 0 })
	for _, pid := range append(childPIDs(cmd.Process.Pid), cmd.Process.Pid) {
		argv, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		if bytes.Contains(argv, []byte(testKey)) {
			t.Errorf("key in argv of pid %d: %q", pid, argv)
		}
	}
	if code := exitCodeOf(cmd.Wait()); code != 0 {
		t.Fatalf("exit %d\n%s", code, tail(logs.String(), 20))
	}
	assertNoKey(t, out)
	if strings.Contains(logs.String(), testKey) {
		t.Error("key in the coordinator's log")
	}
	err := filepath.Walk(out, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		want := os.FileMode(0o644)
		if info.IsDir() {
			want = 0o755
		}
		if info.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", p, info.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func TestRunWideRPMHoldsAcrossWorkers(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("end-to-end rate test")
	}
	const rpm = 3000 // 50 a second: 200 records take about 4 s
	input, ids := replicate(t, t.TempDir(), 2)
	fake, url := startFake(t, fakeai.Config{RPM: rpm, Latency: fakeai.LatencyModel{Base: 20 * time.Millisecond}})
	out := filepath.Join(t.TempDir(), "out")
	res := runBin(t, []string{"OPENAI_API_KEY=" + testKey, "GORACE=atexit_sleep_ms=0"}, "coordinator",
		"--workers", "8", "--concurrency", "4", "--rpm", strconv.Itoa(rpm), "--input", input, "--out", out, "--base-url", url)
	if res.code != 0 {
		t.Fatalf("exit %d\n%s", res.code, tail(res.stderr, 20))
	}
	if ok, _ := assertExactlyOnce(t, out, ids); ok != len(ids) {
		t.Fatalf("%d of %d answered", ok, len(ids))
	}
	// The rule (no minute or second over budget, nearly all of it used) is asserted on the fake
	// clock in package ratelimit; here, between real processes, both bounds are checked with
	// margins that a loaded machine cannot break. Scheduling delays only shift when a request
	// reaches the server: they can shorten the span from first to last request by at most the
	// first one's delay (allowed: 1 s), and they cannot make the requests arrive faster.
	acc := fake.Stats().Accepted
	if len(acc) != len(ids) {
		t.Fatalf("the server accepted %d requests for %d records", len(acc), len(ids))
	}
	perSecond := float64(rpm) / 60
	burst := perSecond / 4 // the limiter's quarter second
	ideal := (float64(len(acc)) - 1 - burst) / perSecond
	span := acc[len(acc)-1].Sub(acc[0]).Seconds()
	if span < ideal-1 {
		t.Errorf("%d requests arrived within %.2fs; at %d RPM they need at least %.2fs: the run went faster than its budget", len(acc), span, rpm, ideal)
	}
	// A limiter far too strict (or one that serializes the workers) takes many times longer.
	if span > 3*ideal+5 {
		t.Errorf("%d requests took %.2fs; at %d RPM they need about %.2fs: the run did not use its budget", len(acc), span, rpm, ideal)
	}
}

func TestClosedOutputPipesDoNotStopTheRun(t *testing.T) {
	t.Parallel()
	needBinaries(t)
	// `coordinator ... | head`: the reader of both outputs goes away at once.
	out := filepath.Join(t.TempDir(), "out")
	cmd := exec.Command(filepath.Join(binDir, "coordinator"), "--workers", "4", "--input", sample, "--out", out, "--progress", "plain", "--progress-every", "10ms")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	r.Close()
	if code := exitCodeOf(cmd.Wait()); code != 0 {
		t.Fatalf("exit %d with its output pipes closed; want 0 (the run goes on, writes are dropped)", code)
	}
	if ok, _ := assertExactlyOnce(t, out, sampleIDs(t, sample)); ok != 100 {
		t.Errorf("%d of 100 answered", ok)
	}
	if _, err := os.Stat(filepath.Join(out, "summary.json")); err != nil {
		t.Error(err)
	}
}

func TestHangupStopsGracefullyAndMerges(t *testing.T) {
	t.Parallel()
	input, ids := replicate(t, t.TempDir(), 2)
	_, url := startFake(t, fakeai.Config{Latency: fakeai.LatencyModel{Base: 40 * time.Millisecond}})
	out := filepath.Join(t.TempDir(), "out")
	cmd, logs := startBin(t, []string{"OPENAI_API_KEY=" + testKey}, "coordinator",
		"--workers", "4", "--input", input, "--out", out, "--base-url", url)
	waitFor(t, "20 answered rows", 60*time.Second, func() bool { return countRows(t, out) >= 20 })
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if code := exitCodeOf(cmd.Wait()); code != 130 {
		t.Fatalf("exit %d after SIGHUP, want 130 (stopped gracefully)\n%s", code, tail(logs.String(), 20))
	}
	if st := readSummary(t, out)["status"]; st != "interrupted" {
		t.Errorf("summary status %v; want interrupted", st)
	}
	assertExactlyOnce(t, out, ids)
}

func TestHandRunWorkerBesideTheCoordinatorIsRefused(t *testing.T) {
	t.Parallel()
	fake, url := startFake(t, fakeai.Config{Latency: fakeai.LatencyModel{Base: 60 * time.Millisecond}})
	out := filepath.Join(t.TempDir(), "out")
	env := []string{"OPENAI_API_KEY=" + testKey}
	cmd, logs := startBin(t, env, "coordinator", "--workers", "2", "--input", sample, "--out", out, "--base-url", url)
	waitFor(t, "a few answered rows", 60*time.Second, func() bool { return countRows(t, out) >= 3 })
	res := runBin(t, env, "worker", "--batch", filepath.Join(out, "batch_0.json"))
	if res.code != 2 || !strings.Contains(res.stderr, "is being worked on by another worker (pid") {
		t.Errorf("hand-run worker beside the coordinator: exit %d\n%s", res.code, res.stderr)
	}
	if code := exitCodeOf(cmd.Wait()); code != 0 {
		t.Fatalf("coordinator exit %d\n%s", code, tail(logs.String(), 20))
	}
	assertExactlyOnce(t, out, sampleIDs(t, sample))
	for id, n := range fake.Stats().PerID {
		if n > 1 {
			t.Errorf("%s was requested %d times", id, n)
		}
	}
}

func TestStoppedWorkerIsKilledAndRestarted(t *testing.T) {
	t.Parallel()
	input, ids := replicate(t, t.TempDir(), 2)
	fake, url := startFake(t, fakeai.Config{Latency: fakeai.LatencyModel{Base: 30 * time.Millisecond}})
	out := filepath.Join(t.TempDir(), "out")
	cmd, logs := startBin(t, []string{"OPENAI_API_KEY=" + testKey}, "coordinator",
		"--workers", "4", "--input", input, "--out", out, "--base-url", url, "--stall-after", "3s")
	waitFor(t, "20 answered rows", 60*time.Second, func() bool { return countRows(t, out) >= 20 })
	kids := childPIDs(cmd.Process.Pid)
	if len(kids) == 0 {
		t.Fatal("no workers running")
	}
	// A stopped process does nothing and says nothing; SIGTERM would not move it either.
	if err := syscall.Kill(kids[0], syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if code := exitCodeOf(err); code != 0 {
			t.Fatalf("exit %d\n%s", code, tail(logs.String(), 30))
		}
	case <-time.After(90 * time.Second):
		_ = syscall.Kill(kids[0], syscall.SIGCONT)
		t.Fatalf("the run hangs on a stopped worker\n%s", tail(logs.String(), 30))
	}
	if !strings.Contains(logs.String(), "killing a stalled worker") || !strings.Contains(logs.String(), "not heard from for") {
		t.Errorf("the kill is not logged with its reason:\n%s", tail(logs.String(), 30))
	}
	if ok, _ := assertExactlyOnce(t, out, ids); ok != len(ids) {
		t.Errorf("%d of %d answered", ok, len(ids))
	}
	assertRedoneAtMost(t, fake.Stats(), 1) // only what the stopped worker had in flight
}

func TestUnreachableServerStopsTheRunFast(t *testing.T) {
	t.Parallel()
	_, url := startFake(t, fakeai.Config{})
	// A port nothing listens on: take one, then close it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String() + "/v1"
	l.Close()
	for _, tc := range []struct {
		name, url, last string
	}{
		{"connection refused", dead, "coordinator: cannot reach " + dead + ": connection refused; check --base-url or OPENAI_BASE_URL and that the server is running"},
		{"wrong path", strings.TrimSuffix(url, "/v1") + "/api", "coordinator: " + strings.TrimSuffix(url, "/v1") + "/api answered 404 for its chat completions endpoint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out := filepath.Join(t.TempDir(), "out")
			start := time.Now()
			res := runBin(t, []string{"OPENAI_API_KEY=" + testKey}, "coordinator", "--workers", "8", "--input", sample, "--out", out, "--base-url", tc.url)
			took := time.Since(start)
			if res.code != 1 {
				t.Fatalf("exit %d, want 1\n%s", res.code, tail(res.stderr, 20))
			}
			if last := tail(strings.TrimSpace(res.stderr), 1); !strings.HasPrefix(last, tc.last) {
				t.Errorf("last line\n %s\nwant it to start with\n %s", last, tc.last)
			}
			if took > 40*time.Second {
				t.Errorf("took %s to give up on a server it cannot reach; want about 10s", took)
			}
			// Nothing failed: every record stays to do, with its attempts intact.
			if succeeded, failed := assertExactlyOnce(t, out, sampleIDs(t, sample)); succeeded != 0 || failed != 0 {
				t.Errorf("%d succeeded, %d failed; want every record left to do", succeeded, failed)
			}
			if n := strings.Count(res.stderr, "[WARN]"); n > 40 {
				t.Errorf("%d warnings for one unreachable server", n)
			}
		})
	}
}

// flakyProxy forwards TCP connections to target and can go away and come back on its address.
type flakyProxy struct {
	addr, target string
	mu           sync.Mutex
	l            net.Listener
	conns        map[net.Conn]bool
}

func newFlakyProxy(t *testing.T, target string) *flakyProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &flakyProxy{addr: l.Addr().String(), target: target, conns: map[net.Conn]bool{}}
	p.serve(l)
	t.Cleanup(p.down)
	return p
}

func (p *flakyProxy) serve(l net.Listener) {
	p.mu.Lock()
	p.l = l
	p.mu.Unlock()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.conns[c] = true
			p.mu.Unlock()
			go func() {
				defer func() {
					c.Close()
					p.mu.Lock()
					delete(p.conns, c)
					p.mu.Unlock()
				}()
				u, err := net.Dial("tcp", p.target)
				if err != nil {
					return
				}
				defer u.Close()
				// Either side ending ends both: a cut client must not leave the server's
				// handler waiting on a request body for ever (which would hang its Close).
				go func() {
					_, _ = io.Copy(u, c)
					u.Close()
				}()
				_, _ = io.Copy(c, u)
			}()
		}
	}()
}

func (p *flakyProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.l != nil {
		p.l.Close()
		p.l = nil
	}
	for c := range p.conns { // kept-alive connections go down too
		c.Close()
	}
}

func (p *flakyProxy) up(t *testing.T) {
	l, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	p.serve(l)
}

func TestOutageMidRunIsWaitedOutWithoutSpendingAttempts(t *testing.T) {
	t.Parallel()
	input, ids := replicate(t, t.TempDir(), 2)
	fake, url := startFake(t, fakeai.Config{Latency: fakeai.LatencyModel{Base: 20 * time.Millisecond}})
	proxy := newFlakyProxy(t, strings.TrimSuffix(strings.TrimPrefix(url, "http://"), "/v1"))
	out := filepath.Join(t.TempDir(), "out")
	cmd, logs := startBin(t, []string{"OPENAI_API_KEY=" + testKey}, "coordinator", "--workers", "4", "--concurrency", "2",
		"--input", input, "--out", out, "--base-url", "http://"+proxy.addr+"/v1", "--max-attempts", "2")
	waitFor(t, "40 answered rows", 60*time.Second, func() bool { return countRows(t, out) >= 40 })
	proxy.down()
	time.Sleep(2500 * time.Millisecond) // several backoff rounds; the run has answers, so it waits
	proxy.up(t)
	if code := exitCodeOf(cmd.Wait()); code != 0 {
		t.Fatalf("exit %d after an outage\n%s", code, tail(logs.String(), 30))
	}
	// Two attempts a record, and an outage of many backoff rounds: none was spent on it.
	if ok, failed := assertExactlyOnce(t, out, ids); ok != len(ids) || failed != 0 {
		t.Errorf("%d succeeded, %d failed after an outage", ok, failed)
	}
	assertAttemptsBounded(t, fake.Stats(), 2)
}
