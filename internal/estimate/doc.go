// Package estimate predicts what a run will cost and how long it will take, without making a
// single API call: `coordinator estimate` with the run's flags.
//
// Run streams the input once (internal/input) and renders the run's real prompt for every record
// (internal/prompt), counting its tokens with the tokenizer of package tokens. It keeps one int32
// per record (the prompt's token count), so a million records need about 4 MB besides the
// record being rendered; quantiles are exact.
//
// What is counted and what is assumed:
//
//   - Input tokens per request are the rendered system and user messages with the chat framing
//     (tokens.Estimate), plus the response schema that Structured Outputs adds to the prompt,
//     approximated by the tokens of the strict JSON schema. The schema part is an approximation;
//     the messages are counted exactly with the o200k_base tokenizer of current OpenAI models.
//
//   - Cached input: OpenAI caches prompt prefixes of 1024 tokens or more, in steps of 128
//     tokens. The system message is the same for every record, so when the response schema plus
//     the system message reach 1024 tokens, every request after the first wave (workers ×
//     concurrency requests start before any cache exists) is assumed to read that prefix from
//     the cache. This is the best case: caching is best-effort and a prefix sent faster than
//     about 15 requests a minute is spread over machines that may not have it yet.
//
//   - Output tokens per request come from the schema, not from a model: per property the tokens
//     of its JSON key, plus for an enum the mean tokens of its quoted values, for a string with
//     maxLength about maxLength/4 tokens, for a string without one 60 tokens, 2 for an integer, 3
//     for a number, 1 for a boolean, two items for an array; plus braces and commas.
//
//   - Reasoning models (llm.IsReasoningModel) also bill hidden reasoning tokens as output. They
//     get an allowance per request by reasoning effort: none and minimal 0, low 200, medium 600,
//     high 2000, xhigh 4000. Without --reasoning-effort, gpt-5.1 and gpt-5.2 default to none and
//     the other reasoning models (gpt-5, gpt-5-mini, gpt-5-nano, o-series) to medium. This
//     allowance is the largest uncertainty of the estimate: real reasoning use varies with the
//     record and can be several times the allowance. --max-completion-tokens caps the total.
//
//   - Wall time is the largest of three bounds: records × latency / (workers × concurrency),
//     records / --rpm minutes, and (input + output tokens) / --tpm minutes; plus a fixed start
//     overhead (StartOverhead) for checking the input, writing batches and starting workers.
//     The per-request latency is --latency when given, else a default per model family: time to
//     first token plus output tokens (reasoning included) divided by the family's typical output
//     speed (see Latency). Retries and rate-limit waits beyond --rpm/--tpm are not modelled.
//
// Records whose input tokens plus expected output exceed a model's context window
// (tokens.ContextWindow; for gpt-5 models that is the input limit alone, so the check is a little
// conservative there) are counted per model as too long; they are still included in the cost.
//
// Every model is counted with o200k_base, the encoding of all the models in the price table; for
// other vendors' models the counts are an approximation. Duplicate IDs are counted, not refused
// as the run refuses them without --dedupe; with Dedupe the reader keeps the set of IDs, as the
// run does.
package estimate
