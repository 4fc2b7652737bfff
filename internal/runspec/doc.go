// Package runspec reads and writes OUT/run.json: everything a worker needs to reproduce a run
// (provider, model, base URL, prompt, schema, limits, timeouts, the input's content hash and the
// batch plan). It never holds the API key; workers read that from their environment.
//
// run.json is written last when a run's batch files are ready, so its presence marks a complete
// set of batches. A rerun compares the settings that decide answers or batching (Fingerprint)
// and resumes only when they match.
package runspec
