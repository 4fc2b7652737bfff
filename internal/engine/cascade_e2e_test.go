package engine_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trialcat/trialcat/internal/fakeai"
	"github.com/trialcat/trialcat/internal/results"
	"github.com/trialcat/trialcat/internal/schema"
)

// --cascade with --votes against a weak model that errs often and a strong one that rarely
// does: the strong model is asked exactly for the records the rule escalates (its request count
// is three times the summary's escalated count), and on the fake's truth the cascade is at least
// as accurate as the weak model alone.
func TestCascadeAsksTheStrongModelOnlyWhenDoubtful(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("end-to-end cascade test")
	}
	dir := t.TempDir()
	schemaPath := filepath.Join(dir, "schema.json")
	os.WriteFile(schemaPath, []byte(`{"title":"t","type":"object","properties":{
		"area":{"type":"string","enum":["a0","a1","a2","a3","a4","a5","a6","a7","a8","a9"]},
		"kind":{"type":"string","enum":["k0","k1","k2","k3","k4"]}},"required":["area","kind"]}`), 0o644)
	run := func(name string, extra ...string) (string, *fakeai.Server) {
		fake, url := startFake(t, fakeai.Config{Seed: 5, ModelNoise: map[string]float64{"gpt-5-nano": 0.35, "gpt-5": 0.05},
			Latency: fakeai.LatencyModel{Base: 2 * time.Millisecond}})
		out := filepath.Join(dir, name)
		args := append([]string{"--workers", "4", "--concurrency", "2", "--input", sample, "--out", out, "--base-url", url,
			"--schema", schemaPath, "--votes", "3"}, extra...)
		if r := runBin(t, []string{"OPENAI_API_KEY=" + testKey}, "coordinator", args...); r.code != 0 {
			t.Fatalf("%s: exit %d\n%s%s", name, r.code, r.stdout, tail(r.stderr, 20))
		}
		return out, fake
	}
	casc, fake := run("cascade", "--cascade", "gpt-5-nano,gpt-5")
	weak, _ := run("weak", "--model", "gpt-5-nano")

	var sum struct {
		Cascade struct {
			DecidedBy map[string]int64 `json:"decided_by"`
			Escalated int64            `json:"escalated"`
			CostShare float64          `json:"cost_share_of_strong_alone"`
		} `json:"cascade"`
	}
	b, _ := os.ReadFile(filepath.Join(casc, "summary.json"))
	if err := json.Unmarshal(b, &sum); err != nil {
		t.Fatal(err)
	}
	st := fake.Stats()
	if st.PerModel["gpt-5-nano"] != 300 || st.PerModel["gpt-5"] != 3*int(sum.Cascade.Escalated) || sum.Cascade.Escalated == 0 {
		t.Errorf("requests by model %v; summary escalated %d (decided by %v)", st.PerModel, sum.Cascade.Escalated, sum.Cascade.DecidedBy)
	}
	sch, err := schema.Parse(b2(t, schemaPath), "schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var params map[string]any
	raw, _ := json.Marshal(sch.StrictJSON())
	json.Unmarshal(raw, &params)
	accuracy := func(out string) float64 {
		right, n := 0, 0
		if _, err := results.ReadFile(filepath.Join(out, "final_results.csv"), func(l results.Layout, row results.Row) error {
			truth := fakeai.DefaultAnswer(row.ID, params)
			for i, c := range l.Columns {
				if want, ok := truth[c].(string); ok {
					n++
					if row.Values[i] == want {
						right++
					}
				}
			}
			if row.DecidedBy == "gpt-5" && !strings.Contains(row.Escalated, "confidence") {
				t.Errorf("%s escalated for %q", row.ID, row.Escalated)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return float64(right) / float64(n)
	}
	if sum.Cascade.CostShare <= 0 || sum.Cascade.CostShare >= 1.2 {
		t.Errorf("cost share of the strong model alone %v", sum.Cascade.CostShare)
	}
	if c, w := accuracy(casc), accuracy(weak); c < w {
		t.Errorf("cascade accuracy %.3f below the weak model's alone %.3f", c, w)
	} else {
		t.Logf("accuracy: cascade %.3f, weak model alone %.3f; %d of 100 records escalated; cost %.1f%% of the strong model alone", c, w, sum.Cascade.Escalated, 100*sum.Cascade.CostShare)
	}
}

func b2(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
