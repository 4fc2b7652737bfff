package modelinfo

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/trialcat/trialcat/internal/exitcode"
)

//go:embed prices.json
var embedded []byte

// Rate is a model's price in USD per million tokens.
type Rate struct {
	Input       float64 `json:"input"`
	CachedInput float64 `json:"cached_input"`
	Output      float64 `json:"output"`
	// Batch is the rate through the Batch API; nil means half of this one (OpenAI's Batch
	// API discount).
	Batch *BatchRate `json:"batch,omitempty"`
	// Flex is the rate of service_tier flex; nil means the Batch rate (what OpenAI charges).
	Flex *BatchRate `json:"flex,omitempty"`
	// Priority is the rate of service_tier priority; nil means unknown (a model without the
	// tier, or a table that does not say).
	Priority *BatchRate `json:"priority,omitempty"`
}

// BatchRate is a model's price on one tier (the Batch API, flex, priority), USD per 1M tokens.
type BatchRate struct {
	Input       float64 `json:"input"`
	CachedInput float64 `json:"cached_input"`
	Output      float64 `json:"output"`
}

// BatchDiscount is the share of the standard price the Batch API charges where a rate does
// not say.
const BatchDiscount = 0.5

// AtBatch is the rate through the Batch API.
func (r Rate) AtBatch() Rate {
	if r.Batch != nil {
		return Rate{Input: r.Batch.Input, CachedInput: r.Batch.CachedInput, Output: r.Batch.Output}
	}
	return Rate{Input: r.Input * BatchDiscount, CachedInput: r.CachedInput * BatchDiscount, Output: r.Output * BatchDiscount}
}

// PriceTable maps model names to rates.
type PriceTable struct {
	AsOf   string          `json:"as_of"`
	Source string          `json:"source"`
	Rates  map[string]Rate `json:"usd_per_million_tokens"`
}

// Prices returns the embedded table.
func Prices() *PriceTable {
	t, err := parsePrices(embedded, "embedded prices.json")
	if err != nil {
		panic(err) // the embedded file is checked by tests
	}
	return t
}

// LoadPrices returns the embedded table with the models in file added or replaced.
func LoadPrices(file string) (*PriceTable, error) {
	t := Prices()
	if file == "" {
		return t, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read --prices: %w: %w", err, exitcode.ErrUsage)
	}
	extra, err := parsePrices(b, file)
	if err != nil {
		return nil, err
	}
	for k, v := range extra.Rates {
		t.Rates[k] = v
	}
	if extra.AsOf != "" {
		t.AsOf = extra.AsOf
	}
	return t, nil
}

// ReadRates reads the rates of a --prices file without the embedded table.
func ReadRates(file string) (map[string]Rate, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read --prices: %w: %w", err, exitcode.ErrUsage)
	}
	t, err := parsePrices(b, file)
	if err != nil {
		return nil, err
	}
	return t.Rates, nil
}

func parsePrices(b []byte, source string) (*PriceTable, error) {
	var t PriceTable
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("prices %s: %v (want {\"usd_per_million_tokens\":{\"model\":{\"input\":..,\"cached_input\":..,\"output\":..}}}): %w", source, err, exitcode.ErrUsage)
	}
	if t.Rates == nil {
		t.Rates = map[string]Rate{}
	}
	return &t, nil
}

// With returns a copy of the table with extra rates added or replacing existing ones.
func (t *PriceTable) With(extra map[string]Rate) *PriceTable {
	if len(extra) == 0 {
		return t
	}
	out := &PriceTable{AsOf: t.AsOf, Source: t.Source, Rates: make(map[string]Rate, len(t.Rates)+len(extra))}
	for k, v := range t.Rates {
		out.Rates[k] = v
	}
	for k, v := range extra {
		out.Rates[strings.ToLower(k)] = v
	}
	return out
}

// Lookup finds a model's rate. A dated snapshot ("gpt-5-mini-2025-08-07") or a provider prefix
// ("openai/gpt-5-mini") falls back to the base model's rate.
func (t *PriceTable) Lookup(model string) (Rate, bool) {
	m := Normalize(model)
	if r, ok := t.Rates[m]; ok {
		return r, true
	}
	// Longest table key that prefixes the model and is followed by a date-like suffix.
	best, found := "", false
	for k := range t.Rates {
		if strings.HasPrefix(m, k+"-") && len(k) > len(best) {
			rest := m[len(k)+1:]
			if rest != "" && rest[0] >= '0' && rest[0] <= '9' {
				best, found = k, true
			}
		}
	}
	if !found {
		return Rate{}, false
	}
	return t.Rates[best], true
}

// Cost is the USD cost of a request's tokens; cached input tokens are part of input tokens and
// are priced at the cached rate. ok is false when the model's price is unknown.
func (t *PriceTable) Cost(model string, input, cachedInput, output int64) (usd float64, ok bool) {
	r, ok := t.Lookup(model)
	if !ok {
		return 0, false
	}
	return r.cost(input, cachedInput, output), true
}

// BatchCost is Cost at the model's Batch API rate.
func (t *PriceTable) BatchCost(model string, input, cachedInput, output int64) (usd float64, ok bool) {
	return t.CostAt(model, TierBatch, input, cachedInput, output)
}

// Tiers a rate is looked up for (a request's service_tier as the server said it served it, and
// the Batch API). Any other tier ("", default, auto, scale) is priced at the standard rate.
const (
	TierFlex     = "flex"
	TierPriority = "priority"
	TierBatch    = "batch"
)

// At is the rate on tier; ok is false for a tier the table has no price of (priority unless
// the model's entry gives it).
func (r Rate) At(tier string) (Rate, bool) {
	switch tier {
	case TierBatch:
		return r.AtBatch(), true
	case TierFlex:
		if r.Flex != nil {
			return Rate{Input: r.Flex.Input, CachedInput: r.Flex.CachedInput, Output: r.Flex.Output}, true
		}
		return r.AtBatch(), true
	case TierPriority:
		if r.Priority == nil {
			return Rate{}, false
		}
		return Rate{Input: r.Priority.Input, CachedInput: r.Priority.CachedInput, Output: r.Priority.Output}, true
	}
	return r, true
}

// CostAt is Cost on a service tier (see Rate.At); ok is false when the model's price on it is
// unknown.
func (t *PriceTable) CostAt(model, tier string, input, cachedInput, output int64) (usd float64, ok bool) {
	r, ok := t.Lookup(model)
	if !ok {
		return 0, false
	}
	at, ok := r.At(tier)
	if !ok {
		return 0, false
	}
	return at.cost(input, cachedInput, output), true
}

func (r Rate) cost(input, cachedInput, output int64) float64 {
	if cachedInput > input {
		cachedInput = input
	}
	return (float64(input-cachedInput)*r.Input + float64(cachedInput)*r.CachedInput + float64(output)*r.Output) / 1e6
}
