// Package tally keeps a run's live accounting in the coordinator: records done, failed and
// remaining, retries and 429s, restarts, tokens and cost, overall and per batch, fed by the
// workers' events (package wire) and by the coordinator's own view of its worker processes.
// The live display draws a Snapshot, the --max-cost check reads its spend, and summary.json takes
// its retries, restarts and per-worker figures; none of them keeps counts of its own.
package tally
