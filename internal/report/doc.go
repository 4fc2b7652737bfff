// Package report renders a finished run folder as one self-contained HTML page, report.html: the
// run's status and totals from summary.json, the distribution of every category column of
// final_results.csv, a per-worker timeline from the worker_N_log.txt files, latency and token
// histograms, cost per model and per worker, and the failures from final_failures.csv.
//
// The page needs no network: its CSS and SVG charts are inline, it loads no script, font or image,
// and it reads fine when printed or opened from disk. Everything taken from the data is escaped by
// html/template, so a model answer such as "<script>" shows as text.
//
// # Bounded memory
//
// Files are read as streams and only counters are kept: a category column keeps at most
// maxDistinct distinct values (values first seen after that are counted as "other"), histograms
// have fixed logarithmic buckets, the failures table keeps its first maxFailureRows rows and the
// timeline keeps at most maxFailedTicks failed-attempt times. A final_results.csv of a million rows
// is read in seconds in a few megabytes.
//
// # Missing or damaged files
//
// Every input is optional. A missing file leaves its section with a short note, and a file that
// cannot be read or is damaged part-way is reported in the page's notes with what was read before
// the damage still shown. Write fails only when the folder cannot be read or report.html cannot be
// written.
package report
