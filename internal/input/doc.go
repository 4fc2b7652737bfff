// Package input reads the records to categorize from a file, streaming: a JSON array of
// objects, JSON Lines, a ClinicalTrials.gov API v2 page ({"studies": [...]}) or CSV with a
// header row, detected from the content.
//
// Scan validates a whole file once (format, syntax, UTF-8, IDs, duplicates) before anything is
// written; Open and Reader.Next then stream the same records, each as a compact JSON object
// with its ID. Memory stays flat: one record at a time plus the set of IDs. Every problem with
// the input is an *Error that names the file, line, column and record and says what to do; it
// wraps exitcode.ErrUsage.
package input
