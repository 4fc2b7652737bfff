package fakeai

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/trialcat/trialcat/internal/testclock"
)

const key = "test-key"

func TestAnswersValidAgainstRequestSchema(t *testing.T) {
	schema := loadSchema(t)
	s := New(Config{APIKey: key})
	categories := map[any]bool{}
	for i := range 40 {
		id := fmt.Sprintf("NCT%08d", i)
		w, c := post(t, s, key, chatBody(t, id, "gpt-4o-mini", schema, nil))
		if w.Code != http.StatusOK {
			t.Fatalf("%s: HTTP %d: %s", id, w.Code, w.Body)
		}
		var ans map[string]any
		if err := json.Unmarshal([]byte(content(t, c)), &ans); err != nil {
			t.Fatalf("%s: content not JSON: %v", id, err)
		}
		if err := check(schema, schema, ans, ""); err != nil {
			t.Errorf("%s: answer %v breaks the schema: %v", id, ans, err)
		}
		categories[ans["category"]] = true
		// The same record gets the same answer.
		_, again := post(t, s, key, chatBody(t, id, "gpt-4o-mini", schema, nil))
		if content(t, again) != content(t, c) {
			t.Errorf("%s: answers differ between requests", id)
		}
	}
	if len(categories) < 3 {
		t.Errorf("categories used = %v, want enum values spread over records", categories)
	}
}

func TestResponseShape(t *testing.T) {
	s := New(Config{APIKey: key})
	w, c := post(t, s, key, chatBody(t, "NCT1", "gpt-5-mini", loadSchema(t), nil))
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("HTTP %d %s", w.Code, w.Header().Get("Content-Type"))
	}
	ch := c.Choices[0]
	if !strings.HasPrefix(c.ID, "chatcmpl-") || c.Object != "chat.completion" || c.Created == 0 || c.Model != "gpt-5-mini" {
		t.Errorf("envelope = %+v, want OpenAI's id/object/created and the request model", c)
	}
	if ch.Message.Role != "assistant" || ch.Message.Refusal != nil || ch.FinishReason != "stop" {
		t.Errorf("choice = %+v, want assistant, null refusal, stop", ch)
	}
	if c.Usage.PromptTokens <= 0 || c.Usage.CompletionTokens != len(content(t, c))/4 ||
		c.Usage.TotalTokens != c.Usage.PromptTokens+c.Usage.CompletionTokens ||
		c.Usage.PromptTokensDetails.CachedTokens == nil || *c.Usage.PromptTokensDetails.CachedTokens != 0 {
		t.Errorf("usage = %+v, want estimated tokens and cached_tokens 0", c.Usage)
	}
}

func TestRequestValidation(t *testing.T) {
	schema := loadSchema(t)
	tests := []struct {
		name   string
		model  string
		edit   func(map[string]any)
		key    string
		cfg    Config
		status int
		param  string
		msg    string
	}{
		{name: "valid", model: "gpt-4o-mini", status: 200},
		{name: "valid with temperature", model: "gpt-4o-mini", edit: func(b map[string]any) { b["temperature"] = 0.2 }, status: 200},
		{name: "no model", model: "", status: 400, param: "model"},
		{name: "no messages", model: "gpt-4o-mini", edit: func(b map[string]any) { b["messages"] = []any{} }, status: 400, param: "messages"},
		{name: "no response_format", model: "gpt-4o-mini", edit: func(b map[string]any) { delete(b, "response_format") }, status: 400, param: "response_format"},
		{name: "json_object", model: "gpt-4o-mini", edit: func(b map[string]any) { b["response_format"] = map[string]any{"type": "json_object"} }, status: 400, param: "response_format"},
		{name: "not strict", model: "gpt-4o-mini", edit: func(b map[string]any) {
			b["response_format"].(map[string]any)["json_schema"].(map[string]any)["strict"] = false
		}, status: 400, param: "response_format"},
		{name: "reasoning model with temperature", model: "gpt-5-mini", edit: func(b map[string]any) { b["temperature"] = 0.2 }, status: 400, param: "temperature", msg: "Unsupported parameter"},
		{name: "reasoning model with max_tokens", model: "openai/o3-mini", edit: func(b map[string]any) { b["max_tokens"] = 100 }, status: 400, param: "max_tokens", msg: "max_completion_tokens"},
		{name: "reasoning model with max_completion_tokens", model: "o4-mini", edit: func(b map[string]any) { b["max_completion_tokens"] = 100 }, status: 200},
		{name: "wrong key", model: "gpt-4o-mini", key: "other", status: 401, msg: "Incorrect API key"},
		{name: "unauthorized mode", model: "gpt-4o-mini", cfg: Config{Unauthorized: true}, status: 401},
		{name: "insufficient quota", model: "gpt-4o-mini", cfg: Config{InsufficientQuota: true}, status: 429, msg: "quota"},
		{name: "fail id", model: "gpt-4o-mini", cfg: Config{FailIDs: map[string]int{"NCT9": 400}}, status: 400},
		{name: "tools without response_format", model: "gpt-5-mini", edit: withTools(nil), status: 200},
		{name: "tool call answered", model: "gpt-5-mini", edit: withTools([]any{
			map[string]any{"role": "assistant", "content": nil, "tool_calls": []any{toolCall("c1"), toolCall("c2")}},
			map[string]any{"role": "tool", "tool_call_id": "c1", "content": "a"},
			map[string]any{"role": "tool", "tool_call_id": "c2", "content": "b"},
		}), status: 200},
		{name: "tool call left unanswered", model: "gpt-5-mini", edit: withTools([]any{
			map[string]any{"role": "assistant", "content": nil, "tool_calls": []any{toolCall("c1"), toolCall("c2")}},
			map[string]any{"role": "tool", "tool_call_id": "c1", "content": "a"},
			map[string]any{"role": "user", "content": "go on"},
		}), status: 400, param: "messages", msg: "did not have response messages: c2"},
		{name: "tool message answering nothing", model: "gpt-5-mini", edit: withTools([]any{
			map[string]any{"role": "tool", "tool_call_id": "c9", "content": "a"},
		}), status: 400, msg: "must be a response to a preceeding message with 'tool_calls'"},
		{name: "last tool call unanswered", model: "gpt-5-mini", edit: withTools([]any{
			map[string]any{"role": "assistant", "content": nil, "tool_calls": []any{toolCall("c1")}},
		}), status: 400, param: "messages"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.APIKey = key
			k := key
			if tt.key != "" {
				k = tt.key
			}
			w, c := post(t, New(tt.cfg), k, chatBody(t, "NCT9", tt.model, schema, tt.edit))
			if w.Code != tt.status {
				t.Fatalf("HTTP %d, want %d: %s", w.Code, tt.status, w.Body)
			}
			if tt.status == 200 {
				return
			}
			if c.Error == nil || c.Error.Message == "" || !strings.Contains(c.Error.Message, tt.msg) {
				t.Fatalf("error body = %s, want an OpenAI error containing %q", w.Body, tt.msg)
			}
			if tt.param != "" && (c.Error.Param == nil || *c.Error.Param != tt.param) {
				t.Errorf("param = %v, want %q", c.Error.Param, tt.param)
			}
			switch tt.status {
			case 401:
				if c.Error.Code == nil || *c.Error.Code != "invalid_api_key" || c.Error.Type != "invalid_request_error" {
					t.Errorf("401 error = %+v, want invalid_request_error / invalid_api_key", c.Error)
				}
			case 429:
				if c.Error.Code == nil || *c.Error.Code != "insufficient_quota" || c.Error.Type != "insufficient_quota" {
					t.Errorf("quota error = %+v, want type and code insufficient_quota", c.Error)
				}
			}
		})
	}
}

func TestFaults(t *testing.T) {
	schema := loadSchema(t)
	tests := []struct {
		name   string
		cfg    Config
		kind   string
		status int
		check  func(t *testing.T, w *httptest.ResponseRecorder, c completion)
	}{
		{"429", Config{Rate429: 1, RetryAfter: 1500 * time.Millisecond}, Kind429, 429, func(t *testing.T, w *httptest.ResponseRecorder, c completion) {
			if w.Header().Get("retry-after-ms") != "1500" || w.Header().Get("retry-after") != "2" {
				t.Errorf("retry-after-ms = %q, retry-after = %q, want 1500 and 2", w.Header().Get("retry-after-ms"), w.Header().Get("retry-after"))
			}
			if c.Error == nil || c.Error.Code == nil || *c.Error.Code != "rate_limit_exceeded" {
				t.Errorf("error = %s, want rate_limit_exceeded", w.Body)
			}
		}},
		{"500", Config{Rate500: 1}, Kind500, 500, nil},
		{"503", Config{Rate503: 1}, Kind503, 503, nil},
		{"bad json", Config{RateBadJSON: 1}, KindBadJSON, 200, func(t *testing.T, w *httptest.ResponseRecorder, c completion) {
			if json.Valid([]byte(content(t, c))) {
				t.Errorf("content %q is JSON, want not", content(t, c))
			}
		}},
		{"schema break", Config{RateSchemaBreak: 1}, KindSchemaBreak, 200, func(t *testing.T, w *httptest.ResponseRecorder, c completion) {
			var ans map[string]any
			if err := json.Unmarshal([]byte(content(t, c)), &ans); err != nil {
				t.Fatalf("content not JSON: %v", err)
			}
			if check(schema, schema, ans, "") == nil {
				t.Errorf("answer %v is valid, want it to break the schema", ans)
			}
		}},
		{"refusal", Config{RateRefusal: 1}, KindRefusal, 200, func(t *testing.T, w *httptest.ResponseRecorder, c completion) {
			m := c.Choices[0].Message
			if m.Content != nil || m.Refusal == nil || *m.Refusal == "" {
				t.Errorf("message = %s, want null content and a refusal", w.Body)
			}
		}},
		{"length", Config{RateLength: 1}, KindLength, 200, func(t *testing.T, w *httptest.ResponseRecorder, c completion) {
			if c.Choices[0].FinishReason != "length" || json.Valid([]byte(content(t, c))) {
				t.Errorf("choice = %s, want finish_reason length and cut content", w.Body)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.APIKey = key
			s := New(tt.cfg)
			for i := range 5 { // schema breaks vary with the draw
				w, c := post(t, s, key, chatBody(t, "NCT1", "gpt-4o-mini", schema, nil))
				if w.Code != tt.status {
					t.Fatalf("HTTP %d, want %d: %s", w.Code, tt.status, w.Body)
				}
				if tt.check != nil {
					t.Run(fmt.Sprint(i), func(t *testing.T) { tt.check(t, w, c) })
				}
			}
			if st := s.Stats(); st.Answers[tt.kind] != 5 || st.Requests != 5 || st.PerID["NCT1"] != 5 {
				t.Errorf("stats = %+v, want 5 requests for NCT1 answered %s", st, tt.kind)
			}
		})
	}
}

func TestFaultRatesAreShares(t *testing.T) {
	s := New(Config{APIKey: key, Seed: 7, Rate429: 0.1, Rate500: 0.2, RateBadJSON: 0.3})
	body := chatBody(t, "R", "gpt-4o-mini", loadSchema(t), nil)
	const n = 1000
	for range n {
		post(t, s, key, body)
	}
	st := s.Stats()
	for kind, rate := range map[string]float64{Kind429: 0.1, Kind500: 0.2, KindBadJSON: 0.3, KindOK: 0.4} {
		if got := float64(st.Answers[kind]) / n; got < rate-0.05 || got > rate+0.05 {
			t.Errorf("%s share = %.3f, want about %.2f", kind, got, rate)
		}
	}
	// The same seed gives the same sequence.
	s2 := New(Config{APIKey: key, Seed: 7, Rate429: 0.1, Rate500: 0.2, RateBadJSON: 0.3})
	for range n {
		post(t, s2, key, body)
	}
	if a, b := fmt.Sprint(st.Answers), fmt.Sprint(s2.Stats().Answers); a != b {
		t.Errorf("same seed, different answers: %s vs %s", a, b)
	}
}

func TestRateLimitRPM(t *testing.T) {
	clk := testclock.New(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	s := New(Config{APIKey: key, RPM: 2, Now: clk.Now})
	schema := loadSchema(t)
	send := func() *httptest.ResponseRecorder {
		w, _ := post(t, s, key, chatBody(t, "NCT1", "gpt-4o-mini", schema, nil))
		return w
	}
	w := send()
	if w.Code != 200 || w.Header().Get("x-ratelimit-remaining-requests") != "1" || w.Header().Get("x-ratelimit-limit-requests") != "2" {
		t.Fatalf("first: HTTP %d remaining %q", w.Code, w.Header().Get("x-ratelimit-remaining-requests"))
	}
	clk.Add(800 * time.Millisecond)
	if w := send(); w.Code != 200 || w.Header().Get("x-ratelimit-remaining-requests") != "0" {
		t.Fatalf("second: HTTP %d remaining %q", w.Code, w.Header().Get("x-ratelimit-remaining-requests"))
	}
	clk.Add(58 * time.Second)
	w = send()
	if w.Code != 429 {
		t.Fatalf("third: HTTP %d, want 429", w.Code)
	}
	h := w.Header()
	// The first request expires 60s after it was accepted: 1.2s from now.
	if h.Get("x-ratelimit-reset-requests") != "1.2s" || h.Get("x-ratelimit-remaining-requests") != "0" || h.Get("retry-after-ms") != "1200" {
		t.Errorf("429 headers = %v, want reset 1.2s, remaining 0, retry-after-ms 1200", h)
	}
	clk.Add(1200 * time.Millisecond)
	if w := send(); w.Code != 200 {
		t.Errorf("after reset: HTTP %d, want 200", w.Code)
	}
	st := s.Stats()
	if st.Requests != 4 || st.Answers[Kind429] != 1 || st.Answers[KindOK] != 3 || len(st.Accepted) != 3 {
		t.Errorf("stats = %+v, want 4 requests, 1 limited, 3 accepted", st)
	}
	if !st.Accepted[2].Equal(clk.Now()) {
		t.Errorf("accepted[2] = %s, want the clock's time %s", st.Accepted[2], clk.Now())
	}
}

func TestRateLimitTPM(t *testing.T) {
	clk := testclock.New(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	schema := loadSchema(t)
	body := chatBody(t, "NCT1", "gpt-4o-mini", schema, nil)
	var req ChatRequest
	if err := json.Unmarshal(body, &req); err != nil {
		t.Fatal(err)
	}
	tokens := len(req.promptText()) / 4
	s := New(Config{APIKey: key, TPM: 2*tokens + 1, Now: clk.Now})
	for i := range 2 {
		if w, _ := post(t, s, key, body); w.Code != 200 {
			t.Fatalf("request %d: HTTP %d", i, w.Code)
		}
		clk.Add(10 * time.Second)
	}
	w, c := post(t, s, key, body)
	if w.Code != 429 || c.Error == nil || !strings.Contains(c.Error.Message, "TPM") {
		t.Fatalf("third: HTTP %d %s, want 429 on TPM", w.Code, w.Body)
	}
	if got := w.Header().Get("x-ratelimit-reset-tokens"); got != "40s" {
		t.Errorf("reset-tokens = %q, want 40s (the first request expires then)", got)
	}
	if got := w.Header().Get("x-ratelimit-remaining-tokens"); got != "1" {
		t.Errorf("remaining-tokens = %q, want 1", got)
	}
}

func TestDropClosesConnection(t *testing.T) {
	s := New(Config{APIKey: key, RateDrop: 1})
	ts := httptest.NewServer(s)
	defer ts.Close()
	req, _ := http.NewRequest(http.MethodPost, ts.URL+"/v1/chat/completions",
		strings.NewReader(string(chatBody(t, "NCT1", "gpt-4o-mini", loadSchema(t), nil))))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := ts.Client().Do(req)
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("got HTTP %d %s, want the connection closed", resp.StatusCode, b)
	}
	if got := s.Stats().Answers[KindDrop]; got != 1 {
		t.Errorf("drops = %d, want 1", got)
	}
}

func TestStallRespectsClientGoingAway(t *testing.T) {
	s := New(Config{APIKey: key, RateStall: 1, StallFor: time.Minute})
	ts := httptest.NewServer(s) // closed below, where the test waits for it
	client := ts.Client()
	client.Timeout = 100 * time.Millisecond
	req, _ := http.NewRequest(http.MethodPost, ts.URL+"/chat/completions",
		strings.NewReader(string(chatBody(t, "NCT1", "gpt-4o-mini", loadSchema(t), nil))))
	req.Header.Set("Authorization", "Bearer "+key)
	if resp, err := client.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("got HTTP %d, want a client timeout during the stall", resp.StatusCode)
	}
	// Close waits for the handler: it must end when the client goes away, not after the
	// minute's stall.
	closed := make(chan struct{})
	go func() {
		ts.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the stalled handler went on after the client went away")
	}
	if got := s.Stats().Answers[KindStall]; got != 1 {
		t.Errorf("stalls = %d, want 1", got)
	}
}

func TestRecordID(t *testing.T) {
	msg := func(role, text string) Message {
		b, _ := json.Marshal(text)
		return Message{Role: role, Content: b}
	}
	parts := Message{Role: "user", Content: json.RawMessage(`[{"type":"text","text":"intro"},{"type":"text","text":"Record ID: NCT7"}]`)}
	tests := []struct {
		name string
		msgs []Message
		want string
	}{
		{"plain", []Message{msg("user", "Title: x\nRecord ID: NCT1\nmore")}, "NCT1"},
		{"indented", []Message{msg("user", "  Record ID:   NCT2  ")}, "NCT2"},
		{"last user message wins", []Message{msg("user", "Record ID: OLD"), msg("assistant", "ok"), msg("user", "Record ID: NEW")}, "NEW"},
		{"system is ignored", []Message{msg("system", "Record ID: SYS"), msg("user", "no id")}, "unknown"},
		{"content parts", []Message{parts}, "NCT7"},
		{"missing", []Message{msg("user", "hello")}, "unknown"},
	}
	for _, tt := range tests {
		if got := (ChatRequest{Messages: tt.msgs}).RecordID(); got != tt.want {
			t.Errorf("%s: RecordID = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestCustomAnswerAndLatency(t *testing.T) {
	s := New(Config{
		APIKey:  key,
		Answer:  func(id string, req ChatRequest) map[string]any { return map[string]any{"id": id, "model": req.Model} },
		Latency: LatencyModel{Base: 150 * time.Millisecond},
	})
	start := time.Now()
	_, c := post(t, s, key, chatBody(t, "NCT5", "m1", loadSchema(t), nil))
	// A loaded machine can only make the answer later; it must not come before the latency.
	if took := time.Since(start); took < 150*time.Millisecond {
		t.Errorf("answered after %s; the latency model says 150ms", took)
	}
	if got := content(t, c); !contains(got, `"id":"NCT5"`, `"model":"m1"`) {
		t.Errorf("content = %s, want the custom answer", got)
	}
}

func TestWrongPath(t *testing.T) {
	s := New(Config{APIKey: key})
	r := httptest.NewRequest(http.MethodPost, "/v1/completions", strings.NewReader("{}"))
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	if w.Code != http.StatusNotFound {
		t.Errorf("HTTP %d, want 404", w.Code)
	}
}

func toolCall(id string) map[string]any {
	return map[string]any{"id": id, "type": "function", "function": map[string]any{"name": "read_section", "arguments": "{}"}}
}

// withTools turns a structured-output body into a tool-calling one with extra messages after
// the user's.
func withTools(extra []any) func(map[string]any) {
	return func(b map[string]any) {
		delete(b, "response_format")
		b["tools"] = []any{map[string]any{"type": "function", "function": map[string]any{"name": "submit_x", "parameters": map[string]any{"type": "object"}}}}
		b["messages"] = append(b["messages"].([]any), extra...)
	}
}
