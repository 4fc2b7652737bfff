// Package modelinfo holds what the tool knows about models, in one place: how a model name is
// normalised (lower case, no provider prefix such as "openai/"), which models reason and the
// parameters they take, their input windows, their default reasoning effort, the output expected
// per request, their tokenizer encoding, their prices (the embedded prices.json, standard and
// Batch API tiers, which --prices extends) and the latency the estimate assumes for each family.
// The worker, the estimate, the tokenizer, the run spec and the fake server all ask it; no other
// package writes a model's name.
package modelinfo
