package engine_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trialcat/trialcat/internal/fakeai"
)

// tune on the bundled sample: a weak model that errs often, a middle one that rarely does and a
// strong one that does not; the middle one is recommended (the cheapest within the tolerance),
// the table is printed and written, and a second tune asks nothing new.
func TestTuneRecommendsTheCheapestSettingThatAgrees(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("end-to-end tune test")
	}
	fake, url := startFake(t, fakeai.Config{Seed: 9, ModelNoise: map[string]float64{"gpt-5-nano": 0.4, "gpt-5-mini": 0.01, "gpt-5": 0},
		Latency: fakeai.LatencyModel{Base: 2 * time.Millisecond}})
	dir := filepath.Join(t.TempDir(), "tune")
	env := []string{"OPENAI_API_KEY=" + testKey}
	args := []string{"tune", "--input", sample, "--out", dir, "--base-url", url, "--sample", "30", "--workers", "3",
		"--models", "gpt-5-nano,gpt-5-mini,gpt-5", "--efforts", "low,high", "--tolerance", "0.05"}
	r := runBin(t, env, "coordinator", args...)
	if r.code != 0 {
		t.Fatalf("tune: exit %d\n%s%s", r.code, r.stdout, tail(r.stderr, 20))
	}
	if !strings.Contains(r.stdout, "coordinator run --input "+sample+" --model gpt-5-mini --reasoning-effort low") {
		t.Errorf("the recommendation is not gpt-5-mini at low effort:\n%s", r.stdout)
	}
	var rep struct {
		Rows []struct {
			Model        string  `json:"model"`
			Effort       string  `json:"reasoning_effort"`
			MinAgreement float64 `json:"min_agreement"`
			Recommended  bool    `json:"recommended"`
		} `json:"settings"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "tune.json"))
	if err != nil || json.Unmarshal(b, &rep) != nil || len(rep.Rows) != 6 {
		t.Fatalf("tune.json: %v\n%s", err, b)
	}
	for _, row := range rep.Rows {
		if row.Model == "gpt-5-nano" && row.MinAgreement > 0.9 {
			t.Errorf("the noisy model agrees %.2f with the strongest", row.MinAgreement)
		}
	}
	before := fake.Stats().Requests
	if r := runBin(t, env, "coordinator", args...); r.code != 0 || fake.Stats().Requests != before {
		t.Errorf("a second tune: exit %d, %d new requests", r.code, fake.Stats().Requests-before)
	}
}
