package modelinfo

import "strings"

// The tokenizer encodings of OpenAI's models, by the names the tokenizer library gives them.
const (
	EncodingO200k  = "o200k_base"
	EncodingCl100k = "cl100k_base"
)

// Encoding names the tokenizer encoding of model: o200k_base for gpt-4o, gpt-4.1, gpt-4.5,
// gpt-5, gpt-oss and the o-series (with or without a provider prefix such as "openai/"),
// cl100k_base otherwise (gpt-4, gpt-3.5-turbo, and the fallback for unknown models).
func Encoding(model string) string {
	m := Normalize(model)
	for _, p := range []string{"gpt-4o", "chatgpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "gpt-oss", "o1", "o3", "o4"} {
		if strings.HasPrefix(m, p) {
			return EncodingO200k
		}
	}
	return EncodingCl100k
}
