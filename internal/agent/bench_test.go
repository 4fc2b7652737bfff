package agent

import (
	"context"
	"testing"

	"github.com/trialcat/trialcat/internal/llm"
	"github.com/trialcat/trialcat/internal/taxonomy"
)

// BenchmarkPrepare cuts real records into sections and counts their tokens.
func BenchmarkPrepare(b *testing.B) {
	recs := sample(b, 100)
	a, err := New(Config{Schema: taxonomy.MustSchema()})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := a.Prepare(recs[i%len(recs)], "sys", "overview"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadLongestSection reads the first page of each record's largest section.
func BenchmarkReadLongestSection(b *testing.B) {
	recs := sample(b, 100)
	a, _ := New(Config{Schema: taxonomy.MustSchema()})
	var prepared []*Record
	var names []string
	for _, rec := range recs {
		r, _ := a.Prepare(rec, "sys", "overview")
		best := r.sections[0]
		for _, s := range r.sections {
			if s.Tokens > best.Tokens {
				best = s
			}
		}
		prepared, names = append(prepared, r), append(names, best.Name)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k := i % len(prepared)
		if _, _, _, err := a.call(context.Background(), prepared[k], llm.ToolCall{Name: ToolReadSection, Arguments: `{"name":"` + names[k] + `","offset":null,"limit":null}`}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTurnBody encodes the third turn's request of a real record (what a turn sends).
func BenchmarkTurnBody(b *testing.B) {
	rec := sample(b, 1)[0]
	sch := taxonomy.MustSchema()
	a, _ := New(Config{Schema: sch})
	r, _ := a.Prepare(rec, a.System(taxonomy.AgentPrompt()), "Record ID: "+rec.ID)
	page, _, _, _ := a.call(context.Background(), r, llm.ToolCall{Name: ToolReadSection, Arguments: `{"name":"eligibility","offset":null,"limit":null}`})
	msgs := append(r.Messages(),
		llm.Message{Role: llm.RoleAssistant, ToolCalls: []llm.ToolCall{{ID: "c1", Name: ToolReadSection, Arguments: `{"name":"eligibility","offset":null,"limit":null}`}}},
		llm.Message{Role: llm.RoleTool, ToolCallID: "c1", Content: page},
		llm.Message{Role: llm.RoleAssistant, ToolCalls: []llm.ToolCall{{ID: "c2", Name: ToolReadSection, Arguments: `{"name":"description","offset":null,"limit":null}`}}},
		llm.Message{Role: llm.RoleTool, ToolCallID: "c2", Content: page})
	o := llm.NewOpenAI(llm.OpenAIConfig{Schema: sch.StrictJSON()})
	req := llm.Request{RecordID: rec.ID, Model: "gpt-5-mini", Messages: msgs, Tools: a.Tools()}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := o.Body(req); err != nil {
			b.Fatal(err)
		}
	}
}
