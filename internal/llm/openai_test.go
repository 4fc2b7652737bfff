package llm

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trialcat/trialcat/internal/fakeai"
	"github.com/trialcat/trialcat/internal/modelinfo"
)

func TestOpenAISuccessRecordsUsage(t *testing.T) {
	fake, ts := startFake(t, fakeai.Config{APIKey: testKey})
	p := newProvider(ts, testKey, nil)
	var log attemptLog
	c := &Caller{Provider: p, Validate: validateTop(testSchema()), MaxAttempts: 3, OnAttempt: log.On}

	for _, req := range realRequests(t, 3, "gpt-5-mini") {
		res, err := c.Call(context.Background(), req, 0)
		if err != nil {
			t.Fatalf("%s: %v", req.RecordID, err)
		}
		if res.Attempts != 1 {
			t.Errorf("%s: attempts = %d, want 1", req.RecordID, res.Attempts)
		}
		if res.Model != "gpt-5-mini" {
			t.Errorf("%s: model = %q, want the model echoed by the server", req.RecordID, res.Model)
		}
		if res.Usage.InputTokens <= 0 || res.Usage.OutputTokens <= 0 {
			t.Errorf("%s: usage = %+v, want input and output tokens", req.RecordID, res.Usage)
		}
		if want := "fake answer for " + req.RecordID; res.Values["rationale"] != want {
			t.Errorf("%s: rationale = %v, want %q (answer for this record)", req.RecordID, res.Values["rationale"], want)
		}
		if res.Content == "" {
			t.Errorf("%s: empty content", req.RecordID)
		}
	}
	if got := fake.Stats().Answers[fakeai.KindOK]; got != 3 {
		t.Errorf("server ok answers = %d, want 3", got)
	}
	atts := log.all()
	if len(atts) != 3 {
		t.Fatalf("OnAttempt called %d times, want 3", len(atts))
	}
	for _, a := range atts {
		if a.Err != nil || a.Attempt != 1 || a.Usage.InputTokens == 0 || a.Delay != 0 {
			t.Errorf("attempt = %+v, want a first successful attempt with usage and no delay", a)
		}
	}
}

func TestOpenAIRequestShape(t *testing.T) {
	temp := 0.2
	tests := []struct {
		name     string
		model    string
		system   string
		cfg      func(*OpenAIConfig)
		want     map[string]any // fields that must be sent with these values
		wantNone []string       // fields that must not be sent
	}{
		{
			name:     "reasoning model drops temperature",
			model:    "gpt-5-mini",
			system:   "sys",
			cfg:      func(c *OpenAIConfig) { c.Temperature = &temp; c.MaxCompletionTokens = 900; c.ReasoningEffort = "low" },
			want:     map[string]any{"max_completion_tokens": 900.0, "reasoning_effort": "low"},
			wantNone: []string{"temperature", "max_tokens"},
		},
		{
			name:     "reasoning model with provider prefix, nothing optional set",
			model:    "openai/o4-mini",
			system:   "sys",
			cfg:      func(c *OpenAIConfig) { c.Temperature = &temp },
			wantNone: []string{"temperature", "max_tokens", "max_completion_tokens", "reasoning_effort"},
		},
		{
			name:     "chat model gets temperature when set",
			model:    "gpt-4o-mini",
			system:   "sys",
			cfg:      func(c *OpenAIConfig) { c.Temperature = &temp; c.MaxCompletionTokens = 300 },
			want:     map[string]any{"temperature": 0.2, "max_completion_tokens": 300.0},
			wantNone: []string{"max_tokens", "reasoning_effort"},
		},
		{
			name:     "chat model without options sends none",
			model:    "llama3.1:8b",
			wantNone: []string{"temperature", "max_tokens", "max_completion_tokens", "reasoning_effort"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			capt := &capture{next: fakeai.New(fakeai.Config{APIKey: testKey})}
			ts := startServer(t, capt)
			c := &Caller{Provider: newProvider(ts, testKey, tt.cfg), Validate: validateTop(testSchema())}
			req := Request{RecordID: "NCT00000001", System: tt.system, User: "Record ID: NCT00000001\nTitle: x", Model: tt.model}
			if _, err := c.Call(context.Background(), req, 0); err != nil {
				t.Fatal(err)
			}
			body := capt.last(t)
			if body["model"] != tt.model {
				t.Errorf("model = %v, want %q", body["model"], tt.model)
			}
			rf, _ := body["response_format"].(map[string]any)
			js, _ := rf["json_schema"].(map[string]any)
			if rf["type"] != "json_schema" || js["strict"] != true || js["name"] != "trial_category" || js["schema"] == nil {
				t.Errorf("response_format = %v, want json_schema strict with name and schema", rf)
			}
			msgs, _ := body["messages"].([]any)
			var roles []string
			for _, m := range msgs {
				roles = append(roles, m.(map[string]any)["role"].(string))
			}
			wantRoles := []string{"user"}
			if tt.system != "" {
				wantRoles = []string{"system", "user"}
			}
			if !slices.Equal(roles, wantRoles) {
				t.Errorf("message roles = %v, want %v", roles, wantRoles)
			}
			for k, v := range tt.want {
				if body[k] != v {
					t.Errorf("%s = %v, want %v", k, body[k], v)
				}
			}
			for _, k := range tt.wantNone {
				if v, ok := body[k]; ok {
					t.Errorf("%s = %v sent, want it left out", k, v)
				}
			}
		})
	}
}

func TestIsReasoningModel(t *testing.T) {
	tests := []struct {
		model string
		want  bool
	}{
		{"gpt-5", true}, {"gpt-5-mini", true}, {"gpt-5.1", true}, {"GPT-5-nano", true},
		{"o1", true}, {"o1-mini", true}, {"o3-mini", true}, {"o4-mini", true},
		{"openai/gpt-5-mini", true}, {"azure/openai/o3", true},
		{"gpt-4o-mini", false}, {"gpt-4.1", false}, {"llama3.1:8b", false},
		{"Qwen/Qwen2.5-7B-Instruct", false}, {"", false},
	}
	for _, tt := range tests {
		if got := modelinfo.IsReasoning(tt.model); got != tt.want {
			t.Errorf("modelinfo.IsReasoning(%q) = %v, want %v", tt.model, got, tt.want)
		}
	}
}

func TestOpenAIRefusalKeepsUsage(t *testing.T) {
	_, ts := startFake(t, fakeai.Config{APIKey: testKey, RateRefusal: 1})
	rep, err := newProvider(ts, testKey, nil).Complete(context.Background(),
		Request{RecordID: "R1", User: "Record ID: R1", Model: "gpt-4o-mini"})
	e := Classify(err)
	if e == nil || e.Class != ClassRefusal {
		t.Fatalf("err = %v, want class refusal", err)
	}
	if !strings.Contains(e.Message, "can't help") {
		t.Errorf("message = %q, want the model's refusal text", e.Message)
	}
	if rep.Usage.InputTokens == 0 {
		t.Errorf("usage = %+v, want the billed tokens of the refusal", rep.Usage)
	}
}

func TestHostileBodiesAreCapped(t *testing.T) {
	const limit = 1 << 20
	big := bytes.Repeat([]byte(" "), 8<<20) // valid JSON padding, 8 MB
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	for range 200 { // 200 MB of spaces, about 200 KB compressed
		zw.Write(big[:1<<20])
	}
	zw.Close()
	for _, tc := range []struct {
		name string
		h    http.HandlerFunc
	}{
		{"huge", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"id":"x",`))
			w.Write(big)
		}},
		{"gzip bomb", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Encoding", "gzip")
			w.Write(gz.Bytes())
		}},
		{"endless", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"id":"x",`))
			for r.Context().Err() == nil {
				if _, err := w.Write(big[:64<<10]); err != nil {
					return
				}
			}
		}},
		{"huge error body", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			w.Write(big)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.h)
			defer srv.Close()
			p := NewOpenAI(OpenAIConfig{BaseURL: srv.URL, APIKey: "k", Schema: map[string]any{"type": "object"},
				MaxResponseBytes: limit, Timeout: 30 * time.Second})
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			_, err := p.Complete(t.Context(), Request{RecordID: "NCT1", Model: "gpt-4o-mini", User: "x"})
			runtime.ReadMemStats(&after)
			e := Classify(err)
			if e == nil || e.Class != ClassResponseTooLarge || !e.Retryable() {
				t.Fatalf("Complete = %v (class %v); want a retryable response_too_large", err, e)
			}
			// Reading stops at the cap: the process allocates a few times the cap, not the body.
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 16*limit {
				t.Errorf("allocated %d MB for a body capped at %d MB", grew>>20, limit>>20)
			}
		})
	}
}

func TestAbsurdUsageIsFixed(t *testing.T) {
	for _, tc := range []struct {
		name          string
		in, cached    int64
		out           int64
		wantIn, wantC int64
		wantOut       int64
		warned        bool
	}{
		{"sane", 1200, 200, 300, 1200, 200, 300, false},
		{"negative", -5, 0, -1, 0, 0, 0, true},
		{"over a billion", 1_500_000_000, 0, 2_000_000_000, 0, 0, 0, true},
		{"over the model's window", 400_000, 0, 100, 0, 0, 100, true},
		{"cached above prompt", 100, 900, 10, 100, 100, 10, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprintf(w, `{"id":"c","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":"{}"}}],`+
					`"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":0,"prompt_tokens_details":{"cached_tokens":%d}}}`, tc.in, tc.out, tc.cached)
			}))
			defer srv.Close()
			p := NewOpenAI(OpenAIConfig{BaseURL: srv.URL, APIKey: "k", Schema: map[string]any{"type": "object"}})
			rep, err := p.Complete(t.Context(), Request{RecordID: "NCT1", Model: "gpt-4o-mini", User: "x"})
			if err != nil {
				t.Fatal(err)
			}
			u := rep.Usage
			if u.InputTokens != tc.wantIn || u.CachedInputTokens != tc.wantC || u.OutputTokens != tc.wantOut {
				t.Errorf("usage %+v; want in %d cached %d out %d", u, tc.wantIn, tc.wantC, tc.wantOut)
			}
			if (rep.Warning != "") != tc.warned {
				t.Errorf("warning %q; want one: %v", rep.Warning, tc.warned)
			}
		})
	}
}
