package llm

import (
	"encoding/json"
	"math"
	"strconv"

	"github.com/trialcat/trialcat/internal/record"
)

// completion is the part of a Chat Completions answer the tool reads, decoded without the SDK's
// reflective decoder. It is lenient where a server may be odd and the answer is still usable: a
// text field that is not a string reads as empty, a count that is not a whole number in range
// reads as what Usage.Sane then drops.
type completion struct {
	Model       lenientString `json:"model"`
	ServiceTier lenientString `json:"service_tier"`
	Choices     []struct {
		FinishReason lenientString `json:"finish_reason"`
		Message      struct {
			Content   lenientString `json:"content"`
			Refusal   lenientString `json:"refusal"`
			ToolCalls []struct {
				ID       lenientString `json:"id"`
				Type     lenientString `json:"type"`
				Function struct {
					Name      lenientString `json:"name"`
					Arguments lenientString `json:"arguments"`
				} `json:"function"`
			} `json:"tool_calls"`
		} `json:"message"`
	} `json:"choices"`
	Usage struct {
		PromptTokens        count `json:"prompt_tokens"`
		CompletionTokens    count `json:"completion_tokens"`
		PromptTokensDetails struct {
			CachedTokens count `json:"cached_tokens"`
		} `json:"prompt_tokens_details"`
	} `json:"usage"`
}

// decodeCompletion reads an answer's body.
func decodeCompletion(body []byte) (*completion, error) {
	var c completion
	if err := json.Unmarshal(body, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// lenientString is a JSON string, or "" for null or any other value.
type lenientString string

func (s *lenientString) UnmarshalJSON(b []byte) error {
	if v, ok := record.PlainString(b); ok {
		*s = lenientString(v)
		return nil
	}
	var v string
	if json.Unmarshal(b, &v) == nil {
		*s = lenientString(v)
	} else {
		*s = ""
	}
	return nil
}

// count is a token count: a number clamped to the int64 range (a fraction cut, a value past it
// kept as the largest or smallest), 0 for anything else.
type count int64

func (c *count) UnmarshalJSON(b []byte) error {
	var f float64
	var err error
	if len(b) > 0 && (b[0] == '-' || b[0] >= '0' && b[0] <= '9') {
		// A JSON number (the decoder checked the document): what it would parse it with.
		if f, err = strconv.ParseFloat(string(b), 64); err != nil {
			f = math.NaN() // out of float64's range: the decoder refuses it too
		}
	} else if json.Unmarshal(b, &f) != nil {
		f = math.NaN()
	}
	if math.IsNaN(f) {
		*c = 0
		return nil
	}
	switch {
	case f >= math.MaxInt64:
		*c = math.MaxInt64
	case f <= math.MinInt64:
		*c = math.MinInt64
	default:
		*c = count(f)
	}
	return nil
}
