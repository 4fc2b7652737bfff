package cache_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/trialcat/trialcat/internal/cache"
	"github.com/trialcat/trialcat/internal/llm"
)

// Everything that decides an answer is in its key: the server, and in the request body the
// model, the prompt, the schema, the temperature and the reasoning effort. Each one changed
// alone gives another key, so no answer is reused for a request it was not given for.
func TestEveryInputOfTheKeyChangesIt(t *testing.T) {
	t1, t2 := 0.2, 0.7
	base := llm.OpenAIConfig{SchemaName: "cat", Schema: map[string]any{"type": "object", "properties": map[string]any{"a": map[string]any{"type": "string"}}}, Temperature: &t1}
	req := llm.Request{RecordID: "NCT1", Model: "gpt-4.1-mini", System: "sys", User: "user"}
	key := func(host string, cfg llm.OpenAIConfig, r llm.Request) string {
		t.Helper()
		body, err := llm.NewOpenAI(cfg).Body(r)
		if err != nil {
			t.Fatal(err)
		}
		return cache.Key(host, body)
	}
	ref := key("api.openai.com", base, req)
	if key("api.openai.com", base, req) != ref {
		t.Fatal("the same request gives two keys")
	}
	otherSchema := base
	otherSchema.Schema = map[string]any{"type": "object", "properties": map[string]any{"b": map[string]any{"type": "string"}}}
	otherTemp := base
	otherTemp.Temperature = &t2
	effort := base
	effort.Temperature, effort.ReasoningEffort = nil, "low"
	moreEffort := effort
	moreEffort.ReasoningEffort = "high"
	reasoning := llm.Request{RecordID: "NCT1", Model: "gpt-5-mini", System: "sys", User: "user"}
	for name, k := range map[string]string{
		"host":        key("localhost:8000", base, req),
		"model":       key("api.openai.com", base, llm.Request{RecordID: "NCT1", Model: "gpt-4.1", System: "sys", User: "user"}),
		"prompt":      key("api.openai.com", base, llm.Request{RecordID: "NCT1", Model: "gpt-4.1-mini", System: "sys", User: "other"}),
		"schema":      key("api.openai.com", otherSchema, req),
		"temperature": key("api.openai.com", otherTemp, req),
		"effort":      key("api.openai.com", effort, reasoning),
	} {
		if k == ref {
			t.Errorf("changing the %s alone keeps the key", name)
		}
	}
	if key("api.openai.com", effort, reasoning) == key("api.openai.com", moreEffort, reasoning) {
		t.Error("another reasoning effort keeps the key")
	}
}

// An entry that is not a whole answer for this key is a miss, and says why.
func TestIncompleteOrMisplacedEntriesAreMisses(t *testing.T) {
	c, err := cache.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	k1, k2 := cache.Key("h", []byte("one")), cache.Key("h", []byte("two"))
	if err := c.Put(k1, cache.Entry{Model: "m", Content: `{"a":"x"}`}); err != nil {
		t.Fatal(err)
	}
	if e, ok := c.Get(k1); !ok || e.Content != `{"a":"x"}` {
		t.Fatalf("Get(k1) = %+v, %v", e, ok)
	}
	// The same file under another key (copied by hand) is not k2's answer.
	p1 := filepath.Join(c.Dir(), k1[:2], k1+".json")
	p2 := filepath.Join(c.Dir(), k2[:2], k2+".json")
	os.MkdirAll(filepath.Dir(p2), 0o755)
	data, err := os.ReadFile(p1)
	if err != nil {
		t.Fatalf("the entry is not at %s: %v", p1, err)
	}
	os.WriteFile(p2, data, 0o644)
	if _, err := c.Lookup(k2); err == nil || err == cache.ErrMiss {
		t.Errorf("an entry stored for k1 found under k2: %v", err)
	}
	for name, body := range map[string]string{"empty content": `{"model":"m","content":""}`, "damaged": `{"model":"m","cont`} {
		os.WriteFile(p1, []byte(body), 0o644)
		if _, ok := c.Get(k1); ok {
			t.Errorf("%s: a hit", name)
		}
		if _, err := c.Lookup(k1); err == nil || err == cache.ErrMiss {
			t.Errorf("%s: Lookup says %v; want why it cannot be used", name, err)
		}
	}
	if _, err := c.Lookup(cache.Key("h", []byte("never"))); err != cache.ErrMiss {
		t.Errorf("a key never stored: %v, want ErrMiss", err)
	}
}
