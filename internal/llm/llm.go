package llm

import (
	"context"
	"encoding/json"
	"net/http"
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
