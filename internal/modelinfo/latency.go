package modelinfo

import (
	"strings"
	"time"
)

// Family is the default latency model of a family of models (what estimate assumes without
// --latency): a request takes FirstToken plus
// its output tokens (reasoning included) at TokensPerSecond.
type Family struct {
	// Prefix matches model names (lowercase, without a provider prefix); the longest match wins.
	Prefix          string
	FirstToken      time.Duration
	TokensPerSecond float64
}

// Families are the default latency models, typical of OpenAI's standard tier in late 2025 for
// prompts of a few thousand tokens. They are rough: measure a few requests and pass --latency.
func Families() []Family {
	return []Family{
		{"gpt-5-nano", 800 * time.Millisecond, 150},
		{"gpt-5-mini", 800 * time.Millisecond, 100},
		{"gpt-5", time.Second, 60}, // gpt-5, gpt-5.1, gpt-5.2
		{"o4-mini", time.Second, 120},
		{"o3-mini", time.Second, 120},
		{"o3", 1500 * time.Millisecond, 60},
		{"o1", 2 * time.Second, 60},
		{"gpt-4.1-nano", 400 * time.Millisecond, 150},
		{"gpt-4.1-mini", 500 * time.Millisecond, 100},
		{"gpt-4.1", 600 * time.Millisecond, 70},
		{"gpt-4o-mini", 500 * time.Millisecond, 90},
		{"gpt-4o", 600 * time.Millisecond, 80},
	}
}

// fallbackFamily is the latency model of an unknown model (a local server, say).
func fallbackFamily() Family { return Family{Prefix: "", FirstToken: time.Second, TokensPerSecond: 50} }

// FamilyOf returns the latency model of model.
func FamilyOf(model string) Family {
	m := Normalize(model)
	best := fallbackFamily()
	for _, f := range Families() {
		if strings.HasPrefix(m, f.Prefix) && len(f.Prefix) > len(best.Prefix) {
			best = f
		}
	}
	return best
}

// Latency is the default per-request latency of model for outputTokens tokens of output.
func (f Family) Latency(outputTokens int) time.Duration {
	return f.FirstToken + time.Duration(float64(outputTokens)/f.TokensPerSecond*float64(time.Second))
}
