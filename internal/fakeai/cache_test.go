package fakeai

import (
	"strings"
	"testing"
)

// The prompt cache reports what OpenAI documents: nothing for a first request or a prefix under
// 1,024 tokens, then the longest prefix answered before, in 128-token steps, per model.
func TestPromptCacheReportsPrefixesInSteps(t *testing.T) {
	schema := loadSchema(t)
	s := New(Config{PromptCache: true})
	static := strings.Repeat("Static instructions shared by every record. ", 150) // about 1,650 tokens
	body := func(id, model, system string) []byte {
		return chatBody(t, id, model, schema, func(b map[string]any) {
			b["messages"] = []any{
				map[string]any{"role": "system", "content": system},
				map[string]any{"role": "user", "content": "Record ID: " + id + "\n" + strings.Repeat("record text "+id+" ", 40)},
			}
		})
	}
	cached := func(b []byte) int {
		t.Helper()
		w, c := post(t, s, "", b)
		if w.Code != 200 || c.Usage.PromptTokensDetails.CachedTokens == nil {
			t.Fatalf("HTTP %d: %s", w.Code, w.Body.String())
		}
		n := *c.Usage.PromptTokensDetails.CachedTokens
		if n > c.Usage.PromptTokens || (n > 0 && (n < CacheMinTokens || (n-CacheMinTokens)%CacheStepTokens != 0)) {
			t.Errorf("cached_tokens %d of %d: not a 1,024 + 128k prefix", n, c.Usage.PromptTokens)
		}
		return n
	}
	if n := cached(body("NCT1", "gpt-5-mini", static)); n != 0 {
		t.Errorf("first request: %d cached tokens, want 0", n)
	}
	second := cached(body("NCT2", "gpt-5-mini", static))
	if second < CacheMinTokens {
		t.Errorf("second request with the same static prefix: %d cached tokens, want at least %d", second, CacheMinTokens)
	}
	if n := cached(body("NCT2", "gpt-5-mini", static)); n <= second {
		t.Errorf("the same request again: %d cached tokens, want more than the shared prefix's %d", n, second)
	}
	if n := cached(body("NCT3", "gpt-5", static)); n != 0 {
		t.Errorf("another model: %d cached tokens, want 0 (caches are per model)", n)
	}
	short := "Short instructions."
	cached(body("NCT4", "gpt-5-mini", short))
	if n := cached(body("NCT5", "gpt-5-mini", short)); n != 0 {
		t.Errorf("a prefix under 1,024 tokens: %d cached, want 0", n)
	}
	if st := s.Stats(); st.CachedTokens == 0 {
		t.Error("Stats.CachedTokens is 0")
	}
	off := New(Config{})
	post(t, off, "", body("NCT1", "gpt-5-mini", static))
	if _, c := post(t, off, "", body("NCT2", "gpt-5-mini", static)); *c.Usage.PromptTokensDetails.CachedTokens != 0 {
		t.Error("a server without PromptCache reports cached tokens")
	}
}

// A flex request may be refused with 429 Resource Unavailable; the tier, key and retention sent
// are counted, and the answer names the tier it was served on.
func TestFlexRefusalsAndDeliverySettings(t *testing.T) {
	schema := loadSchema(t)
	s := New(Config{Seed: 2, FlexUnavailable: 0.5})
	refused := 0
	for i := range 40 {
		w, c := post(t, s, "", chatBody(t, "NCT1", "gpt-5-mini", schema, func(b map[string]any) {
			b["service_tier"], b["prompt_cache_key"], b["prompt_cache_retention"] = "flex", "k1", "24h"
		}))
		switch w.Code {
		case 429:
			refused++
			if c.Error == nil || c.Error.Code == nil || *c.Error.Code != "resource_unavailable" || !strings.Contains(c.Error.Message, "Resource Unavailable") {
				t.Fatalf("refusal %d: %s", i, w.Body.String())
			}
		case 200:
			if !strings.Contains(w.Body.String(), `"service_tier":"flex"`) {
				t.Fatalf("a flex answer does not say flex: %s", w.Body.String())
			}
		default:
			t.Fatalf("HTTP %d", w.Code)
		}
	}
	if refused < 8 || refused > 32 {
		t.Errorf("%d of 40 flex requests refused at a rate of 0.5", refused)
	}
	if w, _ := post(t, s, "", chatBody(t, "NCT2", "gpt-5-mini", schema, nil)); w.Code != 200 || !strings.Contains(w.Body.String(), `"service_tier":"default"`) {
		t.Errorf("a request without a tier: HTTP %d %s", w.Code, w.Body.String())
	}
	st := s.Stats()
	if st.ServiceTiers["flex"] != 40 || st.ServiceTiers[""] != 1 || st.CacheKeys["k1"] != 40 || st.CacheRetentions["24h"] != 40 || st.Answers[KindFlexUnavailable] != refused {
		t.Errorf("stats: tiers %v keys %v retentions %v answers %v", st.ServiceTiers, st.CacheKeys, st.CacheRetentions, st.Answers)
	}
}
