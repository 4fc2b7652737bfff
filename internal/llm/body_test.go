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

// A conversation with tools (an agent's turn) is the SDK's encoding too, byte for byte: every kind
// of message, with and without the delivery fields, the tools' template kept across turns.
func TestConversationIsTheSDKsEncoding(t *testing.T) {
	o := NewOpenAI(OpenAIConfig{SchemaName: "s", Schema: testSchema(), PromptCacheKey: "k", MaxCompletionTokens: 700})
	tools := []Tool{
		{Name: "read_section", Description: "Read a section <of the record> & more.", Parameters: map[string]any{"type": "object",
			"properties": map[string]any{"name": map[string]any{"type": "string"}}, "required": []any{"name"}}},
		{Name: "submit", Parameters: testSchema(), Strict: true},
	}
	conv := []Message{
		{Role: RoleSystem, Content: "You categorize trials.\u2028 <b>"},
		{Role: RoleUser, Content: "Record ID: NCT1\n\"overview\""},
		{Role: RoleAssistant, ToolCalls: []ToolCall{{ID: "call_1", Name: "read_section", Arguments: `{"name":"eligibility"}`}, {ID: "call_2", Name: "submit", Arguments: `{}`}}},
		{Role: RoleTool, ToolCallID: "call_1", Content: "Inclusion: adults \\ 18+"},
		{Role: RoleTool, ToolCallID: "call_2", Content: "refused: missing fields"},
		{Role: RoleAssistant, Content: "thinking aloud"},
		{Role: RoleUser, Content: "Answer by calling submit."},
	}
	for turn := 2; turn <= len(conv); turn++ {
		for _, sent := range []bool{false, true} {
			req := Request{RecordID: "NCT1", Model: "gpt-5-mini", Messages: conv[:turn], Tools: tools, ServiceTier: map[bool]string{true: TierFlex}[turn%2 == 0]}
			want, err := json.Marshal(o.paramsFor(req, sent))
			if err != nil {
				t.Fatal(err)
			}
			got, err := o.body(req, sent)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("turn %d (sent %v):\n got %s\nwant %s", turn, sent, got, want)
			}
		}
	}
}
