// Package ratelimit keeps a whole run inside its requests-per-minute and tokens-per-minute
// budgets, across every worker process, and slows everyone down together when the API answers
// 429 anyway.
//
// A Limiter is the budget itself. It paces grants with a continuously refilling bucket per
// budget (requests and tokens) whose rate is the limit spread over a minute plus a safety margin
// (Config.Margin, for the varying delay between a grant and the request reaching the server),
// and whose capacity is small (Config.Burst, a quarter of a second's worth), so a run never
// starts with a burst and a server that refills its own bucket continuously is never sent more
// than its refill rate plus that quarter second. On top of the buckets, a log of the grants of
// the last minute plus the margin guarantees that no such span ever holds more than the limit,
// so a server that counts over a sliding 60-second window never sees more than the limit
// either. Callers are served strictly in arrival order, so a request for many tokens is never
// starved by small ones.
//
// With the margin of one second, a limit that binds is used at 60/61 (98.4%) when requests are
// small against it; requests that each take a large share of the minute's tokens leave gaps a
// FIFO limiter cannot fill (about 95% at requests of up to 7% of TPM, 85% at up to 30%).
//
// The API's answers steer the limiter through Feedback: a 429 pauses every grant until its
// retry-after (or DefaultPause) and lowers the rates multiplicatively (to 80%, at most once per
// two seconds, down to 10% of the configured rates); every five seconds without a 429 gives back
// 5% until the configured rates are reached again. x-ratelimit-remaining-* headers say how much
// the server still allows; grants stop once that is spent, until the server's reset. With no
// limits configured (RPM and TPM 0) the limiter grants at once except during those pauses.
// Reconcile corrects the token budget once the server reports what a request really used.
//
// Between processes the budget is shared over the worker's pipes: a worker's Client sends
// JSON lines ({"type":"acquire"|"cancel"|"reconcile"|"feedback",...}) on its stdout, beside its
// event lines, and reads {"type":"grant",...} lines on its stdin; the coordinator feeds every
// worker's lines to one Server, which holds the run's Limiter. Limiter and Client both implement
// Permits, so a worker does not care which one it has: a worker run by hand uses its own Limiter
// with the whole budget.
//
// While the run's Limiter is Free (no limit configured or learned, no 429, pause or outage) and
// the run does not RequireGrants (a cost budget), the Server says {"type":"free"} to each worker
// it attaches, and a Client then sends at once and
// posts {"type":"took","tokens":N} for the Server to count (Limiter.Take), with no round trip;
// the first feedback that shows a limit makes the Server say {"type":"limited"} to every worker,
// for the rest of the run.
package ratelimit
