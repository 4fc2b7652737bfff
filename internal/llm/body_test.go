package llm

import (
	"bytes"
	"encoding/json"
	"testing"
)

// The fast encoding of a one-shot request is the SDK's own, byte for byte, on every sample
// record, with and without a system message and the delivery fields, for two models and tiers;
// so the response cache's keys are what they were.
func TestEncodeIsTheSDKsEncoding(t *testing.T) {
	for _, cfg := range []OpenAIConfig{
		{SchemaName: "s", Schema: testSchema()},
		{SchemaName: "s", Schema: testSchema(), PromptCacheKey: "k<&>", CacheRetention: "24h", MaxCompletionTokens: 900, ReasoningEffort: "low"},
	} {
		o := NewOpenAI(cfg)
		for i, req := range realRequests(t, 100, "gpt-5-mini") {
			if i%2 == 1 {
				req.System = ""
			}
			if i%3 == 1 {
				req.Model, req.ServiceTier = "gpt-5", TierFlex
			}
			req.User += "\u2028 <tag> & \"quoted\" \\ \x01 \xff"
			for _, sent := range []bool{false, true} {
				want, err := json.Marshal(o.paramsFor(req, sent))
				if err != nil {
					t.Fatal(err)
				}
				got, err := o.encode(req, sent)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("record %d (sent %v):\n got %s\nwant %s", i, sent, got, want)
				}
			}
		}
	}
}

func BenchmarkRequestBody(b *testing.B) {
	o := NewOpenAI(OpenAIConfig{SchemaName: "s", Schema: testSchema(), PromptCacheKey: "k"})
	req := realRequests(b, 1, "gpt-5-mini")[0]
	b.Run("sdk", func(b *testing.B) {
		for range b.N {
			_, _ = json.Marshal(o.sent(req))
		}
	})
	b.Run("template", func(b *testing.B) {
		for range b.N {
			_, _ = o.encode(req, true)
		}
	})
}
