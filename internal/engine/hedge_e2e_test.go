package engine_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trialcat/trialcat/internal/fakeai"
	"github.com/trialcat/trialcat/internal/summary"
)

// With --hedge, the requests stuck in the tail once nothing is left to hand out get a second
// copy: every record is still answered once, the copies stay within the budget, and each copy
// is one more request at the server, no more.
func TestHedgeCopiesStuckRequestsWithinItsBudget(t *testing.T) {
	t.Parallel()
	fake, out, ids, res := stalledTailRun(t, "10", "--log-level", "debug")
	if res.code != 0 {
		t.Fatalf("exit %d\n%s", res.code, tail(res.stderr, 30))
	}
	ok, failed := assertExactlyOnce(t, out, ids)
	if ok != 200 || failed != 0 {
		t.Fatalf("%d answered, %d failed; want 200 and 0", ok, failed)
	}
	sum, err := summary.Load(filepath.Join(out, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	if sum.Hedged == 0 {
		t.Fatalf("no request hedged; the tail had stalled requests\n%s", tail(res.stderr, 30))
	}
	if sum.Hedged > 20 {
		t.Errorf("%d requests hedged; --hedge 10 allows 20 of 200", sum.Hedged)
	}
	st := fake.Stats()
	if st.Requests > 200+int(sum.Hedged) {
		t.Errorf("%d requests at the server for 200 records and %d copies", st.Requests, sum.Hedged)
	}
	if !strings.Contains(res.stderr, "hedged:") {
		t.Errorf("the copies were not logged\n%s", tail(res.stderr, 20))
	}
	t.Logf("hedged %d, copy won %d, %d requests, wall %.1fs", sum.Hedged, sum.HedgeWins, st.Requests, sum.WallSeconds)
}

// The run's budget holds when the tail is longer than it: --hedge 1 allows 2 copies of 200
// records, with about 16 stalled requests in the tail to tempt it.
func TestHedgeBudgetSmallerThanTheTail(t *testing.T) {
	t.Parallel()
	_, out, ids, res := stalledTailRun(t, "1")
	if res.code != 0 {
		t.Fatalf("exit %d\n%s", res.code, tail(res.stderr, 400))
	}
	if ok, failed := assertExactlyOnce(t, out, ids); ok != 200 || failed != 0 {
		t.Fatalf("%d answered, %d failed; want 200 and 0", ok, failed)
	}
	sum, err := summary.Load(filepath.Join(out, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	if sum.Hedged < 1 || sum.Hedged > 2 {
		t.Errorf("%d requests hedged; --hedge 1 allows 2 of 200 (and the tail held more)", sum.Hedged)
	}
}

// stalledTailRun runs 200 records with 4 workers, --batches auto and --hedge hedge against a
// fake where one request in 12.5 stalls for 3 s: the p90 stays at the normal 20 ms, and the tail
// always holds stalled requests that a copy (most likely not stalled) answers first.
func stalledTailRun(t *testing.T, hedge string, extra ...string) (*fakeai.Server, string, []string, runResult) {
	t.Helper()
	needBinaries(t)
	input, ids := replicate(t, t.TempDir(), 2)
	fake, url := startFake(t, fakeai.Config{Seed: 7, RateStall: 0.08, StallFor: 3 * time.Second,
		Latency: fakeai.LatencyModel{Base: 20 * time.Millisecond}})
	out := filepath.Join(t.TempDir(), "out")
	args := append([]string{"--workers", "4", "--batches", "auto", "--input", input, "--out", out, "--base-url", url, "--hedge", hedge}, extra...)
	return fake, out, ids, runBin(t, []string{"OPENAI_API_KEY=" + testKey}, "coordinator", args...)
}
