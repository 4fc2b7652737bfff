package engine_test

import (
	"encoding/json"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/trialcat/trialcat/internal/fakeai"
	"github.com/trialcat/trialcat/internal/results"
	"github.com/trialcat/trialcat/internal/taxonomy"
)

// expectedConfidence is the mean confidence of the kept value of a field with n values when each
// of k votes is wrong with probability p (a wrong vote any of the other values alike), and ties
// go to the earliest vote: by simulation.
func expectedConfidence(n, k int, p float64) float64 {
	rng := rand.New(rand.NewPCG(1, 2))
	const trials = 200_000
	sum := 0.0
	for range trials {
		votes := make([]int, k)
		for i := range votes {
			if rng.Float64() < p {
				votes[i] = 1 + rng.IntN(n-1)
			}
		}
		count := map[int]int{}
		for _, v := range votes {
			count[v]++
		}
		best := votes[0]
		for _, v := range votes {
			if count[v] > count[best] {
				best = v
			}
		}
		sum += float64(count[best]) / float64(k)
	}
	return sum / trials
}

// --votes 3 against a model whose answers vary: exactly 3 requests a record, the confidences'
// mean is what the noise predicts, and the majority is right more often than one answer is.
func TestVotesAgainstANoisyModel(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("end-to-end votes test")
	}
	const noise = 0.3
	fake, url := startFake(t, fakeai.Config{Seed: 11, Noise: noise, Latency: fakeai.LatencyModel{Base: 2 * time.Millisecond}})
	out := filepath.Join(t.TempDir(), "out")
	r := runBin(t, []string{"OPENAI_API_KEY=" + testKey}, "coordinator", "--workers", "4", "--concurrency", "2", "--input", sample, "--out", out,
		"--base-url", url, "--votes", "3")
	if r.code != 0 || !strings.Contains(r.stdout, "mean confidence of the votes") {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, tail(r.stderr, 20))
	}
	ids := sampleIDs(t, sample)
	for _, id := range ids {
		if n := fake.Stats().PerID[id]; n != 3 {
			t.Errorf("%s: %d requests, want 3", id, n)
		}
	}
	sch := taxonomy.MustSchema()
	var params map[string]any
	raw, _ := json.Marshal(sch.StrictJSON())
	json.Unmarshal(raw, &params)
	right, one := 0, 0
	conf := map[string]float64{}
	if _, err := results.ReadFile(filepath.Join(out, "final_results.csv"), func(l results.Layout, row results.Row) error {
		truth := fakeai.DefaultAnswer(row.ID, params)
		for i, c := range l.Columns {
			if f, ok := strings.CutSuffix(c, "_confidence"); ok {
				v, _ := strconv.ParseFloat(row.Values[i], 64)
				conf[f] += v / float64(len(ids))
				continue
			}
			if _, ok := truth[c].(string); ok && c != "rationale" {
				one++
				if row.Values[i] == truth[c] {
					right++
				}
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, p := range sch.Properties {
		if len(p.Enum) == 0 {
			continue
		}
		want := expectedConfidence(len(p.Enum), 3, noise)
		if got := conf[p.Name]; got < want-0.06 || got > want+0.06 {
			t.Errorf("%s: mean confidence %.3f, the noise predicts %.3f", p.Name, got, want)
		}
	}
	if acc := float64(right) / float64(one); acc < 1-noise+0.05 {
		t.Errorf("the majority of 3 votes is right %.1f%% of the time; one answer is right %.0f%%", 100*acc, 100*(1-noise))
	}

	// Calibration against a reviewer who knows the truth: unanimous answers are confirmed more
	// often than split ones, and a threshold reaches the target.
	sheet := [][]string{{"nct_id"}}
	var fields []string
	for _, p := range sch.Properties {
		if len(p.Enum) > 0 {
			fields = append(fields, p.Name)
			sheet[0] = append(sheet[0], "review_"+p.Name)
		}
	}
	for _, id := range ids {
		truth := fakeai.DefaultAnswer(id, params)
		row := []string{id}
		for _, f := range fields {
			row = append(row, truth[f].(string))
		}
		sheet = append(sheet, row)
	}
	sheetPath := filepath.Join(t.TempDir(), "truth.csv")
	writeSheet(t, sheetPath, sheet)
	r = runBin(t, nil, "coordinator", "compare", out, sheetPath, "--json")
	if r.code != 0 {
		t.Fatalf("compare: exit %d\n%s", r.code, r.stderr)
	}
	var rep struct {
		Reliability []struct {
			Field string `json:"field"`
			Bands []struct {
				From     float64 `json:"from"`
				Records  int     `json:"records"`
				Accuracy float64 `json:"accuracy"`
			} `json:"bands"`
			Threshold *float64 `json:"threshold"`
		} `json:"reliability"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("compare --json: %v\n%s", err, r.stdout)
	}
	if len(rep.Reliability) != len(fields) {
		t.Fatalf("reliability of %d fields, want %d", len(rep.Reliability), len(fields))
	}
	separated := false
	for _, rel := range rep.Reliability {
		var low, high float64
		for _, b := range rel.Bands {
			switch b.From {
			case 0.5:
				low = b.Accuracy
			case 0.9:
				high = b.Accuracy
			}
		}
		if high < low || high < 0.95 || rel.Threshold == nil {
			t.Errorf("%s: unanimous answers confirmed %.2f, 2-of-3 %.2f; threshold %v", rel.Field, high, low, rel.Threshold)
		}
		separated = separated || high > low
	}
	if !separated {
		t.Error("no field's 2-of-3 answers were confirmed less often than its unanimous ones (a field of few values should be)")
	}
	if r := runBin(t, nil, "coordinator", "compare", out, sheetPath); !strings.Contains(r.stdout, "reliability of A's confidence against B") {
		t.Errorf("compare does not print the reliability table:\n%s", r.stdout)
	}
}

// A --votes run killed mid-way asks, on its rerun, only the votes each record still lacks: a
// record answered before is not asked again, and one cut off after some of its votes gets only
// the rest (one in flight at the kill may be asked again).
func TestVotesResumeAsksOnlyWhatIsMissing(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("end-to-end votes test")
	}
	fake, url := startFake(t, fakeai.Config{Latency: fakeai.LatencyModel{Base: 40 * time.Millisecond}})
	out := filepath.Join(t.TempDir(), "out")
	env := []string{"OPENAI_API_KEY=" + testKey}
	args := []string{"--workers", "4", "--concurrency", "2", "--input", sample, "--out", out, "--base-url", url, "--votes", "3"}
	cmd, _ := startBin(t, env, "coordinator", args...)
	waitFor(t, "30 answered rows", 90*time.Second, func() bool { return countRows(t, out) >= 30 })
	killAndWaitFor(t, cmd, "the workers to die with the coordinator", childPIDs(cmd.Process.Pid))
	// What the journals hold for records not answered yet.
	journaled := map[string]int{}
	files, _ := filepath.Glob(filepath.Join(out, "worker_*_votes.jsonl"))
	for _, f := range files {
		for _, line := range strings.Split(strings.TrimSpace(readFile(t, f)), "\n") {
			var v struct {
				ID string `json:"id"`
			}
			if json.Unmarshal([]byte(line), &v) == nil {
				journaled[v.ID]++
			}
		}
	}
	before := fake.Stats().PerID
	rerunAsksNothingTwice(t, fake, out, env, args)
	after := fake.Stats().PerID
	partial, extra := 0, 0
	answered := map[string]bool{}
	for _, f := range mustGlob(t, filepath.Join(out, "worker_*_results.csv")) {
		for _, id := range firstColumn(readCSV(t, f)) {
			answered[id] = true
		}
	}
	for _, id := range sampleIDs(t, sample) {
		asked := after[id] - before[id]
		if j := journaled[id]; j > 0 && j < 3 && before[id] >= j {
			partial++
			if asked < 3-j {
				t.Errorf("%s had %d votes journaled and was asked %d more: it lacks votes", id, j, asked)
			}
			extra += asked - (3 - j)
		}
		if after[id] > 4 {
			t.Errorf("%s: %d requests in all, for 3 votes", id, after[id])
		}
	}
	if extra > 8 {
		t.Errorf("%d votes asked again beyond the missing ones: more than the requests in flight at the kill", extra)
	}
	t.Logf("%d records resumed after some of their votes", partial)
}

func mustGlob(t *testing.T, pattern string) []string {
	t.Helper()
	m, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
