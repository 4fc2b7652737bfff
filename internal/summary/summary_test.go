package summary

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Scripts read summary.json by these names; renaming one breaks them.
func TestSummaryJSONKeepsTheNamesScriptsRead(t *testing.T) {
	s := Summary{Status: "complete", Records: 10, Succeeded: 8, Failed: 1, Remaining: 1, CostUSD: 0.25, CostKnown: true,
		FailedByClass: map[string]int64{"bad_request": 1}, StartedAt: time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"status", "records", "succeeded", "failed", "remaining", "failed_by_class", "input_tokens",
		"cached_input_tokens", "output_tokens", "estimated_cost_usd", "cost_known", "cached", "retries", "rate_limited_429s",
		"restarts", "wall_seconds", "this_pass", "phases", "workers", "started_at", "finished_at"} {
		if _, ok := m[k]; !ok {
			t.Errorf("summary.json has no %q", k)
		}
	}
	if m["succeeded"].(float64) != 8 || m["estimated_cost_usd"].(float64) != 0.25 {
		t.Errorf("values: %v", m)
	}
}

func TestLoadReadsWhatWasWrittenAndNamesABadFile(t *testing.T) {
	dir := t.TempDir()
	want := &Summary{Status: "partial", Records: 3, Succeeded: 2, Remaining: 1, Workers: []WorkerSummary{{}}}
	b, _ := json.Marshal(want)
	path := filepath.Join(dir, "summary.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load = %+v, want %+v", got, want)
	}
	os.WriteFile(path, b[:len(b)/2], 0o644)
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("a cut-off summary.json: %v; want an error naming the file", err)
	}
	if _, err := Load(filepath.Join(dir, "none.json")); err == nil {
		t.Error("a missing summary.json loaded")
	}
}

// A cost that is not known is written as null and shown as unknown, never as $0.
func TestUnknownCostIsNullAndSaysUnknown(t *testing.T) {
	b, err := json.Marshal(Summary{CostUSD: 0, CostKnown: false})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"estimated_cost_usd":null`) || !strings.Contains(string(b), `"cost_known":false`) {
		t.Errorf("summary.json with an unknown cost: %s", b)
	}
	var back Summary
	if err := json.Unmarshal(b, &back); err != nil || back.CostKnown {
		t.Errorf("reading it back: %+v, %v", back, err)
	}
	if c := (&Summary{}).Cost(); !strings.HasPrefix(c, "unknown") || strings.Contains(c, "$0.0000") {
		t.Errorf("Cost() = %q", c)
	}
	if c := (&Summary{CostUSD: 0.5, CostKnown: true}).Cost(); c != "$0.5000" {
		t.Errorf("Cost() = %q", c)
	}
	b, _ = json.Marshal(Summary{CostUSD: 0.25, CostKnown: true})
	if !strings.Contains(string(b), `"estimated_cost_usd":0.25`) {
		t.Errorf("a known cost: %s", b)
	}
}
