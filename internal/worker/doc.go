// Package worker runs one batch: it reads batch_N.json and the run.json beside it, asks the
// provider for each record's categories, and appends every answer to worker_N_results.csv (and
// every record that failed for good to worker_N_failures.csv) as soon as it has it, flushed. It
// logs one JSON line per request to worker_N_log.txt.
//
// Started again on the same batch it skips the IDs already answered or failed, and counts the
// attempts already spent on the others from worker_N_attempts.log, so a crash loses at most the
// requests in flight and never grants a record more attempts than --max-attempts.
package worker
