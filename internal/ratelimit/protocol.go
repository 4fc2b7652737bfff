package ratelimit

import (
	"encoding/json"
	"errors"
	"time"
)

// Sentinel errors.
var (
	// ErrCoordinatorGone is returned by Client.Wait once the worker's stdin has ended: the
	// coordinator exited or was killed. A worker treats it as "stop now".
	ErrCoordinatorGone = errors.New("coordinator went away (stdin closed)")
	// ErrRefused is returned by Client.Wait when the coordinator refused the permit because the
	// worker already had MaxPending requests waiting (a worker bug, not a rate limit).
	ErrRefused = errors.New("permit refused")
)

// Line types of the permit protocol, one JSON object per line. They are distinct from the event
// types of package event (start, record, retry, fatal, end), which share the worker's stdout.
const (
	// TypeAcquire asks for a permit, worker to coordinator: {"type":"acquire","seq":N,"tokens":T}.
	TypeAcquire = "acquire"
	// TypeCancel withdraws an acquire the worker no longer waits for: {"type":"cancel","seq":N}.
	TypeCancel = "cancel"
	// TypeReconcile reports a request's real token usage:
	// {"type":"reconcile","estimated":E,"actual":A}.
	TypeReconcile = "reconcile"
	// TypeFeedback reports what an answer said about the rate limits: {"type":"feedback",
	// "status":429,"retry_after_ms":..,"remaining_requests":..,"remaining_tokens":..,
	// "limit_requests":..,"limit_tokens":..,"reset_requests_ms":..,"reset_tokens_ms":..}
	// (remaining -1 when unknown).
	TypeFeedback = "feedback"
	// TypeGrant answers an acquire, coordinator to worker: {"type":"grant","seq":N}, with
	// "error" when refused.
	TypeGrant = "grant"
)

// MaxPending bounds the acquires one worker may have waiting at the Server; a worker has at most
// its concurrency waiting.
const MaxPending = 1024

// message is one protocol line but feedback.
type message struct {
	Type      string `json:"type"`
	Seq       uint64 `json:"seq,omitempty"`
	Tokens    int    `json:"tokens,omitempty"`
	Estimated int    `json:"estimated,omitempty"`
	Actual    int    `json:"actual,omitempty"`
	Error     string `json:"error,omitempty"`
}

// feedbackLine is a feedback line: every field is always there, so -1 (unknown) travels.
type feedbackLine struct {
	Type string `json:"type"`
	wireFeedback
}

type wireFeedback struct {
	Status            int   `json:"status"`
	RetryAfterMS      int64 `json:"retry_after_ms"`
	RemainingRequests int   `json:"remaining_requests"`
	RemainingTokens   int   `json:"remaining_tokens"`
	LimitRequests     int   `json:"limit_requests"`
	LimitTokens       int   `json:"limit_tokens"`
	ResetRequestsMS   int64 `json:"reset_requests_ms"`
	ResetTokensMS     int64 `json:"reset_tokens_ms"`
}

func toWire(fb Feedback) wireFeedback {
	return wireFeedback{
		Status:            fb.Status,
		RetryAfterMS:      ceilMS(fb.RetryAfter),
		RemainingRequests: fb.RemainingRequests,
		RemainingTokens:   fb.RemainingTokens,
		LimitRequests:     fb.LimitRequests,
		LimitTokens:       fb.LimitTokens,
		ResetRequestsMS:   ceilMS(fb.ResetRequests),
		ResetTokensMS:     ceilMS(fb.ResetTokens),
	}
}

func (w *wireFeedback) feedback() Feedback {
	return Feedback{
		Status:            w.Status,
		RetryAfter:        time.Duration(w.RetryAfterMS) * time.Millisecond,
		RemainingRequests: w.RemainingRequests,
		RemainingTokens:   w.RemainingTokens,
		LimitRequests:     w.LimitRequests,
		LimitTokens:       w.LimitTokens,
		ResetRequests:     time.Duration(w.ResetRequestsMS) * time.Millisecond,
		ResetTokens:       time.Duration(w.ResetTokensMS) * time.Millisecond,
	}
}

// ceilMS rounds up, so a wait sent over the pipe is never shorter than asked.
func ceilMS(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}

// encode returns m (a message or a feedbackLine) as one line.
func encode(m any) []byte {
	b, err := json.Marshal(m)
	if err != nil {
		// Lines hold only numbers and strings; Marshal cannot fail on them.
		panic("ratelimit: encode: " + err.Error())
	}
	return append(b, '\n')
}
