package modelinfo

import (
	"fmt"
	"strings"

	"github.com/trialcat/trialcat/internal/exitcode"
)

// Normalize lower-cases model, trims it and drops a provider prefix: "openai/GPT-5-mini" is
// "gpt-5-mini". Every comparison of model names goes through it.
func Normalize(model string) string {
	m := strings.ToLower(strings.TrimSpace(model))
	if i := strings.LastIndex(m, "/"); i >= 0 {
		m = m[i+1:]
	}
	return m
}

// IsReasoning reports whether model is an OpenAI reasoning model (gpt-5*, o1*, o3*, o4*). These
// models reject temperature and max_tokens and take max_completion_tokens and reasoning_effort.
func IsReasoning(model string) bool {
	m := Normalize(model)
	for _, p := range []string{"gpt-5", "o1", "o3", "o4"} {
		if strings.HasPrefix(m, p) {
			return true
		}
	}
	return false
}

// ContextWindow returns the tokens model accepts per request, 0 when it is not known. For gpt-5
// models it is the input limit (272,000; the 400,000 context includes up to 128,000 of output);
// for the others it is the whole context, input and output together.
func ContextWindow(model string) int {
	m := Normalize(model)
	for _, w := range []struct {
		prefix string
		tokens int
	}{
		// Longest prefixes first where one family's name starts another's.
		{"gpt-5-chat", 128_000},
		{"gpt-5", 272_000},
		{"gpt-4.1", 1_047_576},
		{"gpt-4.5", 128_000},
		{"gpt-4o", 128_000},
		{"chatgpt-4o", 128_000},
		{"gpt-4-turbo", 128_000},
		{"gpt-4-32k", 32_768},
		{"gpt-4", 8_192},
		{"gpt-3.5-turbo", 16_385},
		{"o1-mini", 128_000},
		{"o1-preview", 128_000},
		{"o1", 200_000},
		{"o3", 200_000},
		{"o4-mini", 200_000},
	} {
		if strings.HasPrefix(m, w.prefix) {
			return w.tokens
		}
	}
	return 0
}

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

// CheckEffort validates --reasoning-effort ("" is the model's default).
func CheckEffort(effort string) error {
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
	if !IsReasoning(model) {
		return ""
	}
	m := Normalize(model)
	if strings.HasPrefix(m, "gpt-5.1") || strings.HasPrefix(m, "gpt-5.2") {
		return EffortNone
	}
	return EffortMedium
}

// Output is the expected output of one request for one model.
type Output struct {
	// Answer is the expected tokens of the JSON answer (tokens.AnswerTokens).
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

// ExpectedOutput is the expected output of one request: the answer's tokens and, for a reasoning
// model, the allowance of its effort (effort "" means the model's default), cut to maxCompletion
// when it is above 0.
func ExpectedOutput(answer int, model, effort string, maxCompletion int64) Output {
	o := Output{Answer: answer, Cap: maxCompletion}
	if IsReasoning(model) {
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
