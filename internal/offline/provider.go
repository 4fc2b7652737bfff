package offline

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/trialcat/trialcat/internal/llm"
)

// Model is the model name the offline categorizer reports.
const Model = "offline"

// Provider answers requests with Categorize, making no network call. Its answers are the JSON
// of the default schema's values, validated like any model's answer.
type Provider struct{}

// Complete implements llm.Provider.
func (Provider) Complete(ctx context.Context, req llm.Request) (llm.Reply, error) {
	if err := ctx.Err(); err != nil {
		return llm.Reply{}, err
	}
	values, err := Categorize(req.Record)
	if err != nil {
		return llm.Reply{}, &llm.Error{Class: llm.ClassBadRequest, Message: fmt.Sprintf("offline categorizer: %v", err)}
	}
	content, err := json.Marshal(values)
	if err != nil {
		return llm.Reply{}, fmt.Errorf("offline categorizer: %w", err)
	}
	return llm.Reply{Content: string(content), Model: Model}, nil
}
