// Package merge joins the workers' results and failures files into final_results.csv and
// final_failures.csv, in input order.
//
// For each batch in turn, Merge loads that batch's worker_N_results.csv into a map keyed by ID
// (the first column) and its worker_N_failures.csv likewise, so memory is bounded by one batch,
// then streams the batch's IDs in input order. Each ID lands in at most one of the two outputs:
//
//   - a result row if the worker wrote one (the first wins; later duplicates, left by a resumed
//     run, are counted and dropped), even when the worker also recorded a failure for it;
//   - otherwise the worker's last failure row for it: it failed for good;
//   - otherwise neither: it is not done yet (an interrupted or stopped run), counted in
//     Stats.Missing, and a rerun does it. final_failures.csv lists only records that failed.
//
// Rows in a worker file whose ID is not in the batch are ignored and counted as stray. Torn last
// lines (a worker killed mid-write) are ignored and counted.
//
// Both outputs are written atomically (package safefile): nothing under the final names changes
// unless the whole merge succeeds, and final_failures.csv is always written, with only its header
// when nothing failed. Every output cell passes through results.SafeCell, so a model answer
// cannot run as a spreadsheet formula; worker files hold raw values.
package merge
