package summary

import (
	"encoding/json"
	"fmt"
	"os"
	"time"
)

// Statuses of a run.
const (
	StatusComplete      = "complete"
	StatusRecordsFailed = "records_failed"
	StatusInterrupted   = "interrupted"
	StatusAPIRefused    = "api_refused"
	StatusBudgetReached = "budget_reached"
	StatusStorage       = "storage_error" // a worker could not write its files (a full disk)
	StatusError         = "error"
)

// WorkerRun is what happened to one batch's worker process(es).
type WorkerRun struct {
	Batch    int     `json:"batch"`
	Records  int64   `json:"records"`
	Seconds  float64 `json:"seconds"`
	Exit     string  `json:"exit"`
	ExitCode int     `json:"exit_code"`
	Restarts int     `json:"restarts"`
	Started  bool    `json:"started"`
	// MaxRSSKB is the largest peak resident set size of this batch's worker processes.
	MaxRSSKB int64 `json:"max_rss_kb"`
	// Retries counts failed attempts that were tried again.
	Retries int64 `json:"retries"`
	// Processes counts the times a worker process took the batch up (1 + restarts, when
	// started); the coordinator's processes stay up across batches (Summary.WorkerProcesses).
	Processes int `json:"processes"`
	// SpawnReadyMS is the time from the batch's last hand-over (its assign) to its worker
	// reporting the batch read; ExitSeenMS from its end event to the coordinator seeing the
	// batch finished.
	SpawnReadyMS float64 `json:"spawn_ready_ms"`
	ExitSeenMS   float64 `json:"exit_seen_ms"`
	// Slot is the worker slot (0 to --workers-1) that ran the batch.
	Slot int `json:"slot"`
}

// Pass is one pass of a run: one start of the coordinator.
type Pass struct {
	Answered       int64   `json:"answered"`
	Failed         int64   `json:"failed"`
	InputTokens    int64   `json:"input_tokens"`
	OutputTokens   int64   `json:"output_tokens"`
	CostUSD        float64 `json:"estimated_cost_usd"`
	RequestSeconds float64 `json:"request_seconds"`
	WallSeconds    float64 `json:"wall_seconds"`
}

// Phases are when the coordinator passed each step of a run, for timing it from outside (the
// benchmarks) without reading log text. A phase not reached is the zero time.
type Phases struct {
	// CheckingInputAt: flags, schema and prompt are ready; the input is about to be read.
	CheckingInputAt time.Time `json:"checking_input_at"`
	// InputCheckedAt: the input was read once for its IDs, count and hash, and run.json
	// written; the batch files are written from here on, and the first worker starts as soon
	// as the first batch file is committed.
	InputCheckedAt time.Time `json:"input_checked_at,omitzero"`
	// BatchesReadyAt: every batch file was written, each record's prompt checked as its batch
	// was (or they were found, on a resume). Workers may have started before.
	BatchesReadyAt time.Time `json:"batches_ready_at"`
	// FirstWorkerAt: the first worker process started.
	FirstWorkerAt time.Time `json:"first_worker_at"`
	// LastWorkerExitAt: the last worker process was seen to exit; merging follows.
	LastWorkerExitAt time.Time `json:"last_worker_exit_at"`
	// FirstRecordAt and LastRecordAt: the first and the last record of the pass reported done
	// (answered or failed). The run's end-to-end overhead is the time before the first and
	// after the last.
	FirstRecordAt time.Time `json:"first_record_at,omitzero"`
	// FirstRequestAt: a worker first asked for a rate permit, just before its first request
	// to the API (zero offline: no request).
	FirstRequestAt time.Time `json:"first_request_at,omitzero"`
	LastRecordAt   time.Time `json:"last_record_at,omitzero"`
}

// WorkerSummary is one batch's line in summary.json.
type WorkerSummary struct {
	WorkerRun
	Succeeded    int64   `json:"succeeded"`
	Failed       int64   `json:"failed"`
	InputTokens  int64   `json:"input_tokens"`
	OutputTokens int64   `json:"output_tokens"`
	CostUSD      float64 `json:"cost_usd"`
}

// Summary is summary.json.
type Summary struct {
	Status   string `json:"status"` // one of the Status constants
	Out      string `json:"out"`
	Provider string `json:"provider"`
	Model    string `json:"model"`
	// Backend is how this pass asked: live or batch-api (costs at Batch API prices).
	Backend string `json:"backend,omitempty"`
	// Server is the host (and port) of the API the run asked, never its user:password; ""
	// means OpenAI's.
	Server    string `json:"server,omitempty"`
	Records   int64  `json:"records"`
	Succeeded int64  `json:"succeeded"`
	Failed    int64  `json:"failed"` // failed for good (final_failures.csv)
	// Remaining counts records not done yet (interrupted, stopped, or a worker out of
	// restarts): in neither final file; rerunning the same command does them.
	Remaining         int64            `json:"remaining"`
	FailedByClass     map[string]int64 `json:"failed_by_class"`
	InputTokens       int64            `json:"input_tokens"`
	CachedInputTokens int64            `json:"cached_input_tokens"`
	OutputTokens      int64            `json:"output_tokens"`
	CostUSD           float64          `json:"estimated_cost_usd"`
	CostKnown         bool             `json:"cost_known"`
	// CachedShare is CachedInputTokens over InputTokens: the share of prompt tokens the
	// provider's prompt cache served (priced at the cached rate).
	CachedShare float64 `json:"cached_share"`
	// CostPerRecord is CostUSD over the answered records; CostByModel and CostByTier split
	// CostUSD by the row's model and service tier ("" for none said: a response cache's or
	// carried answer, or a server that names no tier). Each row's cost_usd sums to CostUSD.
	CostPerRecord float64            `json:"cost_per_record_usd"`
	CostByModel   map[string]float64 `json:"cost_by_model,omitempty"`
	CostByTier    map[string]float64 `json:"cost_by_tier,omitempty"`
	// ServiceTiers counts the answered records by the tier they were served on.
	ServiceTiers map[string]int64 `json:"service_tiers,omitempty"`
	// Flex is this pass's flex tier (--service-tier flex): its refusals, and the records sent
	// on the default tier after --flex-fallback of them.
	Flex *Flex `json:"flex,omitempty"`
	// Cached counts the answers taken from the response cache (--cache): no request, cost 0.
	Cached int64 `json:"cached"`
	// Carried counts the answers taken from the earlier run of --since-run (records unchanged
	// since: no request, cost 0).
	Carried int64 `json:"carried"`
	// Reviewed counts the answers of final_results.csv that are a person's corrections
	// (source review); StaleReviews lists the corrections not applied because their record
	// changed since the review.
	Reviewed int64 `json:"reviewed"`
	// Cascade is a --cascade run's: records by the model that decided them, and how many went
	// past the first model.
	Cascade *Cascade `json:"cascade,omitempty"`
	// Confidence is each voted field's mean confidence over the answered records (--votes):
	// the mean share of a record's votes that gave the kept value.
	Confidence   map[string]float64 `json:"mean_confidence,omitempty"`
	StaleReviews []string           `json:"stale_reviews,omitempty"`
	Retries      int64              `json:"retries"`
	RateLimited  int64              `json:"rate_limited_429s"`
	Restarts     int64              `json:"restarts"`
	// Hedged counts the records of this pass whose request got a second copy (--hedge), and
	// HedgeWins those whose copy's answer was kept; the copies' prompt tokens are in the
	// records' tokens and cost.
	Hedged    int64 `json:"hedged_requests"`
	HedgeWins int64 `json:"hedge_wins"`
	// Agent sums the agent's loops over the whole run (--agent); nil for a one-shot run.
	Agent *Agent `json:"agent,omitempty"`
	// WorkerProcesses counts the worker processes this pass started: one per slot that got a
	// batch, plus one for each that died.
	WorkerProcesses int `json:"worker_processes"`
	// WallSeconds is this pass's wall time (this start of the coordinator to its end).
	WallSeconds float64 `json:"wall_seconds"`
	// RequestSeconds sums the latency of every answered record of the whole run (all passes).
	RequestSeconds float64 `json:"request_seconds"`
	// Speedup is Pass.RequestSeconds over WallSeconds: this pass's gain over one sequential
	// worker.
	Speedup float64 `json:"speedup_vs_sequential"`
	// OutsideRequests is the share of this pass's request slots' time (wall × workers ×
	// concurrency) not spent waiting for answers: start-up, retries' backoff, merging, idle
	// tails.
	OutsideRequests float64 `json:"outside_requests_share"`
	// Pass is what this pass of the run did (a resumed run has earlier passes); the totals
	// above (records, tokens, cost) are for the whole run.
	Pass Pass `json:"this_pass"`
	// CoordinatorMaxRSSKB is the coordinator's own peak resident set size.
	CoordinatorMaxRSSKB int64           `json:"coordinator_max_rss_kb"`
	StartedAt           time.Time       `json:"started_at"`
	FinishedAt          time.Time       `json:"finished_at"`
	Phases              Phases          `json:"phases"`
	Workers             []WorkerSummary `json:"workers"`
}

// Flex counts the flex tier's refusals of one pass.
type Flex struct {
	Refusals int64 `json:"refusals"`
	FellBack int64 `json:"fell_back_to_default"`
}

// Cascade counts a --cascade run's records.
type Cascade struct {
	DecidedBy map[string]int64 `json:"decided_by"`
	Escalated int64            `json:"escalated"`
	// EscalatedShare is Escalated over the records answered.
	EscalatedShare float64 `json:"escalated_share"`
	// StrongAloneUSD is about what the records would have cost asked of the last model alone
	// (each record's tokens spread over the models it was asked of, priced at the last one's
	// rate); CostShare is the run's cost over it. 0 when a price is unknown.
	StrongAloneUSD float64 `json:"strong_alone_usd,omitempty"`
	CostShare      float64 `json:"cost_share_of_strong_alone,omitempty"`
}

// Agent is what the agent's loops did, over the answered records of the whole run.
type Agent struct {
	// Records counts the answers that went through the loop (fallbacks included; answers
	// from the response cache are not counted).
	Records int64 `json:"records"`
	// Turns sums their requests; TurnsHistogram counts records by turns ("1", "2", ...).
	Turns          int64            `json:"turns"`
	TurnsHistogram map[string]int64 `json:"turns_histogram"`
	// ToolCalls counts the calls by tool.
	ToolCalls map[string]int64 `json:"tool_calls"`
	// Fallbacks counts the records a limit sent to the one-shot prompt; Limited those that
	// failed with agent_limit (--agent-fallback fail).
	Fallbacks int64 `json:"fallbacks"`
	Limited   int64 `json:"agent_limit"`
}

// MarshalJSON writes estimated_cost_usd as null when a model's price is unknown (cost_known
// false): a cost that is not known is never written as a number, least of all 0.
func (s Summary) MarshalJSON() ([]byte, error) {
	type plain Summary
	out := struct {
		plain
		CostUSD *float64 `json:"estimated_cost_usd"`
	}{plain: plain(s)}
	if s.CostKnown {
		out.CostUSD = &s.CostUSD
	}
	return json.Marshal(out)
}

// Cost is the estimated cost for people: "$0.1234", or "unknown" when a model's price is not
// in the table (with what is known so far, if anything).
func (s *Summary) Cost() string {
	switch {
	case s.CostKnown:
		return fmt.Sprintf("$%.4f", s.CostUSD)
	case s.CostUSD > 0:
		return fmt.Sprintf("unknown (at least $%.4f; some models' prices are unknown: add them with --prices)", s.CostUSD)
	}
	return "unknown (the model's price is not in the table: add it with --prices)"
}

// Load reads a summary.json.
func Load(path string) (*Summary, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read summary: %w", err)
	}
	var s Summary
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("summary %s: %w", path, err)
	}
	return &s, nil
}
