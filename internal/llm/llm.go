package llm

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/trialcat/trialcat/internal/modelinfo"
)

// Usage counts the tokens of one or more attempts.
type Usage struct {
	// InputTokens counts all prompt tokens, cached ones included.
	InputTokens int64
	// CachedInputTokens counts the prompt tokens served from the provider's prompt cache.
	CachedInputTokens int64
	// OutputTokens counts completion tokens, reasoning tokens included.
	OutputTokens int64
}

// Bounds of believable usage for one request: above them a server's numbers are wrong.
const (
	maxInputTokens  = 10_000_000 // no model takes more per request
	maxOutputTokens = 1_000_000
)

// Sane returns u with the values that cannot be right fixed, and what was fixed ("" when
// nothing): negative counts become 0, counts over what any model takes per request (or over
// model's known input window) are dropped to 0, and cached tokens are at most the input tokens.
// Cost is computed from the result, so it is never negative or absurd.
func (u Usage) Sane(window int) (Usage, string) {
	var notes []string
	fix := func(name string, v *int64, limit int64) {
		switch {
		case *v < 0:
			notes = append(notes, fmt.Sprintf("%s %d is negative", name, *v))
			*v = 0
		case *v > limit:
			notes = append(notes, fmt.Sprintf("%s %d is over %d", name, *v, limit))
			*v = 0
		}
	}
	inLimit := int64(maxInputTokens)
	if window > 0 {
		inLimit = int64(window) + int64(window)/10 // a little over: counting differs between tokenizers
	}
	fix("prompt_tokens", &u.InputTokens, inLimit)
	fix("completion_tokens", &u.OutputTokens, maxOutputTokens)
	fix("cached_tokens", &u.CachedInputTokens, inLimit)
	if u.CachedInputTokens > u.InputTokens {
		notes = append(notes, fmt.Sprintf("cached_tokens %d is over prompt_tokens %d", u.CachedInputTokens, u.InputTokens))
		u.CachedInputTokens = u.InputTokens
	}
	if len(notes) == 0 {
		return u, ""
	}
	return u, "the server reported usage that cannot be right (" + strings.Join(notes, "; ") + "); it was set to 0 or clamped"
}

// Add returns the sum of u and v.
func (u Usage) Add(v Usage) Usage {
	return Usage{
		InputTokens:       u.InputTokens + v.InputTokens,
		CachedInputTokens: u.CachedInputTokens + v.CachedInputTokens,
		OutputTokens:      u.OutputTokens + v.OutputTokens,
	}
}

// Request is one question about one record.
type Request struct {
	// RecordID identifies the record in logs and errors.
	RecordID string
	// Record is the record itself, for offline providers that answer without a model.
	Record json.RawMessage
	// System is the system prompt; empty means no system message.
	System string
	// User is the user prompt.
	User string
	// Model names the model to ask.
	Model string
	// Messages, when not empty, is the whole conversation and replaces System and User: a turn
	// of an agent's loop.
	Messages []Message
	// Tools, when not empty, are offered to the model: the answer is a tool call (Reply.ToolCalls)
	// or text, and no response_format is sent.
	Tools []Tool
	// ServiceTier is sent as service_tier when not empty (TierFlex, TierDefault, ...).
	ServiceTier string
}

// Service tiers of a request (--service-tier) and of a Batch API answer; the price table prices
// each (modelinfo.Rate.At).
const (
	TierAuto     = "auto"
	TierDefault  = "default"
	TierFlex     = modelinfo.TierFlex
	TierPriority = modelinfo.TierPriority
	// TierBatch is not sent: it marks an answer that came through the Batch API.
	TierBatch = modelinfo.TierBatch
)

// Roles of a Message.
const (
	RoleSystem    = "system"
	RoleUser      = "user"
	RoleAssistant = "assistant"
	RoleTool      = "tool"
)

// Message is one message of a conversation.
type Message struct {
	Role    string
	Content string
	// ToolCalls are an assistant message's calls.
	ToolCalls []ToolCall
	// ToolCallID is the call a tool message answers.
	ToolCallID string
}

// ToolCall is one function call the model made.
type ToolCall struct {
	ID        string
	Name      string
	Arguments string
}

// Tool is a function offered to the model.
type Tool struct {
	Name        string
	Description string
	// Parameters is the JSON schema of the arguments.
	Parameters map[string]any
	// Strict asks the provider to hold the arguments to Parameters exactly (OpenAI's strict
	// function calling); the schema must then be in the strict subset.
	Strict bool
}

// Reply is one answer.
type Reply struct {
	// Content is the answer text, expected to be a JSON object.
	Content string
	// Model is the model that answered, as reported by the server.
	Model string
	// Usage counts the tokens of this attempt.
	Usage Usage
	// RateLimit holds the rate-limit headers of the answer (x-ratelimit-*, retry-after), nil
	// when there were none.
	RateLimit http.Header
	// Warning says what was wrong with the answer's metadata and was fixed (absurd usage).
	Warning string
	// ToolCalls are the function calls of the answer, in the order the model made them.
	ToolCalls []ToolCall
	// ServiceTier is the tier the server says it served the request on ("" when it says none).
	ServiceTier string
}

// Provider makes ONE attempt at a request. It does not retry.
//
// On failure it returns an error that Classify understands (an *Error is best); it may return a
// Reply with Usage together with an error when the server billed tokens for a useless answer
// (a refusal or a truncated answer).
type Provider interface {
	Complete(ctx context.Context, req Request) (Reply, error)
}

// ProviderFunc adapts a function to a Provider.
type ProviderFunc func(ctx context.Context, req Request) (Reply, error)

// Complete calls f.
func (f ProviderFunc) Complete(ctx context.Context, req Request) (Reply, error) { return f(ctx, req) }
