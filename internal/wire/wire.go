package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// Types of lines.
const (
	// Worker to coordinator: the rate-permit protocol (package ratelimit).
	Acquire   = "acquire"
	Cancel    = "cancel"
	Reconcile = "reconcile"
	Feedback  = "feedback"
	// Took counts a request sent without asking (Tokens), while the coordinator says permits
	// are free: no grant answers it.
	Took = "took"
	// Worker to coordinator: events.
	Start  = "start"
	Record = "record"
	Retry  = "retry"
	Fatal  = "fatal"
	End    = "end"
	// Heartbeat says the worker is alive, every few seconds: attempts started and records
	// finished so far by this process, and how many of its requests wait for a permit.
	Heartbeat = "heartbeat"
	// Finished says a serving worker (worker --serve) has ended the batch it was assigned:
	// Batch, and Code, the exit code a worker of that one batch would have ended with. With
	// 0 or 1 the process waits for the next assign; with any other code it exits with it.
	Finished = "finished"
	// Coordinator to worker.
	Grant = "grant"
	// Free says permits are free: the run has no limit, none was learned and nothing is paused,
	// so a request is sent at once and counted with a took line, with no round trip. Limited
	// ends that for the rest of the run (a limit learned, a 429, an outage): acquire again.
	Free    = "free"
	Limited = "limited"
	// Assign hands a serving worker its next batch file (Batch).
	Assign = "assign"
	// Boost lends a worker the request slots of workers gone idle once nothing is left to hand
	// out (--hedge): Extra copies may run at once, Budget more may be sent, and only requests
	// older than their own median latency by the latency model (or P90MS, the run's p90
	// latency, without one) are copied.
	Boost = "boost"
	// Hello opens a permit connection to a limit server over TCP. The run's token never crosses
	// the wire: the worker sends a nonce; the server answers with its own nonce and a proof that
	// it holds the token (an HMAC of both nonces); the worker checks it before it sends its own
	// proof. A listener that is not the run's server (a stale limits.json's port, taken by
	// something else) learns nothing (see ratelimit.Dial).
	Hello = "hello"
)

// ClassStorage is a fatal line's class when a worker cannot write its files (a full disk); the
// other fatal classes are the API's error classes (see package llm).
const ClassStorage = "storage"

// ClassFlexUnavailable is the class of a retry line for a request the flex tier refused for want
// of capacity (HTTP 429 "Resource Unavailable"): not the key's rate limit, so not counted as one.
const ClassFlexUnavailable = "flex_unavailable"

// Failure classes of agent records (--agent), in record lines and the failures files.
const (
	// ClassAgentLimit is a record whose loop reached --agent-max-turns or --agent-max-tokens
	// (or answered with text twice) under --agent-fallback fail.
	ClassAgentLimit = "agent_limit"
	// ClassToolServer is a record whose loop called a tool of an MCP server that failed.
	ClassToolServer = "tool_server_failed"
)

// Msg is one line. Fields a type does not use are left zero and omitted on the wire.
type Msg struct {
	Type   string `json:"type"`
	Worker int    `json:"worker,omitempty"`

	// Permits: acquire, cancel, reconcile, grant.
	Seq       uint64 `json:"seq,omitempty"`
	Tokens    int    `json:"tokens,omitempty"`
	Estimated int    `json:"estimated,omitempty"`
	Actual    int    `json:"actual,omitempty"`
	Error     string `json:"error,omitempty"`
	Nonce     string `json:"nonce,omitempty"` // hello
	Proof     string `json:"proof,omitempty"` // hello

	// Batch is a batch file's path (assign, finished); Code an exit code (finished).
	Batch string `json:"batch,omitempty"`
	Code  int    `json:"code,omitempty"`

	// Status is the HTTP status of an answer: feedback, retry and fatal lines.
	Status int `json:"status,omitempty"`

	// Rate-limit feedback.
	RetryAfterMS      int64 `json:"retry_after_ms,omitempty"`
	RemainingRequests int   `json:"remaining_requests,omitempty"`
	RemainingTokens   int   `json:"remaining_tokens,omitempty"`
	LimitRequests     int   `json:"limit_requests,omitempty"`
	LimitTokens       int   `json:"limit_tokens,omitempty"`
	ResetRequestsMS   int64 `json:"reset_requests_ms,omitempty"`
	ResetTokensMS     int64 `json:"reset_tokens_ms,omitempty"`
	Outage            bool  `json:"outage,omitempty"` // the request reached no server

	// Events.
	ID           string  `json:"id,omitempty"`
	OK           bool    `json:"ok,omitempty"`
	Class        string  `json:"class,omitempty"`
	Message      string  `json:"message,omitempty"`
	Attempt      int     `json:"attempt,omitempty"`
	Attempts     int     `json:"attempts,omitempty"`
	Model        string  `json:"model,omitempty"`
	InputTokens  int64   `json:"input_tokens,omitempty"`
	CachedTokens int64   `json:"cached_tokens,omitempty"`
	OutputTokens int64   `json:"output_tokens,omitempty"`
	CostUSD      float64 `json:"cost_usd,omitempty"`
	CostUnknown  bool    `json:"cost_unknown,omitempty"`
	LatencyMS    int64   `json:"latency_ms,omitempty"`
	// Cells is an answered record's row as written to worker_N_results.csv (record), for the
	// coordinator's results stream.
	Cells []string `json:"cells,omitempty"`
	// Cached says the answer came from the response cache (record); Carried from an earlier
	// run, the record unchanged since (--since-run).
	Cached  bool `json:"cached,omitempty"`
	Carried bool `json:"carried,omitempty"`
	// Hedged says a copy of the record's request was sent (--hedge); HedgeWon that the copy's
	// answer was the one kept (record).
	Hedged   bool `json:"hedged,omitempty"`
	HedgeWon bool `json:"hedge_won,omitempty"`
	// Turns and ToolCalls describe an agent record's loop (record); Fallback says a limit
	// sent it to the one-shot prompt.
	Turns     int            `json:"turns,omitempty"`
	ToolCalls map[string]int `json:"tool_calls,omitempty"`
	Fallback  bool           `json:"fallback,omitempty"`
	// FlexRefusals counts the times the flex tier refused the record's request (record);
	// FlexFellBack says it then went on the default tier (--flex-fallback).
	FlexRefusals int  `json:"flex_refusals,omitempty"`
	FlexFellBack bool `json:"flex_fell_back,omitempty"`
	// Extra, Budget and P90MS are a boost's lending.
	Extra  int   `json:"extra,omitempty"`
	Budget int   `json:"budget,omitempty"`
	P90MS  int64 `json:"p90_ms,omitempty"`
	// LatBaseMS, LatPerKTokMS and LatMedian are a boost's latency model (tally.LatencyModel):
	// a request of T input tokens is copied once older than LatMedian × (LatBaseMS +
	// LatPerKTokMS × T/1000), its own median latency; without them, once older than P90MS.
	LatBaseMS    float64 `json:"lat_base_ms,omitempty"`
	LatPerKTokMS float64 `json:"lat_per_ktok_ms,omitempty"`
	LatMedian    float64 `json:"lat_median,omitempty"`
	DelayMS      int64   `json:"delay_ms,omitempty"`
	Pending      int64   `json:"pending,omitempty"`
	Done         int64   `json:"done,omitempty"`
	// MaxRSSKB is the worker's peak resident set size (end).
	MaxRSSKB int64 `json:"max_rss_kb,omitempty"`
	// Started and Waiting are a heartbeat's attempts started and requests waiting for a
	// permit; its records finished are in Done.
	Started int64 `json:"started,omitempty"`
	Waiting int64 `json:"waiting,omitempty"`
}

// IsPermit reports whether m belongs to the rate-permit protocol rather than to the events.
func (m Msg) IsPermit() bool {
	switch m.Type {
	case Acquire, Cancel, Reconcile, Feedback, Grant, Took, Free, Limited:
		return true
	}
	return false
}

// ErrUnknown means a line is JSON but not of a type this protocol knows.
var ErrUnknown = errors.New("not a protocol line")

// Decode reads one line (without its line end).
func Decode(line []byte) (Msg, error) {
	var m Msg
	if err := json.Unmarshal(line, &m); err != nil {
		return m, fmt.Errorf("wire: %w: %w", err, ErrUnknown)
	}
	switch m.Type {
	case Acquire, Cancel, Reconcile, Feedback, Grant, Took, Free, Limited, Start, Record, Retry, Fatal, End, Heartbeat, Hello, Finished, Assign, Boost:
		return m, nil
	}
	return m, fmt.Errorf("wire: type %q: %w", m.Type, ErrUnknown)
}

// Encode returns m as one line, with its line end.
func Encode(m Msg) []byte {
	b, err := json.Marshal(m)
	if err != nil {
		// A Msg holds numbers, strings and booleans: Marshal cannot fail on it.
		panic("wire: encode: " + err.Error())
	}
	return append(b, '\n')
}

// Writer writes whole lines to one stream from many goroutines, each line with one Write call.
// Lines sent with Post wait (at most PostDelay) to share a write with the lines after them; a
// Send writes them first, so the order is kept. A nil *Writer discards.
type Writer struct {
	mu sync.Mutex
	w  io.Writer
	// pending holds posted lines not written yet; armed says a flush is scheduled.
	pending []byte
	armed   bool
	err     error // the first write error of a posted line
}

// PostDelay bounds how long a posted line waits for company.
const PostDelay = 5 * time.Millisecond

// postLimit is the pending size past which a Post writes at once.
const postLimit = 32 << 10

// NewWriter writes to w, or returns nil (discarding) when w is nil.
func NewWriter(w io.Writer) *Writer {
	if w == nil {
		return nil
	}
	return &Writer{w: w}
}

// Send writes one line. The error tells the sender that the other end is gone; events ignore
// it (the other end notices through the pipes), permit requests report it.
func (w *Writer) Send(m Msg) error {
	if w == nil {
		return nil
	}
	line := Encode(m)
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.pending) > 0 {
		line = append(w.pending, line...)
		w.pending = nil
	}
	_, err := w.w.Write(line)
	return err
}

// Post queues a line that may wait up to PostDelay (an event, feedback): it is written with the
// next Send, the next Flush, or when the delay ends, whichever is first. The error is that of an
// earlier posted write (the other end is gone).
func (w *Writer) Post(m Msg) error {
	if w == nil {
		return nil
	}
	line := Encode(m)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pending = append(w.pending, line...)
	if len(w.pending) >= postLimit {
		w.flushLocked()
	} else if !w.armed {
		w.armed = true
		time.AfterFunc(PostDelay, w.timed)
	}
	return w.err
}

// Flush writes the posted lines now.
func (w *Writer) Flush() error {
	if w == nil {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.flushLocked()
	return w.err
}

func (w *Writer) timed() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.armed = false
	w.flushLocked()
}

func (w *Writer) flushLocked() {
	if len(w.pending) == 0 {
		return
	}
	if _, err := w.w.Write(w.pending); err != nil && w.err == nil {
		w.err = err
	}
	w.pending = w.pending[:0]
}
