package llm

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/trialcat/trialcat/internal/wait"
	"net/http"
	"time"
)

// Attempt describes one finished attempt, for logs and persistence.
type Attempt struct {
	RecordID string
	// Attempt is the 1-based attempt number, prior attempts included.
	Attempt int
	Latency time.Duration
	Usage   Usage
	// Err is nil on success.
	Err *Error
	// Model is the model that answered, or the requested one when none did.
	Model string
	// Tier is the service tier the attempt was served on (as the server said, else as asked).
	Tier string
	// Delay is the pause before the next attempt; 0 when there is none.
	Delay time.Duration
	// RateLimit holds the answer's rate-limit headers, nil when there were none.
	RateLimit http.Header
	// Warning is the answer's Reply.Warning.
	Warning string
}

// Caller asks a Provider until an answer passes validation, an error is not retryable, or
// MaxAttempts is reached. A Caller holds no state of its own: Call may run concurrently when
// Provider, Validate, Sleep, Rand and the hooks are safe for concurrent use.
type Caller struct {
	// Provider makes each attempt.
	Provider Provider
	// Validate checks the answer against the schema and returns its values. A failure is a
	// schema_violation attempt and is retried. Nil means any JSON object passes. Content that
	// is not JSON is an invalid_json attempt and never reaches Validate.
	Validate func(content []byte) (map[string]any, error)
	// MaxAttempts caps the attempts per record, prior attempts included; below 1 means 1.
	MaxAttempts int
	// Backoff computes the pause between attempts.
	Backoff Backoff
	// Timeout bounds each attempt with its own context.WithTimeout when above 0; the parent
	// context covers all attempts.
	Timeout time.Duration
	// Sleep pauses between attempts; nil means wait.Sleep.
	Sleep func(ctx context.Context, d time.Duration) error
	// Rand feeds the jitter; nil means math/rand/v2.
	Rand func() float64
	// OnAttempt, when set, is called once per finished attempt, before the pause that follows
	// it (Attempt.Delay).
	OnAttempt func(Attempt)
	// BeforeAttempt, when set, runs before each attempt (persist it, wait for a rate permit).
	// An error aborts Call and is returned wrapped.
	BeforeAttempt func(ctx context.Context, recordID string, attempt int) error
	// EscalateModel, when set, takes over a record once EscalateAfter of its answers failed
	// validation (invalid_json or schema_violation) in this call: the design's hybrid, where a
	// bigger model answers what the small one cannot.
	EscalateModel string
	// EscalateAfter is the number of invalid answers before escalating; below 1 means 2.
	EscalateAfter int
	// FlexFallback, when above 0, sends a request on the default tier once the flex tier refused
	// it (ClassFlexUnavailable) that many times; 0 keeps retrying on flex for FreeRetryFor.
	FlexFallback int
	// FreeRetryFor bounds how long one record keeps retrying attempts that failed through no
	// fault of its own, a server it cannot reach or a 429 (they do not count toward
	// MaxAttempts); 0 means DefaultFreeRetryFor. Past it, Call returns the last such error: the
	// record stays to do.
	FreeRetryFor time.Duration
}

// DefaultFreeRetryFor is Caller.FreeRetryFor's default.
const DefaultFreeRetryFor = 10 * time.Minute

// Free reports whether an attempt that failed so is not the record's fault and does not count
// toward its attempts: the server could not be reached, or asked to slow down (a 429 the rate
// limiter could not avoid).
func (e *Error) Free() bool {
	return e.Class == ClassUnreachable || e.Class == ClassRateLimited || e.Class == ClassFlexUnavailable
}

// Result is the outcome of Call.
type Result struct {
	// Values is the validated answer.
	Values map[string]any
	// Content is the answer text.
	Content string
	// ToolCalls are the answer's function calls (a turn that offered tools).
	ToolCalls []ToolCall
	// Model is the model that answered.
	Model string
	// Usage is summed over all attempts of this call, failed ones included.
	Usage Usage
	// Billed splits Usage by the model each attempt went to and the tier it was served on, for
	// pricing.
	Billed map[Charge]Usage
	// Tier is the service tier the answer was served on: as the server said, else as asked (""
	// when neither said).
	Tier string
	// FlexRefusals counts the attempts the flex tier refused (ClassFlexUnavailable); FellBack
	// says the request then went on the default tier (Caller.FlexFallback).
	FlexRefusals int
	FellBack     bool
	// Attempts counts attempts, prior ones included.
	Attempts int
	// Latency is the latency of the last attempt (the successful one on success).
	Latency time.Duration
}

// Charge is what an attempt's tokens are priced by: the model that answered and the service tier
// it was served on ("" for a server that names none: the default tier).
type Charge struct {
	Model string
	Tier  string
}

// Plus is r followed by next (a second request about the same record): next's answer, model
// and latency, the usage and attempts of both.
func (r Result) Plus(next Result) Result {
	out := next
	out.Usage = r.Usage.Add(next.Usage)
	out.Attempts = r.Attempts + next.Attempts
	out.Latency = r.Latency + next.Latency
	out.Billed = map[Charge]Usage{}
	for _, m := range []map[Charge]Usage{r.Billed, next.Billed} {
		for k, u := range m {
			out.Billed[k] = out.Billed[k].Add(u)
		}
	}
	out.FlexRefusals = r.FlexRefusals + next.FlexRefusals
	out.FellBack = r.FellBack || next.FellBack
	if out.Model == "" {
		out.Model = r.Model
	}
	return out
}

// Call asks for req until success, a non-retryable error, or MaxAttempts attempts in total
// (priorAttempts already spent count toward it). On failure it returns an error wrapping the
// *Error of the last attempt (use errors.As), or wrapping BeforeAttempt's error, or
// ErrAttemptsExhausted when no attempt was left. Result.Attempts and Result.Usage are set
// even on failure.
func (c *Caller) Call(ctx context.Context, req Request, priorAttempts int) (Result, error) {
	res := Result{Attempts: priorAttempts, Model: req.Model, Billed: map[Charge]Usage{}}
	escalateAfter := c.EscalateAfter
	if escalateAfter < 1 {
		escalateAfter = 2
	}
	invalid := 0
	if c.Provider == nil {
		return res, fmt.Errorf("record %s: %w", req.RecordID, ErrNoProvider)
	}
	maxAttempts := max(c.MaxAttempts, 1)
	if priorAttempts >= maxAttempts {
		return res, fmt.Errorf("record %s: %d of %d attempts spent: %w",
			req.RecordID, priorAttempts, maxAttempts, ErrAttemptsExhausted)
	}
	sleep := c.Sleep
	if sleep == nil {
		sleep = wait.Sleep
	}
	freeFor := c.FreeRetryFor
	if freeFor <= 0 {
		freeFor = DefaultFreeRetryFor
	}
	var freeSince time.Time
	freeTries := 0
	for n := priorAttempts + 1; ; n++ {
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("record %s: attempt %d: %w", req.RecordID, n, canceled(ctx))
		}
		if c.BeforeAttempt != nil {
			if err := c.BeforeAttempt(ctx, req.RecordID, n); err != nil {
				if ctx.Err() != nil {
					err = canceled(ctx)
				}
				return res, fmt.Errorf("record %s: before attempt %d: %w", req.RecordID, n, err)
			}
		}
		vals, rep, lat, e := c.attempt(ctx, req)
		res.Attempts = n
		res.Usage = res.Usage.Add(rep.Usage)
		res.Latency = lat
		res.Model = req.Model
		if rep.Model != "" {
			res.Model = rep.Model
		}
		tier := cmp.Or(rep.ServiceTier, req.ServiceTier)
		if rep.Usage != (Usage{}) {
			res.Billed[Charge{res.Model, tier}] = res.Billed[Charge{res.Model, tier}].Add(rep.Usage)
		}
		if e != nil && (e.Class == ClassInvalidJSON || e.Class == ClassSchemaViolation) {
			invalid++
			if c.EscalateModel != "" && invalid >= escalateAfter && req.Model != c.EscalateModel {
				req.Model = c.EscalateModel
			}
		}
		at := Attempt{RecordID: req.RecordID, Attempt: n, Latency: lat, Usage: rep.Usage, Err: e, Model: res.Model, Tier: tier, RateLimit: rep.RateLimit, Warning: rep.Warning}
		if e != nil && e.RateLimit != nil {
			at.RateLimit = e.RateLimit
		}
		if e == nil {
			res.Values, res.Content, res.ToolCalls, res.Tier = vals, rep.Content, rep.ToolCalls, tier
			c.report(at)
			return res, nil
		}
		if e.Class == ClassFlexUnavailable {
			res.FlexRefusals++
			if c.FlexFallback > 0 && res.FlexRefusals >= c.FlexFallback && req.ServiceTier != TierDefault {
				// The flex tier refused this request often enough: send it on the default tier
				// now, at the default tier's price, rather than wait for capacity.
				req.ServiceTier, res.FellBack = TierDefault, true
				res.Attempts = n - 1
				c.report(at)
				n--
				continue
			}
		}
		if e.Free() {
			// Not an attempt of the record's: try again after a backoff, without counting, for
			// as long as FreeRetryFor allows.
			if freeSince.IsZero() {
				freeSince = time.Now()
			}
			res.Attempts = n - 1
			if time.Since(freeSince) >= freeFor {
				c.report(at)
				return res, fmt.Errorf("record %s: %s for %s: %w", req.RecordID, e.Class, freeFor, e)
			}
			freeTries++
			at.Delay = c.Backoff.Delay(freeTries, e, c.Rand)
			c.report(at)
			if err := sleep(ctx, at.Delay); err != nil {
				return res, fmt.Errorf("record %s: waiting before attempt %d: %w", req.RecordID, n, canceled(ctx))
			}
			n--
			continue
		}
		freeSince, freeTries = time.Time{}, 0
		if !e.Retryable() || n >= maxAttempts {
			c.report(at)
			return res, fmt.Errorf("record %s: attempt %d of %d: %w", req.RecordID, n, maxAttempts, e)
		}
		at.Delay = c.Backoff.Delay(n, e, c.Rand)
		c.report(at)
		if err := sleep(ctx, at.Delay); err != nil {
			return res, fmt.Errorf("record %s: waiting before attempt %d: %w", req.RecordID, n+1, canceled(ctx))
		}
	}
}

func (c *Caller) report(a Attempt) {
	if c.OnAttempt != nil {
		c.OnAttempt(a)
	}
}

// attempt makes one attempt under its own timeout and validates the answer.
func (c *Caller) attempt(ctx context.Context, req Request) (map[string]any, Reply, time.Duration, *Error) {
	actx, cancel := ctx, context.CancelFunc(func() {})
	if c.Timeout > 0 {
		actx, cancel = context.WithTimeout(ctx, c.Timeout)
	}
	start := time.Now()
	rep, err := c.Provider.Complete(actx, req)
	lat := time.Since(start)
	attemptTimedOut := actx.Err() != nil
	cancel()
	if err != nil {
		e := Classify(err)
		switch {
		case ctx.Err() != nil:
			e = canceled(ctx)
		case attemptTimedOut && e.Class != ClassTimeout:
			e = &Error{Class: ClassTimeout, Message: fmt.Sprintf("no answer within %s", c.Timeout), cause: context.DeadlineExceeded}
		}
		return nil, rep, lat, e
	}
	if len(req.Tools) > 0 {
		// A turn of a tool loop: the loop reads the calls (or the text) and checks them itself.
		if len(rep.ToolCalls) == 0 && rep.Content == "" {
			return nil, rep, lat, &Error{Class: ClassInvalidJSON, Message: "the answer has neither a tool call nor text"}
		}
		return nil, rep, lat, nil
	}
	vals, e := c.validate([]byte(rep.Content))
	return vals, rep, lat, e
}

// Check validates an answer obtained outside Call (a Batch API output line) as Call would:
// JSON, then the schema. A failure is an *Error of class invalid_json or schema_violation.
func (c *Caller) Check(content []byte) (map[string]any, error) {
	m, e := c.validate(content)
	if e != nil {
		return nil, e
	}
	return m, nil
}

func (c *Caller) validate(content []byte) (map[string]any, *Error) {
	if !json.Valid(content) {
		return nil, &Error{Class: ClassInvalidJSON, Message: fmt.Sprintf("content is not JSON: %q", clip(string(content), 120))}
	}
	if c.Validate == nil {
		var m map[string]any
		if err := json.Unmarshal(content, &m); err != nil || m == nil {
			return nil, &Error{Class: ClassSchemaViolation, Message: "content is not a JSON object"}
		}
		return m, nil
	}
	m, err := c.Validate(content)
	if err != nil {
		var le *Error
		if errors.As(err, &le) {
			return nil, le
		}
		return nil, &Error{Class: ClassSchemaViolation, Message: err.Error()}
	}
	return m, nil
}

// canceled is the *Error for a parent context that ended; it wraps the context's cause.
func canceled(ctx context.Context) *Error {
	cause := context.Cause(ctx)
	if cause == nil {
		cause = context.Canceled
	}
	return &Error{Class: ClassCanceled, Message: "canceled: " + cause.Error(), cause: cause}
}
