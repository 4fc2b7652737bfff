// Package tokens counts the tokens of prompts the way OpenAI's tokenizers do, to budget requests
// against a tokens-per-minute limit and to estimate a run's cost before it starts.
//
// Count and Estimate use o200k_base, the encoding of current OpenAI models (gpt-4o, gpt-4.1,
// gpt-5, the o-series). ForModel picks the encoding of a given model: o200k_base for those
// families, cl100k_base for anything else (older OpenAI models; for other vendors' models it is
// an approximation). The encoders are the tables embedded in github.com/tiktoken-go/tokenizer,
// built on first use, once per process.
//
// ContextWindow returns what a model accepts per request, for checking prompts before sending
// them.
package tokens
