package estimate

import (
	"strings"
	"testing"

	"github.com/trialcat/trialcat/internal/schema"
	"github.com/trialcat/trialcat/internal/taxonomy"
	"github.com/trialcat/trialcat/internal/tokens"
)

func TestExpectedOutput(t *testing.T) {
	const answer = 150
	tests := []struct {
		model, effort string
		cap           int64
		wantReasoning int
		wantEffort    string
		wantDefault   bool
		wantPer       int
		wantCapped    bool
	}{
		{"gpt-5-mini", "", 0, 600, "medium", true, 750, false},
		{"openai/gpt-5-nano-2025-08-07", "", 0, 600, "medium", true, 750, false},
		{"gpt-5.1", "", 0, 0, "none", true, 150, false},
		{"gpt-5.2", "", 0, 0, "none", true, 150, false},
		{"o4-mini", "", 0, 600, "medium", true, 750, false},
		{"gpt-5-mini", "minimal", 0, 0, "minimal", false, 150, false},
		{"gpt-5-mini", "low", 0, 200, "low", false, 350, false},
		{"gpt-5", "high", 0, 2000, "high", false, 2150, false},
		{"gpt-5.2", "xhigh", 0, 4000, "xhigh", false, 4150, false},
		{"gpt-4o-mini", "", 0, 0, "", false, 150, false},
		{"gpt-4.1", "high", 0, 0, "", false, 150, false}, // not a reasoning model: no reasoning billed
		{"Qwen/Qwen2.5-7B-Instruct", "", 0, 0, "", false, 150, false},
		{"gpt-5-mini", "", 500, 600, "medium", true, 500, true},
		{"gpt-5-mini", "", 2000, 600, "medium", true, 750, false},
		{"gpt-4o", "", 100, 0, "", false, 100, true},
	}
	for _, tt := range tests {
		got := ExpectedOutput(answer, tt.model, tt.effort, tt.cap)
		if got.Answer != answer || got.Reasoning != tt.wantReasoning || got.Effort != tt.wantEffort ||
			got.EffortDefault != tt.wantDefault || got.PerRequest != tt.wantPer || got.Capped() != tt.wantCapped {
			t.Errorf("ExpectedOutput(%d, %q, %q, %d) = %+v (capped %v); want reasoning %d effort %q default %v per request %d capped %v",
				answer, tt.model, tt.effort, tt.cap, got, got.Capped(), tt.wantReasoning, tt.wantEffort, tt.wantDefault, tt.wantPer, tt.wantCapped)
		}
	}
}

// TestAnswerTokensCoversRealAnswers checks the schema-based estimate against answers of the
// default schema as a model writes them: at least the longest (the rationale is assumed to use
// its maxLength), and not wildly above it.
func TestAnswerTokensCoversRealAnswers(t *testing.T) {
	est := AnswerTokens(taxonomy.MustSchema())
	answers := []string{
		`{"therapeutic_area":"oncology","intervention_type":"drug","trial_purpose":"treatment","population":"adult_and_older_adult","eligibility_complexity":"high","rationale":"Conditions list metastatic breast cancer; interventions are DRUG (olaparib); primary purpose TREATMENT; ages 18 and over with no maximum; long criteria with laboratory thresholds and prior-therapy rules."}`,
		`{"therapeutic_area":"psychiatry_mental_health","intervention_type":"behavioral","trial_purpose":"supportive_care","population":"pediatric_and_adult","eligibility_complexity":"low","rationale":"Conditions: anxiety; intervention type BEHAVIORAL (mindfulness app); purpose SUPPORTIVE_CARE; ages 16 to 40; short criteria."}`,
		`{"therapeutic_area":"other","intervention_type":"none_observational","trial_purpose":"observational","population":"unknown","eligibility_complexity":"medium","rationale":"Observational registry of healthy volunteers with no ages given."}`,
	}
	longest := 0
	for _, a := range answers {
		longest = max(longest, tokens.Count(a))
	}
	if est < longest || est > 2*longest {
		t.Errorf("AnswerTokens = %d; want between the longest real answer (%d tokens) and twice it", est, longest)
	}
}

func TestAnswerTokensByType(t *testing.T) {
	tests := []struct {
		name     string
		schema   string
		min, max int
	}{
		{"boolean", `{"type":"object","properties":{"ok":{"type":"boolean"}}}`, 3, 8},
		{"short enum", `{"type":"object","properties":{"size":{"enum":["s","m","l"]}}}`, 4, 10},
		{"free string", `{"type":"object","properties":{"note":{"type":"string"}}}`, FreeStringTokens, FreeStringTokens + 10},
		{"maxLength 2000", `{"type":"object","properties":{"note":{"type":"string","maxLength":2000}}}`, 500, 510},
		{"array of strings", `{"type":"object","properties":{"tags":{"type":"array","items":{"type":"string"}}}}`, 2 * FreeStringTokens, 2*FreeStringTokens + 15},
		{"numbers", `{"type":"object","properties":{"n":{"type":"integer"},"x":{"type":"number"}}}`, 8, 16},
	}
	for _, tt := range tests {
		s, err := schema.Parse([]byte(tt.schema), tt.name)
		if err != nil {
			t.Fatal(err)
		}
		if got := AnswerTokens(s); got < tt.min || got > tt.max {
			t.Errorf("%s: AnswerTokens = %d; want %d to %d", tt.name, got, tt.min, tt.max)
		}
	}
}

func TestCheckEffort(t *testing.T) {
	for _, e := range []string{"", "none", "minimal", "low", "medium", "high", "xhigh"} {
		if err := checkEffort(e); err != nil {
			t.Errorf("checkEffort(%q) = %v", e, err)
		}
	}
	for _, e := range []string{"max", "Medium", " low"} {
		if err := checkEffort(e); err == nil || !strings.Contains(err.Error(), "--reasoning-effort") {
			t.Errorf("checkEffort(%q) = %v; want an error naming the flag", e, err)
		}
	}
}
