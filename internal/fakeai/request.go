package fakeai

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/trialcat/trialcat/internal/modelinfo"
)

// ChatRequest is the part of a Chat Completions request body the server looks at.
type ChatRequest struct {
	Model               string          `json:"model"`
	Messages            []Message       `json:"messages"`
	ResponseFormat      *ResponseFormat `json:"response_format,omitempty"`
	Temperature         *float64        `json:"temperature,omitempty"`
	MaxTokens           *int64          `json:"max_tokens,omitempty"`
	MaxCompletionTokens *int64          `json:"max_completion_tokens,omitempty"`
	ReasoningEffort     string          `json:"reasoning_effort,omitempty"`
	// Tools are the functions offered; with them the answer is a tool call (see agent.go).
	Tools []ToolDef `json:"tools,omitempty"`
	// PromptCacheKey, PromptCacheRetention and ServiceTier are recorded in Stats; ServiceTier
	// "flex" may be refused (Config.FlexUnavailable) and is echoed in the answer.
	PromptCacheKey       string `json:"prompt_cache_key,omitempty"`
	PromptCacheRetention string `json:"prompt_cache_retention,omitempty"`
	ServiceTier          string `json:"service_tier,omitempty"`
	// Raw holds every top-level field of the body as sent.
	Raw map[string]json.RawMessage `json:"-"`
}

// Message is one chat message. Content is a string or an array of content parts.
type Message struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
	// ToolCalls are an assistant message's calls; ToolCallID the call a tool message answers.
	ToolCalls  []ToolCall `json:"tool_calls,omitempty"`
	ToolCallID string     `json:"tool_call_id,omitempty"`
}

// ToolDef is one entry of a request's tools.
type ToolDef struct {
	Type     string `json:"type"`
	Function struct {
		Name        string         `json:"name"`
		Description string         `json:"description,omitempty"`
		Parameters  map[string]any `json:"parameters,omitempty"`
		Strict      *bool          `json:"strict,omitempty"`
	} `json:"function"`
}

// ToolCall is one call of an assistant message.
type ToolCall struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

// Text returns the message's text: the string content, or the text parts joined by newlines.
func (m Message) Text() string {
	c := bytes.TrimSpace(m.Content)
	if len(c) == 0 || c[0] == 'n' {
		return ""
	}
	var s string
	if json.Unmarshal(c, &s) == nil {
		return s
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if json.Unmarshal(c, &parts) != nil {
		return ""
	}
	texts := make([]string, 0, len(parts))
	for _, p := range parts {
		if p.Text != "" {
			texts = append(texts, p.Text)
		}
	}
	return strings.Join(texts, "\n")
}

// ResponseFormat is the request's response_format.
type ResponseFormat struct {
	Type       string      `json:"type"`
	JSONSchema *JSONSchema `json:"json_schema,omitempty"`
}

// JSONSchema is response_format.json_schema.
type JSONSchema struct {
	Name   string         `json:"name"`
	Strict *bool          `json:"strict,omitempty"`
	Schema map[string]any `json:"schema,omitempty"`
}

// Schema returns the request's JSON schema, or nil.
func (r ChatRequest) Schema() map[string]any {
	if r.ResponseFormat == nil || r.ResponseFormat.JSONSchema == nil {
		return nil
	}
	return r.ResponseFormat.JSONSchema.Schema
}

// RecordID returns the ID on the "Record ID: <id>" line of the last user message that has one,
// or "unknown".
func (r ChatRequest) RecordID() string {
	for i := len(r.Messages) - 1; i >= 0; i-- {
		if r.Messages[i].Role != "user" {
			continue
		}
		for _, line := range strings.Split(r.Messages[i].Text(), "\n") {
			if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "Record ID:"); ok {
				if id := strings.TrimSpace(rest); id != "" {
					return id
				}
			}
		}
	}
	return "unknown"
}

// PromptTokens is what the server counts as the request's prompt tokens (for its TPM limit,
// its usage and its latency): a token for every 4 bytes of promptText, at least one.
func (r ChatRequest) PromptTokens() int { return tokensOf(r.promptText()) }

// tokensOf counts a prompt text's tokens as the server does.
func tokensOf(prompt string) int { return max(1, len(prompt)/bytesPerToken) }

// promptText returns what a provider counts as prompt tokens, in the order it caches them: the
// tools offered and the response schema, then the text of all messages and their tool calls.
func (r ChatRequest) promptText() string {
	var b strings.Builder
	if len(r.Tools) > 0 {
		t, _ := json.Marshal(r.Tools)
		b.Write(t)
	}
	if s := r.Schema(); s != nil {
		t, _ := json.Marshal(s)
		b.Write(t)
	}
	for _, m := range r.Messages {
		b.WriteString(m.Text())
		for _, c := range m.ToolCalls {
			b.WriteString(c.Function.Name)
			b.WriteString(c.Function.Arguments)
		}
	}
	return b.String()
}

// parseRequest decodes and checks a body the way OpenAI does for structured output. The error
// text is the message of the 400 answer; param names the offending parameter.
func parseRequest(body []byte) (req ChatRequest, param string, err error) {
	if err := json.Unmarshal(body, &req); err != nil {
		return req, "", fmt.Errorf("We could not parse the JSON body of your request: %v", err)
	}
	if err := json.Unmarshal(body, &req.Raw); err != nil {
		return req, "", fmt.Errorf("The request body must be a JSON object.")
	}
	switch {
	case req.Model == "":
		return req, "model", fmt.Errorf("you must provide a model parameter")
	case len(req.Messages) == 0:
		return req, "messages", fmt.Errorf("[] is too short - 'messages'")
	case len(req.Tools) > 0:
		if param, err := checkTools(req); err != nil {
			return req, param, err
		}
	case req.ResponseFormat == nil || req.ResponseFormat.Type != "json_schema":
		return req, "response_format", fmt.Errorf("this server requires response_format.type 'json_schema'")
	case req.ResponseFormat.JSONSchema == nil || req.ResponseFormat.JSONSchema.Strict == nil || !*req.ResponseFormat.JSONSchema.Strict:
		return req, "response_format", fmt.Errorf("this server requires response_format.json_schema.strict true")
	case req.ResponseFormat.JSONSchema.Schema == nil:
		return req, "response_format", fmt.Errorf("Missing required parameter: 'response_format.json_schema.schema'.")
	}
	if modelinfo.IsReasoning(req.Model) {
		if _, ok := req.Raw["temperature"]; ok {
			return req, "temperature", fmt.Errorf("Unsupported parameter: 'temperature' is not supported with this model.")
		}
		if _, ok := req.Raw["max_tokens"]; ok {
			return req, "max_tokens", fmt.Errorf("Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.")
		}
	}
	return req, "", nil
}

// checkTools checks a request with tools the way the API does: each tool a named function, and
// every tool call of an assistant message answered by one tool message, in the messages right
// after it, before any other message.
func checkTools(req ChatRequest) (string, error) {
	for i, t := range req.Tools {
		if t.Type != "function" || t.Function.Name == "" {
			return fmt.Sprintf("tools[%d]", i), fmt.Errorf("Invalid value for 'tools[%d]': a tool must be of type 'function' with a name.", i)
		}
	}
	open := map[string]bool{} // calls of the last assistant message not yet answered
	for i, m := range req.Messages {
		if m.Role == "tool" {
			if !open[m.ToolCallID] {
				return fmt.Sprintf("messages.[%d].role", i), fmt.Errorf("Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.")
			}
			delete(open, m.ToolCallID)
			continue
		}
		if len(open) > 0 {
			ids := make([]string, 0, len(open))
			for id := range open {
				ids = append(ids, id)
			}
			slices.Sort(ids)
			return "messages", fmt.Errorf("An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: %s", strings.Join(ids, ", "))
		}
		for _, c := range m.ToolCalls {
			open[c.ID] = true
		}
	}
	if len(open) > 0 {
		return "messages", fmt.Errorf("An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'.")
	}
	return "", nil
}
