package engine_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/trialcat/trialcat/internal/fakeai"
)

func TestPriorityIDsAndEscalationChooseTheModel(t *testing.T) {
	t.Parallel()
	ids := sampleIDs(t, sample)
	priority := map[string]bool{ids[3]: true, ids[50]: true, ids[99]: true}
	stubborn := ids[10] // the small model never answers it validly
	fake, url := startFake(t, fakeai.Config{Answer: func(id string, req fakeai.ChatRequest) map[string]any {
		a := answerFor(id)
		if id == stubborn && req.Model == "gpt-5-mini" {
			delete(a, "trial_purpose")
		}
		return a
	}})
	dir := t.TempDir()
	list := filepath.Join(dir, "priority.txt")
	if err := os.WriteFile(list, []byte("# priority trials\n"+ids[3]+"\n\n"+ids[50]+"\n"+ids[99]+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	res := runBin(t, []string{"OPENAI_API_KEY=" + testKey, "GORACE=atexit_sleep_ms=0"}, "coordinator",
		"--workers", "4", "--input", sample, "--out", out, "--base-url", url,
		"--priority-ids", list, "--priority-model", "gpt-5.2", "--escalate-model", "gpt-5")
	if res.code != 0 {
		t.Fatalf("exit %d\n%s", res.code, tail(res.stderr, 20))
	}
	rows := readCSV(t, filepath.Join(out, "final_results.csv"))
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	for _, r := range rows[1:] {
		id, model := r[0], r[col["model"]]
		want := "gpt-5-mini"
		switch {
		case priority[id]:
			want = "gpt-5.2"
		case id == stubborn:
			want = "gpt-5"
		}
		if model != want {
			t.Errorf("%s answered by %q, want %q", id, model, want)
		}
		if id == stubborn && r[col["attempts"]] != "3" {
			t.Errorf("escalated record took %s attempts, want 3 (two invalid, then the bigger model)", r[col["attempts"]])
		}
	}
	if fake.Stats().PerID[stubborn] != 3 {
		t.Errorf("stubborn record requested %d times", fake.Stats().PerID[stubborn])
	}
}

func TestMaxCostStopsTheRunNearTheBudget(t *testing.T) {
	t.Parallel()
	_, url := startFake(t, fakeai.Config{Latency: fakeai.LatencyModel{Base: 20 * time.Millisecond}})
	out := filepath.Join(t.TempDir(), "out")
	env := []string{"OPENAI_API_KEY=" + testKey, "GORACE=atexit_sleep_ms=0"}
	// About $0.0006 a record with gpt-5-mini at ~2,000 prompt tokens: the budget covers ~15.
	args := []string{"--workers", "2", "--input", sample, "--out", out, "--base-url", url, "--max-cost", "0.01"}
	res := runBin(t, env, "coordinator", args...)
	if res.code != 1 {
		t.Fatalf("exit %d, want 1\n%s", res.code, tail(res.stderr, 20))
	}
	if !strings.Contains(res.stderr, "budget reached") || !strings.Contains(res.stderr, "--max-cost") {
		t.Errorf("no budget message:\n%s", tail(res.stderr, 10))
	}
	sum := readSummary(t, out)
	if sum["status"] != "budget_reached" {
		t.Errorf("summary status %v", sum["status"])
	}
	spent := sum["estimated_cost_usd"].(float64)
	if spent < 0.008 || spent > 0.0125 {
		t.Errorf("spent $%.4f against a $0.01 budget; want close to it", spent)
	}
	done := sum["succeeded"].(float64)
	if done < 5 || done > 40 {
		t.Errorf("%v records done within the budget", done)
	}
	assertExactlyOnce(t, out, sampleIDs(t, sample))

	// Status reads the stopped run; a higher budget continues it.
	st := runBin(t, nil, "coordinator", "status", "--out", out)
	if st.code != 0 || !strings.Contains(st.stdout, "not running") || !strings.Contains(st.stdout, "done "+strconv.Itoa(int(done))) {
		t.Errorf("status: exit %d\n%s", st.code, st.stdout)
	}
	args[len(args)-1] = "1"
	if res := runBin(t, env, "coordinator", args...); res.code != 0 {
		t.Fatalf("continued run: exit %d\n%s", res.code, tail(res.stderr, 20))
	}
	if ok, _ := assertExactlyOnce(t, out, sampleIDs(t, sample)); ok != 100 {
		t.Errorf("%d succeeded after raising the budget", ok)
	}
	m := runBin(t, nil, "coordinator", "merge", "--out", out)
	if m.code != 0 || !strings.Contains(m.stdout, "merged 100 records: 100 in") {
		t.Errorf("merge: exit %d\n%s%s", m.code, m.stdout, m.stderr)
	}
}

func TestEstimateMakesNoRequests(t *testing.T) {
	t.Parallel()
	fake, url := startFake(t, fakeai.Config{})
	res := runBin(t, []string{"OPENAI_API_KEY=" + testKey}, "coordinator", "estimate",
		"--input", sample, "--workers", "10", "--base-url", url, "--rpm", "60")
	if res.code != 0 {
		t.Fatalf("exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	if n := fake.Stats().Requests; n != 0 {
		t.Errorf("estimate made %d requests", n)
	}
	for _, want := range []string{"estimate: 100 records", "with gpt-5-mini", "rpm-bound"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("estimate output lacks %q:\n%s", want, res.stdout)
		}
	}
}
