// Package llm asks a chat model for one structured answer per record.
//
// A Provider makes exactly one attempt (OpenAI here; an offline provider lives elsewhere). A
// Caller wraps a Provider with a per-attempt timeout, schema validation of the answer, error
// classification and retries with exponential backoff that honours the server's retry-after.
//
// Every failure is reported as an *Error with a Class. Classes tell the caller what to do: retry
// the record (Retryable), fail the record (neither), or stop the whole run (Fatal).
//
// The API key never appears in an error message: messages are redacted of the key and of any
// "Bearer ..." value before they leave this package.
package llm
