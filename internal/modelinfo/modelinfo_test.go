package modelinfo

import (
	"strings"
	"testing"
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

func TestCheckEffort(t *testing.T) {
	for _, e := range []string{"", "none", "minimal", "low", "medium", "high", "xhigh"} {
		if err := CheckEffort(e); err != nil {
			t.Errorf("CheckEffort(%q) = %v", e, err)
		}
	}
	for _, e := range []string{"max", "Medium", " low"} {
		if err := CheckEffort(e); err == nil || !strings.Contains(err.Error(), "--reasoning-effort") {
			t.Errorf("CheckEffort(%q) = %v; want an error naming the flag", e, err)
		}
	}
}

func TestNormalizeAndFacts(t *testing.T) {
	for _, tc := range []struct {
		in, norm  string
		reasoning bool
		window    int
	}{
		{"gpt-5-mini", "gpt-5-mini", true, 272_000},
		{" openai/GPT-5-mini-2025-08-07 ", "gpt-5-mini-2025-08-07", true, 272_000},
		{"gpt-5-chat-latest", "gpt-5-chat-latest", true, 128_000},
		{"o3", "o3", true, 200_000},
		{"gpt-4o-mini", "gpt-4o-mini", false, 128_000},
		{"Qwen/Qwen2.5-7B-Instruct", "qwen2.5-7b-instruct", false, 0},
	} {
		if got := Normalize(tc.in); got != tc.norm {
			t.Errorf("Normalize(%q) = %q; want %q", tc.in, got, tc.norm)
		}
		if got := IsReasoning(tc.in); got != tc.reasoning {
			t.Errorf("IsReasoning(%q) = %v; want %v", tc.in, got, tc.reasoning)
		}
		if got := ContextWindow(tc.in); got != tc.window {
			t.Errorf("ContextWindow(%q) = %d; want %d", tc.in, got, tc.window)
		}
	}
}

func TestContextWindow(t *testing.T) {
	for _, tc := range []struct {
		model string
		want  int
	}{
		{"gpt-5-mini", 272_000},
		{"gpt-5", 272_000},
		{"gpt-5.1", 272_000},
		{"openai/gpt-5-nano", 272_000},
		{"gpt-5-chat-latest", 128_000},
		{"gpt-4.1", 1_047_576},
		{"gpt-4.1-nano-2025-04-14", 1_047_576},
		{"gpt-4o", 128_000},
		{"gpt-4o-mini", 128_000},
		{"o3", 200_000},
		{"o3-mini", 200_000},
		{"o4-mini", 200_000},
		{"gpt-4", 8_192},
		{"gpt-4-turbo", 128_000},
		{"Qwen/Qwen2.5-7B-Instruct", 0},
		{"", 0},
	} {
		if got := ContextWindow(tc.model); got != tc.want {
			t.Errorf("ContextWindow(%q) = %d, want %d", tc.model, got, tc.want)
		}
	}
}
