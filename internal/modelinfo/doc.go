// Package modelinfo holds what the tool knows about models, in one place: how a model name is
// normalised (lower case, no provider prefix such as "openai/"), which models reason and the
// parameters they take, their input windows, their default reasoning effort and the output
// expected per request. The worker, the estimate, the price table, the tokenizer choice and the
// fake server all ask it.
package modelinfo
