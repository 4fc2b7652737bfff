// Package fakeai is an OpenAI-compatible Chat Completions server for tests, benchmarks and
// scripts. It answers structured-output requests with schema-valid JSON built from the request's
// own schema, and injects faults (429, 5xx, dropped connections, stalls, broken JSON, schema
// breaks, refusals, truncation) at seeded random rates, plus server-side RPM/TPM limits.
//
// Use it in process with httptest.NewServer(fakeai.New(cfg)) or standalone with cmd/fakeai.
package fakeai
