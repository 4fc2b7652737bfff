package fakeai

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
)

func loadSchema(tb testing.TB) map[string]any {
	tb.Helper()
	b, err := os.ReadFile("testdata/schema.json")
	if err != nil {
		tb.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		tb.Fatal(err)
	}
	return m
}

// check is a small JSON-schema checker for the keywords the test schema uses. It stands in for
// the project's schema package, which this package must not depend on.
func check(root, s map[string]any, v any, path string) error {
	if ref, ok := s["$ref"].(string); ok {
		return check(root, builder{root: root}.resolve(ref), v, path)
	}
	if alts, ok := s["anyOf"].([]any); ok {
		for _, a := range alts {
			if check(root, a.(map[string]any), v, path) == nil {
				return nil
			}
		}
		return fmt.Errorf("%s: matches no anyOf branch", path)
	}
	if enum, ok := s["enum"].([]any); ok && !slices.Contains(enum, v) {
		return fmt.Errorf("%s: %v not in enum %v", path, v, enum)
	}
	types := []string{}
	switch t := s["type"].(type) {
	case string:
		types = append(types, t)
	case []any:
		for _, x := range t {
			types = append(types, x.(string))
		}
	}
	if len(types) > 0 && !slices.Contains(types, jsonType(v)) &&
		!(jsonType(v) == "integer" && slices.Contains(types, "number")) {
		return fmt.Errorf("%s: %s, want %v", path, jsonType(v), types)
	}
	switch x := v.(type) {
	case map[string]any:
		props, _ := s["properties"].(map[string]any)
		for _, r := range s["required"].([]any) {
			if _, ok := x[r.(string)]; !ok {
				return fmt.Errorf("%s: missing %q", path, r)
			}
		}
		for k, kv := range x {
			ps, ok := props[k].(map[string]any)
			if !ok {
				return fmt.Errorf("%s: unexpected %q", path, k)
			}
			if err := check(root, ps, kv, path+"/"+k); err != nil {
				return err
			}
		}
	case []any:
		if mi, ok := number(s["minItems"]); ok && float64(len(x)) < mi {
			return fmt.Errorf("%s: %d items, want at least %v", path, len(x), mi)
		}
		for i, it := range x {
			if err := check(root, s["items"].(map[string]any), it, fmt.Sprintf("%s/%d", path, i)); err != nil {
				return err
			}
		}
	case string:
		if ml, ok := number(s["maxLength"]); ok && float64(len(x)) > ml {
			return fmt.Errorf("%s: longer than %v", path, ml)
		}
	case float64:
		if lo, ok := number(s["minimum"]); ok && x < lo {
			return fmt.Errorf("%s: %v below %v", path, x, lo)
		}
		if hi, ok := number(s["maximum"]); ok && x > hi {
			return fmt.Errorf("%s: %v above %v", path, x, hi)
		}
	}
	return nil
}

func jsonType(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case float64:
		if x == math.Trunc(x) {
			return "integer"
		}
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return "unknown"
}

// chatBody builds a valid request body; edit changes it before encoding.
func chatBody(tb testing.TB, id, model string, schema map[string]any, edit func(map[string]any)) []byte {
	tb.Helper()
	b := map[string]any{
		"model": model,
		"messages": []any{
			map[string]any{"role": "system", "content": "Categorize the trial."},
			map[string]any{"role": "user", "content": "Title: a trial\nRecord ID: " + id + "\nMore text"},
		},
		"response_format": map[string]any{
			"type":        "json_schema",
			"json_schema": map[string]any{"name": "t", "strict": true, "schema": schema},
		},
	}
	if edit != nil {
		edit(b)
	}
	out, err := json.Marshal(b)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// completion is the part of a response the tests read.
type completion struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	Model   string `json:"model"`
	Choices []struct {
		Index   int `json:"index"`
		Message struct {
			Role    string  `json:"role"`
			Content *string `json:"content"`
			Refusal *string `json:"refusal"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage struct {
		PromptTokens        int `json:"prompt_tokens"`
		CompletionTokens    int `json:"completion_tokens"`
		TotalTokens         int `json:"total_tokens"`
		PromptTokensDetails struct {
			CachedTokens *int `json:"cached_tokens"`
		} `json:"prompt_tokens_details"`
	} `json:"usage"`
	Error *struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Code    *string `json:"code"`
		Param   *string `json:"param"`
	} `json:"error"`
}

// post sends body to h with the bearer key and decodes the answer.
func post(tb testing.TB, h http.Handler, key string, body []byte) (*httptest.ResponseRecorder, completion) {
	tb.Helper()
	r := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", bytes.NewReader(body))
	if key != "" {
		r.Header.Set("Authorization", "Bearer "+key)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	var c completion
	if err := json.Unmarshal(w.Body.Bytes(), &c); err != nil {
		tb.Fatalf("answer is not JSON: %v: %s", err, w.Body.String())
	}
	return w, c
}

func content(tb testing.TB, c completion) string {
	tb.Helper()
	if len(c.Choices) != 1 || c.Choices[0].Message.Content == nil {
		tb.Fatalf("want one choice with content, got %+v", c)
	}
	return *c.Choices[0].Message.Content
}

func contains(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
