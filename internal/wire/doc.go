// Package wire is the line protocol between a worker and the coordinator that started it, the
// one contract both processes share on their pipes. Every line is one JSON object (a Msg) with a
// "type"; a line is decoded once, by Decode, and dispatched on its type.
//
// Worker to coordinator, on the worker's stdout:
//
//	acquire    ask for a rate permit: seq, tokens (the request's estimate)
//	cancel     withdraw an acquire the worker no longer waits for: seq
//	reconcile  a request's real token usage: estimated, actual
//	feedback   what an answer said about rate limits: status, retry_after_ms,
//	           remaining_requests/_tokens (-1 unknown), limit_requests/_tokens,
//	           reset_requests_ms/_tokens_ms
//	start      the worker read its batch: pending to do, done already
//	record     a record was answered (ok) or failed for good: id, attempts, model, tokens,
//	           cost_usd (cost_unknown), latency_ms and its row's cells, or class and message;
//	           hedged and hedge_won when a copy of its request was sent
//	retry      an attempt failed and will be retried: id, attempt, class, status, delay_ms
//	fatal      the API refused the run (bad key, no quota): class, status, message
//	end        the worker finished its batch: done, max_rss_kb
//	heartbeat  every few seconds: started (attempts), done (records finished), waiting
//	           (requests waiting for a permit, or queued at the Batch API); a worker not
//	           heard from is killed
//
// Coordinator to worker, on the worker's stdin:
//
//	grant      answers an acquire: seq, and error when refused
//
// A worker that runs under a scheduler instead (Slurm, Kubernetes) may speak the permit lines
// over TCP to a limit server (coordinator limits): it opens with hello and the server's token,
// the server answers hello, and from then on the lines are the same as on the pipes.
//
// The coordinator holds the worker's stdin open for its whole life; EOF there means the
// coordinator has gone and the worker stops. Stderr is the worker's log, never protocol.
// Events are not the record of truth: the results files are. A line of an unknown type is an
// error to Decode, so a line that is not protocol (a stray print) is reported, not acted on.
package wire
