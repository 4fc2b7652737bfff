package estimate

import (
	"fmt"
	"math"
	"strings"

	"github.com/trialcat/trialcat/internal/exitcode"
	"github.com/trialcat/trialcat/internal/llm"
	"github.com/trialcat/trialcat/internal/schema"
	"github.com/trialcat/trialcat/internal/tokens"
)

// Output token assumptions for answer values; see the package documentation.
const (
	// FreeStringTokens is the expected length of a string property without maxLength.
	FreeStringTokens = 60
	// CharsPerToken turns a string's maxLength into tokens (English text, o200k tokenizer).
	CharsPerToken = 4
	// ArrayItems is the expected number of elements of an array property.
	ArrayItems = 2

	integerTokens = 2
	numberTokens  = 3
	booleanTokens = 1
	quoteTokens   = 2 // the quotes around a free string
)

// Reasoning efforts accepted by --reasoning-effort.
const (
	EffortNone    = "none"
	EffortMinimal = "minimal"
	EffortLow     = "low"
	EffortMedium  = "medium"
	EffortHigh    = "high"
	EffortXHigh   = "xhigh"
)

// reasoningAllowance is the reasoning tokens assumed per request for each effort.
func reasoningAllowance() map[string]int {
	return map[string]int{
		EffortNone:    0,
		EffortMinimal: 0,
		EffortLow:     200,
		EffortMedium:  600,
		EffortHigh:    2000,
		EffortXHigh:   4000,
	}
}

// Output is the expected output of one request for one model.
type Output struct {
	// Answer is the expected tokens of the JSON answer (AnswerTokens).
	Answer int
	// Reasoning is the reasoning allowance: 0 for a model that does not reason.
	Reasoning int
	// Effort is the reasoning effort the allowance assumes ("" for a model that does not reason).
	Effort string
	// EffortDefault is set when Effort is the model's default, not --reasoning-effort.
	EffortDefault bool
	// Cap is --max-completion-tokens (0: none).
	Cap int64
	// PerRequest is Answer + Reasoning, cut to Cap.
	PerRequest int
}

// Capped reports whether --max-completion-tokens is below the expected output, so that answers
// (or their reasoning) would be cut and fail as truncated.
func (o Output) Capped() bool { return o.Cap > 0 && int64(o.Answer+o.Reasoning) > o.Cap }

// checkEffort validates --reasoning-effort.
func checkEffort(effort string) error {
	if effort == "" {
		return nil
	}
	if _, ok := reasoningAllowance()[effort]; !ok {
		return fmt.Errorf("--reasoning-effort %q: want none, minimal, low, medium, high or xhigh: %w", effort, exitcode.ErrUsage)
	}
	return nil
}

// DefaultEffort is the reasoning effort a model uses when none is sent: "" for a model that does
// not reason, none for gpt-5.1 and gpt-5.2, medium for the other reasoning models.
func DefaultEffort(model string) string {
	if !llm.IsReasoningModel(model) {
		return ""
	}
	m := baseModel(model)
	if strings.HasPrefix(m, "gpt-5.1") || strings.HasPrefix(m, "gpt-5.2") {
		return EffortNone
	}
	return EffortMedium
}

// ExpectedOutput is the expected output of one request: the answer's tokens (see AnswerTokens)
// and, for a reasoning model, the allowance of its effort (effort "" means the model's default),
// cut to maxCompletion when it is above 0.
func ExpectedOutput(answer int, model, effort string, maxCompletion int64) Output {
	o := Output{Answer: answer, Cap: maxCompletion}
	if llm.IsReasoningModel(model) {
		o.Effort = effort
		if o.Effort == "" {
			o.Effort, o.EffortDefault = DefaultEffort(model), true
		}
		o.Reasoning = reasoningAllowance()[o.Effort]
	}
	o.PerRequest = o.Answer + o.Reasoning
	if o.Capped() {
		o.PerRequest = int(o.Cap)
	}
	return o
}

// AnswerTokens is the expected number of tokens of one answer to s, written as compact JSON in
// the order of the schema: see the package documentation for the assumptions.
func AnswerTokens(s *schema.Schema) int {
	n := float64(2 + len(s.Properties) - 1) // braces and commas
	for _, p := range s.Properties {
		n += float64(tokens.Count(`"` + p.Name + `":`))
		n += valueTokens(p)
	}
	return int(math.Ceil(n))
}

// valueTokens is the expected number of tokens of one value of p.
func valueTokens(p schema.Property) float64 {
	switch p.Type {
	case schema.TypeString:
		if len(p.Enum) > 0 {
			sum := 0
			for _, v := range p.Enum {
				sum += tokens.Count(`"` + v + `"`)
			}
			return float64(sum) / float64(len(p.Enum))
		}
		if p.MaxLength > 0 {
			return float64(p.MaxLength)/CharsPerToken + quoteTokens
		}
		return FreeStringTokens + quoteTokens
	case schema.TypeInteger:
		return integerTokens
	case schema.TypeNumber:
		return numberTokens
	case schema.TypeBoolean:
		return booleanTokens
	case schema.TypeArray:
		item := float64(FreeStringTokens + quoteTokens)
		if p.Items != nil {
			item = valueTokens(*p.Items)
		}
		return 2 + ArrayItems*item + (ArrayItems - 1) // brackets, items, commas
	default:
		return FreeStringTokens
	}
}

// baseModel lowercases a model name and drops a provider prefix such as "openai/".
func baseModel(model string) string {
	m := strings.ToLower(strings.TrimSpace(model))
	if i := strings.LastIndex(m, "/"); i >= 0 {
		m = m[i+1:]
	}
	return m
}
