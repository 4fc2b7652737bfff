package tokens

import (
	"testing"

	"github.com/trialcat/trialcat/internal/schema"
	"github.com/trialcat/trialcat/internal/taxonomy"
)

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
		longest = max(longest, Count(a))
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
