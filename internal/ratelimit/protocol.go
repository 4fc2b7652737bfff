package ratelimit

import (
	"errors"
	"time"

	"github.com/trialcat/trialcat/internal/wire"
)

// Sentinel errors.
var (
	// ErrCoordinatorGone is returned by Client.Wait once the worker's stdin has ended: the
	// coordinator exited or was killed. A worker treats it as "stop now".
	ErrCoordinatorGone = errors.New("the permit connection closed")
	// ErrRefused is returned by Client.Wait when the coordinator refused the permit because the
	// worker already had MaxPending requests waiting (a worker bug, not a rate limit).
	ErrRefused = errors.New("permit refused")
)

// MaxPending bounds the acquires one worker may have waiting at the Server; a worker has at most
// its concurrency waiting.
const MaxPending = 1024

// feedbackMsg is fb as a wire line.
func feedbackMsg(fb Feedback) wire.Msg {
	return wire.Msg{
		Type:              wire.Feedback,
		Status:            fb.Status,
		RetryAfterMS:      ceilMS(fb.RetryAfter),
		RemainingRequests: fb.RemainingRequests,
		RemainingTokens:   fb.RemainingTokens,
		LimitRequests:     fb.LimitRequests,
		LimitTokens:       fb.LimitTokens,
		ResetRequestsMS:   ceilMS(fb.ResetRequests),
		ResetTokensMS:     ceilMS(fb.ResetTokens),
		Outage:            fb.Outage,
	}
}

// feedbackFrom reads a feedback line.
func feedbackFrom(m wire.Msg) Feedback {
	ms := func(v int64) time.Duration { return time.Duration(v) * time.Millisecond }
	return Feedback{
		Status:            m.Status,
		RetryAfter:        ms(m.RetryAfterMS),
		RemainingRequests: m.RemainingRequests,
		RemainingTokens:   m.RemainingTokens,
		LimitRequests:     m.LimitRequests,
		LimitTokens:       m.LimitTokens,
		ResetRequests:     ms(m.ResetRequestsMS),
		ResetTokens:       ms(m.ResetTokensMS),
		Outage:            m.Outage,
	}
}

// ceilMS rounds up, so a wait sent over the pipe is never shorter than asked.
func ceilMS(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}
