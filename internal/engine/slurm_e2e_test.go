package engine_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/trialcat/trialcat/internal/fakeai"
	"github.com/trialcat/trialcat/internal/rundir"
	"github.com/trialcat/trialcat/internal/slurm"
)

// slurmScript brings up and stops the one-node cluster the Slurm tests run on.
const slurmScript = "../../scripts/slurm-local.sh"

// needSlurm makes sure a local Slurm cluster set up by scripts/slurm-local.sh is up. With
// TRIALCAT_SLURM_TEST=start it starts one (installing Debian's packages) when this machine can,
// and stops what it started when the test ends; without it the test runs only on a cluster
// already up. Where the test cannot run (no cluster and not asked to start one, not root, no
// Slurm and no apt, or TRIALCAT_SLURM_TEST=skip) it skips, except in CI, which must run it.
func needSlurm(t *testing.T) {
	t.Helper()
	skip := func(why string) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI must run the Slurm tests, but %s", why)
		}
		t.Skip(why)
	}
	if os.Getenv("TRIALCAT_SLURM_TEST") == "skip" {
		skip("TRIALCAT_SLURM_TEST=skip")
	}
	// One Slurm test at a time on this machine: a second test run (another checkout's make
	// test) would otherwise stop the cluster this one uses. The kernel drops the lock if the
	// test dies.
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "trialcat-slurm-test.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lock.Close() })
	// The tests use only the cluster of scripts/slurm-local.sh, by its private configuration:
	// never the machine's own Slurm, whose slurm.conf they neither read nor change.
	if exec.Command(slurmScript, "status").Run() == nil {
		conf, _ := os.ReadFile(os.Getenv("SLURM_CONF"))
		if !bytes.Contains(conf, []byte("written by trialcat scripts/slurm-local.sh")) {
			skip("SLURM_CONF names a Slurm cluster not set up by scripts/slurm-local.sh: not submitting test jobs to it")
		}
		return
	}
	// Starting a cluster (and installing its packages) is done only when asked: plain
	// `go test` never changes the machine.
	if os.Getenv("TRIALCAT_SLURM_TEST") != "start" {
		skip("no Slurm cluster set up by scripts/slurm-local.sh is up here; TRIALCAT_SLURM_TEST=start (make test-slurm, which .ci/run does) starts one for the test")
	}
	if os.Geteuid() != 0 {
		skip("Slurm cannot be installed and started here: not root (scripts/slurm-local.sh start needs root)")
	}
	if _, err := exec.LookPath("slurmctld"); err != nil {
		if _, err := exec.LookPath("apt-get"); err != nil {
			skip("Slurm is not installed and there is no apt-get to install it")
		}
	}
	out, err := exec.Command(slurmScript, "start").CombinedOutput()
	if err != nil {
		t.Fatalf("start a local Slurm cluster: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command(slurmScript, "stop").CombinedOutput(); err != nil {
			t.Errorf("stop the local Slurm cluster: %v\n%s", err, out)
		}
	})
}

func countLines(path string) int {
	data, _ := os.ReadFile(path)
	return bytes.Count(data, []byte("\n"))
}

func loadJobs(t *testing.T, out string) *slurm.Jobs {
	t.Helper()
	j, err := slurm.LoadJobs(rundir.New(out).Slurm().Jobs)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// sampleHead writes the first n records of the bundled sample to a file and returns its path
// and their IDs.
func sampleHead(t *testing.T, n int) (string, []string) {
	t.Helper()
	f, err := os.Open(sample)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b bytes.Buffer
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for i := 0; i < n && sc.Scan(); i++ {
		b.Write(sc.Bytes())
		b.WriteByte('\n')
	}
	p := filepath.Join(t.TempDir(), "head.jsonl")
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p, sampleIDs(t, p)
}

// TestSlurmArray runs the workers as a real Slurm job array on a local one-node cluster.
func TestSlurmArray(t *testing.T) {
	needBinaries(t)
	needSlurm(t)
	t.Run("offline", testSlurmOffline)
	t.Run("cancelled task resubmitted alone", testSlurmCancelResubmit)
	t.Run("task prelude starts the model server", testSlurmPrelude)
	t.Run("one rate limit across tasks", testSlurmRate)
}

func testSlurmOffline(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	res := runBin(t, nil, "coordinator", "slurm", "--input", sample, "--workers", "4", "--provider", "offline", "--out", out, "--wait")
	if res.code != 0 {
		t.Fatalf("coordinator slurm --wait: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	assertExactlyOnce(t, out, sampleIDs(t, sample))
	script, err := os.ReadFile(rundir.New(out).Slurm().Script)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"#SBATCH --array=0-3\n", "--run-dir", filepath.Join(binDir, "worker")} {
		if !bytes.Contains(script, []byte(want)) {
			t.Errorf("array.sbatch lacks %q:\n%s", want, script)
		}
	}
	st := runBin(t, nil, "coordinator", "status", "--out", out)
	if n := strings.Count(st.stdout, " COMPLETED"); n != 4 {
		t.Errorf("status shows %d completed tasks; want 4:\n%s", n, st.stdout)
	}
	// A finished run asked again submits nothing.
	again := runBin(t, nil, "coordinator", "slurm", "--out", out, "--wait")
	if again.code != 0 || !strings.Contains(again.stdout, "nothing to submit") || len(loadJobs(t, out).Jobs) != 1 {
		t.Errorf("rerun of a finished run: exit %d, %d jobs\n%s%s", again.code, len(loadJobs(t, out).Jobs), again.stdout, again.stderr)
	}
}

func testSlurmCancelResubmit(t *testing.T) {
	api, url := startFake(t, fakeai.Config{Latency: fakeai.LatencyModel{Base: 200 * time.Millisecond}})
	out := filepath.Join(t.TempDir(), "out")
	env := []string{"OPENAI_API_KEY=" + testKey}
	first, firstOut := startBin(t, env, "coordinator", "slurm", "--input", sample, "--workers", "4", "--base-url", url,
		"--out", out, "--max-parallel", "2", "--wait")
	dir := rundir.New(out)
	waitFor(t, "batch 0 answers 3 records", 60*time.Second, func() bool { return countLines(dir.Worker(0).Results) >= 4 })
	jobs := loadJobs(t, out)
	if len(jobs.Jobs) != 1 {
		t.Fatalf("jobs.json holds %d jobs; want 1", len(jobs.Jobs))
	}
	job := jobs.Jobs[0].ID
	if b, err := exec.Command("scancel", job+"_0").CombinedOutput(); err != nil {
		t.Fatalf("scancel %s_0: %v %s", job, err, b)
	}
	waitFor(t, "task 0 shows as cancelled", 60*time.Second, func() bool {
		st := runBin(t, nil, "coordinator", "status", "--out", out)
		return strings.Contains(st.stdout, job+"_0 CANCELLED")
	})
	// Ctrl-C while waiting leaves the job running and says how to come back.
	first.Process.Signal(syscall.SIGINT)
	waited := make(chan error, 1)
	go func() { waited <- first.Wait() }()
	select {
	case err := <-waited:
		if code := exitCodeOf(err); code != 130 || !strings.Contains(firstOut.String(), "scancel "+job) ||
			!strings.Contains(firstOut.String(), "--wait") {
			t.Fatalf("interrupted wait: exit %d; want 130 and how to cancel or come back:\n%s", code, firstOut.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("coordinator slurm --wait did not stop within 30 s of SIGINT")
	}
	// The rerun submits batch 0 alone: the others are running, queued or done.
	res := runBin(t, env, "coordinator", "slurm", "--out", out, "--wait")
	if res.code != 0 {
		t.Fatalf("rerun: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	if !strings.Contains(res.stdout, ": batch 0 of ") {
		t.Errorf("rerun did not submit batch 0 alone:\n%s", res.stdout)
	}
	jobs = loadJobs(t, out)
	if len(jobs.Jobs) != 2 || fmt.Sprint(jobs.Jobs[1].Batches) != "[0]" {
		t.Fatalf("jobs.json: %+v; want a second job of batch 0 alone", jobs.Jobs)
	}
	ids := sampleIDs(t, sample)
	if s, f := assertExactlyOnce(t, out, ids); s != len(ids) || f != 0 {
		t.Errorf("%d answered, %d failed; want all %d answered", s, f, len(ids))
	}
	// Nothing asked twice but what was in flight when the task was cancelled (one request at a
	// time per worker).
	var twice []string
	for id, n := range api.Stats().PerID {
		if n > 1 {
			twice = append(twice, fmt.Sprintf("%s×%d", id, n))
		}
	}
	if len(twice) > 1 {
		t.Errorf("asked more than once: %v; want at most the one request in flight at the cancel", twice)
	}
	// Batch 0's task log holds both tasks' output.
	log, _ := os.ReadFile(dir.Slurm().TaskLogOf(0))
	if c := bytes.Count(log, []byte("worker exited")); c != 1 || !bytes.Contains(log, []byte("CANCELLED")) {
		t.Errorf("task_0.log should show the cancelled task and the rerun's (one clean exit):\n%s", log)
	}
}

func testSlurmPrelude(t *testing.T) {
	tmp := t.TempDir()
	out := filepath.Join(tmp, "out")
	prelude := filepath.Join(tmp, "prelude.sh")
	// The pattern the README gives for a local model server (vLLM): start it on the node, wait
	// until it answers, point the worker at it, stop it when the task ends.
	script := `log="$RUN_DIR/slurm/server_${SLURM_ARRAY_TASK_ID}.log"
"$FAKEAI" --addr 127.0.0.1:0 >"$log" 2>&1 &
server_pid=$!
trap 'kill $server_pid 2>/dev/null; wait $server_pid 2>/dev/null' EXIT
url=""
for _ in $(seq 1 100); do
  url=$(sed -n 's/^listening on //p' "$log")
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || { echo "the model server did not start" >&2; return 1; }
WORKER_ARGS+=(--base-url "$url" --concurrency 4)
`
	if err := os.WriteFile(prelude, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	fake := filepath.Join(binDir, "fakeai")
	env := []string{"OPENAI_API_KEY=" + testKey, "FAKEAI_API_KEY=" + testKey, "FAKEAI=" + fake}
	res := runBin(t, env, "coordinator", "slurm", "--input", sample, "--workers", "3", "--out", out, "--task-prelude", prelude, "--wait")
	if res.code != 0 {
		t.Fatalf("coordinator slurm --task-prelude: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	assertExactlyOnce(t, out, sampleIDs(t, sample))
	// Each task's own server answered its batch: the stats it prints when stopped.
	total := 0
	for n := range 3 {
		data, err := os.ReadFile(filepath.Join(out, "slurm", fmt.Sprintf("server_%d.log", n)))
		if err != nil {
			t.Fatal(err)
		}
		var st struct{ Requests int }
		if i := bytes.IndexByte(data, '{'); i < 0 || json.Unmarshal(data[i:], &st) != nil || st.Requests == 0 {
			t.Errorf("task %d's server answered nothing:\n%s", n, data)
		}
		total += st.Requests
	}
	if total < 100 {
		t.Errorf("the tasks' servers answered %d requests; want at least the 100 records", total)
	}
}

// arrivals records when each request reached the fake server.
type arrivals struct {
	mu sync.Mutex
	at []time.Time
}

func (a *arrivals) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.at = append(a.at, time.Now())
		a.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

// maxIn is the most arrivals in any window of length w, and the mean rate per minute between
// the first and last arrival.
func (a *arrivals) maxIn(w time.Duration) (most int, perMinute float64) {
	a.mu.Lock()
	at := append([]time.Time(nil), a.at...)
	a.mu.Unlock()
	sort.Slice(at, func(i, j int) bool { return at[i].Before(at[j]) })
	lo := 0
	for hi := range at {
		for at[hi].Sub(at[lo]) >= w {
			lo++
		}
		most = max(most, hi-lo+1)
	}
	if len(at) > 1 {
		perMinute = float64(len(at)-1) / at[len(at)-1].Sub(at[0]).Minutes()
	}
	return most, perMinute
}

func testSlurmRate(t *testing.T) {
	const rpm, k, records = 600, 4, 80
	input, ids := sampleHead(t, records)
	for _, mode := range []string{"equal shares", "limit server"} {
		t.Run(mode, func(t *testing.T) {
			var arr arrivals
			_, url := startFakeWrapped(t, fakeai.Config{}, arr.wrap)
			out := filepath.Join(t.TempDir(), "out")
			args := []string{"slurm", "--input", input, "--workers", "4", "--base-url", url, "--out", out,
				"--rpm", fmt.Sprint(rpm), "--max-parallel", fmt.Sprint(k), "--concurrency", "2", "--wait"}
			if mode == "limit server" {
				args = append(args, "--limit-server", "--limit-listen", "127.0.0.1:0")
			}
			res := runBin(t, []string{"OPENAI_API_KEY=" + testKey}, "coordinator", args...)
			if res.code != 0 {
				t.Fatalf("exit %d\n%s%s", res.code, res.stdout, res.stderr)
			}
			assertExactlyOnce(t, out, ids)
			// The limiters spread a minute's budget evenly; in any 5 s the tasks together may
			// send a twelfth of it, plus each limiter's burst and a tenth for arrival jitter.
			// Unlimited, the 80 requests arrive within a second or two.
			most, perMinute := arr.maxIn(5 * time.Second)
			if limit := rpm/12 + rpm/120 + k; most > limit {
				t.Errorf("%d requests arrived within 5 s; --rpm %d allows %d", most, rpm, limit)
			}
			if perMinute > rpm*1.05 {
				t.Errorf("mean rate %.0f requests a minute; --rpm %d", perMinute, rpm)
			}
			logs := ""
			for n := range 4 {
				b, _ := os.ReadFile(rundir.New(out).Worker(n).Log)
				logs += string(b)
			}
			switch mode {
			case "limit server":
				if !strings.Contains(logs, "taking rate permits from the run's limit server") {
					t.Errorf("no worker used the limit server")
				}
				if _, err := os.Stat(rundir.New(out).Limits()); err == nil {
					t.Errorf("limits.json is left behind after the server stopped")
				}
			default:
				if !strings.Contains(logs, "keeping to an equal share of the rate limit: 1/4") {
					t.Errorf("no worker kept to its share")
				}
			}
			t.Logf("%s: %d records, at most %d requests in 5 s, mean %.0f a minute (--rpm %d, %d tasks at most)", mode, records, most, perMinute, rpm, k)
		})
	}
}
