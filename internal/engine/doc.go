// Package engine runs a whole categorization: it checks the input, splits it into
// batch_N.json files, writes run.json, keeps --workers worker processes running until every batch
// is done (restarting a worker that crashes), merges their results into final_results.csv and
// final_failures.csv, and writes summary.json.
//
// Nothing is written until the flags, the schema, the prompt and every input record have been
// checked, so a usage or input error leaves an existing output folder exactly as it was.
package engine
