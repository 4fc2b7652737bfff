// Package display shows the coordinator's live progress to the operator.
//
// On a terminal it draws, with github.com/vbauerster/mpb/v8, one bar per running worker (its
// batch, records done of the batch, the rate of its current process, its restarts) above an
// overall bar (records done of the total, records per minute, ETA) and a line of counters
// (workers running, failures, retries and 429s, restarts, cost so far, tokens):
//
//	batch 3    12/25 [==================>-------------------] 48.0%  10 rec/min restarts 1
//	batch 4     9/25 [=============>------------------------] 36.0% 8.5 rec/min restarts 0
//	total    240/400 [========================>-------------] 60.0% 118 rec/min eta 1m21s
//	  workers 20  failed 2  retries 3 (429s 1)  restarts 1  cost $0.0123  tokens 51.2k/8.1k
//
// A worker's bar appears when the worker starts and goes away when it ends. When the terminal
// is too short for every bar, the top ones are left out; the overall bar stays.
//
// Anywhere else (CI, a pipe, nohup) it writes one plain, greppable line every few seconds:
//
//	progress 240/400 (60.0%) 118 rec/min eta 1m21s cost $0.0123 tokens 51234/8123 retries 3 (429s 1) failed 2 restarts 1 workers 20
//
// The coordinator's log must go through [Display.LogWriter]: while bars are on screen, each
// whole log line is printed above them at the next redraw instead of tearing them.
//
// It draws the run's tally (package tally), which the coordinator feeds from the workers'
// events; the display keeps no counts of its own.
package display
