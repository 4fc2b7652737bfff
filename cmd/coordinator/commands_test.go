package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/trialcat/trialcat/internal/fakeai"
	"github.com/trialcat/trialcat/internal/rundir"
	"github.com/trialcat/trialcat/internal/testkit"
)

// Every command, run in this process against a temporary folder (and the fake API where the
// command asks one), checked by its files, its output and its exit code.

func TestRunOfflineWritesEveryRecordOnce(t *testing.T) {
	out := offlineRun(t, 12)
	got := rows(t, rundir.New(out).FinalResults())
	if len(got) != 12 {
		t.Fatalf("final_results.csv has %d rows, want 12", len(got))
	}
	seen := map[string]bool{}
	for _, r := range got {
		if seen[r[0]] {
			t.Fatalf("%s twice in final_results.csv", r[0])
		}
		seen[r[0]] = true
	}
	for _, f := range []string{"summary.json", "report.html", "run.json"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("the run left no %s: %v", f, err)
		}
	}
}

func TestRunAgainstTheAPIAndTheRunSubcommandIsTheSame(t *testing.T) {
	needWorker(t)
	srv, url := testkit.StartFake(t, fakeai.Config{})
	in := sample(t, 6)
	vars := map[string]string{"OPENAI_API_KEY": testkit.Key}
	out := filepath.Join(t.TempDir(), "api")
	r := coordinator(t, vars, "run", "--input", in, "--out", out, "--workers", "2", "--base-url", url, "--worker-bin", workerBin, "--progress", "off")
	r.want(t, 0, "coordinator run against the fake API")
	if got := len(rows(t, rundir.New(out).FinalResults())); got != 6 {
		t.Fatalf("%d rows, want 6", got)
	}
	if n := srv.Stats().Requests; n != 6 {
		t.Errorf("the server saw %d requests, want 6", n)
	}
	// The same command again resumes a finished run: no request, and the last pass's figures
	// are not reprinted as this one's.
	again := coordinator(t, vars, "--input", in, "--out", out, "--workers", "2", "--base-url", url, "--worker-bin", workerBin, "--progress", "off")
	again.want(t, 0, "the same run again")
	if strings.Contains(again.stdout, "this pass:") || !strings.Contains(again.stdout, "nothing was asked now") {
		t.Errorf("a finished run asked again says:\n%s", again.stdout)
	}
	if n := srv.Stats().Requests; n != 6 {
		t.Errorf("the rerun asked again: %d requests", n)
	}
	if strings.Contains(r.stdout+r.stderr, testkit.Key) {
		t.Error("the API key was printed")
	}
}

func TestStreamWritesRecordsToStdoutAndTheSummaryToStderr(t *testing.T) {
	needWorker(t)
	out := filepath.Join(t.TempDir(), "s")
	r := coordinator(t, nil, "--input", sample(t, 5), "--out", out, "--workers", "1", "--worker-bin", workerBin, "--progress", "off", "--stream", "-")
	r.want(t, 0, "--stream -")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 5 {
		t.Fatalf("stdout has %d lines, want one per record (5):\n%s", len(lines), r.stdout)
	}
	for _, l := range lines {
		if !json.Valid([]byte(l)) {
			t.Fatalf("stdout line is not JSON: %q", l)
		}
	}
	if !strings.Contains(r.stderr, "final_results.csv") {
		t.Errorf("the summary did not go to stderr:\n%s", r.stderr)
	}
}

func TestEstimateAsksNothingAndPricesTheRun(t *testing.T) {
	srv, url := testkit.StartFake(t, fakeai.Config{})
	r := coordinator(t, map[string]string{"OPENAI_API_KEY": testkit.Key}, "estimate", "--input", sample(t, 10), "--base-url", url, "--model", "gpt-5-mini", "--workers", "2")
	r.want(t, 0, "estimate")
	for _, w := range []string{"10 records", "gpt-5-mini", "$"} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("estimate output lacks %q:\n%s", w, r.stdout)
		}
	}
	if n := srv.Stats().Requests; n != 0 {
		t.Errorf("estimate sent %d requests", n)
	}
	// The run's own checks apply.
	bad := coordinator(t, nil, "estimate", "--input", sample(t, 2), "--workers", "0")
	bad.want(t, 2, "estimate --workers 0")
	if !strings.Contains(bad.stderr, "--workers 0") {
		t.Errorf("the message does not name --workers:\n%s", bad.stderr)
	}
}

func TestSplitThenWorkersByHandThenMerge(t *testing.T) {
	needWorker(t)
	out := filepath.Join(t.TempDir(), "split")
	r := coordinator(t, nil, "split", "--input", sample(t, 9), "--out", out, "--workers", "3")
	r.want(t, 0, "split")
	if !strings.Contains(r.stdout, "9 records in 3 batches") {
		t.Fatalf("split says:\n%s", r.stdout)
	}
	// Not merged yet: status says what is left.
	st := coordinator(t, nil, "status", "--out", out)
	st.want(t, 0, "status after split")
	if !strings.Contains(st.stdout, "done 0, failed 0, remaining 9") {
		t.Errorf("status after split:\n%s", st.stdout)
	}
	for n := range 3 {
		testkit.RunWorker(t, workerBin, "--run-dir", out, "--index", fmt.Sprint(n))
	}
	m := coordinator(t, nil, "merge", "--out", out)
	m.want(t, 0, "merge")
	if got := len(rows(t, rundir.New(out).FinalResults())); got != 9 {
		t.Fatalf("merged %d rows, want 9\n%s", got, m.stdout)
	}
	st = coordinator(t, nil, "status", "--out", out)
	if !strings.Contains(st.stdout, "done 9, failed 0, remaining 0") {
		t.Errorf("status after merge:\n%s", st.stdout)
	}
}

func TestStatusAndMergeOfAFolderWithNoRun(t *testing.T) {
	empty := t.TempDir()
	for _, cmd := range []string{"status", "merge", "cancel", "limits", "sample"} {
		r := coordinator(t, map[string]string{"OPENAI_API_KEY": testkit.Key}, cmd, "--out", empty)
		r.want(t, 2, cmd+" of a folder with no run")
		if !strings.Contains(r.stderr, "no run.json") {
			t.Errorf("%s: the message does not say the folder holds no run:\n%s", cmd, r.stderr)
		}
	}
}

func TestSlurmRefusesAFolderWithNoRunBeforeCallingSlurm(t *testing.T) {
	r := coordinator(t, nil, "slurm", "--out", t.TempDir())
	r.want(t, 2, "slurm of an empty folder")
	isUsage(t, r)
}

func TestK8sWritesTheIndexedJob(t *testing.T) {
	out := filepath.Join(t.TempDir(), "k")
	r := coordinator(t, nil, "k8s", "--input", sample(t, 8), "--out", out, "--workers", "4", "--image", "trialcat:test", "--pvc", "runs")
	r.want(t, 0, "k8s")
	job, err := os.ReadFile(rundir.New(out).K8sJob())
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"kind: Job", "completionMode: Indexed", "completions: 4", "trialcat:test", "claimName: runs"} {
		if !bytes.Contains(job, []byte(w)) {
			t.Errorf("job.yaml lacks %q", w)
		}
	}
	// Without an image there is nothing to run.
	coordinator(t, nil, "k8s", "--out", out, "--pvc", "runs").want(t, 2, "k8s without --image")
}

func TestExportImportAndCancel(t *testing.T) {
	needWorker(t)
	_, url := testkit.StartFake(t, fakeai.Config{})
	out := filepath.Join(t.TempDir(), "x")
	// No key: export calls no API.
	r := coordinator(t, nil, "export", "--input", sample(t, 4), "--out", out, "--workers", "2", "--worker-bin", workerBin)
	r.want(t, 0, "export")
	var outputs []string
	for n := range 2 {
		in := rundir.New(out).Export(n)
		o := strings.TrimSuffix(in, ".jsonl") + ".out.jsonl"
		testkit.AnswerLikeVLLM(t, url, in, o)
		outputs = append(outputs, o)
	}
	imp := coordinator(t, nil, append([]string{"import", "--out", out, "--worker-bin", workerBin}, outputs...)...)
	imp.want(t, 0, "import")
	if got := len(rows(t, rundir.New(out).FinalResults())); got != 4 {
		t.Fatalf("imported %d rows, want 4\n%s", got, imp.stdout)
	}
	// cancel needs the key, and with it finds nothing running in a run of no Batch API batches.
	coordinator(t, nil, "cancel", "--out", out).want(t, 2, "cancel without a key")
	c := coordinator(t, map[string]string{"OPENAI_API_KEY": testkit.Key}, "cancel", "--out", out)
	c.want(t, 0, "cancel")
	if !strings.Contains(c.stdout, "no batch of") {
		t.Errorf("cancel says:\n%s", c.stdout)
	}
}

func TestCompareTwoRunsAndSampleForReview(t *testing.T) {
	a := offlineRun(t, 10)
	b := offlineRun(t, 10)
	r := coordinator(t, nil, "compare", a, b, "--json")
	r.want(t, 0, "compare")
	var rep struct {
		Common int `json:"common"`
		Fields map[string]struct {
			Agreement *float64 `json:"agreement"`
		} `json:"fields"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("compare --json: %v\n%s", err, r.stdout)
	}
	if rep.Common != 10 || len(rep.Fields) == 0 {
		t.Fatalf("compare of two equal runs: %+v", rep)
	}
	for f, v := range rep.Fields {
		if v.Agreement == nil || *v.Agreement != 1 {
			t.Errorf("%s: agreement %v between two offline runs of one input, want 1", f, v.Agreement)
		}
	}
	coordinator(t, nil, "compare", a).want(t, 2, "compare with one side")

	s := coordinator(t, nil, "sample", "--out", a, "--n", "4")
	s.want(t, 0, "sample --n 4")
	if got := len(rows(t, filepath.Join(a, "review_sample.csv"))); got != 4 {
		t.Fatalf("review_sample.csv has %d rows, want 4", got)
	}
}

func TestCacheStatsAndPrune(t *testing.T) {
	dir := t.TempDir()
	r := coordinator(t, nil, "cache", "stats", "--cache", dir)
	r.want(t, 0, "cache stats")
	if !strings.Contains(r.stdout, "0 answers") {
		t.Errorf("cache stats of an empty cache:\n%s", r.stdout)
	}
	coordinator(t, nil, "cache", "prune", "--cache", dir).want(t, 2, "prune without --older-than")
	coordinator(t, nil, "cache", "prune", "--cache", dir, "--older-than", "720h").want(t, 0, "prune")
	coordinator(t, nil, "cache", "--cache", dir).want(t, 2, "cache without stats or prune")
	coordinator(t, nil, "cache", "stats").want(t, 2, "cache without --cache")
}

func TestLimitsServesUntilStopped(t *testing.T) {
	out := filepath.Join(t.TempDir(), "l")
	coordinator(t, nil, "split", "--input", sample(t, 4), "--out", out, "--workers", "2", "--rpm", "600").want(t, 0, "split")
	// With the default --listen: on this machine only.
	stop := startLimits(t, out)
	limits := rundir.New(out).Limits()
	var ep struct {
		Address string `json:"address"`
	}
	if b, err := os.ReadFile(limits); err != nil || json.Unmarshal(b, &ep) != nil || !strings.HasPrefix(ep.Address, "127.0.0.1:") {
		t.Errorf("limits.json address %q (%v): the server should listen on this machine only by default", ep.Address, err)
	}
	st, err := os.Stat(limits)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("limits.json mode %v (%v), want 0600: it holds the token", st.Mode().Perm(), err)
	}
	if r := stop(); r.code != 0 {
		t.Errorf("limits stopped by its context: exit %d (%v), want 0", r.code, r.err)
	}
	if _, err := os.Stat(limits); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("limits.json left behind after the server stopped: %v", err)
	}
}

// estimate --agent gives the agent's range, from the overview alone to the whole record read,
// and the refusals of --agent name what to do instead.
func TestEstimateAgentRangeAndAgentRefusals(t *testing.T) {
	r := coordinator(t, map[string]string{"OPENAI_API_KEY": testkit.Key}, "estimate", "--input", sample(t, 10), "--agent", "--workers", "2")
	r.want(t, 0, "estimate --agent")
	var lowIn, highIn int64
	for _, line := range strings.Split(r.stdout, "\n") {
		var n1, n2, n3 string
		if _, err := fmt.Sscanf(strings.TrimSpace(line), "from %s requests, %s prompt + %s", &n1, &n2, &n3); err == nil {
			lowIn, _ = strconv.ParseInt(strings.ReplaceAll(n2, ",", ""), 10, 64)
		}
		if _, err := fmt.Sscanf(strings.TrimSpace(line), "to %s requests, %s prompt + %s", &n1, &n2, &n3); err == nil {
			highIn, _ = strconv.ParseInt(strings.ReplaceAll(n2, ",", ""), 10, 64)
		}
	}
	if lowIn <= 0 || highIn <= lowIn {
		t.Errorf("agent range %d to %d prompt tokens:\n%s", lowIn, highIn, r.stdout)
	}
	c := coordinator(t, map[string]string{"OPENAI_API_KEY": testkit.Key}, "estimate", "--input", sample(t, 10), "--cascade", "gpt-5-nano,gpt-5", "--votes", "3")
	c.want(t, 0, "estimate --cascade")
	if !strings.Contains(c.stdout, "cascade gpt-5-nano -> gpt-5 (3 vote(s)") || !strings.Contains(c.stdout, "with 25% escalated") {
		t.Errorf("estimate --cascade:\n%s", c.stdout)
	}
	for _, c := range []struct {
		env  map[string]string
		args []string
		says string
	}{
		{nil, []string{"--agent"}, "--agent needs a model that calls tools"},
		{map[string]string{"OPENAI_API_KEY": testkit.Key}, []string{"--agent", "--backend", "batch-api"}, "drop --agent, or use --backend live"},
		{map[string]string{"OPENAI_API_KEY": testkit.Key}, []string{"--mcp", "x"}, "add --agent"},
		{map[string]string{"OPENAI_API_KEY": testkit.Key}, []string{"--agent", "--mcp", "no-such-program-x --a"}, "cannot find the program no-such-program-x"},
		{map[string]string{"OPENAI_API_KEY": testkit.Key}, []string{"--agent", "--agent-fallback", "retry"}, "want one-shot"},
		{map[string]string{"OPENAI_API_KEY": testkit.Key}, []string{"--cascade", "gpt-5"}, "want two or more different models"},
		{map[string]string{"OPENAI_API_KEY": testkit.Key}, []string{"--votes", "12"}, "want 1 to 9"},
		{map[string]string{"OPENAI_API_KEY": testkit.Key}, []string{"--votes", "3", "--agent"}, "drop one"},
	} {
		args := append([]string{"split", "--input", sample(t, 2), "--out", filepath.Join(t.TempDir(), "o")}, c.args...)
		bad := coordinator(t, c.env, args...)
		bad.want(t, 2, strings.Join(c.args, " "))
		if !strings.Contains(bad.stderr, c.says) {
			t.Errorf("%v: the message lacks %q:\n%s", c.args, c.says, bad.stderr)
		}
	}
}
