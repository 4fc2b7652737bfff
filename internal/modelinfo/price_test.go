package modelinfo

import (
	"math"
	"os"
	"path/filepath"
	"testing"
)

func TestCost(t *testing.T) {
	tab := Prices()
	tests := []struct {
		model           string
		in, cached, out int64
		want            float64
		known           bool
	}{
		{"gpt-5-mini", 1_000_000, 0, 0, 0.25, true},
		{"gpt-5-mini", 1_000_000, 1_000_000, 1_000_000, 0.025 + 2.00, true},
		{"gpt-5-mini-2025-08-07", 2_000_000, 0, 0, 0.50, true},
		{"openai/gpt-4o-mini", 0, 0, 1_000_000, 0.60, true},
		{"gpt-5-mini-custom", 1, 0, 0, 0, false},
		{"llama3", 1000, 0, 1000, 0, false},
		{"offline", 1000, 0, 1000, 0, true},
	}
	for _, tt := range tests {
		got, ok := tab.Cost(tt.model, tt.in, tt.cached, tt.out)
		if ok != tt.known || math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("Cost(%q,%d,%d,%d) = %v,%v; want %v,%v", tt.model, tt.in, tt.cached, tt.out, got, ok, tt.want, tt.known)
		}
	}
}

func TestLoadOverrides(t *testing.T) {
	p := filepath.Join(t.TempDir(), "p.json")
	if err := os.WriteFile(p, []byte(`{"usd_per_million_tokens":{"llama3":{"input":0.1,"output":0.2},"gpt-5-mini":{"input":9,"output":9}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	tab, err := LoadPrices(p)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := tab.Cost("llama3", 1e6, 0, 1e6); !ok || math.Abs(got-0.3) > 1e-9 {
		t.Errorf("llama3 cost = %v,%v", got, ok)
	}
	if got, _ := tab.Cost("gpt-5-mini", 1e6, 0, 0); got != 9 {
		t.Errorf("override not applied: %v", got)
	}
	if _, ok := tab.Lookup("gpt-4o"); !ok {
		t.Error("embedded models lost after override")
	}
	if _, err := LoadPrices(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("missing --prices file accepted")
	}
}

func TestBatchRates(t *testing.T) {
	tab := Prices()
	for model := range tab.Rates {
		live, ok := tab.Cost(model, 1_000_000, 200_000, 100_000)
		batch, bok := tab.BatchCost(model, 1_000_000, 200_000, 100_000)
		if !ok || !bok || math.Abs(batch-live*BatchDiscount) > 1e-9 {
			t.Errorf("%s: batch $%v, live $%v; want the embedded batch rate at half", model, batch, live)
		}
	}
	// A rate given without a batch rate (--prices) is at half through the Batch API.
	custom := tab.With(map[string]Rate{"my-model": {Input: 2, CachedInput: 1, Output: 8}})
	if c, _ := custom.BatchCost("my-model", 1_000_000, 0, 1_000_000); c != 5 {
		t.Errorf("custom model batch cost $%v; want $5", c)
	}
	// An explicit batch rate wins.
	own := tab.With(map[string]Rate{"m2": {Input: 2, Output: 8, Batch: &BatchRate{Input: 0.5, Output: 1}}})
	if c, _ := own.BatchCost("m2", 1_000_000, 0, 1_000_000); c != 1.5 {
		t.Errorf("explicit batch rate cost $%v; want $1.5", c)
	}
}
